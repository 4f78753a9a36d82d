package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		nodes    int
		embedded bool
		want     int64
	}{{0, false, 256 << 20}, {100, true, 256 << 20}, {10000, false, 10000 * 40 << 10}, {30000, false, 30000 * 40 << 10},
		{10000, true, 10000 * 48 << 10}, {30000, true, 30000 * 48 << 10}} {
		if got := memoryLimit(c.nodes, c.embedded); got != c.want {
			t.Errorf("memoryLimit(%d, embedded %v) = %d, want %d", c.nodes, c.embedded, got, c.want)
		}
	}
}

// TestSetMemoryLimit: without GOMEMLIMIT the limit follows the fleet; with
// it the operator's value stays.
func TestSetMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	t.Setenv("GOMEMLIMIT", "")
	if got := setMemoryLimit(10000, true, log); got != memoryLimit(10000, true) || debug.SetMemoryLimit(-1) != memoryLimit(10000, true) {
		t.Errorf("without GOMEMLIMIT: set %d, runtime has %d, want %d", got, debug.SetMemoryLimit(-1), memoryLimit(10000, true))
	}
	debug.SetMemoryLimit(123 << 20) // as the runtime does from GOMEMLIMIT=123MiB at start
	t.Setenv("GOMEMLIMIT", "123MiB")
	if got := setMemoryLimit(10000, true, log); got != 123<<20 || debug.SetMemoryLimit(-1) != 123<<20 {
		t.Errorf("with GOMEMLIMIT=123MiB: got %d, runtime has %d, want %d", got, debug.SetMemoryLimit(-1), 123<<20)
	}
}
