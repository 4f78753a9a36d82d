package redisx

import (
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
)

func TestClockPause(t *testing.T) {
	for _, c := range []struct{ tick, walk, want time.Duration }{
		{100 * time.Millisecond, 0, 100 * time.Millisecond},
		{100 * time.Millisecond, time.Millisecond, 100 * time.Millisecond},
		{100 * time.Millisecond, 2 * time.Millisecond, 100 * time.Millisecond},
		{100 * time.Millisecond, 3 * time.Millisecond, 150 * time.Millisecond},
		{100 * time.Millisecond, 40 * time.Millisecond, 2 * time.Second},
	} {
		if got := clockPause(c.tick, c.walk); got != c.want {
			t.Errorf("clockPause(%s, %s) = %s, want %s", c.tick, c.walk, got, c.want)
		}
	}
}

// TestClockExpiresAmongManyKeys: with 100,000 keys (a walk of tens of
// milliseconds, so longer pauses) a TTL still ends, and a key without one
// stays.
func TestClockExpiresAmongManyKeys(t *testing.T) {
	m := miniredis.NewMiniRedis()
	t.Cleanup(m.Close)
	for i := range 100000 {
		m.Set("k"+strconv.Itoa(i), "v")
	}
	m.Set("short", "v")
	m.SetTTL("short", 300*time.Millisecond)
	t0 := time.Now()
	stop := RunClock(m, 10*time.Millisecond)
	defer stop()
	for m.Exists("short") {
		if time.Since(t0) > 30*time.Second {
			t.Fatal("a key with a 300 ms TTL still exists after 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !m.Exists("k99999") {
		t.Fatal("a key without a TTL is gone")
	}
	t.Logf("300 ms TTL ended after %s among 100,000 keys", time.Since(t0).Round(time.Millisecond))
}
