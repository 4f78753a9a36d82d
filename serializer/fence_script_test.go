package serializer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/lease"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
)

// The fencing check of worker.lua, without a worker: every op under a lease
// value that is no longer the node's lease answers ErrFenced and writes
// nothing, on miniredis and on a real redis-server.

// dumpNode renders every key of a node (slots, tasks, log, lease, fence) so
// that two dumps differ when anything was written.
func dumpNode(t *testing.T, rdb redis.UniversalClient, node string) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, k := range nodeKeys(node).all() {
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s (%s): ", k, typ)
		switch typ {
		case "hash":
			fmt.Fprint(&b, rdb.HGetAll(ctx, k).Val())
		case "zset":
			fmt.Fprint(&b, rdb.ZRangeWithScores(ctx, k, 0, -1).Val())
		case "list":
			fmt.Fprint(&b, rdb.LRange(ctx, k, 0, -1).Val())
		case "string":
			fmt.Fprint(&b, rdb.Get(ctx, k).Val())
		case "none":
		default:
			t.Fatalf("key %s has unexpected type %s", k, typ)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestWorkerScriptRefusesAStaleLease(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			rdb := target.New(t)
			st := NewStore(rdb)
			ctx := context.Background()
			now := time.UnixMilli(1_700_000_000_000)
			const node, task = "fn", "fn.t1"
			if a, err := st.Admit(ctx, node, DefaultRules(), schemas.ResetOn, task, now, "test"); err != nil || a.Outcome != Started {
				t.Fatalf("admit: %+v %v", a, err)
			}
			leaseA, err := st.acquire(ctx, node, "A", time.Hour)
			if err != nil || leaseA.Value() != "A|1" {
				t.Fatalf("acquire A: %v %v", leaseA, err)
			}
			if _, err := st.workerOp(ctx, node, leaseA.Value(), task, now, "begin"); err != nil {
				t.Fatalf("begin under the live lease: %v", err)
			}
			if res, err := st.workerOp(ctx, node, leaseA.Value(), task, now, "step", "On attempt 1"); err != nil || res[1] != "" {
				t.Fatalf("step under the live lease: %v %v", res, err)
			}

			// A's lease expires; B takes the node with the next fence.
			if err := rdb.Del(ctx, nodeKeys(node).Lease).Err(); err != nil {
				t.Fatal(err)
			}
			leaseB, err := st.acquire(ctx, node, "B", time.Hour)
			if err != nil || leaseB.Value() != "B|2" {
				t.Fatalf("acquire B: %v %v", leaseB, err)
			}
			if _, err := st.acquire(ctx, node, "A", time.Hour); !errors.Is(err, lease.ErrHeld) {
				t.Fatalf("A acquired while B holds the lease: %v", err)
			}

			stale := map[string][]any{
				"begin":    nil,
				"step":     {"On attempt 2"},
				"progress": {50, "waiting for On"},
				"finish":   {string(schemas.TaskStateCompleted), "OK", "On confirmed by the BMC", "On", "0"},
				"power":    {"Off"},
			}
			check := func(l *lease.Lease) {
				t.Helper()
				before := dumpNode(t, rdb, node)
				for op, args := range stale {
					res, err := st.workerOp(ctx, node, l.Value(), task, now.Add(time.Second), op, args...)
					if !errors.Is(err, ErrFenced) {
						t.Fatalf("%s under stale lease %s: %v %v, want ErrFenced", op, l.Value(), res, err)
					}
				}
				if err := l.Renew(ctx); !errors.Is(err, lease.ErrLost) {
					t.Fatalf("renew of stale lease %s: %v", l.Value(), err)
				}
				if err := l.Release(ctx); !errors.Is(err, lease.ErrLost) {
					t.Fatalf("release of stale lease %s: %v", l.Value(), err)
				}
				if after := dumpNode(t, rdb, node); after != before {
					t.Fatalf("ops under stale lease %s wrote:\nbefore:\n%s\nafter:\n%s", l.Value(), before, after)
				}
			}
			check(leaseA)

			// The holder's own ops still go through (the check is not blanket).
			if res, err := st.workerOp(ctx, node, leaseB.Value(), task, now, "step", "On attempt 2"); err != nil || res[1] != "" {
				t.Fatalf("step under B's lease: %v %v", res, err)
			}
			if err := leaseB.Renew(ctx); err != nil {
				t.Fatalf("renew of B's lease: %v", err)
			}

			// A fence is never reused: after B releases, A comes back as A|3,
			// and A|1 stays fenced.
			if err := leaseB.Release(ctx); err != nil {
				t.Fatal(err)
			}
			leaseA3, err := st.acquire(ctx, node, "A", time.Hour)
			if err != nil || leaseA3.Value() != "A|3" {
				t.Fatalf("acquire A again: %v %v", leaseA3, err)
			}
			check(leaseA)
			check(leaseB)
			if _, err := st.workerOp(ctx, node, leaseA3.Value(), task, now, "finish", string(schemas.TaskStateCompleted), "OK", "On confirmed by the BMC", "On", "0"); err != nil {
				t.Fatalf("finish under the live lease: %v", err)
			}
			if tr, err := st.Task(ctx, task); err != nil || tr.State != schemas.TaskStateCompleted {
				t.Fatalf("task after the holder's finish: %+v %v", tr, err)
			}
		})
	}
}
