// Package lease is fishgate's Redis lease with fence tokens: at most one
// holder at a time for a key, in every replica.
//
// A lease's value is "<holder>|<fence>": the holder's name (a replica id)
// and a fence token, a counter incremented at every acquisition and never
// reset, so a value is never handed out twice. The value lives in
// Keys.Holder with a time-to-live; the counter in Keys.Fence, a key of its
// own or a field of a hash the caller keeps anyway (FenceField: at 10,000
// node leases a key costs ~90 bytes of Redis, a field ~10).
//
// A holder renews its lease every third of the TTL and stops acting when a
// renewal fails or does not answer in time (Run), a third of the TTL before
// the lease can expire. Redis scripts that write on a holder's behalf check
// in the same script that the lease still holds the holder's value (Lua's
// lease_held), so a holder that lost its lease without noticing yet writes
// nothing.
package lease

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/redisx"
)

// Keys are the Redis keys of one lease. Scripts touch both at once: on
// Redis Cluster they must share a hash tag (At keeps the prefix's).
type Keys struct {
	Holder string // the current value, "<holder>|<fence>", with the TTL
	Fence  string // the fence counter, or the hash holding it; never deleted
	// FenceField, when set, is the field of hash Fence that holds the
	// counter.
	FenceField string
	// FormerFence, when set, is a counter key an earlier layout kept the
	// fence in: the next acquisition continues from it (a fence never goes
	// back) and deletes it.
	FormerFence string
}

// At lays out the keys of a lease under prefix: prefix+"lease" and
// prefix+"fence". The prefix carries the hash tag, e.g. "fg:node:{n1}:".
func At(prefix string) Keys { return Keys{Holder: prefix + "lease", Fence: prefix + "fence"} }

// Lua defines lease_held(key, value) for scripts that act for a holder:
// true when the lease in key holds exactly value. Prepend it to a script's
// body; scripts return without writing when it is false.
const Lua = `local function lease_held(key, value)
  return value ~= nil and value ~= '' and redis.call('GET', key) == value
end
`

var (
	// KEYS: holder, fence[, former fence]. ARGV: holder name, ttl (ms),
	// fence field ('' when the fence is a key of its own).
	acquireScript = redis.NewScript(Lua + `
if redis.call('EXISTS', KEYS[1]) == 1 then return '' end
local fence
if ARGV[3] == '' then
  fence = redis.call('INCR', KEYS[2])
else
  fence = redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
  if KEYS[3] then
    local former = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
    if former >= fence then
      fence = former + 1
      redis.call('HSET', KEYS[2], ARGV[3], fence)
    end
    redis.call('DEL', KEYS[3])
  end
end
local value = ARGV[1] .. '|' .. fence
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value`)
	// KEYS: holder. ARGV: value, ttl (ms).
	renewScript = redis.NewScript(Lua + `
if not lease_held(KEYS[1], ARGV[1]) then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`)
	// KEYS: holder. ARGV: value.
	releaseScript = redis.NewScript(Lua + `
if not lease_held(KEYS[1], ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
return 1`)
)

var (
	// ErrHeld means another holder has the lease.
	ErrHeld = errors.New("lease held by another")
	// ErrLost means the lease no longer holds this value: it expired, or
	// was released, and perhaps another holder has it now.
	ErrLost = errors.New("lease lost")
)

// MinTTL is the shortest TTL: renewals come every third of it, in whole
// milliseconds.
const MinTTL = 3 * time.Millisecond

// releaseTimeout bounds the release at the end of Run, which runs after
// the caller's context may have ended.
const releaseTimeout = 2 * time.Second

// Lease is one acquisition of a lease.
type Lease struct {
	run   redisx.Runner
	keys  Keys
	ttl   time.Duration
	value string
	// sent is when the acquisition was sent: the lease lasts at least a
	// TTL from then.
	sent time.Time
}

