package serializer

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/redisx"
	"github.com/fishgate/fishgate/schemas"
)

// The fleet-wide power-on limit (config max_power_on_per_second,
// docs/architecture.md#inrush-limit): every command that can switch a
// machine's power on is sent no sooner than 1/rate after the previous one,
// counted over every request and every replica. The schedule lives in one
// Redis key: the earliest time the next power-on may be sent (a "theoretical
// arrival time", as in GCRA). A sender reserves its turn in one round trip
// and waits for it; it does not poll.

// inrushKey is the limiter's one key: the next free send time, in
// microseconds of the Redis server's clock (so that replicas whose clocks
// disagree still space their commands by the server's).
const inrushKey = "fg:inrush"

// reserveScript reserves the next turn: it answers how long (µs) the
// caller waits before its send, and moves the next free time one interval
// on. KEYS: the schedule. ARGV: interval (µs).
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local at = tonumber(redis.call('GET', KEYS[1]) or '0')
if at < now then at = now end
local interval = tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', at + interval), 'PX', math.floor((at - now + interval) / 1000) + 1000)
return at - now
`)

// backlogScript answers how far (µs) the schedule runs ahead of now: the
// wait a power-on reserved now would have. KEYS: the schedule.
var backlogScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local at = tonumber(redis.call('GET', KEYS[1]) or '0')
if at < now then return 0 end
return at - now
`)

// Inrush is the fleet-wide power-on limiter.
type Inrush struct {
	run      redisx.Runner
	rdb      redis.UniversalClient
	interval time.Duration
}

// NewInrush limits power-ons to rate per second over every replica sharing
// rdb; rate <= 0 gives nil (no limit). Reservations go through run (the
// store's writer), so that they count only once replicas have them.
func NewInrush(rdb redis.UniversalClient, run redisx.Runner, rate float64) *Inrush {
	if rate <= 0 {
		return nil
	}
	if run == nil {
		run = redisx.Plain(rdb)
	}
	return &Inrush{run: run, rdb: rdb, interval: time.Duration(float64(time.Second) / rate)}
}

// Interval is the least time between two power-ons.
func (l *Inrush) Interval() time.Duration { return l.interval }

// Reserve takes the next turn and returns how long to wait before sending.
func (l *Inrush) Reserve(ctx context.Context) (time.Duration, error) {
	us, err := l.run.Run(ctx, reserveScript, []string{inrushKey}, l.interval.Microseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("power-on limit: %w", err)
	}
	return time.Duration(us) * time.Microsecond, nil
}

// Backlog is how long a power-on reserved now would wait.
func (l *Inrush) Backlog(ctx context.Context) (time.Duration, error) {
	us, err := backlogScript.Run(ctx, l.rdb, []string{inrushKey}).Int64()
	if err != nil {
		return 0, fmt.Errorf("power-on limit: %w", err)
	}
	return time.Duration(us) * time.Microsecond, nil
}

// PowersOn reports whether sending cmd to a machine last seen in state
// last can switch its power on, the commands the limit counts: On, ForceOn,
// PowerCycle (its On half happens in the BMC, soon after), and
// PushPowerButton unless the machine is known to be On. A ForceRestart or
// GracefulRestart is a warm restart that keeps the power on and is not
// counted; an emulated restart or cycle (plan.go) sends its On phase as an
// On, which is.
func PowersOn(cmd schemas.ResetType, last schemas.PowerState) bool {
	switch cmd {
	case schemas.ResetOn, schemas.ResetForceOn, schemas.ResetPowerCycle:
		return true
	case schemas.ResetPushPowerButton:
		return last != schemas.PowerOn
	}
	return false
}

// inrushPoll is how often a worker waiting for its power-on turn looks
// whether its action was cancelled meanwhile.
const inrushPoll = time.Second

// awaitInrush waits for a power-on turn before cmd is issued to node n (a
// step boundary: nothing is in flight). It returns early when the action
// is being cancelled and force is false (the machine then stops without
// sending), and with ctx's error when the lease is lost. The wait holds
// only this node's running slot, never another node's, and a bulk
// request paces its admissions by the backlog (bulk.go) so that its nodes
// wait in the bulk request, not in their slots.
func (s *Service) awaitInrush(ctx context.Context, n *node, cmd schemas.ResetType, force bool) error {
	if s.inrush == nil {
		return nil
	}
	n.mu.RLock()
	last := n.view.PowerState
	n.mu.RUnlock()
	if !PowersOn(cmd, last) {
		return nil
	}
	wait, err := s.inrush.Reserve(ctx)
	if err != nil {
		// Redis is away: the step that follows fails the same way and
		// the action is resumed later; do not send unlimited meanwhile.
		return err
	}
	if wait > 0 {
		s.opts.Logger.Debug("waiting for the fleet power-on limit", "node", n.ID, "command", cmd, "wait", wait)
	}
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		t := time.NewTimer(min(left, inrushPoll))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if force || time.Until(deadline) <= 0 {
			continue
		}
		if c, err := s.opts.Redis.HGet(ctx, nodeKeys(n.ID).Slots, "cancelling").Result(); err == nil && c == "1" {
			return nil
		}
	}
}
