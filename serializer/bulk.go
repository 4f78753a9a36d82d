package serializer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/lease"
	"github.com/fishgate/fishgate/schemas"
)

// Bulk power requests (docs/architecture.md#bulk-power): one parent task
// for a ResetType on many nodes, admitted in batches. Each node's action is
// an ordinary admission through its own slots (Service.Reset: coalescing,
// superseding and refusals as for a single request); the parent only
// decides when each node is admitted and follows how its task ends.
//
// The parent lives in Redis under the hash tag {bulk:<id>}; whichever
// replica holds its lease drives it, and any replica takes it over when
// that lease expires. Its bookkeeping is O(nodes): one list of node ids,
// one hash of per-node parts written once per change of phase, counters in
// the parent's hash. A node's end is learnt from the fg:node notification
// its slots publish, and read only then (a full re-read of the unfinished
// ones every bulkResync makes up for a lost notification).

// bulkIndex orders every parent by creation (listing, retention);
// bulkActive holds the parents not finished yet (the scan for work).
const (
	bulkIndex   = "fg:bulks"
	bulkActive  = "fg:bulks:active"
	bulkChannel = "fg:bulk" // payload: a parent id that was created or cancelled
)

// BulkKeep is how many finished parents are kept (besides tasks.keep_for).
const BulkKeep = 100

// bulkResync is how often a driver re-reads every unfinished node task,
// in case a notification was lost (a subscriber's reconnection): rarely,
// since it costs a read per unfinished node.
const bulkResync = 15 * time.Second

// bulkAdmitters bounds the admissions of one batch sent at once.
const bulkAdmitters = 32

// bulkChunk bounds the nodes of one claim or settle script.
const bulkChunk = 1000

// bulkSettle is how often a batch being admitted records the parts
// admitted so far (and reads those that ended since).
const bulkSettle = time.Second

// ErrBulkNotFound is returned for an unknown (or expired) parent task.
var ErrBulkNotFound = errors.New("bulk task not found")

// BulkPrefix starts every parent task id; a node task id has a dot, a
// parent's none.
const BulkPrefix = "bulk-"

// IsBulkID reports whether a task id names a parent task.
func IsBulkID(id string) bool {
	if len(id) <= len(BulkPrefix) || id[:len(BulkPrefix)] != BulkPrefix {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c == '.' || c == '{' || c == '}' {
			return false
		}
	}
	return true
}

type bulkKeys struct{ Meta, Nodes, Subs, Lease, Fence string }

func bulkKeysOf(id string) bulkKeys {
	p := "fg:bulk:{" + id + "}:"
	l := lease.At(p)
	return bulkKeys{Meta: p + "meta", Nodes: p + "nodes", Subs: p + "subs", Lease: l.Holder, Fence: l.Fence}
}

func (k bulkKeys) forScripts() []string { return []string{k.Meta, k.Nodes, k.Subs, k.Lease} }

// bulkLua binds the parent's keys and counts a node part that ends.
const bulkLua = lease.Lua + `
local META, NODES, SUBS, LEASE = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local function ended(v)
  redis.call('HINCRBY', META, 'done', 1)
  local state, status = string.match(v, '^F|[^|]*|[^|]*|([^|]*)|([^|]*)|')
  redis.call('HINCRBY', META, 'n_' .. state, 1)
  if status == 'Warning' then redis.call('HINCRBY', META, 'n_Warning', 1) end
end
`

var (
	// claimScript claims the pending nodes of a batch for admission, unless
	// the parent was cancelled. ARGV: lease, then node, planned task id
	// pairs. Answers "fenced", or "ok" and the claimed nodes.
	claimScript = redis.NewScript(bulkLua + `
if not lease_held(LEASE, ARGV[1]) then return {'fenced'} end
local out = {'ok'}
if redis.call('HGET', META, 'cancel') == '1' then return out end
for i = 2, #ARGV, 2 do
  local v = redis.call('HGET', SUBS, ARGV[i])
  if not v or string.sub(v, 1, 2) == 'A|' then
    redis.call('HSET', SUBS, ARGV[i], 'A|' .. ARGV[i + 1] .. '|||||')
    out[#out + 1] = ARGV[i]
  end
end
return out`)
	// settleScript records node parts; a part that has ended stays so.
	// ARGV: lease, then node, part pairs. Answers -1 when fenced, else
	// the count of ended parts.
	settleScript = redis.NewScript(bulkLua + `
if not lease_held(LEASE, ARGV[1]) then return -1 end
for i = 2, #ARGV, 2 do
  local old = redis.call('HGET', SUBS, ARGV[i])
  if not (old and string.sub(old, 1, 2) == 'F|') then
    redis.call('HSET', SUBS, ARGV[i], ARGV[i + 1])
    if string.sub(ARGV[i + 1], 1, 2) == 'F|' then ended(ARGV[i + 1]) end
  end
end
return tonumber(redis.call('HGET', META, 'done') or '0')`)
	// cancelBulkScript is a DELETE of the parent: every node whose batch
	// has not come ends Cancelled at once. ARGV: the part of such a node,
	// the parent id. Answers missing, finished, already or ok.
	cancelBulkScript = redis.NewScript(bulkLua + `
local st = redis.call('HGET', META, 'state')
if not st then return 'missing' end
if st == 'Completed' or st == 'Exception' or st == 'Cancelled' then return 'finished' end
if redis.call('HGET', META, 'cancel') == '1' then return 'already' end
redis.call('HSET', META, 'cancel', '1', 'state', 'Cancelling')
for _, node in ipairs(redis.call('LRANGE', NODES, 0, -1)) do
  if redis.call('HEXISTS', SUBS, node) == 0 then
    redis.call('HSET', SUBS, node, ARGV[1])
    ended(ARGV[1])
  end
end
redis.call('PUBLISH', 'fg:bulk', ARGV[2])
return 'ok'`)
	// bulkStepScript writes the parent's fields under its lease. ARGV:
	// lease, op (begin: New becomes Running, answers the state before;
	// set: field/value pairs follow).
	bulkStepScript = redis.NewScript(bulkLua + `
if not lease_held(LEASE, ARGV[1]) then return 'fenced' end
local st = redis.call('HGET', META, 'state') or ''
if ARGV[2] == 'begin' then
  if st == 'New' then redis.call('HSET', META, 'state', 'Running', 'start', ARGV[3]) end
  return st
end
for i = 3, #ARGV, 2 do redis.call('HSET', META, ARGV[i], ARGV[i + 1]) end
return st`)
)

