package serializer

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
)

// leasedNode is a Store on one Redis target whose replica "r1" holds the
// lease of node, to run worker operations with.
type leasedNode struct {
	t     *testing.T
	rdb   *redis.Client
	st    *Store
	node  string
	lease string
}

func newLeasedNode(t *testing.T, target testkit.RedisTarget, node string) *leasedNode {
	rdb := target.New(t)
	st := NewStore(rdb)
	l, err := st.acquire(context.Background(), node, "r1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &leasedNode{t: t, rdb: rdb, st: st, node: node, lease: l.Value()}
}

// op runs a worker operation (worker.lua) on task at a time.
func (n *leasedNode) op(task string, at time.Time, op string, args ...string) {
	n.t.Helper()
	as := make([]any, len(args))
	for i, a := range args {
		as[i] = a
	}
	if _, err := n.st.workerOp(context.Background(), n.node, n.lease, task, at, op, as...); err != nil {
		n.t.Fatalf("%s of %s: %v", op, task, err)
	}
}

// TestLogEntriesArePositional: an action's command log entries are stored
// as [id, event, value...] in logFields' order, a task of the node as its
// last part, and read back with every field named and the task whole (a
// node id with a dot in it included); entries of the older named form
// still read.
func TestLogEntriesArePositional(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			const node, task = "rack1.n1", "rack1.n1.mxbeujtq0a1b2c"
			n := newLeasedNode(t, target, node)
			rdb, st, ctx := n.rdb, n.st, context.Background()
			now := time.UnixMilli(1_700_000_000_000)
			if _, err := st.Admit(ctx, node, DefaultRules(), schemas.ResetOn, task, now, "user=u remote=127.0.0.1"); err != nil {
				t.Fatal(err)
			}
			n.op(task, now, "begin")
			n.op(task, now, "step", "On attempt 1", "On", "0")
			n.op(task, now, "finish", "Completed", "OK", "On confirmed by the BMC", "On", "0")
			raw, err := rdb.LRange(ctx, LogKey(node), 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			fence := n.lease
			want := []string{
				`"finish",".mxbeujtq0a1b2c","Completed","On confirmed by the BMC","` + fence + `"]`,
				`"command",".mxbeujtq0a1b2c","On","On attempt 1","` + fence + `"]`,
				`"begin",".mxbeujtq0a1b2c","` + fence + `"]`,
				`"started","On",".mxbeujtq0a1b2c","user=u remote=127.0.0.1"]`,
			}
			if len(raw) != len(want) {
				t.Fatalf("log %q, want %d entries", raw, len(want))
			}
			for i, r := range raw {
				_, rest, _ := strings.Cut(r, ",")
				if rest != want[i] {
					t.Errorf("entry %d stored %s, want [<id>,%s", i, r, want[i])
				}
			}
			// An entry of the named form, written before this one.
			old := `["1699999999999-9","event","queued","type","ForceOff","task","rack1.n1.old","cancel_now","0","req","r"]`
			if err := rdb.RPush(ctx, LogKey(node), old).Err(); err != nil {
				t.Fatal(err)
			}
			xs, err := st.LogEntries(ctx, node)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]string, len(xs))
			for i, x := range xs {
				got[i] = fmt.Sprint(x.Values)
			}
			wantRead := []string{
				fmt.Sprint(map[string]any{"event": "finish", "task": task, "state": "Completed", "reason": "On confirmed by the BMC", "fence": fence}),
				fmt.Sprint(map[string]any{"event": "command", "task": task, "command": "On", "note": "On attempt 1", "fence": fence}),
				fmt.Sprint(map[string]any{"event": "begin", "task": task, "fence": fence}),
				fmt.Sprint(map[string]any{"event": "started", "type": "On", "task": task, "req": "user=u remote=127.0.0.1"}),
				fmt.Sprint(map[string]any{"event": "queued", "type": "ForceOff", "task": "rack1.n1.old", "cancel_now": "0", "req": "r"}),
			}
			if strings.Join(got, "\n") != strings.Join(wantRead, "\n") {
				t.Errorf("read back:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRead, "\n"))
			}
			if xs[4].ID != "1699999999999-9" || !strings.HasSuffix(xs[0].ID, "-4") {
				t.Errorf("ids %s, %s", xs[0].ID, xs[4].ID)
			}
		})
	}
}

var (
	luaLogCall  = regexp.MustCompile(`\blog\(\{([^}]*)\}\)`)
	luaLogEvent = regexp.MustCompile(`^\s*'event',\s*'([a-z_-]+)'\s*$`)
	luaLogField = regexp.MustCompile(`^\s*'([a-z_]+)'\s*$`)
)

