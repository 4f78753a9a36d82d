package serializer

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
)

// Transcripts of the action state machine (action.go), in
// testdata/action. The machine is driven the way worker.go drives it; the
// node's slots and task live in a workerStore: a Go model of worker.lua
// (pure), or the Lua scripts on miniredis and on a real redis-server. All
// three print the same text.
//
//	config [retries=N] [verify=D] [soft=D] [grace=D] [evidence=D] [fallback=fail|force] [interval=D] [backoff=D]
//	begin <ResetType> native=<T,T,...>|unknown [interrupted=<ResetType> ago=<D>] [cancelled]
//	power On|Off|error [+D]      the answer to a read (after D)
//	sent ok|refused|noanswer|confirmed [+D]   the BMC's answer to a send
//	woke                          the sleep ended (the clock moves by it; by
//	                              the ceiling of a jittered "sleep lo..hi")
//	delete                        a client's DELETE of the running task
//	submit <ResetType>            a new request for the node (it may supersede)
//	task                          the running task and node as stored
//
// After each command the driver performs the effects that need only the
// store (issue, unissue, check, emit, finish) and prints every effect, up
// to one that needs the BMC or the clock (read, send, sleep).

// workerStore is where a transcript keeps the node.
type workerStore interface {
	init(t *testing.T, node string)
	admit(r schemas.ResetType, task string, now time.Time) Admission
	cancel(task string, now time.Time) CancelResult
	op(task string, now time.Time, op string, args ...any) []string
	state() NodeState
	task(id string) TaskRecord
}

// modelStore is the Go model of worker.lua, admit.lua and cancel.lua over
// policy.go's decisions.
type modelStore struct {
	rules   Rules
	slots   Slots
	desired schemas.PowerState
	power   schemas.PowerState
	issued  string
	issCmd  schemas.ResetType
	issAt   time.Time
	tasks   map[string]*TaskRecord
}

func (m *modelStore) init(_ *testing.T, _ string) {
	*m = modelStore{rules: DefaultRules(), tasks: map[string]*TaskRecord{}}
	m.rules.FlipLimit = 0
}

func (m *modelStore) save(s Slots) {
	m.slots = s
	if t, ok := Desired(s); ok {
		m.desired = t
	}
}

func (m *modelStore) admit(r schemas.ResetType, task string, now time.Time) Admission {
	d := Admit(m.slots, m.rules, r, task, 0)
	why := fmt.Sprintf("superseded by %s (%s)", r, task)
	for _, id := range d.Dropped {
		t := m.tasks[id]
		t.State, t.Status, t.Reason, t.End, t.Percent = schemas.TaskStateCancelled, "OK", why, now.UnixMilli(), 100
	}
	if d.Outcome == Started || d.Outcome == Queued {
		m.tasks[task] = &TaskRecord{ID: task, Type: r, State: schemas.TaskStateNew, Status: "OK", Created: now.UnixMilli()}
	}
	if d.CancelNow {
		t := m.tasks[m.slots.Now.Task]
		t.State, t.Reason = schemas.TaskStateCancelling, why
	}
	if d.Outcome != Coalesced || len(d.Dropped) > 0 {
		m.save(d.Slots)
	}
	return Admission{Outcome: d.Outcome, Task: d.Task, CancelNow: d.CancelNow, Dropped: d.Dropped}
}

func (m *modelStore) cancel(task string, now time.Time) CancelResult {
	s, res := Cancel(m.slots, task)
	switch res {
	case CancelCancelling:
		t := m.tasks[task]
		t.State, t.Reason = schemas.TaskStateCancelling, "cancelled by a client (DELETE)"
	case CancelDropped:
		t := m.tasks[task]
		t.State, t.Status, t.Reason, t.End, t.Percent = schemas.TaskStateCancelled, "OK", "cancelled by a client (DELETE) before it started", now.UnixMilli(), 100
	}
	m.save(s)
	return res
}

