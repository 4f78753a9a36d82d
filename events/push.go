package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/lease"
	"github.com/fishgate/fishgate/internal/retry"
)

// Push delivery (DSP0266 §10.3). Exactly one replica delivers: the holder
// of the deliverer lease (internal/lease, keys leaseKeys: a new fence token
// at every election, renewed every third of its TTL).
// For each enabled subscription it runs one worker that reads the stream
// after the subscription's cursor, POSTs each matching event in stream
// order, and moves the cursor after each delivery, in a script that checks
// the lease first (a replica that lost the lease cannot move a cursor). A
// replica that takes over resumes from the cursors. The one event whose
// POST was under way when a deliverer died may be delivered twice;
// otherwise every subscriber gets every matching event once, in order.

// leaseKeys are the deliverer lease's keys: fg:{events}:push:lease and its
// fence counter fg:{events}:push:fence.
var leaseKeys = lease.At("fg:{events}:push:")

var (
	// KEYS: lease, subs, cursors. ARGV: lease, id, cursor.
	cursorScript = redis.NewScript(lease.Lua + `
if not lease_held(KEYS[1], ARGV[1]) then return -1 end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
return 1`)
	// KEYS: lease, subs. ARGV: lease, id, json.
	updateScript = redis.NewScript(lease.Lua + `
if not lease_held(KEYS[1], ARGV[1]) then return -1 end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1`)
	// KEYS: lease, subs, cursors. ARGV: lease, id.
	terminateScript = redis.NewScript(lease.Lua + `
if not lease_held(KEYS[1], ARGV[1]) then return -1 end
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
return 1`)
)

// errFenced means the deliverer lost its lease.
var errFenced = errors.New("deliverer lease lost")

// deliverLoop competes for the deliverer lease and delivers while it holds
// it: a deliverer that cannot renew stops (lease.Run).
func (b *Bus) deliverLoop(ctx context.Context) {
	for ctx.Err() == nil {
		if l, err := lease.Acquire(ctx, b.run, leaseKeys, b.opts.ReplicaID, b.opts.LeaseTTL); err == nil {
			log := b.log.With("replica", b.opts.ReplicaID, "lease", l.Value())
			log.Info("event deliverer elected")
			l.Run(ctx, func(ctx context.Context) { b.lead(ctx, l.Value()) },
				func(err error) { log.Warn("event deliverer lease lost; stopping delivery", "err", err) })
		}
		sleep(ctx, b.opts.LeaseTTL/3)
	}
}

