package serializer

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/lease"
	"github.com/fishgate/fishgate/internal/metrics"
	"github.com/fishgate/fishgate/internal/redisx"
	"github.com/fishgate/fishgate/internal/requestid"
	"github.com/fishgate/fishgate/schemas"
)

// nodeKeySet names the Redis keys of one node. They share the hash tag
// {node}, so every script touches one Cluster slot
// (docs/architecture.md#redis-key-layout).
type nodeKeySet struct {
	Slots string // hash: the slots, desired and observed power, issued command, boot override, lease fence
	Tasks string // hash: task id -> task record (JSON)
	// TaskZ indexed the tasks by creation time until the ids said it
	// (taskCreated): the next admission deletes one left behind.
	TaskZ string
	Flips string // sorted set: conflicting changes (the flip-flop window)
	Log   string // list: the command log, newest first (common.lua's log)
	Lease string // string with a TTL: "<replica>|<fence>" of the lease holder
	// FormerFence is the counter key the lease's fence had before it
	// became the slots field "fence" (leaseKeys): read once, then deleted.
	FormerFence string
}

func nodeKeys(node string) nodeKeySet {
	p := "fg:node:{" + node + "}:"
	l := lease.At(p)
	return nodeKeySet{Slots: p + "slots", Tasks: p + "tasks", TaskZ: p + "taskz", Flips: p + "flips",
		Log: p + "log", Lease: l.Holder, FormerFence: l.Fence}
}

// leaseKeys are the keys of the node's lease (internal/lease): its holder
// runs the node's actions (worker.go). The fence counter is the field
// "fence" of the slots hash, not a key of its own: ~90 bytes less per
// node in Redis.
func (k nodeKeySet) leaseKeys() lease.Keys {
	return lease.Keys{Holder: k.Lease, Fence: k.Slots, FenceField: "fence", FormerFence: k.FormerFence}
}

// scriptKey is one of the KEYS of the scripts and the Lua local that
// common.lua binds it to.
type scriptKey struct{ lua, key string }

// named is the KEYS every script (common.lua + its body) is run with, in
// order: the one place that order is defined. keysLua binds them to Lua
// locals, so scripts name keys, never KEYS[i]:
//
//	KEYS[1] SLOTS  KEYS[2] TASKS  KEYS[3] TASKZ  KEYS[4] FLIPS
//	KEYS[5] LOG    KEYS[6] LEASE
func (k nodeKeySet) named() []scriptKey {
	return []scriptKey{{"SLOTS", k.Slots}, {"TASKS", k.Tasks}, {"TASKZ", k.TaskZ}, {"FLIPS", k.Flips},
		{"LOG", k.Log}, {"LEASE", k.Lease}}
}

// forScripts is the KEYS slice of a script run (named's order).
func (k nodeKeySet) forScripts() []string {
	var out []string
	for _, x := range k.named() {
		out = append(out, x.key)
	}
	return out
}

// all is every key of the node (the scripts are given them all).
func (k nodeKeySet) all() []string { return k.forScripts() }

// keysLua renders the binding of KEYS to named locals that opens every
// script ("local SLOTS, TASKS, ... = KEYS[1], KEYS[2], ...").
func keysLua() string {
	var names, refs []string
	for i, x := range nodeKeys("").named() {
		names = append(names, x.lua)
		refs = append(refs, fmt.Sprintf("KEYS[%d]", i+1))
	}
	return "local " + strings.Join(names, ", ") + " = " + strings.Join(refs, ", ")
}

var (
	//go:embed lua/common.lua
	luaCommon string
	//go:embed lua/admit.lua
	luaAdmit string
	//go:embed lua/cancel.lua
	luaCancel string
	//go:embed lua/worker.lua
	luaWorker string
	//go:embed lua/boot.lua
	luaBoot string
	//go:embed lua/forget.lua
	luaForget string
)