func (m *modelStore) op(task string, now time.Time, op string, args ...any) []string {
	if m.slots.Now.Task != task {
		return []string{"not-now"}
	}
	t := m.tasks[task]
	next := ""
	if len(m.slots.Waiting) > 0 {
		next = string(m.slots.Waiting[0].Type)
	}
	flag := ""
	if m.slots.Cancelling {
		flag = "1"
	}
	addStep := func(note string) {
		if note == "" {
			return
		}
		t.Steps = append(t.Steps, strconv.Itoa(t.Percent)+" "+note)
		if len(t.Steps) > 20 {
			t.Steps = t.Steps[len(t.Steps)-20:]
		}
	}
	switch op {
	case "begin":
		before := t.State
		if t.State == schemas.TaskStateNew {
			t.State, t.Start = schemas.TaskStateRunning, now.UnixMilli()
		}
		return []string{"ok", string(m.slots.Now.Type), string(before), flag, next}
	case "step":
		if m.slots.Cancelling && args[2].(string) != "1" {
			return []string{"ok", "1", next}
		}
		t.Issued, t.Note = now.UnixMilli(), args[0].(string)
		addStep(t.Note)
		m.issued, m.issCmd, m.issAt = task, schemas.ResetType(args[1].(string)), now
		return []string{"ok", "", next}
	case "unissue":
		t.Issued = 0
		m.issued, m.issCmd, m.issAt = "", "", time.Time{}
		return []string{"ok", flag, next}
	case "progress":
		t.Percent, t.Note = args[0].(int), args[1].(string)
		if args[2].(string) == "1" {
			addStep(t.Note)
		}
		return []string{"ok", flag, next}
	case "finish":
		state, status, reason, observed := schemas.TaskState(args[0].(string)), args[1].(string), args[2].(string), schemas.PowerState(args[3].(string))
		if state == schemas.TaskStateCompleted && t.State == schemas.TaskStateCancelling {
			why := t.Reason
			if why == "" {
				why = "cancelled"
			}
			if _, ok := t.Type.Target(); ok {
				state, status = schemas.TaskStateCancelled, "OK"
				reason = "it reached its end before the cancellation took effect (" + reason + ")"
			} else {
				reason += "; the cancellation (" + why + ") came too late: the action had already been carried out"
			}
		}
		if state == schemas.TaskStateCancelled && t.State == schemas.TaskStateCancelling && t.Reason != "" {
			reason = t.Reason + "; " + reason
		}
		t.State, t.Status, t.Reason, t.End, t.Percent = state, status, reason, now.UnixMilli(), 100
		if observed != "" {
			m.power = observed
		}
		wasCancelling := m.slots.Cancelling
		s := Finish(m.slots)
		m.slots = Slots{}
		m.save(s)
		if (args[4].(string) == "1" || wasCancelling) && observed != "" && s.Now.Task == "" {
			m.desired = observed
		}
		m.issued, m.issCmd, m.issAt = "", "", time.Time{}
		return []string{"ok", s.Now.Task, string(s.Now.Type), string(state), status, reason}
	}
	panic("unknown op " + op)
}

func (m *modelStore) state() NodeState {
	return NodeState{Slots: m.slots, Desired: m.desired, Power: m.power, Issued: m.issued, IssuedCmd: m.issCmd, IssuedAt: m.issAt}
}

func (m *modelStore) task(id string) TaskRecord { return *m.tasks[id] }

// scriptStore runs the Lua scripts on a Redis.
type scriptStore struct {
	t     *testing.T
	rdb   redis.UniversalClient
	st    *Store
	node  string
	lease string
}

func (r *scriptStore) init(t *testing.T, node string) {
	r.t, r.node = t, node
	r.st = NewStore(r.rdb)
	// Every transcript file numbers its nodes from 1: start each on an
	// empty database (the server is this test's own).
	if err := r.rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	l, err := r.st.acquire(context.Background(), node, "transcript", time.Hour)
	if err != nil {
		t.Fatalf("acquire lease: %v", err)
	}
	r.lease = l.Value()
}

func (r *scriptStore) admit(rt schemas.ResetType, task string, now time.Time) Admission {
	rules := DefaultRules()
	rules.FlipLimit = 0
	a, err := r.st.Admit(context.Background(), r.node, rules, rt, task, now, "transcript")
	if err != nil {
		r.t.Fatal(err)
	}
	return a
}

