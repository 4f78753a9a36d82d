package lease_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/lease"
	"github.com/fishgate/fishgate/internal/redisx"
	"github.com/fishgate/fishgate/internal/testkit"
)

var keys = lease.At("fg:test:{l1}:")

// forEachRedis runs f against miniredis and a real redis-server.
func forEachRedis(t *testing.T, f func(t *testing.T, rdb *redis.Client)) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			t.Parallel()
			f(t, target.New(t))
		})
	}
}

func acquire(t *testing.T, rdb redis.Scripter, holder string, ttl time.Duration) *lease.Lease {
	t.Helper()
	l, err := lease.Acquire(context.Background(), redisx.Plain(rdb), keys, holder, ttl)
	if err != nil {
		t.Fatalf("acquire for %s: %v", holder, err)
	}
	return l
}

func holderValue(t *testing.T, rdb *redis.Client) string {
	t.Helper()
	v, err := rdb.Get(context.Background(), keys.Holder).Result()
	if errors.Is(err, redis.Nil) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAt(t *testing.T) {
	if keys.Holder != "fg:test:{l1}:lease" || keys.Fence != "fg:test:{l1}:fence" {
		t.Fatalf("At: %+v", keys)
	}
}

// TestFenceTokens: one holder at a time; every acquisition gets a fence
// greater than every earlier one, also after a release or an expiry; a
// value that is no longer the lease's renews and releases nothing.
func TestFenceTokens(t *testing.T) {
	forEachRedis(t, func(t *testing.T, rdb *redis.Client) {
		ctx := context.Background()
		a := acquire(t, rdb, "A", time.Hour)
		if a.Value() != "A|1" || a.Fence() != 1 || a.Keys() != keys || a.TTL() != time.Hour {
			t.Fatalf("first lease: %q fence %d keys %+v ttl %s", a.Value(), a.Fence(), a.Keys(), a.TTL())
		}
		if pttl := rdb.PTTL(ctx, keys.Holder).Val(); pttl <= 59*time.Minute || pttl > time.Hour {
			t.Errorf("PTTL %s, want about an hour", pttl)
		}
		if _, err := lease.Acquire(ctx, redisx.Plain(rdb), keys, "B", time.Hour); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("B acquired while A holds: %v", err)
		}
		if _, err := lease.Acquire(ctx, redisx.Plain(rdb), keys, "A", time.Hour); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("A acquired twice: %v", err)
		}
		if err := a.Release(ctx); err != nil {
			t.Fatalf("release: %v", err)
		}
		if v := holderValue(t, rdb); v != "" {
			t.Fatalf("released lease still holds %q", v)
		}
		b := acquire(t, rdb, "B", time.Hour)
		if b.Value() != "B|2" || b.Fence() != 2 {
			t.Fatalf("after A's release: %q", b.Value())
		}
		// B's lease expires (deleted, as an expiry would).
		if err := rdb.Del(ctx, keys.Holder).Err(); err != nil {
			t.Fatal(err)
		}
		a3 := acquire(t, rdb, "A", time.Hour)
		if a3.Value() != "A|3" || a3.Fence() != 3 {
			t.Fatalf("after B's expiry: %q", a3.Value())
		}
		for _, stale := range []*lease.Lease{a, b} {
			if err := stale.Renew(ctx); !errors.Is(err, lease.ErrLost) {
				t.Errorf("renew of stale %s: %v, want ErrLost", stale.Value(), err)
			}
			if err := stale.Release(ctx); !errors.Is(err, lease.ErrLost) {
				t.Errorf("release of stale %s: %v, want ErrLost", stale.Value(), err)
			}
		}
		if v := holderValue(t, rdb); v != "A|3" {
			t.Fatalf("stale renewals and releases changed the lease to %q", v)
		}
	})
}