// targetsLua renders schemas.ResetType.Target as a Lua table, so that Go
// and the scripts share one table.
func targetsLua() string {
	var b strings.Builder
	b.WriteString("{")
	for _, r := range schemas.AllResetTypes {
		if t, ok := r.Target(); ok {
			fmt.Fprintf(&b, " %s = '%s',", r, t)
		}
	}
	b.WriteString(" }")
	return b.String()
}

// statesLua renders schemas.TaskStates as the Lua tables STATE (name ->
// state) and TERMINAL (state -> true when Terminal), so that Go and the
// scripts share one set of task states.
func statesLua() string {
	var st, term strings.Builder
	for _, s := range schemas.TaskStates {
		fmt.Fprintf(&st, " %s = '%s',", s, s)
		if s.Terminal() {
			fmt.Fprintf(&term, " %s = true,", s)
		}
	}
	return "local STATE = {" + st.String() + " }\nlocal TERMINAL = {" + term.String() + " }"
}

// logFields names the values of each event of a node's command log, in
// the order log (common.lua) stores them: an entry is [id, event,
// value...]. Only new fields may be added, at the end of a list: entries
// already stored are read with this table.
var logFields = map[string][]string{
	"refused":        {"type", "why", "req"},
	"coalesced":      {"type", "task", "req"},
	"started":        {"type", "task", "req"},
	"queued":         {"type", "task", "req", "cancel_now"},
	"boot-requested": {"seq", "target", "enabled", "mode"},
	"cancel":         {"task", "result"},
	"retired":        {"running", "dropped"},
	"boot":           {"seq", "result", "fence"},
	"begin":          {"task", "fence"},
	"command":        {"task", "command", "note", "fence"},
	"finish":         {"task", "state", "reason", "fence"},
}

// logFieldsLua renders logFields as a Lua table (common.lua's LOGFIELDS).
func logFieldsLua() string {
	events := make([]string, 0, len(logFields))
	for e := range logFields {
		events = append(events, e)
	}
	sort.Strings(events)
	var b strings.Builder
	b.WriteString("{")
	for _, e := range events {
		fmt.Fprintf(&b, " [%q] = { '%s' },", e, strings.Join(logFields[e], "', '"))
	}
	b.WriteString(" }")
	return b.String()
}

func script(body string) *redis.Script {
	common := strings.NewReplacer("{{KEYS}}", keysLua(), "{{TARGETS}}", targetsLua(), "{{STATES}}", statesLua(),
		"{{LOGMAX}}", strconv.Itoa(LogMax), "{{LOGFIELDS}}", logFieldsLua()).Replace(luaCommon)
	return redis.NewScript(lease.Lua + common + "\n" + body)
}

var (
	admitScript  = script(luaAdmit)
	cancelScript = script(luaCancel)
	workerScript = script(luaWorker)
	bootScript   = script(luaBoot)
	forgetScript = script(luaForget)
)

// Store is the serializer's Redis state: slots, tasks, leases and logs of
// every node. It holds no state of its own.
type Store struct {
	rdb redis.UniversalClient
	// run writes the state changes (admissions, cancellations, worker
	// steps, boot requests, leases); with redisx.Acked they wait for
	// replicas (docs/decisions/0017-acknowledged-writes.md).
	run redisx.Runner
	// Retention of finished tasks per node.
	KeepTasks   int
	KeepTaskAge time.Duration
	// metrics counts fencing rejections (Service sets it; nil: none).
	metrics *metrics.Metrics
}

// NewStore wraps a Redis client. Its task retention is the default
// configuration's (app/config's tests check they agree); a Service sets
// the configured one.
func NewStore(rdb redis.UniversalClient) *Store {
	return &Store{rdb: rdb, run: redisx.Plain(rdb), KeepTasks: 100, KeepTaskAge: 24 * time.Hour}
}

// AckWrites makes the store write its state changes through run (for
// redisx.Acked: only once replicas have them).
func (st *Store) AckWrites(run redisx.Runner) { st.run = run }

