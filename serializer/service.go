// Package serializer owns every node's power actions and the gateway's view
// of each node (docs/architecture.md#admission to #power-sync).
//
// A Reset is admitted by one Lua script in Redis (policy.go decides, the
// script applies the same decision atomically): it starts, waits in the
// node's next slot, joins an identical task, or is refused. The replica
// that holds the node's lease runs the actions (worker.go), one BMC command
// at a time, and marks a task Completed only when the BMC shows the target
// state. Reads are answered from a per-replica view kept fresh by Redis
// pub/sub and a periodic power sweep.
package serializer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/internal/lease"
	"github.com/fishgate/fishgate/internal/marks"
	"github.com/fishgate/fishgate/internal/metrics"
	"github.com/fishgate/fishgate/internal/redisx"
	"github.com/fishgate/fishgate/internal/requestid"
	"github.com/fishgate/fishgate/schemas"
)

// ErrNodeNotFound is returned for a node id the gateway does not manage.
var ErrNodeNotFound = errors.New("node not found")

// ErrUnsupportedReset is returned (wrapped) for a ResetType the node's BMC
// does not offer.
var ErrUnsupportedReset = errors.New("reset type not supported by this node")

// ErrBMC wraps a failure reported by, or reaching, the node's BMC.
var ErrBMC = errors.New("BMC error")

// ErrUnavailable wraps a Redis failure: nothing was written; retry later.
var ErrUnavailable = errors.New("state store unavailable")

// Node is one managed machine and the backend that drives its BMC.
type Node struct {
	ID      string
	Name    string
	Backend backends.Backend
	// Rules overrides the service's admission rules for this node.
	Rules *Rules
	// Kind names the backend protocol (redfish, ipmi, amt) for the sweep's
	// per-kind concurrency bound.
	Kind string
	// Reassert makes the power sync converge the node to its desired state
	// when it drifted (off by default: Ironic and MAAS re-assert their own).
	Reassert bool
	// SoftOffFallback is what happens when a soft off does not reach Off
	// within SoftOffTimeout: "fail" or "force" (default: Options.SoftOffFallback).
	SoftOffFallback string
}

// View is what the gateway knows of a node, as the northbound API renders it.
type View struct {
	ID         string
	Name       string
	Kind       string // the backend protocol (Node.Kind)
	PowerState schemas.PowerState
	Boot       schemas.BootOverride
	// Caps lists what the node offers: Caps.ResetTypes is every ResetType
	// the BMC has natively (Native) or the gateway emulates (plan.go).
	Caps      backends.Capabilities
	Native    []schemas.ResetType
	CapsKnown bool
	// Emulation says, for every offered ResetType, "native" or how the
	// gateway builds it from the BMC's primitives (plan.go).
	Emulation map[schemas.ResetType]string
	// Health is OK, Warning (the last BMC call failed) or Critical (the BMC
	// has not answered since start-up).
	Health    string
	LastError string
	Updated   time.Time
	// State is the node's serializer state (slots, desired power) as last
	// seen in Redis.
	State NodeState
}

