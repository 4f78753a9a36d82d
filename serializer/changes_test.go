package serializer_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/testkit"
)

// holdCalls makes every Redis call that match accepts wait until release
// is closed (or its context ends) while armed: a call Redis is slow to
// answer.
type holdCalls struct {
	match   func(redis.Cmder) bool
	armed   atomic.Bool
	held    chan struct{} // closed at the first held call
	holding atomic.Int32  // calls waiting in the hook now
	once    sync.Once
	release chan struct{}
}

func newHoldCalls(match func(redis.Cmder) bool) *holdCalls {
	return &holdCalls{match: match, held: make(chan struct{}), release: make(chan struct{})}
}

func (h *holdCalls) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *holdCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *holdCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.armed.Load() && h.match(cmd) {
			h.once.Do(func() { close(h.held) })
			h.holding.Add(1)
			defer h.holding.Add(-1)
			select {
			case <-h.release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return next(ctx, cmd)
	}
}

// The embedded Redis (miniredis) writes a PUBLISH to each subscriber's
// connection while it holds its one lock. A replica that stopped reading
// its fg:node subscription while it waited for a node's state (as it did,
// one read per message) stopped the whole server once the connection's
// buffers were full: at 10,000 nodes a fleet-wide action left every Redis
// call of the gateway hanging for minutes. Here one node's state read is
// held and 48 MiB of fg:node messages naming that node are published: they
// must all be answered, and other Redis calls with them, while the read is
// still held. Before the fix the PUBLISHes stalled within the first few MiB.
func TestNodeChangesNeverStallTheEmbeddedRedis(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	id := "n" + strings.Repeat("x", 1023) // 1 KiB messages: fewer to fill the buffers
	key := "fg:node:{" + id + "}:slots"
	h := newHoldCalls(func(cmd redis.Cmder) bool {
		a := cmd.Args()
		return cmd.Name() == "hgetall" && len(a) == 2 && a[1] == key
	})
	rdb.AddHook(h)
	e := newEnv(t, rdb, []simNode{{ID: id}})
	e.addReplica("A", fastOptions(), nil)
	h.armed.Store(true)
	t.Cleanup(func() { close(h.release) }) // before the replica closes

	pub := redis.NewClient(&redis.Options{Addr: rdb.Options().Addr})
	t.Cleanup(func() { pub.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if err := pub.Publish(ctx, "fg:node", id).Err(); err != nil {
			t.Fatalf("first PUBLISH: %v", err)
		}
		select {
		case <-h.held:
		case <-time.After(50 * time.Millisecond):
			continue
		case <-ctx.Done():
			t.Fatal("the replica never read the node's state after an fg:node message")
		}
		break
	}

	const total, batch = 48 << 20, 512
	msgs := total / (len(id) + 40)
	for sent := 0; sent < msgs; sent += batch {
		bctx, bcancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := pub.Pipelined(bctx, func(p redis.Pipeliner) error {
			for range batch {
				p.Publish(bctx, "fg:node", id)
			}
			return nil
		})
		if err == nil {
			err = pub.Ping(bctx).Err()
		}
		bcancel()
		if err != nil {
			t.Fatalf("after %d of %d fg:node messages (%d MiB), with one state read held, Redis stopped answering: %v",
				sent, msgs, sent*(len(id)+40)>>20, err)
		}
	}
	// The flood went through while a state read was held, not after it
	// gave up (a held read ends only at its context's deadline).
	if h.holding.Load() == 0 {
		t.Fatal("no state read was held when the last fg:node message was answered: the test did not show what it claims")
	}
}