// Acquire takes the lease in keys for holder, with ttl, if nobody holds
// it; ErrHeld if somebody does. The holder's name may not contain "|".
//
// With an acknowledging runner (redisx.Acked), the acquisition and every
// renewal count only once replicas have them: a holder cut off from a
// master that then dies stops acting before the lease it last renewed can
// expire on the promoted replica, and the fence counter the replica has is
// never behind one that was handed out.
func Acquire(ctx context.Context, run redisx.Runner, keys Keys, holder string, ttl time.Duration) (*Lease, error) {
	switch {
	case run == nil:
		return nil, errors.New("lease: no Redis client")
	case keys.Holder == "" || keys.Fence == "" || keys.Holder == keys.Fence:
		return nil, fmt.Errorf("lease: keys %+v: need two different keys", keys)
	case keys.FormerFence != "" && (keys.FenceField == "" || keys.FormerFence == keys.Holder || keys.FormerFence == keys.Fence):
		return nil, fmt.Errorf("lease: keys %+v: a former fence key needs a fence field and a key of its own", keys)
	case holder == "" || strings.Contains(holder, "|"):
		return nil, fmt.Errorf("lease %s: holder %q: need a non-empty name without '|'", keys.Holder, holder)
	case ttl < MinTTL:
		return nil, fmt.Errorf("lease %s: TTL %s is shorter than %s", keys.Holder, ttl, MinTTL)
	}
	sent := time.Now()
	ks := []string{keys.Holder, keys.Fence}
	if keys.FormerFence != "" {
		ks = append(ks, keys.FormerFence)
	}
	v, err := run.Run(ctx, acquireScript, ks, holder, ttl.Milliseconds(), keys.FenceField).Text()
	if err != nil {
		// Not acknowledged: the lease may be ours on this master, but it
		// does not count; it expires unused.
		return nil, fmt.Errorf("lease %s: acquire: %w", keys.Holder, err)
	}
	if v == "" {
		return nil, fmt.Errorf("lease %s: %w", keys.Holder, ErrHeld)
	}
	return &Lease{run: run, keys: keys, ttl: ttl, value: v, sent: sent}, nil
}

// Value is the lease's value, "<holder>|<fence>": what scripts compare
// (lease_held) and what logs name the holder by.
func (l *Lease) Value() string { return l.value }

// String is the lease's value.
func (l *Lease) String() string { return l.value }

// Fence is the lease's fence token: greater than that of every earlier
// acquisition of the same keys.
func (l *Lease) Fence() int64 {
	f, _ := strconv.ParseInt(l.value[strings.LastIndexByte(l.value, '|')+1:], 10, 64)
	return f
}

// Keys are the lease's Redis keys.
func (l *Lease) Keys() Keys { return l.keys }

// TTL is the time-to-live the lease is taken and renewed with.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Renew extends the lease to a full TTL from now; ErrLost if it no longer
// holds this value.
func (l *Lease) Renew(ctx context.Context) error {
	return l.holderOp(ctx, "renew", renewScript, l.value, l.ttl.Milliseconds())
}

// Release gives the lease up, if it still holds this value (ErrLost if
// not: then it deletes nothing).
func (l *Lease) Release(ctx context.Context) error {
	return l.holderOp(ctx, "release", releaseScript, l.value)
}

// holderOp runs a script that answers 1 when the lease holds this value.
func (l *Lease) holderOp(ctx context.Context, op string, s *redis.Script, args ...any) error {
	n, err := l.run.Run(ctx, s, []string{l.keys.Holder}, args...).Int()
	switch {
	case err != nil:
		return fmt.Errorf("lease %s: %s %s: %w", l.keys.Holder, op, l.value, err)
	case n != 1:
		return fmt.Errorf("lease %s: %s %s: %w", l.keys.Holder, op, l.value, ErrLost)
	}
	return nil
}

// Run holds the lease while f runs, then releases it.
//
// The lease is renewed every third of its TTL. When a renewal fails
// (ErrLost, a Redis error, no answer in time), f's context is cancelled
// with that error as its cause, and then lost (if not nil) is called with
// it. That happens at most two thirds of a TTL after the last renewal that
// succeeded was sent, so f has a third of the TTL to stop acting before the
// lease can expire. f's context also ends with ctx.
//
// Run returns when f has returned and the lease is released: the renewal's
// error if the lease was lost, nil otherwise.
func (l *Lease) Run(ctx context.Context, f func(context.Context), lost func(error)) error {
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var lostErr error
	held := make(chan struct{})
	go func() {
		defer close(held)
		if lostErr = l.hold(fctx); lostErr != nil {
			cancel(lostErr)
			if lost != nil {
				lost(lostErr)
			}
		}
	}()
	f(fctx)
	cancel(nil)
	<-held
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	l.Release(rctx) // a lost lease is not released: it is not ours
	rcancel()
	return lostErr
}

// hold renews the lease every third of its TTL until ctx ends (nil) or a
// renewal fails (its error). A renewal must answer within two thirds of a
// TTL of the last one that succeeded being sent (or the acquisition): the
// lease lasts at least a TTL from then.
func (l *Lease) hold(ctx context.Context) error {
	every := l.ttl / 3
	t := time.NewTicker(every)
	defer t.Stop()
	last := l.sent
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		sent := time.Now()
		rctx, cancel := context.WithDeadline(ctx, last.Add(2*every))
		err := l.Renew(rctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		last = sent
	}
}