// Options tunes the service. The settings that the configuration file
// states (app/config, named below) are required: New refuses an option
// left zero, so that the configured value is the one in effect, never a
// second default. The others take the defaults noted.
type Options struct {
	Redis redis.UniversalClient
	// Writes writes the state changes: admissions, cancellations, worker
	// steps, boot requests and node leases (default redisx.Plain(Redis);
	// the gateway passes redisx.Acked when config redis.min_replicas_ack is
	// set: docs/decisions/0017-acknowledged-writes.md).
	Writes redisx.Runner
	// ReplicaID names this replica in leases and logs (required; one per
	// process, shared with the event bus).
	ReplicaID string
	// Rules are the default admission rules (required; config admission).
	Rules *Rules
	// LeaseTTL is the node lease time-to-live; renewed every third
	// (required; config lease_ttl).
	LeaseTTL time.Duration
	// SyncInterval is how often every node's power state is re-read
	// (required; config sync_interval).
	SyncInterval time.Duration
	// SyncConcurrency bounds the BMC reads of one sync sweep, and
	// SyncPerKind those of one backend kind (required; config
	// sync_concurrency and sync_per_backend).
	SyncConcurrency int
	SyncPerKind     int
	// StartWait bounds how long Start waits for the first read of every
	// node before it returns (default 2s); the rest is read meanwhile.
	StartWait time.Duration
	// CallTimeout bounds one BMC call (default 20s).
	CallTimeout time.Duration
	// SlowRead is how long one node's read may hold its sweep slots
	// (default 2s): past it the read goes on alone, up to CallTimeout,
	// and the slots read the next nodes (see sweep).
	SlowRead time.Duration
	// VerifyTimeout bounds the wait for a forced Reset's target state per
	// attempt (required; config verify_timeout).
	VerifyTimeout time.Duration
	// SoftOffTimeout bounds a soft off (GracefulShutdown, and the soft-off
	// phase of an emulated GracefulRestart) (required; config
	// soft_off_timeout).
	SoftOffTimeout time.Duration
	// SoftOffFallback is "fail" or "" (the task ends Exception) or "force"
	// (ForceOff follows) when a soft off did not finish in time (config
	// soft_off_fallback).
	SoftOffFallback string
	// RestartEvidence is how long a forced restart is watched for its Off
	// phase once the node reads On; without it the task ends Completed
	// with a Warning (required; config restart_evidence).
	RestartEvidence time.Duration
	// VerifyInterval is the first pause between power reads while verifying
	// (default 250ms, doubling up to 2s).
	VerifyInterval time.Duration
	// SoftCancelGrace is how long a cancelled (or superseded) GracefulShutdown
	// that was sent may still take to reach Off before the next action runs
	// (default 10s): BMCs without transitional states read On meanwhile.
	SoftCancelGrace time.Duration
	// Retries is how many times a failed or ignored command is re-sent, in
	// all per action: its phases share them (0: never; config retries).
	Retries int
	// RetryBackoff is the ceiling of the first pause before a retry,
	// doubling up to 30s, each pause jittered (internal/retry) (default 1s).
	RetryBackoff time.Duration
	// KeepTasks and KeepTaskAge bound the finished tasks kept per node
	// (required; config tasks.keep and tasks.keep_for).
	KeepTasks   int
	KeepTaskAge time.Duration
	// MaxPowerOnPerSecond bounds the commands that can switch a machine
	// on, over every node, request and replica sharing the Redis (config
	// max_power_on_per_second; 0: no bound; inrush.go).
	MaxPowerOnPerSecond float64
	// KeepTasksTotal bounds the tasks kept over every node: beyond it the
	// oldest finished ones go (required; config tasks.keep_total).
	KeepTasksTotal int
	// Events receives power and task events (default: none).
	Events Emitter
	// Metrics counts admissions, finished tasks, BMC calls (each node's
	// backend is wrapped: backends.Metered), retries, take-overs, fencing
	// rejections and the power sync (nil: nothing is counted). It adds no
	// Redis round trip anywhere.
	Metrics *metrics.Metrics
	Clock   func() time.Time
	Logger  *slog.Logger
}

// check reports every required option left out, and every value out of
// range.
func (o *Options) check() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("serializer: Options."+format, a...))
	}
	if o.Redis == nil {
		bad("Redis is required")
	}
	if o.ReplicaID == "" {
		bad("ReplicaID is required")
	}
	if o.Rules == nil {
		bad("Rules is required (config admission)")
	}
	if o.LeaseTTL < lease.MinTTL {
		bad("LeaseTTL %s: at least %s required (config lease_ttl)", o.LeaseTTL, lease.MinTTL)
	}
	if o.SyncInterval <= 0 {
		bad("SyncInterval must be positive (config sync_interval)")
	}
	if o.SyncConcurrency < 1 {
		bad("SyncConcurrency must be at least 1 (config sync_concurrency)")
	}
	if o.SyncPerKind < 1 {
		bad("SyncPerKind must be at least 1 (config sync_per_backend)")
	}
	if o.VerifyTimeout <= 0 {
		bad("VerifyTimeout must be positive (config verify_timeout)")
	}
	if o.SoftOffTimeout <= 0 {
		bad("SoftOffTimeout must be positive (config soft_off_timeout)")
	}
	if o.SoftOffFallback != "" && o.SoftOffFallback != "fail" && o.SoftOffFallback != "force" {
		bad("SoftOffFallback %q is not fail or force (config soft_off_fallback)", o.SoftOffFallback)
	}
	if o.RestartEvidence <= 0 {
		bad("RestartEvidence must be positive (config restart_evidence)")
	}
	if o.Retries < 0 {
		bad("Retries must not be negative (config retries)")
	}
	if o.KeepTasks < 1 {
		bad("KeepTasks must be at least 1 (config tasks.keep)")
	}
	if o.MaxPowerOnPerSecond < 0 {
		bad("MaxPowerOnPerSecond must not be negative (config max_power_on_per_second)")
	}
	if o.KeepTasksTotal < 1 {
		bad("KeepTasksTotal must be at least 1 (config tasks.keep_total)")
	}
	if o.KeepTaskAge <= 0 {
		bad("KeepTaskAge must be positive (config tasks.keep_for)")
	}
	return errors.Join(errs...)
}