// Bulk runs bulk power requests over a Service. Build it with NewBulk and
// Start it; any replica may create, read and cancel a request, and the one
// holding its lease drives it.
type Bulk struct {
	svc *Service
	rdb redis.UniversalClient
	log *slog.Logger
	// ctx is the service's, ended sooner by Drain.
	ctx  context.Context
	stop context.CancelFunc

	mu   sync.Mutex
	runs map[string]*bulkRun // the parents this replica drives
	wg   sync.WaitGroup
}

// NewBulk builds the bulk power requests of svc.
func NewBulk(svc *Service) *Bulk {
	ctx, stop := context.WithCancel(svc.ctx)
	return &Bulk{svc: svc, rdb: svc.opts.Redis, log: svc.opts.Logger, ctx: ctx, stop: stop, runs: map[string]*bulkRun{}}
}

// Drain hands the parents this replica drives over to the others at once
// (SIGTERM): a bulk request outlasts any drain timeout, and its driver
// only admits and watches; the nodes' actions drain on their own
// (Service.Drain). It returns the parents handed over.
func (b *Bulk) Drain() []string {
	b.mu.Lock()
	var ids []string
	for id := range b.runs {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	b.stop()
	b.wg.Wait() // the drivers have released their leases
	ctx, cancel := context.WithTimeout(context.Background(), b.svc.opts.CallTimeout)
	defer cancel()
	for _, id := range ids {
		// The others try to drive it as if it were new (notify).
		if err := b.rdb.Publish(ctx, bulkChannel, id).Err(); err != nil {
			b.log.Warn("bulk hand-over not announced; another replica takes it at its next scan", "bulk", id, "err", err)
		}
	}
	sort.Strings(ids)
	return ids
}

// Start listens for node changes and new or cancelled parents, and looks
// for parents without a driver every quarter lease TTL (a replica that
// died leaves its parents to the others within one TTL).
func (b *Bulk) Start(ctx context.Context) {
	go func() {
		select {
		case <-ctx.Done():
			b.svc.cancel()
		case <-b.ctx.Done():
		}
	}()
	sub := b.rdb.Subscribe(b.ctx, "fg:node", bulkChannel)
	b.wg.Add(2)
	go func() {
		defer b.wg.Done()
		defer sub.Close()
		ch := sub.Channel()
		for {
			select {
			case <-b.ctx.Done():
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				b.notify(m.Channel, m.Payload)
			}
		}
	}()
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(b.svc.opts.LeaseTTL / 4)
		defer t.Stop()
		for {
			b.scan()
			select {
			case <-b.ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Wait returns once the background work has stopped (after the service's
// context ended).
func (b *Bulk) Wait() { b.wg.Wait() }

func (b *Bulk) notify(channel, payload string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if channel == bulkChannel {
		if r := b.runs[payload]; r != nil {
			r.wakeUp()
		} else if !b.driving(payload) {
			b.wg.Add(1)
			go func() { defer b.wg.Done(); b.tryRun(payload) }()
		}
		return
	}
	for _, r := range b.runs {
		r.nodeChanged(payload)
	}
}

// driving reports whether this replica drives parent id (b.mu held).
func (b *Bulk) driving(id string) bool { return b.runs[id] != nil }

// scan tries to drive every active parent that nobody drives.
func (b *Bulk) scan() {
	ctx, cancel := context.WithTimeout(b.ctx, b.svc.opts.LeaseTTL)
	defer cancel()
	ids, err := b.rdb.SMembers(ctx, bulkActive).Result()
	if err != nil {
		b.log.Warn("scan for bulk tasks failed", "err", err)
		return
	}
	for _, id := range ids {
		b.mu.Lock()
		mine := b.driving(id)
		b.mu.Unlock()
		if !mine {
			b.wg.Add(1)
			go func() { defer b.wg.Done(); b.tryRun(id) }()
		}
	}
}

// tryRun drives parent id if its lease is free.
func (b *Bulk) tryRun(id string) {
	if !IsBulkID(id) || b.ctx.Err() != nil {
		return
	}
	k := bulkKeysOf(id)
	l, err := lease.Acquire(b.ctx, b.svc.store.run, lease.Keys{Holder: k.Lease, Fence: k.Fence}, b.svc.opts.ReplicaID, b.svc.opts.LeaseTTL)
	if err != nil {
		return // another replica drives it, or Redis is away (the scan retries)
	}
	r := &bulkRun{b: b, id: id, keys: k, lease: l.Value(), wake: make(chan struct{}, 1), dirty: map[string]bool{},
		log: b.log.With("bulk", id, "replica", b.svc.opts.ReplicaID, "lease", l.Value())}
	b.mu.Lock()
	if b.runs[id] != nil {
		b.mu.Unlock()
		l.Release(context.WithoutCancel(b.ctx))
		return
	}
	b.runs[id] = r
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.runs, id)
		b.mu.Unlock()
	}()
	l.Run(b.ctx, func(ctx context.Context) {
		if err := r.run(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("bulk task interrupted; it is resumed at the next scan", "err", err)
		}
	}, func(err error) { r.log.Warn("bulk task lease lost", "err", err) })
}

// newBulkID names a new parent: "bulk-<time><random>", no dot (a node
// task id has one).
func (b *Bulk) newBulkID() string {
	x := make([]byte, 4)
	rand.Read(x)
	return BulkPrefix + strconv.FormatInt(b.svc.opts.Clock().UnixMilli(), 36) + hex.EncodeToString(x)
}

// Create stores a new parent task and starts driving it; it returns at
// once (O(nodes) in one write), before any node is admitted. Duplicate
// node ids count once; unknown ones end Exception when their batch comes.
func (b *Bulk) Create(ctx context.Context, req BulkRequest) (BulkRecord, error) {
	if len(req.Nodes) == 0 {
		return BulkRecord{}, errors.New("bulk request: no nodes")
	}
	if req.BatchSize < 0 || req.Delay < 0 {
		return BulkRecord{}, errors.New("bulk request: negative batch size or delay")
	}
	seen := make(map[string]bool, len(req.Nodes))
	nodes := make([]any, 0, len(req.Nodes))
	for _, n := range req.Nodes {
		if !seen[n] {
			seen[n] = true
			nodes = append(nodes, n)
		}
	}
	id := b.newBulkID()
	k := bulkKeysOf(id)
	now := b.svc.opts.Clock()
	// The index first: a parent in it whose keys are missing is dropped
	// by its driver; a parent missing from it would never be driven.
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, bulkIndex, redis.Z{Score: float64(now.UnixMilli()), Member: id})
		p.SAdd(ctx, bulkActive, id)
		return nil
	})
	if err == nil {
		_, err = b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.RPush(ctx, k.Nodes, nodes...)
			p.HSet(ctx, k.Meta, "type", string(req.Reset), "batch", req.BatchSize, "delay", req.Delay.Milliseconds(),
				"aggregate", req.Aggregate, "req", req.Req, "total", len(nodes), "created", now.UnixMilli(),
				"state", string(schemas.TaskStateNew), "done", 0)
			return nil
		})
	}
	if err != nil {
		return BulkRecord{}, fmt.Errorf("%w: bulk request: %w", ErrUnavailable, err)
	}
	b.rdb.Publish(ctx, bulkChannel, id)
	b.wg.Add(1)
	go func() { defer b.wg.Done(); b.tryRun(id) }()
	return b.Get(ctx, id)
}

