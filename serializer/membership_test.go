package serializer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// TestRemoveWhileActionRunsAndAnotherWaits: removing a node refuses new
// admissions at once on every replica, cancels the waiting action, lets
// the running one finish (Completed, the BMC shows its target) and only
// then forgets the node; re-enrolled, it works again.
func TestRemoveWhileActionRunsAndAnotherWaits(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			e := newEnv(t, target.New(t), []simNode{{ID: "rm1", Machine: simulator.MachineConfig{
				DelayMin: 400 * time.Millisecond, DelayMax: 400 * time.Millisecond, InitialPower: simulator.PowerOff}}})
			a, b := e.addReplica("A", fastOptions(), nil), e.addReplica("B", fastOptions(), nil)
			ctx := context.Background()
			on, err := a.Reset(ctx, "rm1", schemas.ResetOn, "test")
			if err != nil || on.Outcome != serializer.Started {
				t.Fatalf("On: %+v, %v", on, err)
			}
			e.waitTask(5*time.Second, on.Task, "running", func(tr serializer.TaskRecord) bool { return tr.State == schemas.TaskStateRunning })
			off, err := b.Reset(ctx, "rm1", schemas.ResetForceRestart, "test") // ranks no higher than On: it waits
			if err != nil || off.Outcome != serializer.Queued {
				t.Fatalf("ForceRestart: %+v, %v", off, err)
			}

			removed := make(chan error, 1)
			go func() { removed <- a.Remove(ctx, "rm1") }()
			e.waitTask(5*time.Second, off.Task, "cancelled", func(tr serializer.TaskRecord) bool { return tr.State == schemas.TaskStateCancelled })
			// B has not been told yet: Redis refuses for it.
			if _, err := b.Reset(ctx, "rm1", schemas.ResetPowerCycle, "test"); !errors.Is(err, serializer.ErrNodeRemoved) {
				t.Fatalf("Reset through B during the removal: %v, want ErrNodeRemoved", err)
			}
			if err := b.SetBoot(ctx, "rm1", schemas.BootOverride{Target: "Pxe", Enabled: "Once"}); !errors.Is(err, serializer.ErrNodeNotFound) {
				t.Fatalf("SetBoot through B during the removal: %v, want ErrNodeNotFound", err)
			}
			if err := <-removed; err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if tr := e.task(on.Task); tr.State != schemas.TaskStateCompleted {
				t.Fatalf("the running On ended %s (%s), want Completed", tr.State, tr.Reason)
			}
			if p := e.machine("rm1").PowerState(); p != simulator.PowerOn {
				t.Fatalf("machine is %s after the On completed", p)
			}
			if _, err := a.View("rm1"); !errors.Is(err, serializer.ErrNodeNotFound) {
				t.Fatalf("View after Remove: %v", err)
			}
			for _, id := range a.IDs() {
				if id == "rm1" {
					t.Fatal("IDs still lists the removed node")
				}
			}
			if err := b.Remove(ctx, "rm1"); err != nil {
				t.Fatalf("Remove on B: %v", err)
			}
			if err := a.Remove(ctx, "rm1"); err != nil {
				t.Fatalf("second Remove: %v", err)
			}

			// enrolled again: admissions work
			if err := a.Reinstate(ctx, "rm1"); err != nil {
				t.Fatal(err)
			}
			bk, err := e.proto.open(e.sims["rm1"], slog.Default())
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Add(serializer.Node{ID: "rm1", Backend: bk}); err != nil {
				t.Fatalf("Add: %v", err)
			}
			if err := a.Add(serializer.Node{ID: "rm1", Backend: bk}); err == nil {
				t.Fatal("a second Add of the same id was accepted")
			}
			testkit.WaitFor(t, 5*time.Second, "the re-enrolled node is read", func() (bool, string) {
				v, err := a.View("rm1")
				return err == nil && v.CapsKnown, fmt.Sprintf("%+v %v", v, err)
			})
			again, err := a.Reset(ctx, "rm1", schemas.ResetForceOff, "test")
			if err != nil || again.Outcome != serializer.Started {
				t.Fatalf("ForceOff after re-enrolment: %+v, %v", again, err)
			}
			e.waitTask(10*time.Second, again.Task, "completed", func(tr serializer.TaskRecord) bool { return tr.State == schemas.TaskStateCompleted })
		})
	}
}

// nopBackend is a BMC that is never called (the service is not started).
type nopBackend struct{ backends.Backend }

func (nopBackend) Close() error { return nil }

// BenchmarkAddAtScale: enrolling the 10,001st node into a service of
// 10,000 (the sorted id list is copied once per Add), and a request's
// lookup of a node, which does not grow with the fleet.
func BenchmarkAddAtScale(b *testing.B) {
	opts := fastOptions()
	opts.Redis, opts.ReplicaID = testkit.MiniRedis(b), "bench"
	var nodes []serializer.Node
	for i := range 10000 {
		nodes = append(nodes, serializer.Node{ID: fmt.Sprintf("n%05d", i), Backend: nopBackend{}})
	}
	svc, err := serializer.New(nodes, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close() })
	b.Run("add-remove", func(b *testing.B) {
		ctx := context.Background()
		for i := 0; b.Loop(); i++ {
			id := fmt.Sprintf("x%07d", i)
			if err := svc.Add(serializer.Node{ID: id, Backend: nopBackend{}}); err != nil {
				b.Fatal(err)
			}
			if err := svc.Remove(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("view", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := svc.View(nodes[i%len(nodes)].ID); err != nil {
				b.Fatal(err)
			}
		}
	})
}
