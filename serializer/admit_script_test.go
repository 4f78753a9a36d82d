package serializer

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testredis"
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

func newScriptEnv(t *testing.T, target testredis.Target) *scriptEnv {
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

// checkReason requires a superseded task's reason to name a task that exists.
func (e *scriptEnv) checkReason(id string) {
	e.t.Helper()
	tr := e.task(id)
	m := supersededBy.FindStringSubmatch(tr.Reason)
	if tr.State != "Cancelled" || m == nil {
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
	for _, target := range testredis.Targets() {
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