// Get reads a parent task.
func (b *Bulk) Get(ctx context.Context, id string) (BulkRecord, error) {
	if !IsBulkID(id) {
		return BulkRecord{}, ErrBulkNotFound
	}
	m, err := b.rdb.HGetAll(ctx, bulkKeysOf(id).Meta).Result()
	if err != nil {
		return BulkRecord{}, fmt.Errorf("%w: bulk task %s: %w", ErrUnavailable, id, err)
	}
	if len(m) == 0 {
		return BulkRecord{}, ErrBulkNotFound
	}
	return parseBulk(id, m), nil
}

func parseBulk(id string, m map[string]string) BulkRecord {
	n := func(k string) int { v, _ := strconv.Atoi(m[k]); return v }
	ms := func(k string) time.Time {
		v, err := strconv.ParseInt(m[k], 10, 64)
		if err != nil || v == 0 {
			return time.Time{}
		}
		return time.UnixMilli(v)
	}
	return BulkRecord{
		ID: id, Reset: schemas.ResetType(m["type"]), BatchSize: n("batch"), Delay: time.Duration(n("delay")) * time.Millisecond,
		Aggregate: m["aggregate"], Total: n("total"), Done: n("done"), Completed: n("n_Completed"), Warned: n("n_Warning"),
		Failed: n("n_Exception"), Cancelled: n("n_Cancelled"), Batches: n("batches"),
		State: schemas.TaskState(m["state"]), Status: m["status"], Reason: m["reason"], CancelRequested: m["cancel"] == "1",
		Created: ms("created"), Start: ms("start"), End: ms("end"),
	}
}

