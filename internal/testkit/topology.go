package testkit

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/redisproc"
)

// StartRedisTopology starts a real Redis topology (redisproc.Modes:
// standalone, sentinel, cluster) for the test, stopped when it ends. When
// redis-server or redis-cli is not installed the test is skipped, or fails
// when CI is set.
func StartRedisTopology(t testing.TB, mode string) *redisproc.Topology {
	t.Helper()
	return startTopology(t, redisproc.Options{Mode: mode})
}

// startTopology starts o (Dir, Down and Logf filled in) for the test.
func startTopology(t testing.TB, o redisproc.Options) *redisproc.Topology {
	t.Helper()
	needRedisTools(t)
	o.Dir, o.Down, o.Logf = t.TempDir(), 100*time.Millisecond, t.Logf
	topo, err := redisproc.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(topo.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := topo.Start(ctx); err != nil {
		t.Fatalf("start redis %s: %v", o.Mode, err)
	}
	return topo
}

// needRedisTools skips the test when redis-server or redis-cli is not
// installed, or fails it when CI is set.
func needRedisTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not installed (CI is set: .ci/run must install Debian's redis-server)", tool)
			}
			t.Skipf("%s not installed; apt-get install redis-server to run this against real Redis", tool)
		}
	}
}
