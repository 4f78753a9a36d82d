// This file gives tests a Redis to run against: miniredis, and a
// throwaway real redis-server (Debian's package) on a free loopback port.

package testkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
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

// Mini starts a miniredis with real-time TTLs for the test. Its client
// fails the test on a call Redis Cluster would refuse (slots.go).
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
	checkSlots(t, c)
	return c
}

// Real starts a redis-server on a free loopback port for the test. Its
// client fails the test on a call Redis Cluster would refuse (slots.go).
func RealRedis(t testing.TB) *redis.Client {
	t.Helper()
	addr := StartRedisServer(t)
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true}) // as the gateway's (redisx)
	t.Cleanup(func() { c.Close() })
	checkSlots(t, c)
	return c
}

// StartRedisServer starts redis-server (no persistence) on a free loopback
// port and returns its address. It is stopped when the test ends.
func StartRedisServer(t testing.TB) string {
	t.Helper()
	return startRedisServer(t, func(port int) []string { return []string{"--port", fmt.Sprint(port)} },
		func(ctx context.Context, addr string) error { return redisproc.WaitRedis(ctx, addr, 10*time.Second) })
}

// startRedisServer starts redis-server on a free loopback port, listening
// as listen says, until ready says it serves. The port is free when picked
// but another process may bind it before redis-server does: then
// redis-server exits saying so, and another port is tried.
func startRedisServer(t testing.TB, listen func(port int) []string, ready func(ctx context.Context, addr string) error) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not installed (CI is set: .ci/run must install Debian's redis-server)")
		}
		t.Skip("redis-server not installed; apt-get install redis-server to run this against a real Redis")
	}
	for attempt := 1; ; attempt++ {
		port, err := redisproc.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		args := append([]string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--protected-mode", "yes",
			// DEBUG SLEEP freezes a server in tests of a frozen Redis
			"--enable-debug-command", "local"}, listen(port)...)
		cmd := exec.Command(bin, args...)
		log := &SyncBuffer{}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-exited })
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-exited: // no use waiting for a server that is gone
				cancel()
			case <-ctx.Done():
			}
		}()
		err = ready(ctx, addr)
		cancel()
		if err == nil {
			return addr
		}
		select {
		case <-exited:
			if strings.Contains(log.String(), "already in use") && attempt < 5 {
				continue
			}
		default:
		}
		t.Fatalf("redis-server on %s: %v\n%s", addr, err, log.String())
	}
}