// IDs lists the newest parent task ids, newest first, at most limit.
func (b *Bulk) IDs(ctx context.Context, limit int) ([]string, error) {
	ids, err := b.rdb.ZRevRange(ctx, bulkIndex, 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: bulk tasks: %w", ErrUnavailable, err)
	}
	return ids, nil
}

// Nodes lists the nodes of a parent from skip, at most top (all when top
// is 0), and how many it has.
func (b *Bulk) Nodes(ctx context.Context, id string, skip, top int) ([]string, int, error) {
	k := bulkKeysOf(id)
	stop := int64(-1)
	if top > 0 {
		stop = int64(skip + top - 1)
	}
	var lr *redis.StringSliceCmd
	var ln *redis.IntCmd
	_, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		lr = p.LRange(ctx, k.Nodes, int64(skip), stop)
		ln = p.LLen(ctx, k.Nodes)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("%w: bulk task %s: %w", ErrUnavailable, id, err)
	}
	return lr.Val(), int(ln.Val()), nil
}

// SubTask is one node's part of a parent task, as the API shows it.
type SubTask struct {
	Parent string
	Node   string
	// Batch is the node's batch, from 0.
	Batch int
	State schemas.TaskState
	// Status is OK, Warning or Critical.
	Status string
	Reason string
	// Task is the node's own task once admitted (perhaps one it joined:
	// Outcome Coalesced); Record is it, when it could still be read.
	Task    string
	Outcome Outcome
	Record  *TaskRecord
}

// Sub reads node's part of parent id.
func (b *Bulk) Sub(ctx context.Context, id, node string) (SubTask, error) {
	rec, err := b.Get(ctx, id)
	if err != nil {
		return SubTask{}, err
	}
	k := bulkKeysOf(id)
	var pos *redis.IntCmd
	var raw *redis.StringCmd
	_, err = b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		pos = p.LPos(ctx, k.Nodes, node, redis.LPosArgs{})
		raw = p.HGet(ctx, k.Subs, node)
		return nil
	})
	if errors.Is(pos.Err(), redis.Nil) {
		return SubTask{}, ErrBulkNotFound
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return SubTask{}, fmt.Errorf("%w: bulk task %s: %w", ErrUnavailable, id, err)
	}
	size := rec.BatchSize
	if size <= 0 {
		size = max(rec.Total, 1)
	}
	s := decodeSub(raw.Val())
	st := SubTask{Parent: id, Node: node, Batch: int(pos.Val()) / size, Task: s.Task, Outcome: s.Outcome, Status: "OK"}
	switch s.Phase {
	case subPending:
		st.State, st.Reason = schemas.TaskStateNew, fmt.Sprintf("waiting for batch %d", st.Batch+1)
		if rec.CancelRequested {
			st.Reason = "the parent task is being cancelled"
		}
		return st, nil
	case subAdmitting:
		st.State, st.Reason, st.Task = schemas.TaskStateNew, "being admitted", ""
		return st, nil
	case subFinished:
		st.State, st.Status, st.Reason = s.State, s.Status, s.Reason
	}
	if st.Task != "" {
		if t, err := b.svc.store.Task(ctx, st.Task); err == nil {
			st.Record = &t
			if s.Phase == subAdmitted {
				st.State, st.Status, st.Reason = t.State, taskHealth(t.Status), t.Reason
			}
		}
	}
	if st.State == "" {
		st.State = schemas.TaskStateRunning
	}
	return st, nil
}

// BulkCancel is how a DELETE of a parent went.
type BulkCancel string

const (
	BulkCancelled      BulkCancel = "ok"       // pending nodes cancelled; admitted ones end on their own
	BulkCancelAlready  BulkCancel = "already"  // a cancellation was under way
	BulkCancelFinished BulkCancel = "finished" // the parent had ended: nothing to cancel
)

// Cancel is a DELETE of the parent: nodes whose batch has not come end
// Cancelled at once, and the driver cancels the admitted node tasks that
// have not begun (its own: not a task some other request created and
// this one joined). Running node actions go on to their end.
func (b *Bulk) Cancel(ctx context.Context, id string) (BulkCancel, error) {
	if !IsBulkID(id) {
		return "", ErrBulkNotFound
	}
	res, err := cancelBulkScript.Run(ctx, b.rdb, bulkKeysOf(id).forScripts(), cancelledBeforeStart(id).encode(), id).Text()
	if err != nil {
		return "", fmt.Errorf("%w: cancel %s: %w", ErrUnavailable, id, err)
	}
	if res == "missing" {
		return "", ErrBulkNotFound
	}
	return BulkCancel(res), nil
}