// lead runs one worker per enabled subscription until ctx ends (the lease
// is lost, or the bus stops).
func (b *Bus) lead(ctx context.Context, lease string) {
	type running struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	workers := map[string]running{}
	defer func() {
		for _, w := range workers {
			w.cancel()
			<-w.done
		}
	}()
	tick := time.NewTicker(b.opts.PollInterval)
	defer tick.Stop()
	for {
		if subs, err := b.Subscriptions(ctx); err == nil {
			want := map[string]Subscription{}
			for _, s := range subs {
				if s.State == "Enabled" {
					want[s.ID] = s
				}
			}
			for id, w := range workers {
				select {
				case <-w.done:
					delete(workers, id)
					continue
				default:
				}
				if _, ok := want[id]; !ok {
					w.cancel()
					<-w.done
					delete(workers, id)
				}
			}
			for id, s := range want {
				if _, ok := workers[id]; ok {
					continue
				}
				wctx, wcancel := context.WithCancel(ctx)
				w := running{cancel: wcancel, done: make(chan struct{})}
				workers[id] = w
				go func() {
					defer close(w.done)
					b.push(wctx, lease, s)
				}()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-b.pokes:
		}
	}
}

// push delivers one subscription's events until ctx ends, the lease is
// lost, or the retry policy stops it.
func (b *Bus) push(ctx context.Context, lease string, s Subscription) {
	log := b.log.With("subscription", s.ID, "destination", s.Destination, "replica", b.opts.ReplicaID)
	w := b.hub.register()
	defer b.hub.unregister(w)
	var cursor string
	for cursor == "" {
		c, err := b.rdb.HGet(ctx, keyCursors, s.ID).Result()
		if errors.Is(err, redis.Nil) { // not written yet: from now on
			c, err = b.LastID(ctx)
		}
		if err == nil {
			cursor = c
		} else if !sleep(ctx, b.opts.PollInterval) {
			return
		}
	}
	for ctx.Err() == nil {
		recs, last, err := b.rangeAfter(ctx, cursor, 100)
		if err != nil {
			log.Debug("read events", "err", err)
			sleep(ctx, b.opts.PollInterval)
			continue
		}
		for _, r := range recs {
			if !s.Match(r) {
				continue
			}
			if !b.deliver(ctx, lease, &s, r, log) {
				return
			}
			if err := b.setCursor(ctx, lease, s.ID, r.ID); err != nil {
				log.Info("delivery stopped", "reason", err)
				return
			}
			cursor = r.ID
		}
		if last != "" && last != cursor {
			// The rest of the batch did not match: move past it.
			if err := b.setCursor(ctx, lease, s.ID, last); err != nil {
				log.Info("delivery stopped", "reason", err)
				return
			}
			cursor = last
		}
		if last != "" {
			continue
		}
		poll := time.NewTimer(b.opts.PollInterval)
		select {
		case <-ctx.Done():
		case <-w.ch:
		case <-poll.C:
		}
		poll.Stop()
	}
}

func (b *Bus) setCursor(ctx context.Context, lease, id, cursor string) error {
	n, err := cursorScript.Run(ctx, b.rdb, []string{leaseKeys.Holder, keySubs, keyCursors}, lease, id, cursor).Int()
	switch {
	case err != nil:
		return fmt.Errorf("store cursor: %w", err)
	case n == -1:
		return errFenced
	case n == 0:
		return ErrNoSubscription
	}
	return nil
}

// deliver POSTs one event, retrying per the subscription's policy. It
// returns false when the worker must stop (ctx ended, the subscription was
// suspended or terminated).
func (b *Bus) deliver(ctx context.Context, lease string, s *Subscription, r Record, log interface {
	Warn(string, ...any)
	Info(string, ...any)
}) bool {
	body, err := json.Marshal(Payload(s.Base(), s.Context, r))
	if err != nil {
		log.Warn("event not rendered; skipped", "event", r.ID, "err", err)
		return true
	}
	// The retries (internal/retry): RetryForever waits RetryInterval
	// between tries; the others double it up to 5 minutes. Every pause is
	// jittered (between half of it and all of it), so the subscriptions of
	// one destination that went away do not all come back at once.
	p := retry.Policy{
		Base: b.opts.RetryInterval, Cap: 5 * time.Minute,
		OnRetry: func(attempt int, err error, pause time.Duration) {
			log.Warn("event delivery failed", "event", r.ID, "attempt", attempt, "retry_in", pause, "err", err)
		},
	}
	switch s.RetryPolicy {
	case RetryForever:
		p.Cap = b.opts.RetryInterval
	case RetryForeverWithBackoff:
	default:
		p.Attempts = b.opts.RetryAttempts + 1
	}
	var last error // the last POST's (giveUp counts the attempts itself)
	err = p.Do(ctx, func(int) error {
		last = b.post(ctx, s, body)
		if last != nil && ctx.Err() == nil {
			b.opts.Metrics.EventDeliveryFailure()
		}
		return last
	})
	switch {
	case err == nil:
		b.opts.Metrics.EventDelivered(b.opts.Clock().Sub(r.Time))
		return true
	case ctx.Err() != nil:
		return false
	}
	b.giveUp(ctx, lease, s, r, last, log)
	return false
}

// giveUp applies the subscription's DeliveryRetryPolicy after the last
// retry: SuspendRetries disables it (Status.State Disabled, events are kept
// and not sent); TerminateAfterRetries deletes it.
func (b *Bus) giveUp(ctx context.Context, lease string, s *Subscription, r Record, cause error, log interface{ Warn(string, ...any) }) {
	var n int
	var err error
	if s.RetryPolicy == TerminateAfterRetries {
		n, err = terminateScript.Run(ctx, b.rdb, []string{leaseKeys.Holder, keySubs, keyCursors}, lease, s.ID).Int()
		log.Warn("event subscription terminated after failed retries", "event", r.ID, "attempts", b.opts.RetryAttempts+1, "err", cause)
	} else {
		s.State = "Disabled"
		s.LastError = fmt.Sprintf("event %s not delivered after %d attempts: %v", r.ID, b.opts.RetryAttempts+1, cause)
		raw, _ := json.Marshal(s)
		n, err = updateScript.Run(ctx, b.rdb, []string{leaseKeys.Holder, keySubs}, lease, s.ID, string(raw)).Int()
		log.Warn("event subscription suspended after failed retries", "event", r.ID, "attempts", b.opts.RetryAttempts+1, "err", cause)
	}
	if err != nil || n == -1 {
		log.Warn("retry policy not applied (the next deliverer will try again)", "err", err, "fenced", n == -1)
	}
}

func (b *Bus) post(ctx context.Context, s *Subscription, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Destination, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for _, h := range s.Headers {
		req.Header.Add(h[0], h[1])
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fishgate")
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %s", s.Destination, resp.Status)
	}
	return nil
}