// Redis is the underlying client.
func (st *Store) Redis() redis.UniversalClient { return st.rdb }

// Admission is the result of an admission in Redis.
type Admission struct {
	Outcome    Outcome
	Task       string
	Refusal    Refusal
	RetryAfter time.Duration
	CancelNow  bool
	Dropped    []string
	// Forgotten are the node's tasks that retention removed during the
	// admission.
	Forgotten []string
}

func precedenceArg(p Precedence) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, p[schemas.ResetType(k)]))
	}
	return strings.Join(parts, ",")
}

// metricOutcome is the admission's outcome as internal/metrics counts it:
// a request that took the next slot in place of a waiting action is
// "replaced" (the action it replaced ended Cancelled), not "queued".
func (a Admission) metricOutcome() string {
	if a.Outcome == Queued && len(a.Dropped) > 0 {
		return "replaced"
	}
	return string(a.Outcome)
}

// Admit runs the admission script: one round trip (two when writes are
// acknowledged). When replicas did not acknowledge it in time, the error
// wraps redisx.ErrNotReplicated and the Admission is what the master
// decided. A task it creates keeps ctx's request id (requestid.From).
func (st *Store) Admit(ctx context.Context, node string, rules Rules, r schemas.ResetType, task string, now time.Time, req string) (Admission, error) {
	cmd := st.run.Run(ctx, admitScript, nodeKeys(node).forScripts(), node, task, string(r), now.UnixMilli(),
		string(rules.Policy), rules.QueueMax, rules.FlipLimit, rules.FlipWindow.Milliseconds(), precedenceArg(rules.Precedence),
		st.KeepTasks, st.KeepTaskAge.Milliseconds(), req, requestid.From(ctx))
	err := cmd.Err()
	if err != nil && !errors.Is(err, redisx.ErrNotReplicated) {
		return Admission{}, fmt.Errorf("node %s: admission: %w", node, err)
	}
	res, _ := cmd.Val().([]any)
	if len(res) < 5 {
		return Admission{}, fmt.Errorf("node %s: admission: short reply %v", node, cmd.Val())
	}
	a := Admission{
		Outcome:    Outcome(str(res[0])),
		Task:       str(res[1]),
		Refusal:    Refusal(str(res[2])),
		RetryAfter: time.Duration(num(res[3])) * time.Millisecond,
		CancelNow:  num(res[4]) == 1,
	}
	tail := &a.Dropped
	for _, x := range res[5:] {
		if str(x) == "|" {
			tail = &a.Forgotten
			continue
		}
		*tail = append(*tail, str(x))
	}
	if err != nil {
		return a, fmt.Errorf("node %s: admission: %w", node, err)
	}
	return a, nil
}

// Cancel runs the DELETE script.
func (st *Store) Cancel(ctx context.Context, node, task string, now time.Time) (CancelResult, error) {
	return st.cancelWith(ctx, st.run, node, task, now)
}

// cancel runs the DELETE script with no wait for replicas: the withdrawal
// of an admission they did not acknowledge (Service.withdraw).
func (st *Store) cancel(ctx context.Context, node, task string, now time.Time) (CancelResult, error) {
	return st.cancelWith(ctx, redisx.Plain(st.rdb), node, task, now)
}

func (st *Store) cancelWith(ctx context.Context, run redisx.Runner, node, task string, now time.Time) (CancelResult, error) {
	res, err := run.Run(ctx, cancelScript, nodeKeys(node).forScripts(), node, task, now.UnixMilli()).StringSlice()
	if err != nil {
		return "", fmt.Errorf("node %s: cancel %s: %w", node, task, err)
	}
	return CancelResult(res[0]), nil
}