// defaults fills in the options that the configuration file does not state.
func (o *Options) defaults() {
	if o.CallTimeout == 0 {
		o.CallTimeout = 20 * time.Second
	}
	if o.StartWait == 0 {
		o.StartWait = 2 * time.Second
	}
	if o.SlowRead == 0 {
		o.SlowRead = 2 * time.Second
	}
	if o.VerifyInterval == 0 {
		o.VerifyInterval = 250 * time.Millisecond
	}
	if o.SoftCancelGrace == 0 {
		o.SoftCancelGrace = 10 * time.Second
	}
	if o.RetryBackoff == 0 {
		o.RetryBackoff = time.Second
	}
	if o.Events == nil {
		o.Events = noEmitter{}
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = requestid.Logger(o.Logger) // an action's records name the request that asked for it
}

type node struct {
	Node
	// rules are the node's admission rules: its own (ownRules) or the
	// service's defaults; a configuration reload changes them (SetRules).
	rules    atomic.Pointer[Rules]
	ownRules bool // under Service.mu
	// settings are Node.Reassert and Node.SoftOffFallback as in effect: a
	// reload changes them (SetSettings); the embedded Node's are the first.
	settings atomic.Pointer[nodeSettings]
	call     sync.Mutex // one BMC call at a time for this node in this replica

	mu   sync.RWMutex
	view View
	// reads numbers the reads of the node's state from Redis, in the
	// order they were sent; applied is the number of the read view.State
	// holds (under mu). A read that took longer than a later one does not
	// overwrite it: the view never goes back to an older state.
	reads   atomic.Uint64
	applied uint64
	// changed is closed (and replaced) whenever view.State is re-read
	// after a change was published.
	changed chan struct{}
	bootSeq int64 // the last applied boot override taken into the view

	wmu           sync.Mutex // guards working, again, kickScheduled
	working       bool
	again         bool
	kickScheduled bool

	// sweeping is set while a sweep's read of the node runs: a read that
	// went on alone past Options.SlowRead is not doubled by the next sweep.
	sweeping atomic.Bool
	// removing is set once Remove began: this replica admits nothing more
	// for the node, and the sweep leaves it alone (membership.go).
	removing atomic.Bool
	// gone is set once Remove forgot the node: its worker stops, and a
	// node enrolled again under the same id gets a new node value.
	gone atomic.Bool
}

// changeReaders is how many goroutines re-read the nodes that fg:node
// messages name.
const changeReaders = 4

// Service manages the nodes. Build it with New, then Start it.
type Service struct {
	opts  Options
	store *Store
	// inrush is the fleet-wide power-on limiter (nil: none).
	inrush *Inrush

	// The node set changes at runtime (Add, Remove: membership.go). A
	// request looks its node up under mu; ids is replaced, never changed
	// in place, so a caller may keep the slice IDs gave it.
	mu      sync.RWMutex
	nodes   map[string]*node
	ids     []string
	started atomic.Bool // Start ran: an added node is read at once
	// rules are the default admission rules (Options.Rules, then
	// SetDefaultRules); changed under mu.
	rules atomic.Pointer[Rules]
	// draining: Drain began; no lease is taken any more (drain.go).
	draining atomic.Bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	synced chan struct{} // closed when Start's first read of every node ended
	// slowReads holds a token per sweep read that outlived SlowRead and
	// gave its slots back (see sweep).
	slowReads chan struct{}
	// changed holds the nodes an fg:node message named, to be read again.
	changed *marks.Set[*node]
}

// New builds a service over nodes. Node ids must be unique and non-empty.
func New(nodes []Node, opts Options) (*Service, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	opts.defaults()
	s := &Service{opts: opts, store: NewStore(opts.Redis), nodes: make(map[string]*node, len(nodes)), synced: make(chan struct{}),
		slowReads: make(chan struct{}, max(64, 4*opts.SyncConcurrency)), changed: marks.New[*node]()}
	s.store.KeepTasks, s.store.KeepTaskAge, s.store.metrics = opts.KeepTasks, opts.KeepTaskAge, opts.Metrics
	if opts.Writes != nil {
		s.store.AckWrites(opts.Writes)
	}
	s.inrush = NewInrush(opts.Redis, s.store.run, opts.MaxPowerOnPerSecond)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.rules.Store(opts.Rules)
	for _, n := range nodes {
		nd, err := s.newNode(n)
		if err != nil {
			return nil, err
		}
		if _, dup := s.nodes[n.ID]; dup {
			return nil, fmt.Errorf("serializer: duplicate node id %q", n.ID)
		}
		s.nodes[n.ID] = nd
		s.ids = append(s.ids, n.ID)
	}
	sort.Strings(s.ids)
	return s, nil
}

// Store is the Redis state underneath (for tests and tools).
func (s *Service) Store() *Store { return s.store }

// ReplicaID names this replica.
func (s *Service) ReplicaID() string { return s.opts.ReplicaID }

// Start subscribes to node changes, reads every node once (bounded
// concurrency) in the background, picks up any work left in Redis
// (recovery), and starts the periodic sweep, spread over the sync
// interval. It returns once every node has been read, or after
// Options.StartWait, whichever comes first: a fleet of thousands, or a BMC
// that is slow or down, does not hold up the API (nodes not read yet show
// Health Critical, "not read yet"). Synced tells when the first read ended.
func (s *Service) Start(ctx context.Context) {
	go func() {
		select {
		case <-ctx.Done():
			s.cancel()
		case <-s.ctx.Done():
		}
	}()
	// Every change refreshes the view; only a node with work is worth a
	// lease attempt. The subscriber only marks the node (internal/marks
	// says why it must never wait); changeReaders readers read it.
	sub := s.opts.Redis.Subscribe(s.ctx, "fg:node")
	subDone := marks.Drain(s.ctx, sub.Channel(), func(id string) {
		if n, ok := s.lookup(id); ok {
			s.changed.Mark(n)
		}
	})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-subDone
		sub.Close()
	}()
	for range changeReaders {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				select {
				case <-s.ctx.Done():
					return
				case <-s.changed.Wake():
				}
				for n, ok := s.changed.Next(); ok && s.ctx.Err() == nil; n, ok = s.changed.Next() {
					if !n.gone.Load() && s.refreshState(n) {
						s.kick(n)
					}
				}
			}
		}()
	}
	s.started.Store(true) // from now on an added node is read by Add
	s.scanWork(true)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.trimTasks()
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.sweep(s.ctx, s.snapshot(), true)
		close(s.synced)
		s.syncLoop()
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// Work whose holder died is found within one lease TTL: the lease
		// expires at most a TTL after the last renewal, and the nodes with
		// work are looked at every quarter TTL. Every node is looked at
		// once per sync interval, for a notification that was missed.
		scan := time.NewTicker(s.opts.LeaseTTL / 4)
		defer scan.Stop()
		lastAll := time.Now()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-scan.C:
				all := time.Since(lastAll) >= s.opts.SyncInterval
				if all {
					lastAll = time.Now()
				}
				s.scanWork(all)
			}
		}
	}()
	t := time.NewTimer(s.opts.StartWait)
	defer t.Stop()
	select {
	case <-s.synced:
	case <-t.C:
		s.opts.Logger.Info("serving before every node was read", "nodes", len(s.IDs()), "waited", s.opts.StartWait)
	case <-s.ctx.Done():
	}
}

