package serializer

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
)

// admit.lua on the tasks it creates, ends and prunes (the slots are the
// transcripts' business, testdata/admission).

// supersededBy finds the task a "superseded by <type> (<task>)" reason names.
var supersededBy = regexp.MustCompile(`superseded by \w+ \(([^)]+)\)`)

// scriptEnv is a Store on one Redis and the clock of its admissions.
type scriptEnv struct {
	t    *testing.T
	st   *Store
	node string
	now  time.Time
	seq  int
}

func newScriptEnv(t *testing.T, target testkit.RedisTarget) *scriptEnv {
	return &scriptEnv{t: t, st: NewStore(target.New(t)), node: "an", now: time.UnixMilli(1_700_000_000_000)}
}

// admit submits r as a new request (its would-be task id is fresh).
func (e *scriptEnv) admit(rules Rules, r schemas.ResetType) Admission {
	e.t.Helper()
	e.seq++
	a, err := e.st.Admit(context.Background(), e.node, rules, r, fmt.Sprintf("%s.t%d", e.node, e.seq), e.now, "test")
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// task reads a task that must exist.
func (e *scriptEnv) task(id string) TaskRecord {
	e.t.Helper()
	tr, err := e.st.Task(context.Background(), id)
	if err != nil {
		e.t.Fatalf("task %s: %v", id, err)
	}
	return tr
}

// count is how many tasks the node keeps.
func (e *scriptEnv) count() int {
	e.t.Helper()
	ids, err := e.st.TaskIDs(context.Background(), []string{e.node}, 100000)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(ids)
}

// checkReason requires a superseded task's reason to name a task that exists.
func (e *scriptEnv) checkReason(id string) {
	e.t.Helper()
	tr := e.task(id)
	m := supersededBy.FindStringSubmatch(tr.Reason)
	if tr.State != schemas.TaskStateCancelled || m == nil {
		e.t.Fatalf("dropped task %s: state %s, reason %q; want Cancelled, superseded by ...", id, tr.State, tr.Reason)
	}
	if _, err := e.st.Task(context.Background(), m[1]); err != nil {
		e.t.Fatalf("dropped task %s says %q: task %s: %v", id, tr.Reason, m[1], err)
	}
}

// TestSupersededNamesAnExistingTask: a waiting task dropped because the
// request joined the running task names that task, not the id the request
// would have had (never created).
func TestSupersededNamesAnExistingTask(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			e := newScriptEnv(t, target)
			rules := DefaultRules()
			on := e.admit(rules, schemas.ResetOn) // an.t1 runs
			next := e.admit(rules, schemas.ResetPowerCycle)
			joined := e.admit(rules, schemas.ResetOn) // an.t3 would be its id
			if joined.Outcome != Coalesced || joined.Task != on.Task || len(joined.Dropped) != 1 || joined.Dropped[0] != next.Task {
				t.Fatalf("On while On runs and PowerCycle waits: %+v", joined)
			}
			if _, err := e.st.Task(context.Background(), e.node+".t3"); !errors.Is(err, ErrTaskNotFound) {
				t.Fatalf("the joining request's would-be task exists: %v", err)
			}
			e.checkReason(next.Task)
			if r := e.task(next.Task).Reason; r != "superseded by On ("+on.Task+")" {
				t.Errorf("reason %q, want it to name %s", r, on.Task)
			}

			// A waiting task replaced by a new one names the new one.
			gr := e.admit(rules, schemas.ResetGracefulRestart)
			pc := e.admit(rules, schemas.ResetPowerCycle)
			if len(pc.Dropped) != 1 || pc.Dropped[0] != gr.Task {
				t.Fatalf("PowerCycle replacing GracefulRestart: %+v", pc)
			}
			e.checkReason(gr.Task)
		})
	}
}

// TestRetentionKeepsRecentTasks: with the flip-flop guard off, a storm of
// requests superseding each other ends task after task; every task id the
// admissions return stays readable (count-based pruning never takes a task
// that ended less than 10 minutes ago); ten minutes later, admissions prune
// them, at most 20 per admission; a running task is never pruned.
func TestRetentionKeepsRecentTasks(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			e := newScriptEnv(t, target)
			e.st.KeepTasks = 3
			rules := DefaultRules()
			rules.FlipLimit = 0
			storm := []schemas.ResetType{schemas.ResetPowerCycle, schemas.ResetGracefulRestart, schemas.ResetOn, schemas.ResetForceRestart}
			first := e.admit(rules, schemas.ResetOn).Task // runs throughout
			ids := []string{first}
			for i := range 150 {
				e.now = e.now.Add(time.Second)
				a := e.admit(rules, storm[i%len(storm)])
				if a.Outcome == Refused {
					t.Fatalf("request %d refused: %+v", i, a)
				}
				e.task(a.Task)
				for _, d := range a.Dropped {
					e.checkReason(d)
				}
				if a.Task != first {
					ids = append(ids, a.Task)
				}
			}
			for _, id := range ids {
				e.task(id) // all ended within the last 150 s
			}
			if n := e.count(); n < 100 {
				t.Fatalf("%d tasks kept, want the about 115 the storm created", n)
			}

			// Ten minutes on, admissions prune the storm's tasks again, at
			// most 20 per admission, down to the newest 3; the running one
			// stays, and so do the tasks ended since.
			e.now = e.now.Add(10 * time.Minute)
			for i := range 12 {
				before := e.count()
				a := e.admit(rules, storm[i%2]) // PowerCycle, GracefulRestart: a new task each
				created := 1
				if a.Outcome == Coalesced {
					created = 0
				}
				if after := e.count(); after < before+created-20 {
					t.Fatalf("one admission removed %d tasks, want at most 20", before+created-after)
				}
				if after := e.count(); len(a.Forgotten) != before+created-after {
					t.Fatalf("admission removed %d tasks but names %d as forgotten: %v", before+created-after, len(a.Forgotten), a.Forgotten)
				}
			}
			kept := 0
			for _, id := range ids[1:] {
				if _, err := e.st.Task(context.Background(), id); err == nil {
					kept++
				}
			}
			if kept > e.st.KeepTasks {
				t.Errorf("%d tasks of the storm kept 10 minutes after it, want at most %d", kept, e.st.KeepTasks)
			}
			if tr := e.task(first); tr.Terminal() {
				t.Errorf("running task %s is %s", first, tr.State)
			}
		})
	}
}

// TestRetentionMinimumAgeIsAtMostTheAgeLimit: with keep_for below 10
// minutes, a finished task is kept for keep_for after it ended.
func TestRetentionMinimumAgeIsAtMostTheAgeLimit(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			e := newScriptEnv(t, target)
			e.st.KeepTasks, e.st.KeepTaskAge = 1, time.Minute
			rules := DefaultRules()
			rules.FlipLimit = 0
			e.admit(rules, schemas.ResetOn)
			gr := e.admit(rules, schemas.ResetGracefulRestart)
			e.admit(rules, schemas.ResetPowerCycle) // gr ends Cancelled now
			e.now = e.now.Add(30 * time.Second)
			e.admit(rules, schemas.ResetGracefulRestart)
			e.task(gr.Task) // ended 30 s ago: kept
			e.now = e.now.Add(31 * time.Second)
			e.admit(rules, schemas.ResetPowerCycle)
			if _, err := e.st.Task(context.Background(), gr.Task); !errors.Is(err, ErrTaskNotFound) {
				t.Errorf("task ended 61 s ago with keep_for 1m: %v, want it pruned", err)
			}
		})
	}
}