// NodeState is a node's slots as stored, with its desired and last
// observed power state.
type NodeState struct {
	Slots     Slots
	Desired   schemas.PowerState
	Power     schemas.PowerState
	PowerAt   time.Time
	Issued    string // task whose BMC command was sent and not yet confirmed
	IssuedAt  time.Time
	IssuedCmd schemas.ResetType // that command (a phase of a composite action)
	// BootPending: a boot override waits for the lease holder; BootResult
	// is how the last one applied ended ("ok" or the BMC's error), up to
	// sequence BootResultSeq.
	BootPending   bool
	BootResultSeq int64
	BootResult    string
	// Boot is the override last applied by a lease holder (empty fields:
	// not known).
	Boot schemas.BootOverride
	// The last action that failed (Exception), until one completes.
	FailedTask   string
	FailedReason string
	FailedAt     time.Time
}

func parseNodeState(m map[string]string) NodeState {
	ns := NodeState{
		Slots:        Slots{Now: Slot{Task: m["now"], Type: schemas.ResetType(m["now_type"])}, Cancelling: m["cancelling"] == "1"},
		Desired:      schemas.PowerState(m["desired"]),
		Power:        schemas.PowerState(m["power"]),
		Issued:       m["issued"],
		IssuedCmd:    schemas.ResetType(m["issued_cmd"]),
		FailedTask:   m["failed_task"],
		FailedReason: m["failed_reason"],
	}
	ns.BootPending = m["boot_pending"] != ""
	ns.Boot = schemas.BootOverride{Target: m["boot_target"], Enabled: m["boot_enabled"], Mode: m["boot_mode"]}
	if seq, res, ok := strings.Cut(m["boot_result"], " "); ok {
		ns.BootResultSeq, _ = strconv.ParseInt(seq, 10, 64)
		ns.BootResult = res
	}
	if ms, err := strconv.ParseInt(m["failed_at"], 10, 64); err == nil {
		ns.FailedAt = time.UnixMilli(ms)
	}
	w := strings.Fields(m["waiting"])
	for i := 0; i+1 < len(w); i += 2 {
		ns.Slots.Waiting = append(ns.Slots.Waiting, Slot{Task: w[i], Type: schemas.ResetType(w[i+1])})
	}
	if ms, err := strconv.ParseInt(m["power_at"], 10, 64); err == nil {
		ns.PowerAt = time.UnixMilli(ms)
	}
	if ms, err := strconv.ParseInt(m["issued_at"], 10, 64); err == nil {
		ns.IssuedAt = time.UnixMilli(ms)
	}
	return ns
}

// State reads a node's slots.
func (st *Store) State(ctx context.Context, node string) (NodeState, error) {
	m, err := st.rdb.HGetAll(ctx, nodeKeys(node).Slots).Result()
	if err != nil {
		return NodeState{}, fmt.Errorf("node %s: read state: %w", node, err)
	}
	return parseNodeState(m), nil
}

// TaskRecord is a task as stored.
type TaskRecord struct {
	ID      string            `json:"id"`
	Node    string            `json:"node"`
	Type    schemas.ResetType `json:"type"`
	State   schemas.TaskState `json:"state"`
	Status  string            `json:"status"`
	Reason  string            `json:"reason,omitempty"`
	Note    string            `json:"note,omitempty"`
	Created int64             `json:"created"`
	Start   int64             `json:"start,omitempty"`
	End     int64             `json:"end,omitempty"`
	Issued  int64             `json:"issued,omitempty"`
	Percent int               `json:"pct"`
	// Steps are the commands sent and the phases done, oldest first (at
	// most 20), each "<percent complete> <what>" (TaskStep parses one).
	Steps  []string `json:"steps,omitempty"`
	Joined int      `json:"joined"`
	// RequestID is the id of the request that created the task
	// (internal/requestid), carried into the BMC calls of its action.
	RequestID string `json:"rid,omitempty"`
}

// Terminal reports whether the task has finished.
func (t TaskRecord) Terminal() bool {
	return t.State.Terminal()
}

