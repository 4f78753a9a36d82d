// Package events is fishgate's event bus (docs/architecture.md#events): the
// serializer's power and task events go into one Redis stream shared by every
// replica; the Redfish EventService reads it for its SSE stream and delivers
// it to push subscribers.
//
// Layout:
//
//	record.go  Record (one stream entry) and its Redfish Event rendering
//	filter.go  the SSE $filter language and MessageId matching (pure)
//	allow.go   the destination allow-list, checked at subscription and at connect time
//	subs.go    push subscriptions, stored in Redis
//	bus.go     the Bus: Emit, Read, Follow (one wake-up subscriber per replica)
//	push.go    push delivery: one elected deliverer, a cursor per subscription
//
// Redis keys share the hash tag {events}, so the scripts that touch several
// of them run on Redis Cluster (docs/architecture.md#redis-key-layout):
//
//	fg:{events}:stream       stream of events; entry id = EventId = SSE id
//	fg:{events}:subs         hash subscription id -> JSON
//	fg:{events}:cursors      hash subscription id -> last stream id delivered
//	fg:{events}:seq          subscription id counter
//	fg:{events}:push:lease   the deliverer's lease (internal/lease, renewed)
//	fg:{events}:push:fence   its fence counter
//	fg:{events}:new          Pub/Sub channel: a wake-up after each new event
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/lease"
	"github.com/fishgate/fishgate/internal/metrics"
	"github.com/fishgate/fishgate/internal/redisx"
	"github.com/fishgate/fishgate/internal/retry"
	"github.com/fishgate/fishgate/serializer"
)

const (
	keyStream  = "fg:{events}:stream"
	keySubs    = "fg:{events}:subs"
	keyCursors = "fg:{events}:cursors"
	keySeq     = "fg:{events}:seq"
	// channelNew carries a wake-up after each Emit (empty payload): every
	// replica's stream reader (tail) listens to it.
	channelNew = "fg:{events}:new"
)

// Options configures a Bus. The settings that the configuration file
// states (app/config, named below) are required or take their zero value
// as noted: no second set of defaults. The others take the defaults noted.
type Options struct {
	Redis redis.UniversalClient
	// Writes writes the deliverer lease and new subscriptions (default
	// redisx.Plain(Redis); redisx.Acked waits for replicas, so that a
	// Redis failover keeps them and the one-deliverer rule).
	Writes redisx.Runner
	// ReplicaID names this replica in the deliverer lease and logs
	// (required; one per process, shared with the serializer).
	ReplicaID string
	// MaxLen bounds the stream, approximately (0: unbounded; config
	// events.stream_max_len).
	MaxLen int64
	// AllowDestinations lists CIDRs, addresses and host names that push
	// destinations may use besides public addresses (see AllowList).
	AllowDestinations []string
	// RetryAttempts is how many times a failed POST is retried before
	// the subscription's DeliveryRetryPolicy applies (0: none; config
	// events.delivery_retry_attempts).
	RetryAttempts int
	// RetryInterval is the pause before the first retry, doubling for each
	// further one up to 5 minutes (required; config
	// events.delivery_retry_interval); each pause is jittered between half
	// of it and all of it (internal/retry).
	RetryInterval time.Duration
	// RetryPolicy is the DeliveryRetryPolicy of a subscription that names
	// none (required; config events.delivery_retry_policy).
	RetryPolicy string
	// MaxSubscriptions bounds the push subscriptions (required; config
	// events.max_subscriptions).
	MaxSubscriptions int
	// MaxSubscriptionsPerOwner bounds the push subscriptions of one
	// account (Subscription.Owner), counted across replicas (required;
	// config events.max_subscriptions_per_user).
	MaxSubscriptionsPerOwner int
	// LeaseTTL is the deliverer lease's time-to-live: another replica takes
	// delivery over within it (required; config lease_ttl).
	LeaseTTL time.Duration
	// DeliveryTimeout bounds one POST (default 30s).
	DeliveryTimeout time.Duration
	// PollInterval is how often readers look at the stream when no wake-up
	// came (a safety net; default 2s).
	PollInterval time.Duration
	// Resolver resolves destination host names (default net.DefaultResolver).
	Resolver Resolver
	Clock    func() time.Time
	Logger   *slog.Logger
	// Metrics counts lost events, push deliveries, their failures and lag
	// (nil: nothing is counted).
	Metrics *metrics.Metrics
}

