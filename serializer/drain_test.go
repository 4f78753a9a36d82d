package serializer_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// TestDrain: a draining replica lets the action it runs finish and starts
// none after it (the action waiting next runs on the other replica); when
// its time is up it stops the action and releases the lease, and the
// other replica takes the node over at once (well inside the lease TTL)
// and finishes the action without sending its command again.
func TestDrain(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			t.Run("finishes", func(t *testing.T) {
				e := newEnv(t, target.New(t), []simNode{{ID: "d1", Machine: simulator.MachineConfig{
					DelayMin: 400 * time.Millisecond, DelayMax: 400 * time.Millisecond, InitialPower: simulator.PowerOff}}})
				a := e.addReplica("A", fastOptions(), nil)
				ctx := context.Background()
				on, err := a.Reset(ctx, "d1", schemas.ResetOn, "test")
				if err != nil || on.Outcome != serializer.Started {
					t.Fatalf("On: %+v, %v", on, err)
				}
				e.waitTask(5*time.Second, on.Task, "running", func(tr serializer.TaskRecord) bool { return tr.State == schemas.TaskStateRunning })
				b := e.addReplica("B", fastOptions(), nil)                         // after A holds the lease
				next, err := b.Reset(ctx, "d1", schemas.ResetForceRestart, "test") // ranks no higher than On: it waits
				if err != nil || next.Outcome != serializer.Queued {
					t.Fatalf("ForceRestart: %+v, %v", next, err)
				}
				dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				rep := a.Drain(dctx)
				if !slices.Equal(rep.Finished, []string{on.Task}) || len(rep.HandedOver) != 0 {
					t.Fatalf("drain report %+v, want %s finished and nothing handed over", rep, on.Task)
				}
				if tr := e.task(on.Task); tr.State != schemas.TaskStateCompleted {
					t.Fatalf("the running On ended %s (%s), want Completed", tr.State, tr.Reason)
				}
				e.waitTask(10*time.Second, next.Task, "the waiting ForceRestart completed by B", func(tr serializer.TaskRecord) bool {
					return tr.State == schemas.TaskStateCompleted
				})
				// A request still in flight on the drained replica is
				// admitted; the other replica runs it.
				off, err := a.Reset(ctx, "d1", schemas.ResetForceOff, "test")
				if err != nil || off.Outcome != serializer.Started {
					t.Fatalf("ForceOff through the drained replica: %+v, %v", off, err)
				}
				e.waitTask(10*time.Second, off.Task, "the ForceOff completed by B", func(tr serializer.TaskRecord) bool {
					return tr.State == schemas.TaskStateCompleted
				})
			})
			t.Run("hands_over", func(t *testing.T) {
				e := newEnv(t, target.New(t), []simNode{{ID: "d2", Machine: simulator.MachineConfig{
					DelayMin: 2 * time.Second, DelayMax: 2 * time.Second, InitialPower: simulator.PowerOff}}})
				opts := fastOptions()
				opts.LeaseTTL = 20 * time.Second // a take-over that waited for expiry would show
				a := e.addReplica("A", opts, nil)
				ctx := context.Background()
				on, err := a.Reset(ctx, "d2", schemas.ResetOn, "test")
				if err != nil || on.Outcome != serializer.Started {
					t.Fatalf("On: %+v, %v", on, err)
				}
				m := e.machine("d2")
				testkit.WaitFor(t, 5*time.Second, "the On reaching the BMC", func() (bool, string) {
					return m.PowerState() == "PoweringOn", m.PowerState()
				})
				e.addReplica("B", opts, nil)
				dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
				defer cancel()
				rep := a.Drain(dctx)
				if !slices.Equal(rep.HandedOver, []string{on.Task}) || len(rep.Finished) != 0 {
					t.Fatalf("drain report %+v, want %s handed over", rep, on.Task)
				}
				// Well inside the 20 s TTL: the lease was released, not left to expire.
				tr := e.waitTask(10*time.Second, on.Task, "the On completed by B", func(tr serializer.TaskRecord) bool {
					return tr.State.Terminal()
				})
				if tr.State != schemas.TaskStateCompleted {
					t.Fatalf("the handed-over On ended %s (%s)", tr.State, tr.Reason)
				}
				if cmds := bmcCommands(m); !slices.Equal(cmds, []string{"On:accepted"}) {
					t.Fatalf("BMC commands %v, want one On (a take-over resumes, never re-sends)", cmds)
				}
			})
		})
	}
}
