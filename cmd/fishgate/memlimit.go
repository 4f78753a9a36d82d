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

// memoryEmbeddedPerNode is added to memoryPerNode when the Redis is the
// embedded one, whose data (at most 40 command log entries a node, and
// config.EmbeddedKeep tasks and events) lives in the same heap: about
// 11 KB a node at 10,000 nodes once all of it is kept, by the heap profile's
// sizes (not measured at that fill). Without it, a
// 10,000-node gateway's live heap reached 300 MiB of its 390 MiB limit and
// the collector ran almost without pause (each fleet-wide reset slower than
// the one before: 62, 88, 119, 169 s; with a 470 MiB limit 50, 60, 69,
// 80 s, resident 484 MiB; both measured keeping 100,000 tasks and events).
const memoryEmbeddedPerNode = 8 << 10

// memoryLimit is the soft limit for a gateway of nodes.
func memoryLimit(nodes int, embedded bool) int64 {
	per := int64(memoryPerNode)
	if embedded {
		per += memoryEmbeddedPerNode
	}
	return max(memoryFloor, int64(nodes)*per)
}

// setMemoryLimit applies memoryLimit unless the operator set GOMEMLIMIT
// (which the runtime has applied already), and returns what is in effect.
func setMemoryLimit(nodes int, embedded bool, log *slog.Logger) int64 {
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok && v != "" {
		return debug.SetMemoryLimit(-1) // -1 reads it without a change
	}
	l := memoryLimit(nodes, embedded)
	debug.SetMemoryLimit(l)
	log.Info("Go memory limit set (GOMEMLIMIT overrides it)", "bytes", l, "nodes", nodes, "embedded_redis", embedded)
	return l
}