// check reports every required option left out, and every value out of
// range.
func (o *Options) check() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("events: Options."+format, a...))
	}
	if o.Redis == nil {
		bad("Redis is required")
	}
	if o.ReplicaID == "" {
		bad("ReplicaID is required")
	}
	if o.MaxLen < 0 {
		bad("MaxLen must not be negative (config events.stream_max_len)")
	}
	if o.RetryAttempts < 0 {
		bad("RetryAttempts must not be negative (config events.delivery_retry_attempts)")
	}
	if o.RetryInterval <= 0 {
		bad("RetryInterval must be positive (config events.delivery_retry_interval)")
	}
	if !slices.Contains(RetryPolicies, o.RetryPolicy) {
		bad("RetryPolicy %q is not one of %v (config events.delivery_retry_policy)", o.RetryPolicy, RetryPolicies)
	}
	if o.MaxSubscriptions < 1 {
		bad("MaxSubscriptions must be at least 1 (config events.max_subscriptions)")
	}
	if o.MaxSubscriptionsPerOwner < 1 {
		bad("MaxSubscriptionsPerOwner must be at least 1 (config events.max_subscriptions_per_user)")
	}
	if o.LeaseTTL < lease.MinTTL {
		bad("LeaseTTL %s: at least %s required (config lease_ttl)", o.LeaseTTL, lease.MinTTL)
	}
	return errors.Join(errs...)
}

// defaults fills in the options that the configuration file does not state.
func (o *Options) defaults() {
	if o.DeliveryTimeout == 0 {
		o.DeliveryTimeout = 30 * time.Second
	}
	if o.PollInterval == 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Writes == nil {
		o.Writes = redisx.Plain(o.Redis)
	}
}

// Bus is one replica's access to the shared event stream. It implements
// serializer.Emitter.
type Bus struct {
	opts   Options
	rdb    redis.UniversalClient
	run    redisx.Runner
	allow  AllowList
	client *http.Client
	log    *slog.Logger

	hub   hub
	pokes chan struct{} // subscriptions changed in this replica
	// tailing is true while the shared stream reader (tail) is healthy: its
	// wake-ups then tell followers of every new entry and they need not poll.
	tailing atomic.Bool
	// ping is how long the wake-up subscription may be quiet before it is
	// pinged (tailPing; shorter in tests); pongs counts the answers.
	ping  time.Duration
	pongs atomic.Int64

	startOnce sync.Once
	closeOnce sync.Once
	cancel    context.CancelFunc
	done      chan struct{} // closed by Close: followers end
	wg        sync.WaitGroup
}

var _ serializer.Emitter = (*Bus)(nil)

// New builds a bus; Start runs its background work.
func New(o Options) (*Bus, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	o.defaults()
	allow, err := ParseAllowList(o.AllowDestinations)
	if err != nil {
		return nil, fmt.Errorf("events: allow-list: %w", err)
	}
	b := &Bus{
		opts: o, rdb: o.Redis, run: o.Writes, allow: allow, log: o.Logger.With("component", "events"),
		hub: hub{waiters: map[*waiter]struct{}{}}, pokes: make(chan struct{}, 1), done: make(chan struct{}),
		ping: tailPing,
	}
	b.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil, // the allow-list must see the real destination
			DialContext:           allow.Dialer(10 * time.Second),
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: o.DeliveryTimeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		Timeout: o.DeliveryTimeout,
		// A redirect is a failed delivery: the destination is what was allowed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return b, nil
}

// RetryAttempts and RetryInterval are the delivery settings in effect
// (EventService.DeliveryRetryAttempts and DeliveryRetryIntervalSeconds).
func (b *Bus) RetryAttempts() int           { return b.opts.RetryAttempts }
func (b *Bus) RetryInterval() time.Duration { return b.opts.RetryInterval }

// Start runs the stream reader that wakes followers and the deliverer
// election, until ctx ends or Close.
func (b *Bus) Start(ctx context.Context) {
	b.startOnce.Do(func() {
		ctx, b.cancel = context.WithCancel(ctx)
		go b.tail(ctx)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.deliverLoop(ctx)
		}()
		go func() {
			<-ctx.Done()
			b.closeOnce.Do(func() { close(b.done) })
		}()
	})
}

// Close stops delivery (releasing the lease), ends every follower, and
// waits for the deliverer. Emit keeps working until Redis is closed.
func (b *Bus) Close() error {
	if b.cancel != nil {
		b.cancel()
	}
	b.closeOnce.Do(func() { close(b.done) })
	b.wg.Wait()
	b.client.CloseIdleConnections()
	return nil
}