// bulkRun is one replica driving one parent under its lease.
type bulkRun struct {
	b     *Bulk
	id    string
	keys  bulkKeys
	lease string
	log   *slog.Logger

	rec   BulkRecord
	nodes []string
	subs  map[string]sub // the parts as this driver last wrote or read them

	mu    sync.Mutex
	dirty map[string]bool // admitted nodes whose slots changed since last read
	wake  chan struct{}
}

func (r *bulkRun) wakeUp() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *bulkRun) nodeChanged(node string) {
	r.mu.Lock()
	_, following := r.dirty[node]
	if following {
		r.dirty[node] = true
	}
	r.mu.Unlock()
	if following {
		r.wakeUp()
	}
}

// follow makes the driver listen for node's changes.
func (r *bulkRun) follow(node string) {
	r.mu.Lock()
	if _, ok := r.dirty[node]; !ok {
		r.dirty[node] = false
	}
	r.mu.Unlock()
}

// run drives the parent to its end (or until ctx ends or Redis fails: then
// another scan resumes it).
func (r *bulkRun) run(ctx context.Context) error {
	rdb, svc := r.b.rdb, r.b.svc
	m, err := rdb.HGetAll(ctx, r.keys.Meta).Result()
	if err != nil {
		return err
	}
	if len(m) == 0 {
		// created into the index but never written (Create failed)
		return rdb.SRem(ctx, bulkActive, r.id).Err()
	}
	r.rec = parseBulk(r.id, m)
	if r.rec.Terminal() {
		return rdb.SRem(ctx, bulkActive, r.id).Err()
	}
	if r.nodes, err = rdb.LRange(ctx, r.keys.Nodes, 0, -1).Result(); err != nil {
		return err
	}
	if err := r.reloadSubs(ctx); err != nil {
		return err
	}
	before, err := svc.store.run.Run(ctx, bulkStepScript, r.keys.forScripts(), r.lease, "begin", svc.opts.Clock().UnixMilli()).Text()
	if err != nil {
		return err
	}
	if before == "fenced" {
		return ErrFenced
	}
	if before == string(schemas.TaskStateNew) {
		r.log.Info("bulk task started", "reset", r.rec.Reset, "nodes", len(r.nodes), "batch", r.rec.BatchSize, "delay", r.rec.Delay)
		r.emit(ctx, schemas.TaskEvent(schemas.MsgTaskStarted, r.id))
	}
	if err := r.resume(ctx); err != nil {
		return err
	}
	// A driver taking over has heard no notification yet: the admitted
	// nodes' tasks are read once.
	if err := r.check(ctx, r.admitted(r.nodes)); err != nil {
		return err
	}
	n := batchCount(len(r.nodes), r.rec.BatchSize)
	for i := 0; i < n; i++ {
		from, to := batchBounds(len(r.nodes), r.rec.BatchSize, i)
		batch := r.nodes[from:to]
		if !r.anyPending(batch) {
			continue
		}
		if i > 0 {
			pf, pt := batchBounds(len(r.nodes), r.rec.BatchSize, i-1)
			if err := r.waitEnded(ctx, r.nodes[pf:pt]); err != nil {
				return err
			}
			if err := r.pause(ctx, r.rec.Delay); err != nil {
				return err
			}
		}
		if cancelled, err := r.cancelled(ctx); err != nil || cancelled {
			if err != nil {
				return err
			}
			break
		}
		if err := r.admitBatch(ctx, i, batch); err != nil {
			return err
		}
	}
	if err := r.waitEnded(ctx, r.nodes); err != nil {
		return err
	}
	return r.finish(ctx)
}

// reloadSubs reads every node's part.
func (r *bulkRun) reloadSubs(ctx context.Context) error {
	raw, err := r.b.rdb.HGetAll(ctx, r.keys.Subs).Result()
	if err != nil {
		return err
	}
	r.subs = make(map[string]sub, len(r.nodes))
	for _, n := range r.nodes {
		if v, ok := raw[n]; ok {
			s := decodeSub(v)
			r.subs[n] = s
			if s.Phase == subAdmitted {
				r.follow(n)
			}
		}
	}
	return nil
}

// resume settles the nodes a previous driver claimed and did not record:
// its admission happened when the task it named exists (a coalesced one
// left no trace and is admitted again: it coalesces again while the task it
// joined runs).
func (r *bulkRun) resume(ctx context.Context) error {
	var claimed []string
	for _, n := range r.nodes {
		if r.subs[n].Phase == subAdmitting {
			claimed = append(claimed, n)
		}
	}
	if len(claimed) == 0 {
		return nil
	}
	recs, err := r.readTasks(ctx, claimed)
	if err != nil {
		return err
	}
	var done []string
	for _, n := range claimed {
		if _, ok := recs[n]; ok {
			done = append(done, n, sub{Phase: subAdmitted, Task: r.subs[n].Task, Outcome: Started}.encode())
		}
	}
	return r.settle(ctx, done)
}

