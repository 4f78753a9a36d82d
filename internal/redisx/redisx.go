// Package redisx opens the Redis that fishgate keeps its shared state in:
// a real Redis given by URL, or an embedded miniredis when none is given
// (docs/decisions/0008-embedded-miniredis-by-default.md).
package redisx

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Conn is an open Redis client and whatever must be stopped with it.
type Conn struct {
	Client   *redis.Client
	Embedded *miniredis.Miniredis // nil for an external Redis
	stop     func()
}

// Close closes the client and stops the embedded server, if any.
func (c *Conn) Close() error {
	err := c.Client.Close()
	if c.Embedded != nil {
		c.stop()
		c.Embedded.Close()
	}
	return err
}

// TTLTick is how often the embedded Redis's TTLs are advanced.
const TTLTick = 100 * time.Millisecond

// RunClock makes m's TTLs follow the wall clock, advancing them every tick.
// (miniredis's ClockTTL does the same on every command, which walks every
// key each time: far too slow with thousands of nodes.) Call stop to end it.
func RunClock(m *miniredis.Miniredis, tick time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(tick)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return func() { close(done); <-finished }
}

// Open connects to url ("redis://[user:pass@]host:port/db", "rediss://...",
// "unix://...") or, when url is empty, starts an embedded miniredis on a free
// loopback port whose TTLs follow the wall clock (without it, leases and
// sessions would never expire).
func Open(ctx context.Context, url string) (*Conn, error) {
	if url == "" {
		m := miniredis.NewMiniRedis()
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("start embedded redis: %w", err)
		}
		c := &Conn{Client: redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true}), Embedded: m, stop: RunClock(m, TTLTick)}
		return c, nil
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	// A caller's deadline bounds the socket I/O too: a frozen Redis makes a
	// request answer 503 when its deadline passes, not after go-redis's
	// own timeouts and retries.
	opt.ContextTimeoutEnabled = true
	c := &Conn{Client: redis.NewClient(opt)}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Client.Ping(pctx).Err(); err != nil {
		c.Client.Close()
		return nil, fmt.Errorf("redis %s: %w", opt.Addr, err)
	}
	return c, nil
}