// TestFenceInAHashField: with FenceField the counter is a field of a hash
// that keeps its other fields; a counter left in the former key is carried
// over once (the fence never goes back, also when the hash's count is
// ahead), the former key is gone after, and keys that cannot work are
// refused.
func TestFenceInAHashField(t *testing.T) {
	forEachRedis(t, func(t *testing.T, rdb *redis.Client) {
		ctx := context.Background()
		hk := lease.Keys{Holder: "fg:test:{h1}:lease", Fence: "fg:test:{h1}:slots", FenceField: "fence", FormerFence: "fg:test:{h1}:fence"}
		if err := rdb.HSet(ctx, hk.Fence, "power", "On").Err(); err != nil {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, hk.FormerFence, 41, 0).Err(); err != nil {
			t.Fatal(err)
		}
		take := func(holder string) *lease.Lease {
			t.Helper()
			l, err := lease.Acquire(ctx, redisx.Plain(rdb), hk, holder, time.Hour)
			if err != nil {
				t.Fatalf("acquire for %s: %v", holder, err)
			}
			return l
		}
		a := take("A")
		if a.Value() != "A|42" {
			t.Fatalf("first lease after the former counter's 41: %q, want A|42", a.Value())
		}
		if n := rdb.Exists(ctx, hk.FormerFence).Val(); n != 0 {
			t.Errorf("former fence key still there after the carry-over")
		}
		if h := rdb.HGetAll(ctx, hk.Fence).Val(); h["fence"] != "42" || h["power"] != "On" {
			t.Errorf("hash after the acquisition: %v; want fence 42 and its other fields kept", h)
		}
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
		// A former key that shows up behind the hash (an old replica
		// acquired meanwhile) never takes the fence back.
		if err := rdb.Set(ctx, hk.FormerFence, 7, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if b := take("B"); b.Value() != "B|43" {
			t.Fatalf("with a former counter behind: %q, want B|43", b.Value())
		}
		for _, bad := range []lease.Keys{
			{Holder: hk.Holder, Fence: hk.Fence, FormerFence: hk.FormerFence},
			{Holder: hk.Holder, Fence: hk.Fence, FenceField: "fence", FormerFence: hk.Fence},
			{Holder: hk.Holder, Fence: hk.Fence, FenceField: "fence", FormerFence: hk.Holder},
		} {
			if _, err := lease.Acquire(ctx, redisx.Plain(rdb), bad, "C", time.Hour); err == nil || errors.Is(err, lease.ErrHeld) {
				t.Errorf("keys %+v: %v; want them refused", bad, err)
			}
		}
	})
}

func TestRenewExtends(t *testing.T) {
	forEachRedis(t, func(t *testing.T, rdb *redis.Client) {
		ctx := context.Background()
		l := acquire(t, rdb, "A", time.Hour)
		if err := rdb.PExpire(ctx, keys.Holder, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if err := l.Renew(ctx); err != nil {
			t.Fatalf("renew: %v", err)
		}
		if pttl := rdb.PTTL(ctx, keys.Holder).Val(); pttl <= 59*time.Minute {
			t.Errorf("PTTL after renewal %s, want about an hour", pttl)
		}
	})
}

// TestLuaCheck: lease_held, as scripts that act for a holder use it.
func TestLuaCheck(t *testing.T) {
	check := redis.NewScript(lease.Lua + `return lease_held(KEYS[1], ARGV[1]) and 1 or 0`)
	forEachRedis(t, func(t *testing.T, rdb *redis.Client) {
		ctx := context.Background()
		held := func(v string) bool {
			t.Helper()
			n, err := check.Run(ctx, rdb, []string{keys.Holder}, v).Int()
			if err != nil {
				t.Fatal(err)
			}
			return n == 1
		}
		if held("") || held("A|1") {
			t.Fatal("lease_held is true without a lease")
		}
		a := acquire(t, rdb, "A", time.Hour)
		if !held(a.Value()) || held("") || held("A") || held("A|2") {
			t.Fatalf("lease_held wrong for the lease %s", a.Value())
		}
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
		b := acquire(t, rdb, "B", time.Hour)
		if held(a.Value()) || !held(b.Value()) {
			t.Fatalf("lease_held after a new holder: %s %v, %s %v", a.Value(), held(a.Value()), b.Value(), held(b.Value()))
		}
	})
}

// TestOneHolderAtATime: replicas racing for a free lease: exactly one wins.
func TestOneHolderAtATime(t *testing.T) {
	forEachRedis(t, func(t *testing.T, rdb *redis.Client) {
		var wg sync.WaitGroup
		var won atomic.Int32
		errs := make(chan error, 20)
		for i := range 20 {
			wg.Go(func() {
				_, err := lease.Acquire(context.Background(), redisx.Plain(rdb), keys, fmt.Sprintf("r%d", i), time.Hour)
				switch {
				case err == nil:
					won.Add(1)
				case !errors.Is(err, lease.ErrHeld):
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if won.Load() != 1 {
			t.Fatalf("%d holders, want 1", won.Load())
		}
	})
}

func TestBadInput(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	ctx := context.Background()
	for _, c := range []struct {
		keys   lease.Keys
		holder string
		ttl    time.Duration
	}{
		{keys, "", time.Second},
		{keys, "a|b", time.Second},
		{keys, "A", 0},
		{keys, "A", -time.Second},
		{keys, "A", time.Millisecond},
		{lease.Keys{}, "A", time.Second},
		{lease.Keys{Holder: "k", Fence: "k"}, "A", time.Second},
	} {
		if l, err := lease.Acquire(ctx, redisx.Plain(rdb), c.keys, c.holder, c.ttl); err == nil {
			t.Errorf("Acquire(%+v, %q, %s) = %s, want an error", c.keys, c.holder, c.ttl, l.Value())
		}
	}
	if _, err := lease.Acquire(ctx, nil, keys, "A", time.Second); err == nil {
		t.Error("Acquire without Redis: no error")
	}
	if v := holderValue(t, rdb); v != "" {
		t.Errorf("bad input wrote the lease %q", v)
	}
}

// TestRunHoldsBeyondTTL: Run renews the lease while f runs, past its TTL,
// and releases it when f returns.
func TestRunHoldsBeyondTTL(t *testing.T) {
	forEachRedis(t, func(t *testing.T, rdb *redis.Client) {
		ctx := context.Background()
		const ttl = 300 * time.Millisecond
		l := acquire(t, rdb, "A", ttl)
		start := time.Now()
		err := l.Run(ctx, func(ctx context.Context) {
			// Renewals push the PTTL back up; wait for them until the lease
			// has outlived two TTLs, still held.
			for time.Since(start) < 2*ttl {
				if ctx.Err() != nil {
					t.Errorf("f's context ended while the lease was renewed: %v", context.Cause(ctx))
					return
				}
				if v := holderValue(t, rdb); v != l.Value() {
					t.Errorf("after %s the lease is %q, want %q", time.Since(start), v, l.Value())
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}, func(err error) { t.Errorf("lost: %v", err) })
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if v := holderValue(t, rdb); v != "" {
			t.Fatalf("lease %q not released after Run", v)
		}
	})
}

// TestRunStopsWhenLost: the lease is taken from its holder (it expired
// and another took it); f's context ends with ErrLost as its cause, lost
// is told, and the other holder's lease is left alone.
func TestRunStopsWhenLost(t *testing.T) {
	forEachRedis(t, func(t *testing.T, rdb *redis.Client) {
		ctx := context.Background()
		l := acquire(t, rdb, "A", 300*time.Millisecond)
		var told error
		err := l.Run(ctx, func(fctx context.Context) {
			if err := rdb.Del(ctx, keys.Holder).Err(); err != nil {
				t.Error(err)
				return
			}
			acquire(t, rdb, "B", time.Hour)
			select {
			case <-fctx.Done():
			case <-time.After(10 * time.Second):
				t.Error("f's context did not end within 10s of losing the lease")
			}
			if !errors.Is(context.Cause(fctx), lease.ErrLost) {
				t.Errorf("cause %v, want ErrLost", context.Cause(fctx))
			}
		}, func(err error) { told = err })
		if !errors.Is(err, lease.ErrLost) || !errors.Is(told, lease.ErrLost) {
			t.Fatalf("Run: %v, lost told %v; want ErrLost", err, told)
		}
		if v := holderValue(t, rdb); v != "B|2" {
			t.Fatalf("the new holder's lease is %q, want B|2", v)
		}
	})
}

// hangingRenewals is a Redis whose renewals (script calls with one key
// and two arguments) hang until their context ends once hang is set: a
// Redis that stopped answering.
type hangingRenewals struct {
	redis.Scripter
	hang atomic.Bool
}

func (h *hangingRenewals) hung(ctx context.Context, keys []string, args []any) *redis.Cmd {
	if !h.hang.Load() || len(keys) != 1 || len(args) != 2 {
		return nil
	}
	<-ctx.Done()
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(ctx.Err())
	return cmd
}

func (h *hangingRenewals) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	if cmd := h.hung(ctx, keys, args); cmd != nil {
		return cmd
	}
	return h.Scripter.EvalSha(ctx, sha, keys, args...)
}

func (h *hangingRenewals) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	if cmd := h.hung(ctx, keys, args); cmd != nil {
		return cmd
	}
	return h.Scripter.Eval(ctx, script, keys, args...)
}

// TestRunStopsBeforeExpiry: a holder whose renewals get no answer stops
// (f's context ends) while its lease is still in Redis: before it can
// expire and another replica can take over.
func TestRunStopsBeforeExpiry(t *testing.T) {
	forEachRedis(t, func(t *testing.T, rdb *redis.Client) {
		ctx := context.Background()
		h := &hangingRenewals{Scripter: rdb}
		l := acquire(t, h, "A", 3*time.Second)
		h.hang.Store(true)
		err := l.Run(ctx, func(fctx context.Context) {
			select {
			case <-fctx.Done():
			case <-time.After(10 * time.Second):
				t.Error("f's context did not end within 10s of the renewals hanging")
				return
			}
			if v := holderValue(t, rdb); v != l.Value() {
				t.Errorf("when the holder stopped, the lease was %q (expired?), want still %q", v, l.Value())
			}
			if !errors.Is(context.Cause(fctx), context.DeadlineExceeded) {
				t.Errorf("cause %v, want a renewal deadline", context.Cause(fctx))
			}
		}, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run: %v, want the renewal's deadline", err)
		}
	})
}

// TestRunEndsWithContext: when the caller's context ends, f's does, Run
// returns nil and the lease is released.
func TestRunEndsWithContext(t *testing.T) {
	forEachRedis(t, func(t *testing.T, rdb *redis.Client) {
		ctx, cancel := context.WithCancel(context.Background())
		l := acquire(t, rdb, "A", time.Hour)
		err := l.Run(ctx, func(fctx context.Context) {
			cancel()
			<-fctx.Done()
		}, func(err error) { t.Errorf("lost: %v", err) })
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if v := holderValue(t, rdb); v != "" {
			t.Fatalf("lease %q not released", v)
		}
	})
}

// TestAcknowledgedLease: through redisx.Acked a lease counts only once a
// replica has it, so a promoted replica never hands it out again while
// its holder acts; without a replica it cannot be taken, and a renewal
// that is not acknowledged ends the holder's turn.
func TestAcknowledgedLease(t *testing.T) {
	ctx := context.Background()
	master := testkit.RealRedis(t)
	lone := redisx.Acked{Client: master, Replicas: 1, Timeout: 50 * time.Millisecond}
	if l, err := lease.Acquire(ctx, lone, keys, "A", time.Second); err == nil || errors.Is(err, lease.ErrHeld) {
		t.Fatalf("Acquire with no replica to acknowledge it: %v, %v; want a replication error", l, err)
	}
	master.Del(ctx, keys.Holder) // the unacknowledged write made on the master

	replica := testkit.RedisReplica(t, master)
	acked := redisx.Acked{Client: master, Replicas: 1, Timeout: 5 * time.Second}
	l, err := lease.Acquire(ctx, acked, keys, "A", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := replica.Get(ctx, keys.Holder).Result(); err != nil || v != l.Value() {
		t.Fatalf("replica holds %q (%v) right after the acquisition of %q", v, err, l.Value())
	}
	if f, err := replica.Get(ctx, keys.Fence).Int64(); err != nil || f != l.Fence() {
		t.Fatalf("replica's fence %d (%v), lease's %d", f, err, l.Fence())
	}
	// The replica goes away: the next renewal is not acknowledged, and
	// the holder is told, though the master still has its lease.
	if err := replica.ReplicaOf(ctx, "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "master loses its replica", func() (bool, string) {
		info, _ := master.Info(ctx, "replication").Result()
		return strings.Contains(info, "connected_slaves:0"), info
	})
	rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond) // bounds the WAIT
	defer cancel()
	if err := l.Renew(rctx); !errors.Is(err, redisx.ErrNotReplicated) {
		t.Fatalf("renewal with no replica: %v, want ErrNotReplicated", err)
	}
}
