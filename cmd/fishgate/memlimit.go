package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// memoryPerNode and memoryFloor make the soft memory limit fishgate serve
// gives the Go runtime when GOMEMLIMIT is not set. With the collector's
// default alone (GOGC=100) the heap grows to twice what is live before a
// collection: a 10,000-node gateway with about 200 MiB live after a
// fleet-wide power cycle (the embedded Redis included) stood at 590 MiB
// resident (issue 13: at most 512 MiB). 40 KiB a node is twice that live
// share; the collector works harder only when the process nears it, and
// never spends more than about half a core on it (the runtime's cap), so
// a larger fleet than planned runs slower rather than failing.
const (
	memoryPerNode = 40 << 10
	memoryFloor   = 256 << 20
)

// memoryLimit is the soft limit for a gateway of nodes.
func memoryLimit(nodes int) int64 {
	return max(memoryFloor, int64(nodes)*memoryPerNode)
}

// setMemoryLimit applies memoryLimit unless the operator set GOMEMLIMIT
// (which the runtime has applied already), and returns what is in effect.
func setMemoryLimit(nodes int, log *slog.Logger) int64 {
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok && v != "" {
		return debug.SetMemoryLimit(-1) // -1 reads it without a change
	}
	l := memoryLimit(nodes)
	debug.SetMemoryLimit(l)
	log.Info("Go memory limit set (GOMEMLIMIT overrides it)", "bytes", l, "nodes", nodes)
	return l
}
