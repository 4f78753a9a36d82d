package redisx

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Runner runs a Redis script with its keys: the one way fishgate's state
// changes are written (admissions, cancellations, worker steps, leases).
// Plain runs it as is; Acked also waits until replicas have it.
type Runner interface {
	Run(ctx context.Context, s *redis.Script, keys []string, args ...any) *redis.Cmd
}

// Plain runs scripts on c with no replication check (go-redis's EVALSHA,
// with EVAL when the server does not know the script yet: on a Cluster,
// on the master of the keys' slot).
func Plain(c redis.Scripter) Runner { return plain{c} }

type plain struct{ c redis.Scripter }

func (p plain) Run(ctx context.Context, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	return s.Run(ctx, p.c, keys, args...)
}

// ErrNotReplicated means a write was made on the master but fewer replicas
// than required acknowledged it in time: it may be lost if that master
// dies now (docs/decisions/0017-acknowledged-writes.md).
var ErrNotReplicated = errors.New("write not acknowledged by enough Redis replicas")

// Acked runs scripts so that they survive a failover: on the master of the
// keys (for a Cluster, the master of keys[0]'s slot; every key of a script
// shares it), then Redis WAIT on the same connection until Replicas
// replicas acknowledged everything written on it, for at most Timeout.
// Redis replication is asynchronous; without this a write acknowledged by
// a master that dies before replicating it is gone after the promotion.
//
// The result of a write that was not acknowledged in time is kept in the
// Cmd (Val) and its error is ErrNotReplicated: the write happened on the
// master and may or may not survive.
type Acked struct {
	Client   redis.UniversalClient
	Replicas int           // how many replicas must acknowledge; 0 is Plain
	Timeout  time.Duration // WAIT's bound; the context's deadline bounds it too
}

// Run runs s on the master of keys[0] and waits for the replicas.
func (a Acked) Run(ctx context.Context, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	if a.Replicas <= 0 {
		return s.Run(ctx, a.Client, keys, args...)
	}
	cl, err := a.master(ctx, keys)
	if err != nil {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	}
	conn := cl.Conn()
	defer conn.Close()
	cmd := s.Run(ctx, conn, keys, args...)
	if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return cmd // nothing was written, or the server failed: as without WAIT
	}
	if err := a.wait(ctx, conn); err != nil {
		cmd.SetErr(err)
	}
	return cmd
}

// master is the client of the master that owns keys.
func (a Acked) master(ctx context.Context, keys []string) (*redis.Client, error) {
	switch c := a.Client.(type) {
	case *redis.Client: // standalone, or Sentinel's failover client
		return c, nil
	case *redis.ClusterClient:
		if len(keys) == 0 {
			return nil, errors.New("acked write: no key names the Cluster slot")
		}
		return c.MasterForKey(ctx, keys[0])
	default:
		return nil, fmt.Errorf("acked write: unsupported Redis client %T", a.Client)
	}
}

// wait is WAIT on conn, bounded by Timeout and by ctx's deadline.
func (a Acked) wait(ctx context.Context, conn *redis.Conn) error {
	timeout := a.Timeout
	if d, ok := ctx.Deadline(); ok {
		// Redis answers at the end of WAIT's timeout: leave room for the
		// answer before the context's deadline cuts the socket.
		if left := time.Until(d) * 9 / 10; left < timeout || timeout <= 0 {
			timeout = left
		}
	}
	if timeout < time.Millisecond {
		// WAIT 0 blocks forever; a spent budget is a failed wait.
		return fmt.Errorf("%w: 0 of %d (no time left to wait)", ErrNotReplicated, a.Replicas)
	}
	n, err := conn.Wait(ctx, a.Replicas, timeout).Result()
	switch {
	case err != nil:
		return fmt.Errorf("%w: WAIT: %w", ErrNotReplicated, err)
	case n < int64(a.Replicas):
		return fmt.Errorf("%w: %d of %d within %s", ErrNotReplicated, n, a.Replicas, timeout.Round(time.Millisecond))
	}
	return nil
}