// TestLogCallsNameKnownFields: every log call of the scripts names an
// event of logFields and only its fields (log stores the values by
// logFields' order: a field it does not list would be lost).
func TestLogCallsNameKnownFields(t *testing.T) {
	calls := 0
	for f, src := range luaSources(t) {
		for _, m := range luaLogCall.FindAllStringSubmatch(src, -1) {
			calls++
			parts := splitTopLevel(m[1])
			if len(parts) < 2 || len(parts)%2 != 0 {
				t.Errorf("%s: log({%s}): want 'event', <event>, then field/value pairs", f, m[1])
				continue
			}
			ev := luaLogEvent.FindStringSubmatch(parts[0] + "," + parts[1])
			if ev == nil {
				t.Errorf("%s: log({%s}): the first pair is not 'event', '<literal>'", f, m[1])
				continue
			}
			names, ok := logFields[ev[1]]
			if !ok {
				t.Errorf("%s: log event %q is not in logFields", f, ev[1])
				continue
			}
			for i := 2; i < len(parts); i += 2 {
				fm := luaLogField.FindStringSubmatch(parts[i])
				if fm == nil || !strings.Contains(" "+strings.Join(names, " ")+" ", " "+fm[1]+" ") {
					t.Errorf("%s: log event %s: field %s is not one of logFields' %v", f, ev[1], parts[i], names)
				}
			}
		}
	}
	if calls < 10 {
		t.Fatalf("found %d log calls in the scripts; the pattern no longer matches them", calls)
	}
	// The scripts' table is logFields.
	probe := script(`return cjson.encode(LOGFIELDS)`)
	raw, err := probe.Run(context.Background(), testkit.MiniRedis(t), nodeKeys("n1").forScripts()).Text()
	if err != nil {
		t.Fatal(err)
	}
	var lf map[string][]string
	if err := json.Unmarshal([]byte(raw), &lf); err != nil || fmt.Sprint(lf) != fmt.Sprint(logFields) {
		t.Errorf("LOGFIELDS in the scripts: %s (%v), want logFields %v", raw, err, logFields)
	}
}

// splitTopLevel splits a Lua expression list at the commas outside
// parentheses and brackets.
func splitTopLevel(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// TestNodeFenceIsASlotsField: a node lease's fence counter is the slots
// field "fence", continued from the counter key of the earlier layout,
// which goes.
func TestNodeFenceIsASlotsField(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			rdb := target.New(t)
			st := NewStore(rdb)
			ctx := context.Background()
			k := nodeKeys("fn")
			if err := rdb.Set(ctx, k.FormerFence, 9, 0).Err(); err != nil {
				t.Fatal(err)
			}
			l, err := st.acquire(ctx, "fn", "r1", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if l.Value() != "r1|10" {
				t.Errorf("lease %q after the former counter's 9, want r1|10", l.Value())
			}
			if f := rdb.HGet(ctx, k.Slots, "fence").Val(); f != "10" {
				t.Errorf("slots fence %q, want 10", f)
			}
			if n := rdb.Exists(ctx, k.FormerFence).Val(); n != 0 {
				t.Errorf("the former fence key %s is still there", k.FormerFence)
			}
		})
	}
}

// TestTaskCreatedFromID: the creation time newTaskID writes into an id
// reads back the same in Go (taskCreated) and in the scripts
// (task_created); an id of another form is dated by its record; a node's
// listing is newest first over both kinds; the per-node index of the
// earlier layout goes at the next admission.
func TestTaskCreatedFromID(t *testing.T) {
	at := time.UnixMilli(1_796_535_495_134)
	s := &Service{opts: Options{Clock: func() time.Time { return at }}}
	probe := script(`return task_created(ARGV[1])`)
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			rdb := target.New(t)
			st := NewStore(rdb)
			ctx := context.Background()
			const node = "rack1.n1"
			named := s.newTaskID(node)
			if ms, ok := taskCreated(named); !ok || ms != at.UnixMilli() {
				t.Fatalf("taskCreated(%s) = %d, %v; want %d", named, ms, ok, at.UnixMilli())
			}
			for _, odd := range []string{node + ".t1", node + ".MXBEUJTQ0a1b2c", node + ".mxbeujtq0a1b2", "mxbeujtq0a1b2c"} {
				if _, ok := taskCreated(odd); ok {
					t.Errorf("taskCreated(%s) read a time from an id not of newTaskID's form", odd)
				}
			}
			if err := rdb.ZAdd(ctx, nodeKeys(node).TaskZ, redis.Z{Score: 1, Member: "x"}).Err(); err != nil {
				t.Fatal(err)
			}
			// Admitted in this order: an odd id first (its record says
			// when), then newTaskID's, an odd one after.
			for i, a := range []struct {
				id string
				at time.Time
			}{{node + ".t1", at.Add(-time.Minute)}, {named, at}, {node + ".t2", at.Add(time.Minute)}} {
				rt := []schemas.ResetType{schemas.ResetOn, schemas.ResetForceOff, schemas.ResetOn}[i]
				if _, err := st.Admit(ctx, node, Rules{Policy: PolicySupersede}, rt, a.id, a.at, "test"); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := probe.Run(ctx, rdb, nodeKeys(node).forScripts(), named).Int64(); err != nil || got != at.UnixMilli() {
				t.Errorf("task_created(%s) = %d, %v; want %d", named, got, err, at.UnixMilli())
			}
			if got, err := probe.Run(ctx, rdb, nodeKeys(node).forScripts(), node+".t2").Int64(); err != nil || got != at.Add(time.Minute).UnixMilli() {
				t.Errorf("task_created(%s.t2) = %d, %v; want its record's", node, got, err)
			}
			ids, err := st.TaskIDs(ctx, []string{node, "other"}, 10)
			if err != nil || strings.Join(ids, " ") != node+".t2 "+named+" "+node+".t1" {
				t.Errorf("TaskIDs = %v, %v; want newest first: t2, %s, t1", ids, err, named)
			}
			if n := rdb.Exists(ctx, nodeKeys(node).TaskZ).Val(); n != 0 {
				t.Errorf("the earlier per-node task index is still there after admissions")
			}
		})
	}
}