// ErrTaskNotFound is returned for an unknown (or expired) task.
var ErrTaskNotFound = errors.New("task not found")

// TaskNode returns the node of a task id ("<node>.<suffix>").
func TaskNode(id string) (string, bool) {
	i := strings.LastIndexByte(id, '.')
	if i <= 0 || i == len(id)-1 {
		return "", false
	}
	return id[:i], true
}

// Task reads one task.
func (st *Store) Task(ctx context.Context, id string) (TaskRecord, error) {
	node, ok := TaskNode(id)
	if !ok {
		return TaskRecord{}, ErrTaskNotFound
	}
	raw, err := st.rdb.HGet(ctx, nodeKeys(node).Tasks, id).Result()
	if errors.Is(err, redis.Nil) {
		return TaskRecord{}, ErrTaskNotFound
	}
	if err != nil {
		return TaskRecord{}, fmt.Errorf("task %s: %w", id, err)
	}
	t, err := decodeTask(id, node, raw)
	if err != nil {
		return TaskRecord{}, fmt.Errorf("task %s: %w", id, err)
	}
	return t, nil
}

// decodeTask reads a task record. A finished one is stored compacted
// (common.lua's put_task): it gets back its id and node, and, when its pct
// is left out (a finished task stored before that has it, always 100),
// what was left out for having its usual value, as the scripts' get_task.
func decodeTask(id, node, raw string) (TaskRecord, error) {
	const absent = "\x00"
	t := TaskRecord{Percent: -1, Status: absent, Note: absent, Start: -1}
	if err := json.Unmarshal([]byte(raw), &t); err != nil {
		return TaskRecord{}, err
	}
	t.ID, t.Node = id, node
	compact := t.Terminal() && t.Percent == -1
	if t.Percent == -1 {
		t.Percent = 0
		if compact {
			t.Percent = 100
		}
	}
	if t.Status == absent {
		t.Status = "OK"
	}
	switch {
	case t.Start == -1 && compact:
		t.Start = t.Created
	case t.Start == -1:
		t.Start = 0
	}
	if t.Note == absent {
		t.Note = ""
		if compact && len(t.Steps) > 0 {
			_, t.Note, _ = strings.Cut(t.Steps[len(t.Steps)-1], " ")
		}
	}
	return t, nil
}

// TaskIDs lists the task ids of nodes, newest first, at most limit in all.
func (st *Store) TaskIDs(ctx context.Context, nodes []string, limit int) ([]string, error) {
	cmds := make([]*redis.StringSliceCmd, len(nodes))
	_, err := st.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range nodes {
			cmds[i] = p.HKeys(ctx, nodeKeys(n).Tasks)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	var all []redis.Z
	var unnamed []int // tasks whose id does not say when they were made
	for i, c := range cmds {
		for _, id := range c.Val() {
			ms, ok := taskCreated(id)
			if !ok {
				unnamed = append(unnamed, len(all))
			}
			all = append(all, redis.Z{Score: float64(ms), Member: nodes[i] + "\x00" + id})
		}
	}
	if len(unnamed) > 0 {
		if err := st.createdFromRecords(ctx, all, unnamed); err != nil {
			return nil, err
		}
	}
	for i := range all {
		_, all[i].Member, _ = strings.Cut(all[i].Member.(string), "\x00")
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].Score != all[j].Score {
			return all[i].Score > all[j].Score
		}
		return str(all[i].Member) > str(all[j].Member)
	})
	var ids []string
	for i := 0; i < len(all) && i < limit; i++ {
		ids = append(ids, str(all[i].Member))
	}
	return ids, nil
}