func (r *scriptStore) cancel(task string, now time.Time) CancelResult {
	res, err := r.st.Cancel(context.Background(), r.node, task, now)
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

func (r *scriptStore) op(task string, now time.Time, op string, args ...any) []string {
	res, err := r.st.workerOp(context.Background(), r.node, r.lease, task, now, op, args...)
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

func (r *scriptStore) state() NodeState {
	ns, err := r.st.State(context.Background(), r.node)
	if err != nil {
		r.t.Fatal(err)
	}
	return ns
}

func (r *scriptStore) task(id string) TaskRecord {
	tr, err := r.st.Task(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return tr
}

// actionRun is one transcript's machine, store and clock.
type actionRun struct {
	t      *testing.T
	store  workerStore
	cfg    ActionConfig
	now    time.Time
	task   string
	seq    int
	a      *Action
	slept  time.Duration
	node   string
	out    strings.Builder
	awaits EffectKind
}

func defaultActionConfig() ActionConfig {
	return ActionConfig{Retries: 2, RetryBackoff: time.Second, VerifyTimeout: 60 * time.Second, VerifyInterval: 250 * time.Millisecond,
		SoftOffTimeout: 300 * time.Second, SoftCancelGrace: 10 * time.Second, SoftOffFallback: "fail", RestartEvidence: 10 * time.Second}
}

func (r *actionRun) printf(format string, args ...any) { fmt.Fprintf(&r.out, format+"\n", args...) }

// feed steps the machine with o and performs store effects until it waits
// for the BMC or the clock.
func (r *actionRun) feed(o Observation) {
	for {
		o.Now = r.now
		var next *Observation
		for _, e := range r.a.Step(o) {
			switch e.Kind {
			case EffEmit:
				r.printf("emit %s", e.Event)
			case EffRead:
				r.printf("read")
				r.awaits = EffRead
			case EffSend:
				r.printf("send %s", e.Cmd)
				r.awaits = EffSend
			case EffSleep:
				if e.SleepMin > 0 {
					r.printf("sleep %s..%s", e.SleepMin, e.Sleep)
				} else {
					r.printf("sleep %s", e.Sleep)
				}
				r.slept, r.awaits = e.Sleep, EffSleep
			case EffIssue, EffUnissue, EffCheck:
				var res []string
				switch e.Kind {
				case EffIssue:
					r.printf("issue %s: %s", e.Cmd, e.Note)
					res = r.store.op(r.task, r.now, "step", e.Note, string(e.Cmd), boolArg(e.Force))
				case EffUnissue:
					r.printf("unissue")
					res = r.store.op(r.task, r.now, "unissue")
				default:
					kept := ""
					if e.Phase {
						kept = " (kept)"
					}
					r.printf("check %d%% %s%s", e.Pct, e.Note, kept)
					res = r.store.op(r.task, r.now, "progress", e.Pct, e.Note, boolArg(e.Phase))
				}
				next = &Observation{Kind: ObsChecked, Cancelling: res[1] == "1", Next: nextTarget(res, 2)}
				if next.Cancelling {
					r.printf("  (cancelling; next wants %s)", orUnknown(next.Next))
				}
			case EffFinish:
				f := e.Final
				d := ""
				if f.DesiredIsObserved {
					d = ", desired := observed"
				}
				r.printf("finish %s %s: %s (observed %s%s)", f.State, f.Status, f.Reason, orUnknown(f.Observed), d)
				fin := r.store.op(r.task, r.now, "finish", string(f.State), f.Status, f.Reason, string(f.Observed), boolArg(f.DesiredIsObserved))
				if schemas.TaskState(fin[3]) != f.State || fin[5] != f.Reason {
					r.printf("  stored as %s: %s", fin[3], fin[5])
				}
				r.awaits = EffFinish
				return
			}
		}
		if next == nil {
			return
		}
		o = *next
	}
}

func parseDur(t *testing.T, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("bad duration %q: %v", s, err)
	}
	return d
}

// advance handles an optional "+D" argument.
func (r *actionRun) advance(td *datadriven.TestData) {
	for _, a := range td.CmdArgs {
		if strings.HasPrefix(a.Key, "+") {
			r.now = r.now.Add(parseDur(r.t, a.Key[1:]))
		}
	}
}

// expect reports whether the machine waits for an observation of effect
// k; a transcript that feeds it something else prints a mistake (and the
// test fails on it).
func (r *actionRun) expect(k EffectKind) bool {
	if r.awaits != k {
		r.printf("mistake: the machine is not waiting for that (it awaits effect %d)", r.awaits)
		if f := flag.Lookup("rewrite"); f == nil || f.Value.String() != "true" {
			r.t.Errorf("transcript feeds an observation the machine does not wait for")
		}
		return false
	}
	return true
}

func (r *actionRun) run(t *testing.T, td *datadriven.TestData) string {
	r.t = t
	r.out.Reset()
	switch td.Cmd {
	case "config":
		r.cfg = defaultActionConfig()
		for _, a := range td.CmdArgs {
			v := ""
			if len(a.Vals) > 0 {
				v = a.Vals[0]
			}
			switch a.Key {
			case "retries":
				fmt.Sscan(v, &r.cfg.Retries)
			case "verify":
				r.cfg.VerifyTimeout = parseDur(t, v)
			case "soft":
				r.cfg.SoftOffTimeout = parseDur(t, v)
			case "grace":
				r.cfg.SoftCancelGrace = parseDur(t, v)
			case "evidence":
				r.cfg.RestartEvidence = parseDur(t, v)
			case "fallback":
				r.cfg.SoftOffFallback = v
			case "interval":
				r.cfg.VerifyInterval = parseDur(t, v)
			case "backoff":
				r.cfg.RetryBackoff = parseDur(t, v)
			default:
				td.Fatalf(t, "unknown config %s", a.Key)
			}
		}
		return "ok"
	case "begin":
		r.seq++
		r.node = fmt.Sprintf("an%d", r.seq)
		r.store.init(t, r.node)
		rt := schemas.ResetType(td.CmdArgs[0].Key)
		var native []schemas.ResetType
		var interrupted schemas.ResetType
		var ago time.Duration
		cancelled := false
		for _, a := range td.CmdArgs[1:] {
			switch a.Key {
			case "native":
				for _, v := range strings.Split(strings.Join(a.Vals, ","), ",") {
					if v != "unknown" && v != "" {
						native = append(native, schemas.ResetType(v))
					}
				}
			case "interrupted":
				interrupted = schemas.ResetType(a.Vals[0])
			case "ago":
				ago = parseDur(t, a.Vals[0])
			case "cancelled":
				cancelled = true
			}
		}
		r.task = r.node + ".t1"
		if adm := r.store.admit(rt, r.task, r.now); adm.Outcome != Started {
			td.Fatalf(t, "admission: %+v", adm)
		}
		if interrupted != "" {
			// A previous holder began the task and sent interrupted ago.
			r.store.op(r.task, r.now.Add(-ago), "begin")
			r.store.op(r.task, r.now.Add(-ago), "step", "sent by the previous holder", string(interrupted))
		}
		if cancelled {
			r.store.cancel(r.task, r.now)
		}
		st := r.store.state()
		res := r.store.op(r.task, r.now, "begin")
		r.a = NewAction(r.cfg, rt, native)
		r.feed(Observation{Kind: ObsBegin, Interrupted: wasBegun(res[2]) && st.Issued == r.task,
			IssuedCmd: st.IssuedCmd, IssuedAt: st.IssuedAt, Cancelling: res[3] == "1", Next: nextTarget(res, 4)})
	case "power":
		if !r.expect(EffRead) {
			break
		}
		r.advance(td)
		o := Observation{Kind: ObsPower, Power: schemas.PowerState(td.CmdArgs[0].Key)}
		if td.CmdArgs[0].Key == "error" {
			o.Power, o.Err = schemas.PowerUnknown, "no route to BMC"
		}
		r.feed(o)
	case "sent":
		if !r.expect(EffSend) {
			break
		}
		r.advance(td)
		o := Observation{Kind: ObsSent}
		switch td.CmdArgs[0].Key {
		case "ok":
		case "confirmed":
			o.Confirmed = true
		case "refused":
			o.Sent, o.Err = SendRefused, "BMC refused the command"
		case "noanswer":
			o.Sent, o.Err = SendNoAnswer, "no answer from the BMC"
		default:
			td.Fatalf(t, "sent: unknown answer %s", td.CmdArgs[0].Key)
		}
		r.feed(o)
	case "woke":
		if !r.expect(EffSleep) {
			break
		}
		r.now = r.now.Add(r.slept)
		r.feed(Observation{Kind: ObsWoke})
	case "delete":
		return string(r.store.cancel(r.task, r.now))
	case "submit":
		r.seq++
		id := fmt.Sprintf("%s.t%d", r.node, r.seq)
		a := r.store.admit(schemas.ResetType(td.CmdArgs[0].Key), id, r.now)
		return formatDecision(a.Outcome, a.Task, a.Refusal, 0, a.CancelNow, a.Dropped)
	case "task":
		tr := r.store.task(r.task)
		st := r.store.state()
		r.printf("%s %s %s %d%%: %s", tr.ID, tr.State, tr.Status, tr.Percent, tr.Reason)
		for _, s := range tr.Steps {
			r.printf("  step: %s", s)
		}
		r.printf("node: %s; power %s; issued %s", formatSlots(st.Slots, st.Desired), orUnknown(st.Power), orNone(string(st.IssuedCmd)))
	default:
		td.Fatalf(t, "unknown command %s", td.Cmd)
	}
	return r.out.String()
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runActionTranscripts(t *testing.T, mk func() workerStore) {
	datadriven.Walk(t, "testdata/action", func(t *testing.T, path string) {
		r := &actionRun{t: t, store: mk(), cfg: defaultActionConfig(), now: time.UnixMilli(1_700_000_000_000)}
		datadriven.RunTest(t, path, r.run)
	})
}

func TestActionTranscriptsPure(t *testing.T) {
	runActionTranscripts(t, func() workerStore { return &modelStore{} })
}

func TestActionTranscriptsRedis(t *testing.T) {
	for name, rdb := range map[string]redis.UniversalClient{"miniredis": testkit.MiniRedis(t), "redis-server": testkit.RealRedis(t)} {
		t.Run(name, func(t *testing.T) {
			runActionTranscripts(t, func() workerStore { return &scriptStore{rdb: rdb} })
		})
	}
}

// TestEmulationTable pins which ResetTypes each backend's primitives give,
// and how (the README's emulation table).
func TestEmulationTable(t *testing.T) {
	ipmi := []schemas.ResetType{schemas.ResetOn, schemas.ResetForceOff, schemas.ResetGracefulShutdown, schemas.ResetForceRestart, schemas.ResetNmi, schemas.ResetPowerCycle}
	amtNoGraceful := []schemas.ResetType{schemas.ResetOn, schemas.ResetForceOff, schemas.ResetForceRestart, schemas.ResetNmi, schemas.ResetPowerCycle}
	onOff := []schemas.ResetType{schemas.ResetOn, schemas.ResetForceOff}
	cases := []struct {
		native []schemas.ResetType
		r      schemas.ResetType
		how    string
	}{
		{ipmi, schemas.ResetGracefulRestart, "GracefulShutdown, then On"},
		{ipmi, schemas.ResetForceOn, "On"},
		{ipmi, schemas.ResetPushPowerButton, "On when Off, GracefulShutdown when On"},
		{ipmi, schemas.ResetPowerCycle, "native"},
		{amtNoGraceful, schemas.ResetGracefulRestart, ""},
		{amtNoGraceful, schemas.ResetGracefulShutdown, ""},
		{onOff, schemas.ResetPowerCycle, "ForceOff, then On"},
		{onOff, schemas.ResetForceRestart, "ForceOff, then On"},
		{onOff, schemas.ResetNmi, ""},
		{[]schemas.ResetType{schemas.ResetOn, schemas.ResetForceOff, schemas.ResetPowerCycle}, schemas.ResetForceRestart, "PowerCycle"},
	}
	for _, c := range cases {
		how, ok := Emulation(c.r, c.native, false)
		if how != c.how || ok != (c.how != "") {
			t.Errorf("Emulation(%s, %v) = %q, %v; want %q", c.r, c.native, how, ok, c.how)
		}
	}
	if how, _ := Emulation(schemas.ResetGracefulRestart, amtNoGraceful, true); how != "ForceRestart (the BMC has no soft off; soft_off_fallback: force)" {
		t.Errorf("GracefulRestart on AMT without graceful types, fallback force: %q", how)
	}
	if how, _ := Emulation(schemas.ResetGracefulRestart, onOff, true); how != "ForceOff, then On (the BMC has no soft off; soft_off_fallback: force)" {
		t.Errorf("GracefulRestart on On/ForceOff only, fallback force: %q", how)
	}
	if how, _ := Emulation(schemas.ResetGracefulShutdown, onOff, true); how != "ForceOff (the BMC has no soft off; soft_off_fallback: force)" {
		t.Errorf("GracefulShutdown on On/ForceOff only, fallback force: %q", how)
	}
	if got := Offered(ipmi, false); !slices.Contains(got, schemas.ResetGracefulRestart) || len(got) != len(schemas.AllResetTypes) {
		t.Errorf("IPMI offers %v, want all %d types", got, len(schemas.AllResetTypes))
	}
}