// admitted are the nodes of nodes whose part follows a node task.
func (r *bulkRun) admitted(nodes []string) []string {
	var out []string
	for _, n := range nodes {
		if r.subs[n].Phase == subAdmitted {
			out = append(out, n)
		}
	}
	return out
}

func (r *bulkRun) anyPending(nodes []string) bool {
	for _, n := range nodes {
		if p := r.subs[n].Phase; p == subPending || p == subAdmitting {
			return true
		}
	}
	return false
}

// cancelled reads whether the parent was cancelled; when it was, the
// parts are re-read (the DELETE ended the pending ones) and the node tasks
// this request created that have not begun are cancelled.
func (r *bulkRun) cancelled(ctx context.Context) (bool, error) {
	if r.rec.CancelRequested {
		return true, nil
	}
	c, err := r.b.rdb.HGet(ctx, r.keys.Meta, "cancel").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, err
	}
	if c != "1" {
		return false, nil
	}
	r.rec.CancelRequested = true
	r.log.Info("bulk task cancelled")
	if err := r.reloadSubs(ctx); err != nil {
		return true, err
	}
	var own []string
	for _, n := range r.nodes {
		if s := r.subs[n]; s.Phase == subAdmitted && (s.Outcome == Started || s.Outcome == Queued) {
			own = append(own, n)
		}
	}
	recs, err := r.readTasks(ctx, own)
	if err != nil {
		return true, err
	}
	for _, n := range own {
		if t, ok := recs[n]; ok && t.State == schemas.TaskStateNew {
			if _, err := r.b.svc.CancelTask(ctx, t.ID); err != nil && !errors.Is(err, ErrTaskNotFound) {
				r.log.Warn("could not cancel a node task of the cancelled bulk task", "node", n, "task", t.ID, "err", err)
			}
		}
	}
	return true, nil
}

// pause waits d, or less when the parent is cancelled meanwhile.
func (r *bulkRun) pause(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		t := time.NewTimer(left)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
			return nil
		case <-r.wake:
			t.Stop()
			if c, err := r.cancelled(ctx); err != nil || c {
				return err
			}
			r.drainDirty(ctx)
		}
	}
}

// admitBatch admits batch i: claims its pending nodes, sends their
// admissions (bulkAdmitters at once, paced by the power-on limit) and
// records how each went.
func (r *bulkRun) admitBatch(ctx context.Context, i int, batch []string) error {
	svc := r.b.svc
	r.log.Info("bulk batch begins", "batch", i+1, "nodes", len(batch))
	planned := map[string]string{}
	var claimed []string
	for c := 0; c < len(batch); c += bulkChunk {
		part := batch[c:min(c+bulkChunk, len(batch))]
		argv := []any{r.lease}
		for _, n := range part {
			if p := r.subs[n].Phase; p == subPending || p == subAdmitting {
				planned[n] = svc.newTaskID(n)
				argv = append(argv, n, planned[n])
			}
		}
		res, err := svc.store.run.Run(ctx, claimScript, r.keys.forScripts(), argv...).StringSlice()
		if err != nil {
			return err
		}
		if res[0] == "fenced" {
			return ErrFenced
		}
		claimed = append(claimed, res[1:]...)
	}
	// Listen before admitting: an action may end before its admission's
	// answer is back.
	for _, n := range claimed {
		r.follow(n)
	}
	if len(claimed) == 0 {
		return nil
	}
	if _, err := svc.store.run.Run(ctx, bulkStepScript, r.keys.forScripts(), r.lease, "set", "batches", i+1).Text(); err != nil {
		return err
	}
	pct := r.rec.Done * 100 / max(r.rec.Total, 1)
	r.emit(ctx, schemas.TaskEvent(schemas.MsgTaskProgressChanged, r.id, strconv.Itoa(pct)))
	// The parts are recorded as the admissions answer (every bulkSettle,
	// or bulkChunk of them): the parent's progress moves while a large
	// batch is still being admitted, and nodes that end meanwhile count.
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		errMu.Lock()
		firstErr = cmp(firstErr, err)
		errMu.Unlock()
	}
	jobs := make(chan int)
	results := make(chan [2]string)
	for w := 0; w < min(bulkAdmitters, len(claimed)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				n := claimed[j]
				s, err := r.admit(ctx, n, planned[n])
				if err != nil {
					fail(err)
					continue
				}
				results <- [2]string{n, s.encode()}
			}
		}()
	}
	go func() { wg.Wait(); close(results) }()
	var (
		pairs  []string
		broken bool // a record failed: admit no further, record nothing more
	)
	record := func() {
		if broken || len(pairs) == 0 {
			return
		}
		err := r.settle(ctx, pairs)
		if err == nil {
			err = r.drainDirty(ctx)
		}
		pairs = pairs[:0]
		if err != nil {
			fail(err)
			broken = true
		}
	}
	tick := time.NewTicker(bulkSettle)
	defer tick.Stop()
	powersOn := PowersOn(r.rec.Reset, schemas.PowerUnknown)
	next, paced, open, done := 0, -1, true, ctx.Done()
	closeJobs := func() {
		if open {
			close(jobs)
			open = false
		}
	}
	for res := results; res != nil; {
		if open && (next == len(claimed) || broken) {
			closeJobs()
		}
		if open && powersOn && svc.inrush != nil && next%max(1, int(time.Second/svc.inrush.Interval())) == 0 && paced != next {
			// Admit no further ahead of the limiter than about a second:
			// the nodes wait here, not in their running slots.
			paced = next
			if err := r.paceInrush(ctx); err != nil {
				fail(err)
				closeJobs()
			}
		}
		var send chan<- int
		if open {
			send = jobs
		}
		select {
		case send <- next:
			next++
		case p, ok := <-res:
			if !ok {
				res = nil
				break
			}
			pairs = append(pairs, p[0], p[1])
			if len(pairs) >= 2*bulkChunk {
				record()
			}
		case <-tick.C:
			record()
		case <-done:
			done = nil
			closeJobs()
		}
	}
	record()
	return firstErr
}