// Emit appends an event to the stream (serializer.Emitter) and wakes the
// replicas' followers (channelNew, in the same round trip). It never
// blocks for more than a few seconds and only logs a failure: an action
// must not fail because an event could not be recorded.
func (b *Bus) Emit(ctx context.Context, e serializer.Event) {
	f, err := fields(e)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		var add *redis.StringCmd
		_, perr := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			add = p.XAdd(ctx, &redis.XAddArgs{Stream: keyStream, MaxLen: b.opts.MaxLen, Approx: true, Values: f})
			p.Publish(ctx, channelNew, "")
			return nil
		})
		cancel()
		if err = add.Err(); err == nil && perr != nil {
			// recorded; followers learn of it at the next wake-up
			b.log.Debug("event recorded but its wake-up not published", "err", perr)
		}
	}
	if err != nil {
		b.log.Warn("event lost", "node", e.Node, "task", e.Task, "message", e.Message.MessageID, "err", err)
		b.opts.Metrics.EventEmitFailure()
	}
}

// StreamLen is the number of events the stream holds (one XLEN; the
// gateway's fishgate_event_stream_length gauge asks at each scrape).
func (b *Bus) StreamLen(ctx context.Context) (int64, error) {
	return b.rdb.XLen(ctx, keyStream).Result()
}

// LastID is the id of the newest event, "0-0" when there is none.
func (b *Bus) LastID(ctx context.Context) (string, error) {
	xs, err := b.rdb.XRevRangeN(ctx, keyStream, "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("events: last id: %w", err)
	}
	if len(xs) == 0 {
		return "0-0", nil
	}
	return xs[0].ID, nil
}