// Synced is closed once every node has been read after Start (or the
// service was closed first).
func (s *Service) Synced() <-chan struct{} { return s.synced }

// scanWork reads the state of the nodes that have work (every node when
// all) in one pipelined round trip, and kicks those that have: recovery
// after a restart, and take-over of nodes whose lease holder died. A node
// has work in the view as soon as its admission is published, so the
// frequent scan need not read the idle thousands.
func (s *Service) scanWork(all bool) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.LeaseTTL)
	defer cancel()
	nodes := s.snapshot()
	if !all {
		busy := nodes[:0:0]
		for _, n := range nodes {
			if n.hasWork() {
				busy = append(busy, n)
			}
		}
		if len(busy) == 0 {
			return
		}
		nodes = busy
	}
	cmds := make([]*redis.MapStringStringCmd, len(nodes))
	ttls := make([]*redis.DurationCmd, len(nodes))
	tickets := make([]uint64, len(nodes))
	for i, n := range nodes {
		tickets[i] = n.reads.Add(1)
	}
	_, err := s.opts.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range nodes {
			k := nodeKeys(n.ID)
			cmds[i] = p.HGetAll(ctx, k.Slots)
			ttls[i] = p.PTTL(ctx, k.Lease)
		}
		return nil
	})
	if err != nil {
		s.opts.Logger.Warn("scan for work failed", "err", err)
		return
	}
	for i, n := range nodes {
		ns := parseNodeState(cmds[i].Val())
		n.mu.Lock()
		n.applyState(tickets[i], ns)
		n.mu.Unlock()
		if ns.Slots.Now.Task == "" && !ns.BootPending {
			continue
		}
		// A held lease: try again the moment it expires, so a dead holder's
		// node is taken over within one lease TTL.
		if ttl := ttls[i].Val(); ttl > 0 {
			s.kickAt(n, ttl+5*time.Millisecond)
			continue
		}
		s.kick(n)
	}
}

// hasWork reports whether the view shows work for the node: a running
// action or a boot override waiting.
func (n *node) hasWork() bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.view.State.Slots.Now.Task != "" || n.view.State.BootPending
}

// kickAt kicks n after d, once: repeated scans do not pile up timers.
func (s *Service) kickAt(n *node, d time.Duration) {
	n.wmu.Lock()
	defer n.wmu.Unlock()
	if n.kickScheduled {
		return
	}
	n.kickScheduled = true
	time.AfterFunc(d, func() {
		n.wmu.Lock()
		n.kickScheduled = false
		n.wmu.Unlock()
		if s.ctx.Err() == nil {
			s.kick(n)
		}
	})
}