func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// paceInrush waits while the power-on schedule runs more than a second
// ahead.
func (r *bulkRun) paceInrush(ctx context.Context) error {
	for {
		backlog, err := r.b.svc.inrush.Backlog(ctx)
		if err != nil {
			return err
		}
		if backlog <= time.Second {
			return nil
		}
		if err := r.pause(ctx, backlog-time.Second); err != nil {
			return err
		}
		if r.rec.CancelRequested {
			return nil
		}
	}
}

// admit sends one node's admission, as a single Reset would be, with the
// task id planned at its claim. An error means Redis failed: the run
// stops and is resumed.
func (r *bulkRun) admit(ctx context.Context, node, task string) (sub, error) {
	svc := r.b.svc
	v, err := svc.View(node)
	if err != nil {
		return failed("node " + node + " is not managed by the gateway (removed?)"), nil
	}
	if !v.CapsKnown {
		why := v.LastError
		if why == "" {
			why = "not read yet"
		}
		return failed("the gateway has not been able to read the BMC of node " + node + " yet (" + why + ")"), nil
	}
	a, err := svc.resetAs(ctx, node, r.rec.Reset, r.b.reqOf(r), task)
	switch {
	case errors.Is(err, ErrNodeNotFound):
		return failed("node " + node + " is not managed by the gateway (removed?)"), nil
	case errors.Is(err, ErrUnsupportedReset):
		return failed("ResetType " + string(r.rec.Reset) + " is not offered by node " + node), nil
	case err != nil:
		return sub{}, err
	case a.Outcome == Refused:
		return failed(refusalReason(node, a)), nil
	}
	return sub{Phase: subAdmitted, Task: a.Task, Outcome: a.Outcome}, nil
}

func (b *Bulk) reqOf(r *bulkRun) string {
	return "bulk=" + r.id + " " + r.rec.reqText()
}

func (r BulkRecord) reqText() string {
	if r.Aggregate != "" {
		return "aggregate=" + r.Aggregate
	}
	return "targets"
}

// settle records node parts (node, encoded part pairs), bulkChunk at a
// time, and counts the ended ones.
func (r *bulkRun) settle(ctx context.Context, pairs []string) error {
	for c := 0; c < len(pairs); c += 2 * bulkChunk {
		part := pairs[c:min(c+2*bulkChunk, len(pairs))]
		argv := make([]any, 0, len(part)+1)
		argv = append(argv, r.lease)
		for _, p := range part {
			argv = append(argv, p)
		}
		done, err := r.b.svc.store.run.Run(ctx, settleScript, r.keys.forScripts(), argv...).Int()
		if err != nil {
			return err
		}
		if done < 0 {
			return ErrFenced
		}
		for i := 0; i+1 < len(part); i += 2 {
			if old := r.subs[part[i]]; old.Phase != subFinished {
				s := decodeSub(part[i+1])
				r.subs[part[i]] = s
				switch s.Phase {
				case subAdmitted:
					r.follow(part[i])
				case subFinished:
					r.unfollow(part[i])
				}
			}
		}
		r.rec.Done = done
	}
	return nil
}

func (r *bulkRun) unfollow(node string) {
	r.mu.Lock()
	delete(r.dirty, node)
	r.mu.Unlock()
}