// Read returns up to 256 events after afterID, waiting up to block for
// one (0: do not wait). It holds a Redis connection while it waits: for
// many readers use Follow.
func (b *Bus) Read(ctx context.Context, afterID string, block time.Duration) ([]Record, error) {
	if block <= 0 {
		recs, _, err := b.rangeAfter(ctx, afterID, 256)
		return recs, err
	}
	res, err := b.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{keyStream, afterID}, Count: 256, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("events: read: %w", err)
	}
	var out []Record
	for _, s := range res {
		for _, x := range s.Messages {
			r, err := parseRecord(x)
			if err != nil {
				b.log.Warn("unreadable event skipped", "err", err)
				continue
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// rangeAfter reads up to n events after id without blocking; last is the
// id of the last entry read (also when it could not be parsed).
func (b *Bus) rangeAfter(ctx context.Context, id string, n int64) (recs []Record, last string, err error) {
	start := "(" + id
	if sid, ok := parseID(id); !ok || (sid == streamID{}) {
		start = "-"
	}
	xs, err := b.rdb.XRangeN(ctx, keyStream, start, "+", n).Result()
	if err != nil {
		return nil, "", fmt.Errorf("events: read after %s: %w", id, err)
	}
	for _, x := range xs {
		last = x.ID
		r, err := parseRecord(x)
		if err != nil {
			b.log.Warn("unreadable event skipped", "err", err)
			continue
		}
		recs = append(recs, r)
	}
	return recs, last, nil
}

// hub wakes this replica's followers when the stream grows: one blocking
// XREAD per replica, however many SSE clients and subscriptions there are.
type hub struct {
	mu      sync.Mutex
	waiters map[*waiter]struct{}
}

type waiter struct{ ch chan struct{} }

func (h *hub) register() *waiter {
	w := &waiter{ch: make(chan struct{}, 1)}
	h.mu.Lock()
	h.waiters[w] = struct{}{}
	h.mu.Unlock()
	return w
}

func (h *hub) unregister(w *waiter) {
	h.mu.Lock()
	delete(h.waiters, w)
	h.mu.Unlock()
}

func (h *hub) wake() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.waiters {
		select {
		case w.ch <- struct{}{}:
		default: // already pending
		}
	}
}

// tail wakes this replica's followers at every wake-up published on
// channelNew, and at each (re)subscription (what was emitted meanwhile is
// read then). It never reads the stream itself: a blocking XREAD would cost
// the embedded Redis a walk of the stream after every command of any client
// (miniredis re-runs blocked commands at each one), and the loop only wakes
// (a subscriber must never wait for Redis: internal/marks). A subscription
// quiet for b.ping is pinged; one that stays quiet after that is
// replaced.
func (b *Bus) tail(ctx context.Context) {
	sub := b.rdb.Subscribe(ctx, channelNew)
	defer func() { sub.Close() }()
	pinged := false
	fail := func(err error) {
		if b.tailing.Swap(false) {
			b.hub.wake() // followers switch to polling
		}
		if ctx.Err() == nil {
			b.log.Debug("event wake-up subscription failed", "err", err)
			sleep(ctx, min(b.opts.PollInterval, time.Second))
		}
	}
	for ctx.Err() == nil {
		msg, err := sub.ReceiveTimeout(ctx, b.ping)
		var ne net.Error
		switch {
		case err != nil && errors.As(err, &ne) && ne.Timeout() && !pinged && ctx.Err() == nil:
			pinged = true
			if err := sub.Ping(ctx); err != nil {
				fail(err)
			}
			continue
		case err != nil && errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil:
			// no answer to the ping: start a new subscription
			sub.Close()
			sub = b.rdb.Subscribe(ctx, channelNew)
			pinged = false
			fail(err)
			continue
		case err != nil:
			fail(err)
			continue
		}
		pinged = false
		switch msg.(type) {
		case *redis.Subscription:
			b.tailing.Store(true)
			b.hub.wake()
		case *redis.Message:
			b.hub.wake()
		case *redis.Pong:
			b.pongs.Add(1)
		}
	}
}

// tailPing is how long the wake-up subscription may be quiet before it is
// pinged (and, quiet as long again, replaced).
const tailPing = 30 * time.Second

// sleep is the pause of the bus's loops (a poll, a retry after a Redis
// error, the next try for the deliverer lease): drawn from [d/2, d] with
// internal/retry, so that replicas coming back from one Redis outage do not
// retry in step. False when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	return retry.Sleep(ctx, retry.Draw(d/2, d, nil)) == nil
}

// ErrClosed is returned by a follower once the bus is closed.
var ErrClosed = errors.New("events: bus closed")

// Follower reads the stream in order from a position, without gaps: it
// reads Redis itself (XRANGE after its cursor) and only waits for the
// replica's stream reader to wake it.
type Follower struct {
	b      *Bus
	w      *waiter
	cursor string
	poll   time.Duration
}

// Follow starts reading after id: "" is the current end of the stream
// (only new events); an SSE Last-Event-ID resumes after that event.
func (b *Bus) Follow(ctx context.Context, after string) (*Follower, error) {
	w := b.hub.register() // before the position is fixed: no wake-up is missed
	if after == "" {
		id, err := b.LastID(ctx)
		if err != nil {
			b.hub.unregister(w)
			return nil, err
		}
		after = id
	} else if !ValidID(after) {
		b.hub.unregister(w)
		return nil, fmt.Errorf("events: %q is not an event id", after)
	}
	return &Follower{b: b, w: w, cursor: after, poll: b.opts.PollInterval}, nil
}

// Cursor is the id of the last event returned.
func (f *Follower) Cursor() string { return f.cursor }

// Close releases the follower.
func (f *Follower) Close() { f.b.hub.unregister(f.w) }

// Next returns the events after the cursor, in stream order, waiting up to
// wait for the first (nil, nil when none came). It fails when ctx ends, the
// bus closes, or Redis cannot be read.
func (f *Follower) Next(ctx context.Context, wait time.Duration) ([]Record, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		recs, last, err := f.b.rangeAfter(ctx, f.cursor, 256)
		if err != nil {
			return nil, err
		}
		if last != "" {
			f.cursor = last
		}
		if len(recs) > 0 {
			return recs, nil
		}
		if last != "" {
			continue // only unreadable entries: read on
		}
		// Poll only as a safety net while the shared reader is failing.
		var pollC <-chan time.Time
		poll := time.NewTimer(f.poll)
		if !f.b.tailing.Load() {
			pollC = poll.C
		}
		select {
		case <-ctx.Done():
			poll.Stop()
			return nil, ctx.Err()
		case <-f.b.done:
			poll.Stop()
			return nil, ErrClosed
		case <-timer.C:
			poll.Stop()
			return nil, nil
		case <-f.w.ch:
		case <-pollC:
		}
		poll.Stop()
	}
}

func (b *Bus) poke() {
	select {
	case b.pokes <- struct{}{}:
	default:
	}
}
