// Package redisx opens the Redis that fishgate keeps its shared state in:
// a real Redis given by URL, or an embedded miniredis when none is given
// (DESIGN.md §10).
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
}

// Close closes the client and stops the embedded server, if any.
func (c *Conn) Close() error {
	err := c.Client.Close()
	if c.Embedded != nil {
		c.Embedded.Close()
	}
	return err
}

// Open connects to url ("redis://[user:pass@]host:port/db", "rediss://...",
// "unix://...") or, when url is empty, starts an embedded miniredis on a free
// loopback port with real-time TTL expiry (without it, leases and sessions
// would never expire).
func Open(ctx context.Context, url string) (*Conn, error) {
	if url == "" {
		m := miniredis.NewMiniRedis()
		m.ClockTTL(true)
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("start embedded redis: %w", err)
		}
		c := &Conn{Client: redis.NewClient(&redis.Options{Addr: m.Addr()}), Embedded: m}
		return c, nil
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	c := &Conn{Client: redis.NewClient(opt)}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Client.Ping(pctx).Err(); err != nil {
		c.Client.Close()
		return nil, fmt.Errorf("redis %s: %w", opt.Addr, err)
	}
	return c, nil
}