// readTasks reads the node tasks of nodes' parts in one round trip;
// a task that cannot be found is missing from the answer.
func (r *bulkRun) readTasks(ctx context.Context, nodes []string) (map[string]TaskRecord, error) {
	out := map[string]TaskRecord{}
	if len(nodes) == 0 {
		return out, nil
	}
	cmds := make([]*redis.StringCmd, len(nodes))
	_, err := r.b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range nodes {
			cmds[i] = p.HGet(ctx, nodeKeys(n).Tasks, r.subs[n].Task)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	for i, n := range nodes {
		raw, err := cmds[i].Result()
		if err != nil {
			continue
		}
		if t, err := decodeTask(r.subs[n].Task, n, raw); err == nil {
			out[n] = t
		}
	}
	return out, nil
}

// check reads the tasks of admitted nodes and records those that ended.
func (r *bulkRun) check(ctx context.Context, nodes []string) error {
	recs, err := r.readTasks(ctx, nodes)
	if err != nil {
		return err
	}
	var pairs []string
	for _, n := range nodes {
		t, ok := recs[n]
		switch {
		case !ok:
			pairs = append(pairs, n, failed("the task "+r.subs[n].Task+" of node "+n+" is gone (the node was removed?)").encode())
		case t.Terminal():
			pairs = append(pairs, n, finishedAs(r.subs[n], t).encode())
		}
	}
	return r.settle(ctx, pairs)
}

// drainDirty checks the admitted nodes that changed since the last look.
// A node still being admitted keeps its mark until its admission is
// recorded (its task id is not known before).
func (r *bulkRun) drainDirty(ctx context.Context) error {
	r.mu.Lock()
	var nodes []string
	for n, d := range r.dirty {
		if d && r.subs[n].Phase == subAdmitted {
			nodes = append(nodes, n)
			r.dirty[n] = false
		}
	}
	r.mu.Unlock()
	return r.check(ctx, nodes)
}

// waitEnded waits until every part of nodes has ended, learning of the
// node tasks' ends from their notifications (and a full re-read every
// bulkResync).
func (r *bulkRun) waitEnded(ctx context.Context, nodes []string) error {
	resync := time.NewTicker(bulkResync)
	defer resync.Stop()
	for {
		var open []string
		for _, n := range nodes {
			if r.subs[n].Phase != subFinished {
				open = append(open, n)
			}
		}
		if len(open) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.wake:
			if _, err := r.cancelled(ctx); err != nil {
				return err
			}
			if err := r.drainDirty(ctx); err != nil {
				return err
			}
		case <-resync.C:
			if err := r.check(ctx, r.admitted(open)); err != nil {
				return err
			}
			if _, err := r.cancelled(ctx); err != nil {
				return err
			}
		}
	}
}

// finish ends the parent once every node's part has, and trims the
// retained parents.
func (r *bulkRun) finish(ctx context.Context) error {
	svc := r.b.svc
	m, err := r.b.rdb.HGetAll(ctx, r.keys.Meta).Result()
	if err != nil {
		return err
	}
	rec := parseBulk(r.id, m)
	state, status, reason := bulkFinal(rec)
	res, err := svc.store.run.Run(ctx, bulkStepScript, r.keys.forScripts(), r.lease, "set",
		"state", string(state), "status", status, "reason", reason, "end", svc.opts.Clock().UnixMilli()).Text()
	if err != nil {
		return err
	}
	if res == "fenced" {
		return ErrFenced
	}
	r.log.Info("bulk task finished", "state", state, "reason", reason)
	key, _ := state.EndMessage(status)
	msg := schemas.TaskEvent(key, r.id)
	msg.Message += " " + reason
	r.emit(ctx, msg)
	if err := r.b.rdb.SRem(ctx, bulkActive, r.id).Err(); err != nil {
		return err
	}
	return r.b.trim(ctx)
}

// trim removes the oldest finished parents beyond BulkKeep, and those
// older than tasks.keep_for.
func (b *Bulk) trim(ctx context.Context) error {
	old, err := b.rdb.ZRangeByScore(ctx, bulkIndex, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(b.svc.opts.Clock().Add(-b.svc.opts.KeepTaskAge).UnixMilli(), 10)}).Result()
	if err != nil {
		return err
	}
	n, err := b.rdb.ZCard(ctx, bulkIndex).Result()
	if err != nil {
		return err
	}
	if extra := int(n) - BulkKeep; extra > 0 {
		more, err := b.rdb.ZRange(ctx, bulkIndex, 0, int64(extra-1)).Result()
		if err != nil {
			return err
		}
		old = append(old, more...)
	}
	for _, id := range old {
		if live, err := b.rdb.SIsMember(ctx, bulkActive, id).Result(); err != nil || live {
			continue
		}
		k := bulkKeysOf(id)
		if _, err := b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, k.Meta, k.Nodes, k.Subs, k.Lease, k.Fence)
			return nil
		}); err != nil {
			return err
		}
		b.rdb.ZRem(ctx, bulkIndex, id)
	}
	return nil
}

func (r *bulkRun) emit(ctx context.Context, m schemas.Message) {
	r.b.svc.opts.Events.Emit(ctx, Event{Time: r.b.svc.opts.Clock(), Task: r.id, Origin: "/TaskService/Tasks/" + r.id, Message: m})
}