// taskCreated reads when a task was created (ms) from an id of
// Service.newTaskID's form, "<node>.<8 base-36 digits of the ms><6 hex
// digits>" (common.lua's task_created reads it alike).
func taskCreated(id string) (int64, bool) {
	i := strings.LastIndexByte(id, '.')
	rest := id[i+1:]
	if i < 0 || len(rest) != 14 || strings.Trim(rest[:8], "0123456789abcdefghijklmnopqrstuvwxyz") != "" ||
		strings.Trim(rest[8:], "0123456789abcdef") != "" {
		return 0, false
	}
	ms, err := strconv.ParseInt(rest[:8], 36, 64)
	return ms, err == nil
}

// createdFromRecords sets the score of the tasks of all at index in to
// their records' creation time; each member is "<node>\x00<task>".
func (st *Store) createdFromRecords(ctx context.Context, all []redis.Z, in []int) error {
	cmds := make([]*redis.StringCmd, len(in))
	_, err := st.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, j := range in {
			node, id, _ := strings.Cut(all[j].Member.(string), "\x00")
			cmds[i] = p.HGet(ctx, nodeKeys(node).Tasks, id)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("list tasks: %w", err)
	}
	for i, j := range in {
		var t struct {
			Created int64 `json:"created"`
		}
		if json.Unmarshal([]byte(cmds[i].Val()), &t) == nil {
			all[j].Score = float64(t.Created)
		}
	}
	return nil
}

// taskIndexKey is the fleet-wide task index: every node's task ids in a
// sorted set by creation time (ms), so that a page of the Tasks collection
// is one ZREVRANGE however many nodes there are. It lies in a slot of its
// own, so the node scripts cannot write it: Service.Reset adds a task once
// its admission returned, and takes out the tasks the admission's
// retention removed (Admission.Forgotten). A task admitted by a replica
// that died before it added it is still served by its monitor and its
// node's listing, just not in the fleet-wide pages.
const taskIndexKey = "fg:{tasks}:index"

