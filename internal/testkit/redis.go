// This file gives tests a Redis to run against: miniredis, and a
// throwaway real redis-server (Debian's package) on a free loopback port.

package testkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/redisproc"
	"github.com/fishgate/fishgate/internal/redisx"
)

// Target is one Redis flavour a test runs against.
type RedisTarget struct {
	Name string
	New  func(t testing.TB) *redis.Client
}

// Targets returns miniredis and real redis-server. When redis-server is not
// installed the real target skips its test, or fails it when CI is set.
func RedisTargets() []RedisTarget {
	return []RedisTarget{{"miniredis", MiniRedis}, {"redis-server", RealRedis}}
}

// Mini starts a miniredis with real-time TTLs for the test.
func MiniRedis(t testing.TB) *redis.Client {
	t.Helper()
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	stop := redisx.RunClock(m, 20*time.Millisecond)
	t.Cleanup(func() { stop(); m.Close() })
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true}) // as the gateway's (redisx)
	t.Cleanup(func() { c.Close() })
	return c
}

// Real starts a redis-server on a free loopback port for the test.
func RealRedis(t testing.TB) *redis.Client {
	t.Helper()
	addr := StartRedisServer(t)
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true}) // as the gateway's (redisx)
	t.Cleanup(func() { c.Close() })
	return c
}

// StartServer starts redis-server (no persistence) on a free loopback port
// and returns its address. It is stopped when the test ends.
func StartRedisServer(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not installed (CI is set: .ci/run must install Debian's redis-server)")
		}
		t.Skip("redis-server not installed; apt-get install redis-server to run this against a real Redis")
	}
	port, err := redisproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port),
		"--save", "", "--appendonly", "no", "--dir", dir, "--protected-mode", "yes",
		// DEBUG SLEEP freezes a server in tests of a frozen Redis
		"--enable-debug-command", "local")
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := redisproc.WaitRedis(context.Background(), addr, 10*time.Second); err != nil {
		t.Fatalf("%v (log dir %s)", err, filepath.Clean(dir))
	}
	return addr
}