// refreshState re-reads a node's state into its view and reports whether
// the node has work (a running action). A read error counts as work, so
// that the worker looks for itself.
func (s *Service) refreshState(n *node) (busy bool) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.CallTimeout)
	defer cancel()
	ticket := n.reads.Add(1)
	ns, err := s.store.State(ctx, n.ID)
	if err != nil {
		return true
	}
	n.mu.Lock()
	n.applyState(ticket, ns)
	if ns.Power != "" && ns.PowerAt.After(n.view.Updated) {
		n.view.PowerState, n.view.Updated = ns.Power, ns.PowerAt
	}
	if b := ns.Boot; b.Target != "" && ns.BootResultSeq > n.bootSeq {
		// a boot override applied by the lease holder, perhaps another replica
		n.view.Boot, n.bootSeq = b, ns.BootResultSeq
	}
	close(n.changed) // wakes SetBoot's waiters
	n.changed = make(chan struct{})
	n.mu.Unlock()
	return ns.Slots.Now.Task != "" || ns.BootPending
}

// applyState takes ns, read as read number ticket, into the view unless a
// later read is there already. n.mu is held.
func (n *node) applyState(ticket uint64, ns NodeState) {
	if ticket > n.applied {
		n.applied, n.view.State = ticket, ns
	}
}

// Close stops background work and closes every backend.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	var errs []error
	for _, n := range s.snapshot() {
		n.call.Lock() // SetBackend may be changing it
		err := n.Backend.Close()
		n.call.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.ID, err))
		}
	}
	return errors.Join(errs...)
}

// ActionCounts is how many actions run and wait over the whole fleet, as
// this replica's views show them (every replica sees every node: the
// totals are the fleet's, from the view, without a Redis read).
func (s *Service) ActionCounts() (running, waiting int) {
	for _, n := range s.snapshot() {
		n.mu.RLock()
		sl := n.view.State.Slots
		n.mu.RUnlock()
		if sl.Now.Task != "" {
			running++
		}
		waiting += len(sl.Waiting)
	}
	return running, waiting
}

// View returns the node's current view.
func (s *Service) View(id string) (View, error) {
	n, ok := s.lookup(id)
	if !ok {
		return View{}, fmt.Errorf("node %s: %w", id, ErrNodeNotFound)
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.view, nil
}

// sweepParts is how many parts the power sync divides the nodes into, by
// a hash of their id. Each part is read at its own moment of the interval,
// so 10,000 BMCs are not read in one burst, and each part is claimed in
// Redis by one replica per interval (one claim per part, not per node).
const sweepParts = 64

// sweepPart is the part of the power sync that node id belongs to: the
// same on every replica.
func sweepPart(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % sweepParts)
}

// syncLoop re-reads every node's power state once per sync interval, one
// part after the other, evenly spaced. A part whose reads take longer than
// its share of the interval delays the next; the loop does not catch up
// in a burst.
func (s *Service) syncLoop() {
	next := time.Now()
	for {
		parts := make(map[int][]*node)
		for _, n := range s.snapshot() {
			p := sweepPart(n.ID)
			parts[p] = append(parts[p], n)
		}
		if len(parts) == 0 {
			parts[0] = nil
		}
		step := s.opts.SyncInterval / time.Duration(len(parts))
		for p := range sweepParts {
			nodes, ok := parts[p]
			if !ok {
				continue
			}
			next = next.Add(step)
			if now := time.Now(); next.Before(now.Add(-step)) {
				next = now
			}
			t := time.NewTimer(time.Until(next))
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			// With several replicas, one of them reads a given part per
			// interval; the others learn a change through the observe
			// script's notification. When Redis does not answer, read
			// anyway: the view stays fresh.
			ctx, cancel := context.WithTimeout(s.ctx, s.opts.CallTimeout)
			mine, err := s.store.claimSweep(ctx, p, s.opts.SyncInterval*9/10)
			cancel()
			if err == nil && !mine {
				continue
			}
			s.sweep(s.ctx, nodes, false)
		}
	}
}