// indexTasks adds tasks to the fleet-wide index and removes others, in one
// round trip.
func (st *Store) indexTasks(ctx context.Context, add []redis.Z, remove []string) error {
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	_, err := st.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if len(add) > 0 {
			p.ZAdd(ctx, taskIndexKey, add...)
		}
		if len(remove) > 0 {
			p.ZRem(ctx, taskIndexKey, toAny(remove)...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("task index: %w", err)
	}
	return nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// TaskPage lists at most top task ids of the whole fleet, newest first,
// after the newest skip, and how many there are in all.
func (st *Store) TaskPage(ctx context.Context, skip, top int) ([]string, int, error) {
	var (
		ids   *redis.StringSliceCmd
		count *redis.IntCmd
	)
	_, err := st.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		count = p.ZCard(ctx, taskIndexKey)
		if top > 0 {
			ids = p.ZRevRange(ctx, taskIndexKey, int64(skip), int64(skip+top-1))
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list tasks: %w", err)
	}
	if ids == nil {
		return nil, int(count.Val()), nil
	}
	return ids.Val(), int(count.Val()), nil
}

// trimTasks applies the fleet-wide retention: while the index holds more
// than keep tasks, the oldest (at most max per call) are removed from their
// node if finished for at least minAge (forget.lua), and from the index.
// It returns how many went.
func (st *Store) trimTasks(ctx context.Context, keep, max int, now time.Time, minAge time.Duration) (int, error) {
	n, err := st.rdb.ZCard(ctx, taskIndexKey).Result()
	if err != nil || int(n) <= keep {
		return 0, err
	}
	oldest, err := st.rdb.ZRange(ctx, taskIndexKey, 0, int64(min(int(n)-keep, max)-1)).Result()
	if err != nil {
		return 0, err
	}
	// One script per task, in turn: each runs in its node's slot, and
	// this runs only while the fleet is over its retention.
	var gone []string
	for _, id := range oldest {
		node, ok := TaskNode(id)
		if !ok {
			gone = append(gone, id)
			continue
		}
		res, err := forgetScript.Run(ctx, st.rdb, nodeKeys(node).forScripts(), id, now.UnixMilli(), minAge.Milliseconds()).Int()
		if err != nil {
			return len(gone), errors.Join(fmt.Errorf("trim tasks: %s: %w", id, err), st.indexTasks(ctx, nil, gone))
		}
		if res == 1 {
			gone = append(gone, id)
		}
	}
	return len(gone), st.indexTasks(ctx, nil, gone)
}

// acquire takes the node's lease for replica (lease.ErrHeld when another
// holds it).
func (st *Store) acquire(ctx context.Context, node, replica string, ttl time.Duration) (*lease.Lease, error) {
	return lease.Acquire(ctx, st.run, nodeKeys(node).leaseKeys(), replica, ttl)
}

// ErrFenced means the lease this worker held is gone: it must not send
// commands or write results.
var ErrFenced = errors.New("lease lost (fenced)")

// errNotNow means the task is no longer the node's running action.
var errNotNow = errors.New("task is no longer running on this node")

// workerOp runs one worker.lua op.
func (st *Store) workerOp(ctx context.Context, node, lease, task string, now time.Time, op string, args ...any) ([]string, error) {
	argv := append([]any{op, lease, node, task, now.UnixMilli()}, args...)
	res, err := st.run.Run(ctx, workerScript, nodeKeys(node).forScripts(), argv...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("node %s: %s: %w", node, op, err)
	}
	switch res[0] {
	case "fenced":
		st.metrics.FencingRejection()
		return nil, fmt.Errorf("node %s: %s: %w", node, op, ErrFenced)
	case "not-now":
		return nil, fmt.Errorf("node %s: %s %s: %w", node, op, task, errNotNow)
	}
	return res, nil
}

// LogMax is how many entries a node's command log keeps (the newest):
// about ten actions' worth (an action writes four: admitted, begun,
// command, finished). At 200 a 10,000-node fleet's logs would grow to two
// million entries: some 300 MB on redis-server at the ~150 bytes an entry
// measured before the positional form (about 90 now), and more than the
// gateway's memory limit inside the embedded Redis.
const LogMax = 40

// LogKey is the Redis list of node's command log (admissions, commands,
// finishes), newest first; LogEntries reads it.
func LogKey(node string) string { return nodeKeys(node).Log }

// LogEntries reads a node's command log, newest first: each entry's id and
// fields. An entry is [id, event, value...] named by logFields, or (the
// older form, and an event logFields does not know) [id, "event", event,
// field, value, ...].
func (st *Store) LogEntries(ctx context.Context, node string) ([]redis.XMessage, error) {
	raw, err := st.rdb.LRange(ctx, nodeKeys(node).Log, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("node %s: command log: %w", node, err)
	}
	out := make([]redis.XMessage, 0, len(raw))
	for _, r := range raw {
		var f []any
		if err := json.Unmarshal([]byte(r), &f); err != nil || len(f) < 2 {
			return nil, fmt.Errorf("node %s: command log entry %q: not a JSON array", node, r)
		}
		out = append(out, redis.XMessage{ID: str(f[0]), Values: logValues(node, f[1:])})
	}
	return out, nil
}

// logValues names the values of a command log entry (without its id).
func logValues(node string, f []any) map[string]any {
	ev := str(f[0])
	names, known := logFields[ev]
	if ev == "event" || !known {
		m := make(map[string]any, len(f)/2)
		for i := 0; i+1 < len(f); i += 2 {
			m[str(f[i])] = str(f[i+1])
		}
		return m
	}
	m := make(map[string]any, len(f))
	m["event"] = ev
	for i, v := range f[1:] {
		if i >= len(names) {
			break // written by a newer version: fields this one does not know
		}
		s := str(v)
		if (names[i] == "task" || names[i] == "running") && strings.HasPrefix(s, ".") {
			s = node + s
		}
		if s != "" {
			m[names[i]] = s
		}
	}
	return m
}

// Log reads the last n entries of a node's command log, oldest first,
// each with its id under "id".
func (st *Store) Log(ctx context.Context, node string, n int64) ([]map[string]any, error) {
	xs, err := st.LogEntries(ctx, node)
	if err != nil {
		return nil, err
	}
	xs = xs[:min(int64(len(xs)), n)]
	out := make([]map[string]any, 0, len(xs))
	for i := len(xs) - 1; i >= 0; i-- {
		m := xs[i].Values
		m["id"] = xs[i].ID
		out = append(out, m)
	}
	return out, nil
}

func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func num(v any) int64 {
	switch v := v.(type) {
	case int64:
		return v
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

// observeScript records an observed power state and returns the one it
// replaces, atomically: of several replicas sweeping the same node, only
// the one that changes it learns of the change (and reports drift once).
// A change is published, so every replica's view follows it.
var observeScript = script(`
local old = redis.call('HGET', SLOTS, 'power') or ''
redis.call('HSET', SLOTS, 'power', ARGV[1], 'power_at', ARGV[2])
if old ~= ARGV[1] then redis.call('PUBLISH', 'fg:node', ARGV[3]) end
return old
`)

// observe records power p of node as seen at now and returns the previous record.
func (st *Store) observe(ctx context.Context, node string, p schemas.PowerState, now time.Time) (schemas.PowerState, error) {
	old, err := observeScript.Run(ctx, st.rdb, nodeKeys(node).forScripts(), string(p), now.UnixMilli(), node).Text()
	return schemas.PowerState(old), err
}

// sweepKey is the power sync's claim on one part of the nodes for the
// current interval (Service.syncLoop). It is used alone, so it has no hash
// tag: the parts spread over a Cluster's masters.
func sweepKey(part int) string { return "fg:sweep:" + strconv.Itoa(part) }

// claimSweep reports whether this replica is the one to read the nodes of
// sweep part part in the sync period ttl (SET NX PX).
func (st *Store) claimSweep(ctx context.Context, part int, ttl time.Duration) (bool, error) {
	return st.rdb.SetNX(ctx, sweepKey(part), "1", ttl).Result()
}

// RequestBoot admits a boot override for the node's lease holder to apply
// (boot.lua) and returns its sequence number.
func (st *Store) RequestBoot(ctx context.Context, node string, b schemas.BootOverride, now time.Time) (int64, error) {
	seq, err := st.run.Run(ctx, bootScript, nodeKeys(node).forScripts(), node, b.Target, b.Enabled, b.Mode, now.UnixMilli()).Int64()
	if err != nil {
		return 0, fmt.Errorf("node %s: boot override: %w", node, err)
	}
	return seq, nil
}

// pendingBoot is a boot override waiting for the lease holder.
type pendingBoot struct {
	Target  string `json:"target"`
	Enabled string `json:"enabled"`
	Mode    string `json:"mode"`
	Seq     int64  `json:"seq"`
}

// PendingBoot reads the boot override waiting to be applied (ok=false: none).
func (st *Store) pendingBoot(ctx context.Context, node string) (pendingBoot, bool, error) {
	raw, err := st.rdb.HGet(ctx, nodeKeys(node).Slots, "boot_pending").Result()
	if errors.Is(err, redis.Nil) {
		return pendingBoot{}, false, nil
	}
	if err != nil {
		return pendingBoot{}, false, fmt.Errorf("node %s: read boot override: %w", node, err)
	}
	var b pendingBoot
	if err := json.Unmarshal([]byte(raw), &b); err != nil {
		return pendingBoot{}, false, fmt.Errorf("node %s: boot override: %w", node, err)
	}
	return b, true, nil
}

// TaskStep splits a TaskRecord step into the percent complete when it
// happened and what happened.
func TaskStep(step string) (pct int, what string) {
	p, what, ok := strings.Cut(step, " ")
	n, err := strconv.Atoi(p)
	if !ok || err != nil {
		return 0, step
	}
	return n, what
}