// TestFinishedTaskRecordsAreCompact: a finished task is stored without
// what has its usual value (pct 100, status OK, start at creation, the
// last step's note) and reads back whole, in Go and in the scripts; a
// task that never started keeps saying so; a finished record of the
// earlier form (pct stored, no start when it never started) reads as
// before.
func TestFinishedTaskRecordsAreCompact(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			const node = "cn"
			n := newLeasedNode(t, target, node)
			rdb, st, ctx, op := n.rdb, n.st, context.Background(), n.op
			now := time.UnixMilli(1_700_000_000_000)
			rules := DefaultRules()
			rules.Policy = PolicyQueue
			for _, a := range []struct {
				task string
				r    schemas.ResetType
			}{{"cn.t1", schemas.ResetOn}, {"cn.t2", schemas.ResetForceOff}, {"cn.t3", schemas.ResetOn}} {
				if _, err := st.Admit(ctx, node, rules, a.r, a.task, now, "test"); err != nil {
					t.Fatal(err)
				}
			}
			// cn.t3, waiting, never started, is cancelled.
			if res, err := st.Cancel(ctx, node, "cn.t3", now); err != nil || res != CancelDropped {
				t.Fatalf("cancel of the waiting cn.t3: %+v, %v", res, err)
			}
			op("cn.t1", now, "begin")
			op("cn.t1", now, "step", "On attempt 1", "On", "0")
			op("cn.t1", now.Add(time.Second), "finish", "Completed", "OK", "On confirmed by the BMC", "On", "0")
			// cn.t2 starts a second after its creation and fails.
			op("cn.t2", now.Add(time.Second), "begin")
			op("cn.t2", now.Add(time.Second), "step", "ForceOff attempt 1", "ForceOff", "0")
			op("cn.t2", now.Add(time.Second), "progress", "40", "waiting for Off", "0")
			op("cn.t2", now.Add(2*time.Second), "finish", "Exception", "Critical", "the BMC did not answer", "", "0")
			raw := rdb.HGetAll(ctx, nodeKeys(node).Tasks).Val()
			for id, r := range raw {
				for _, left := range []string{`"pct"`, `"status":"OK"`, `"id"`, `"node"`} {
					if strings.Contains(r, left) {
						t.Errorf("%s stored %s: has %s", id, r, left)
					}
				}
			}
			if r := raw["cn.t1"]; strings.Contains(r, `"start"`) || strings.Contains(r, `"note"`) {
				t.Errorf("cn.t1 stored %s: start at creation and the last step's note are left out", r)
			}
			if r := raw["cn.t2"]; !strings.Contains(r, `"start":1700000001000`) || !strings.Contains(r, `"note":"waiting for Off"`) {
				t.Errorf("cn.t2 stored %s: its own start and a note that is not the last step's are kept", r)
			}
			if r := raw["cn.t3"]; !strings.Contains(r, `"start":0`) {
				t.Errorf("cn.t3 stored %s: never started, says so", r)
			}
			// The earlier form of a finished task.
			old := `{"type":"On","state":"Cancelled","status":"OK","reason":"superseded","created":1700000000000,"end":1700000000500,"pct":100,"note":"","joined":0}`
			if err := rdb.HSet(ctx, nodeKeys(node).Tasks, "cn.t0", old).Err(); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				"cn.t1": "Completed OK 100 start=1700000000000 note=On attempt 1",
				"cn.t2": "Exception Critical 100 start=1700000001000 note=waiting for Off",
				"cn.t3": "Cancelled OK 100 start=0 note=",
				"cn.t0": "Cancelled OK 100 start=0 note=",
			}
			probe := script(`local t = get_task(ARGV[1]); return { t.state, t.status, tostring(t.pct), tostring(t.start or 0), t.note or '' }`)
			for id, w := range want {
				tr, err := st.Task(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if got := fmt.Sprintf("%s %s %d start=%d note=%s", tr.State, tr.Status, tr.Percent, tr.Start, tr.Note); got != w {
					t.Errorf("Task(%s) = %s, want %s", id, got, w)
				}
				v, err := probe.Run(ctx, rdb, nodeKeys(node).forScripts(), id).StringSlice()
				if err != nil {
					t.Fatal(err)
				}
				if got := fmt.Sprintf("%s %s %s start=%s note=%s", v[0], v[1], v[2], v[3], v[4]); got != w {
					t.Errorf("get_task(%s) = %s, want %s", id, got, w)
				}
			}
		})
	}
}