// sweep reads nodes, at most SyncConcurrency at once in all and
// SyncPerKind at once per backend kind (one slow protocol, AMT say, cannot
// take every slot).
//
// A read still running after SlowRead gives its slots back and goes on
// alone (to CallTimeout), as long as fewer than cap(slowReads) do so; the
// sweep does not wait for it, and the next sweep skips the node until it
// ended. BMCs that hang would otherwise hold the slots for CallTimeout
// each: 50 of them, 8 Redfish slots and 20 s left a 10,000-node gateway
// with its fleet unread for two minutes after start, and every later
// sweep as late (issue 13: slow or down BMCs do not delay the others).
func (s *Service) sweep(ctx context.Context, nodes []*node, full bool) {
	start := time.Now()
	defer func() { s.opts.Metrics.PowerSyncSweep(time.Since(start)) }() // after wg.Wait
	sem := make(chan struct{}, s.opts.SyncConcurrency)
	kinds := map[string]chan struct{}{}
	for _, n := range nodes {
		if k := n.Kind; kinds[k] == nil {
			kinds[k] = make(chan struct{}, s.opts.SyncPerKind)
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, n := range nodes {
		kind := kinds[n.Kind]
		select {
		case kind <- struct{}{}:
		case <-ctx.Done():
			return
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			<-kind
			return
		}
		if !n.sweeping.CompareAndSwap(false, true) {
			<-sem
			<-kind
			continue // its read from an earlier sweep still runs
		}
		wg.Add(1)
		release := func() { <-sem; <-kind; wg.Done() }
		done := make(chan struct{})
		s.wg.Add(2)
		go func() {
			defer s.wg.Done()
			defer close(done)
			defer n.sweeping.Store(false)
			s.refresh(ctx, n, full)
		}()
		go func() {
			defer s.wg.Done()
			t := time.NewTimer(s.opts.SlowRead)
			defer t.Stop()
			select {
			case <-done:
			case <-t.C:
				select {
				case s.slowReads <- struct{}{}:
					release()
					<-done
					<-s.slowReads
					return
				default: // too many slow already: this one keeps its slots
					<-done
				}
			}
			release()
		}()
	}
}

// refresh re-reads power state (and, when full or not known yet, the
// capabilities and boot override) of one node.
func (s *Service) refresh(ctx context.Context, n *node, full bool) {
	if n.removing.Load() {
		return
	}
	n.mu.RLock()
	needCaps := full || !n.view.CapsKnown
	n.mu.RUnlock()
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	var (
		caps    backends.Capabilities
		boot    schemas.BootOverride
		capsErr error
	)
	n.call.Lock()
	if needCaps {
		caps, capsErr = n.Backend.Capabilities(cctx)
		if capsErr == nil {
			boot, capsErr = n.Backend.Boot(cctx)
		}
	}
	ps, err := n.Backend.PowerState(cctx)
	n.call.Unlock()
	n.mu.Lock()
	if needCaps && capsErr == nil {
		force := s.softOffFallback(n) == "force"
		n.view.Native = caps.ResetTypes
		offered := Offered(caps.ResetTypes, force)
		n.view.Emulation = map[schemas.ResetType]string{}
		for _, r := range offered {
			n.view.Emulation[r], _ = Emulation(r, caps.ResetTypes, force)
		}
		caps.ResetTypes = offered
		n.view.Caps, n.view.Boot, n.view.CapsKnown = caps, boot, true
	}
	if err = errors.Join(err, capsErr); err != nil {
		s.opts.Logger.Warn("power sync failed", "node", n.ID, "err", err)
		n.view.LastError = err.Error()
		if n.view.Health != "Critical" {
			n.view.Health = "Warning"
		}
		n.mu.Unlock()
		return
	}
	// The record in Redis already says ps (as far as the view, which
	// follows every published change, knows): nothing to write. Most
	// reads of an idle fleet end here, without a script run.
	recorded := n.view.State.Power == ps
	n.mu.Unlock()
	s.setPower(n, ps)
	s.reassert(ctx, n, ps)
	if recorded && !full {
		return
	}
	prev, err := s.store.observe(cctx, n.ID, ps, s.opts.Clock())
	if err == nil && !full && prev != ps && (prev == schemas.PowerOn || prev == schemas.PowerOff) && (ps == schemas.PowerOn || ps == schemas.PowerOff) {
		// Drift: the node changed outside the gateway since the last record
		// (a worker records what it confirmed). Only the replica whose read
		// changed the record reports it.
		s.opts.Logger.Info("power drift", "node", n.ID, "was", prev, "now", ps)
		s.opts.Metrics.PowerDrift()
		if ps == schemas.PowerOn {
			s.emitPower(ctx, n.ID, schemas.MsgResourcePoweredOn)
		} else {
			s.emitPower(ctx, n.ID, schemas.MsgResourcePoweredOff)
		}
	}
}

// softOffFallback is node n's soft_off_fallback.
func (s *Service) softOffFallback(n *node) string {
	if f := n.settings.Load().softOffFallback; f != "" {
		return f
	}
	return s.opts.SoftOffFallback
}

// setPower records an observed power state in the local view.
func (s *Service) setPower(n *node, p schemas.PowerState) {
	if p == "" {
		return
	}
	n.mu.Lock()
	n.view.PowerState, n.view.Updated = p, s.opts.Clock()
	n.view.Health, n.view.LastError = "OK", ""
	n.mu.Unlock()
}

// newTaskID names a new task of node: "<node>.<time><random>", unique
// across replicas and sortable by creation within a node.
func (s *Service) newTaskID(node string) string {
	b := make([]byte, 3)
	rand.Read(b)
	return node + "." + strconv.FormatInt(s.opts.Clock().UnixMilli(), 36) + hex.EncodeToString(b)
}

// Reset admits a reset of type r for node id (docs/architecture.md#admission):
// one Redis round trip. req describes the request for the node's command log.
func (s *Service) Reset(ctx context.Context, id string, r schemas.ResetType, req string) (Admission, error) {
	return s.resetAs(ctx, id, r, req, "")
}

// resetAs is Reset whose new task, if one is created, gets the id task
// (newTaskID's when empty): a bulk request names it beforehand, to find out
// after a crash whether the admission happened (bulk.go).
func (s *Service) resetAs(ctx context.Context, id string, r schemas.ResetType, req, task string) (Admission, error) {
	n, ok := s.lookup(id)
	if !ok {
		return Admission{}, fmt.Errorf("node %s: %w", id, ErrNodeNotFound)
	}
	if n.removing.Load() {
		return Admission{}, fmt.Errorf("node %s: %w", id, ErrNodeRemoved)
	}
	n.mu.RLock()
	caps, known := n.view.Caps, n.view.CapsKnown
	n.mu.RUnlock()
	if known && !caps.Supports(r) {
		return Admission{}, fmt.Errorf("node %s: %s: %w", id, r, ErrUnsupportedReset)
	}
	if task == "" {
		task = s.newTaskID(id)
	}
	now := s.opts.Clock()
	a, err := s.store.Admit(ctx, id, *n.rules.Load(), r, task, now, req)
	if errors.Is(err, redisx.ErrNotReplicated) {
		return Admission{}, s.withdraw(ctx, n, a, err)
	}
	if err != nil {
		return Admission{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s.opts.Metrics.Admission(a.metricOutcome(), string(a.Refusal), string(n.rules.Load().Policy))
	if a.Outcome == Refused && a.Refusal == refusedRemoved {
		// another replica began the node's removal (retire.lua)
		return Admission{}, fmt.Errorf("node %s: %w", id, ErrNodeRemoved)
	}
	var add []redis.Z
	if a.Outcome == Started || a.Outcome == Queued {
		add = []redis.Z{{Score: float64(now.UnixMilli()), Member: a.Task}}
	}
	if err := s.store.indexTasks(ctx, add, a.Forgotten); err != nil {
		// The task runs; only the fleet-wide listing misses it.
		s.opts.Logger.Warn("task not added to the fleet-wide index", "node", id, "task", a.Task, "err", err)
	}
	// Read your writes: a GET on this replica right after the 202 shows
	// the admission (desired state, queue), as the Task does. Other
	// replicas see it when the change is published.
	s.refreshState(n)
	if a.Outcome == Started {
		s.kick(n)
	}
	return a, nil
}

// withdraw answers an admission that the master made but too few replicas
// acknowledged (config redis.min_replicas_ack): the client is told it was
// not accepted (ErrUnavailable: 503, retry), so the task it created is
// cancelled on the master, as far as that master still answers. A task
// the request only joined (Coalesced) is someone else's and stays.
func (s *Service) withdraw(ctx context.Context, n *node, a Admission, cause error) error {
	err := fmt.Errorf("%w: %w", ErrUnavailable, cause)
	if a.Task == "" || (a.Outcome != Started && a.Outcome != Queued) {
		return err
	}
	// The context may be spent by the wait: the withdrawal gets its own
	// short budget.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), withdrawTimeout)
	defer cancel()
	if _, cerr := s.store.cancel(wctx, n.ID, a.Task, s.opts.Clock()); cerr != nil {
		s.opts.Logger.WarnContext(ctx, "unacknowledged admission could not be withdrawn: its task may still run",
			"node", n.ID, "task", a.Task, "err", cerr)
		return fmt.Errorf("%w (task %s could not be withdrawn and may still run)", err, a.Task)
	}
	s.opts.Logger.InfoContext(ctx, "unacknowledged admission withdrawn", "node", n.ID, "task", a.Task, "err", cause)
	s.refreshState(n)
	return fmt.Errorf("%w (task %s withdrawn)", err, a.Task)
}

// withdrawTimeout bounds the cancellation of an unacknowledged admission.
const withdrawTimeout = 2 * time.Second

// CancelTask aborts a task (DELETE, docs/architecture.md#cancellation).
func (s *Service) CancelTask(ctx context.Context, taskID string) (CancelResult, error) {
	node, ok := TaskNode(taskID)
	if !ok {
		return "", ErrTaskNotFound
	}
	n, ok := s.lookup(node)
	if !ok {
		return "", ErrTaskNotFound
	}
	if _, err := s.store.Task(ctx, taskID); err != nil {
		if errors.Is(err, ErrTaskNotFound) {
			return "", err
		}
		return "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	res, err := s.store.Cancel(ctx, node, taskID, s.opts.Clock())
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s.refreshState(n) // read your writes, as for Reset
	return res, nil
}

// Task reads one task.
func (s *Service) Task(ctx context.Context, id string) (TaskRecord, error) {
	// A task of a removed node stays readable while it is retained: its
	// client may still be polling it (membership.go).
	if _, ok := TaskNode(id); !ok {
		return TaskRecord{}, ErrTaskNotFound
	}
	t, err := s.store.Task(ctx, id)
	if err != nil && !errors.Is(err, ErrTaskNotFound) {
		return t, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return t, err
}

// TaskPage lists at most top task ids of the whole fleet, newest first,
// after the newest skip, and how many there are in all.
func (s *Service) TaskPage(ctx context.Context, skip, top int) ([]string, int, error) {
	ids, total, err := s.store.TaskPage(ctx, skip, top)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return ids, total, nil
}

// trimTasks applies the fleet-wide task retention (KeepTasksTotal) every
// few seconds; a fleet over it loses at most 1000 tasks a round, oldest
// first, each only once finished for the minimum age admit.lua also keeps.
func (s *Service) trimTasks() {
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, trimEvery)
		n, err := s.store.trimTasks(ctx, s.opts.KeepTasksTotal, 1000, s.opts.Clock(), min(10*time.Minute, s.opts.KeepTaskAge))
		cancel()
		if err != nil {
			s.opts.Logger.Warn("fleet-wide task retention failed", "err", err)
		} else if n > 0 {
			s.opts.Logger.Debug("fleet-wide task retention", "removed", n)
		}
	}
}

// trimEvery is the period of the fleet-wide task retention.
const trimEvery = 5 * time.Second

// TaskIDs lists recent task ids of the given nodes (their own listings,
// merged), newest first, at most limit in all.
func (s *Service) TaskIDs(ctx context.Context, nodes []string, limit int) ([]string, error) {
	ids, err := s.store.TaskIDs(ctx, nodes, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return ids, nil
}

// SetBoot sets the node's boot source override. It is admitted in Redis
// and applied by the node's lease holder (whichever replica that is), in
// order with power actions (boot.lua): before the next action begins, at
// the running action's next step boundary, or at once on an idle node.
// SetBoot returns once it was applied, with the BMC's error if it failed.
func (s *Service) SetBoot(ctx context.Context, id string, b schemas.BootOverride) error {
	n, ok := s.lookup(id)
	if !ok {
		return fmt.Errorf("node %s: %w", id, ErrNodeNotFound)
	}
	if n.removing.Load() {
		return fmt.Errorf("node %s: %w", id, ErrNodeRemoved)
	}
	n.mu.RLock()
	changed := n.changed
	n.mu.RUnlock()
	seq, err := s.store.RequestBoot(ctx, id, b, s.opts.Clock())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if seq < 0 { // boot.lua: the node is being removed
		return fmt.Errorf("node %s: %w", id, ErrNodeRemoved)
	}
	s.kick(n)
	for {
		n.mu.RLock()
		st := n.view.State
		n.mu.RUnlock()
		if st.BootResultSeq >= seq {
			if st.BootResult != "ok" {
				return fmt.Errorf("node %s: boot override: %w: %s", id, ErrBMC, st.BootResult)
			}
			return nil
		}
		select {
		case <-changed:
			n.mu.RLock()
			changed = n.changed
			n.mu.RUnlock()
		case <-ctx.Done():
			return fmt.Errorf("node %s: boot override accepted but not applied yet (the node's lease holder applies it at its next step): %w: %w", id, ErrUnavailable, ctx.Err())
		}
	}
}

// applyBoot applies the boot override waiting for the node, as its lease
// holder, with no power command in flight, and records how it ended.
func (s *Service) applyBoot(ctx context.Context, n *node, lease string, log *slog.Logger) error {
	b, ok, err := s.store.pendingBoot(ctx, n.ID)
	if err != nil || !ok {
		return err
	}
	o := schemas.BootOverride{Target: b.Target, Enabled: b.Enabled, Mode: b.Mode}
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	n.call.Lock()
	err = n.Backend.SetBoot(cctx, o)
	n.call.Unlock()
	cancel()
	result := "ok"
	if err != nil {
		result = err.Error()
		log.Warn("boot override failed", "err", err)
	} else {
		log.Info("boot override applied", "target", o.Target, "enabled", o.Enabled, "mode", o.Mode)
		n.mu.Lock()
		if o.Target != "" {
			n.view.Boot.Target = o.Target
		}
		if o.Enabled != "" {
			n.view.Boot.Enabled = o.Enabled
		}
		if o.Mode != "" {
			n.view.Boot.Mode = o.Mode
		}
		n.mu.Unlock()
	}
	_, err = s.store.workerOp(ctx, n.ID, lease, "", s.opts.Clock(), "boot_done", b.Seq, result)
	return err
}

// reassert admits the action that brings an idle node back to its desired
// state, for nodes configured so (Node.Reassert).
func (s *Service) reassert(ctx context.Context, n *node, observed schemas.PowerState) {
	if !n.settings.Load().reassert || (observed != schemas.PowerOn && observed != schemas.PowerOff) {
		return
	}
	n.mu.RLock()
	st := n.view.State
	n.mu.RUnlock()
	if st.Slots.Now.Task != "" || st.Desired == "" || st.Desired == observed {
		return
	}
	r := schemas.ResetOn
	if st.Desired == schemas.PowerOff {
		r = schemas.ResetForceOff
	}
	a, err := s.Reset(ctx, n.ID, r, "power sync: re-assert desired "+string(st.Desired))
	s.opts.Logger.Info("re-asserting desired power state", "node", n.ID, "desired", st.Desired, "observed", observed, "task", a.Task, "outcome", a.Outcome, "err", err)
}
