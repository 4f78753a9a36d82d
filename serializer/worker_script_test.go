package serializer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
)

// worker.lua's finish, on the cases where a running task was cancelled.

func TestFinishOfASupersededTask(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			st := NewStore(target.New(t))
			ctx := context.Background()
			now := time.UnixMilli(1_700_000_000_000)
			l, err := st.acquire(ctx, "wn", "r", time.Hour)
			if err != nil {
				t.Fatalf("acquire: %v", err)
			}
			lease := l.Value()
			admit := func(r schemas.ResetType, task string) Admission {
				a, err := st.Admit(ctx, "wn", DefaultRules(), r, task, now, "test")
				if err != nil {
					t.Fatal(err)
				}
				return a
			}
			desired := func() schemas.PowerState {
				ns, err := st.State(ctx, "wn")
				if err != nil {
					t.Fatal(err)
				}
				return ns.Desired
			}
			finish := func(task string, state schemas.TaskState, reason, observed, desiredIsObserved string) {
				if _, err := st.workerOp(ctx, "wn", lease, task, now, "finish", string(state), "OK", reason, observed, desiredIsObserved); err != nil {
					t.Fatal(err)
				}
			}

			// A superseded task keeps the reason it was superseded for.
			admit(schemas.ResetOn, "wn.t1")
			if a := admit(schemas.ResetForceOff, "wn.t2"); !a.CancelNow {
				t.Fatalf("ForceOff did not supersede: %+v", a)
			}
			finish("wn.t1", schemas.TaskStateCancelled, "cancelled; the node is On", "On", "1")
			tr, err := st.Task(ctx, "wn.t1")
			if err != nil || tr.State != schemas.TaskStateCancelled || !strings.HasPrefix(tr.Reason, "superseded by ForceOff (wn.t2); ") || !strings.HasSuffix(tr.Reason, "the node is On") {
				t.Fatalf("superseded task: %+v %v", tr, err)
			}
			finish("wn.t2", schemas.TaskStateCompleted, "Off confirmed by the BMC", "Off", "0")
			if d := desired(); d != schemas.PowerOff {
				t.Fatalf("desired %s after the ForceOff, want Off", d)
			}

			// On runs; GracefulShutdown supersedes it and is then DELETEd:
			// nothing says Off any more. The On reaches its end before it
			// sees the cancellation: the desired state is what was observed,
			// not the dropped request's Off.
			admit(schemas.ResetOn, "wn.t3")
			if a := admit(schemas.ResetGracefulShutdown, "wn.t4"); !a.CancelNow {
				t.Fatalf("GracefulShutdown did not supersede: %+v", a)
			}
			if res, err := st.Cancel(ctx, "wn", "wn.t4", now); err != nil || res != CancelDropped {
				t.Fatalf("cancel: %v %v", res, err)
			}
			finish("wn.t3", schemas.TaskStateCompleted, "On confirmed by the BMC", "On", "0")
			if d := desired(); d != schemas.PowerOn {
				t.Fatalf("desired %s, want On (observed), the Off was dropped", d)
			}
		})
	}
}
