package serializer_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// Boot overrides go through the node's lease holder (boot.lua): one writer
// per node for boot as for power, in the order the requests were accepted,
// whichever replica received them.

// bootCounter counts the SetBoot calls a replica's backend made.
type bootCounter struct {
	backends.Backend
	n *atomic.Int32
}

func (b bootCounter) SetBoot(ctx context.Context, o schemas.BootOverride) error {
	b.n.Add(1)
	return b.Backend.SetBoot(ctx, o)
}

// machineLog is the machine's command log as "Action:result", SetBoot
// included.
func machineLog(m *simulator.Machine) []string {
	var out []string
	for _, c := range m.Status().Commands {
		out = append(out, c.Action+":"+c.Result)
	}
	return out
}

func TestBootAndResetOnTwoReplicasReachTheBMCInOrder(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			e := newEnv(t, target.New(t), []simNode{{ID: "b1", Machine: simulator.MachineConfig{DelayMin: 500 * time.Millisecond, DelayMax: 500 * time.Millisecond}}})
			var bootsA, bootsB atomic.Int32
			a := e.addReplica("A", fastOptions(), func(_ string, b backends.Backend) backends.Backend { return bootCounter{b, &bootsA} })
			b := e.addReplica("B", fastOptions(), func(_ string, b backends.Backend) backends.Backend { return bootCounter{b, &bootsB} })
			ctx := context.Background()

			// MAAS: PATCH Boot Pxe on one replica, then Reset On on the other.
			if err := a.SetBoot(ctx, "b1", schemas.BootOverride{Target: "Pxe", Enabled: "Once"}); err != nil {
				t.Fatalf("SetBoot: %v", err)
			}
			adm, err := b.Reset(ctx, "b1", schemas.ResetOn, "test")
			if err != nil {
				t.Fatal(err)
			}
			e.waitTask(10*time.Second, adm.Task, "completed", func(tr serializer.TaskRecord) bool { return tr.Terminal() })
			if got, want := machineLog(e.machine("b1")), []string{"SetBoot:accepted", "On:accepted"}; !slices.Equal(got, want) {
				t.Fatalf("BMC log %v, want %v", got, want)
			}
			if v, _ := b.View("b1"); v.Boot.Target != "Pxe" {
				t.Errorf("replica B's view of the boot override: %+v", v.Boot)
			}

			// While replica B holds the lease for a slow action, a PATCH
			// on replica A is applied by B, between two of its power
			// reads, and A answers once it was applied.
			off, err := b.Reset(ctx, "b1", schemas.ResetForceOff, "test")
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the ForceOff reaching the BMC", func() bool { return len(machineLog(e.machine("b1"))) == 3 })
			before := bootsA.Load() + bootsB.Load()
			if err := a.SetBoot(ctx, "b1", schemas.BootOverride{Target: "Hdd"}); err != nil {
				t.Fatalf("SetBoot during an action: %v", err)
			}
			if n := bootsA.Load() + bootsB.Load() - before; n != 1 {
				t.Fatalf("%d SetBoot calls for one override, want 1", n)
			}
			e.waitTask(10*time.Second, off.Task, "done", func(tr serializer.TaskRecord) bool { return tr.Terminal() })
			if st := e.machine("b1").Status(); st.MaxInFlight > 1 {
				t.Fatalf("MaxInFlight %d", st.MaxInFlight)
			}
			if got, want := machineLog(e.machine("b1")), []string{"SetBoot:accepted", "On:accepted", "ForceOff:accepted", "SetBoot:accepted"}; !slices.Equal(got, want) {
				t.Fatalf("BMC log %v, want %v", got, want)
			}
			if tr := e.task(off.Task); tr.State != schemas.TaskStateCompleted {
				t.Fatalf("ForceOff %s: %s", tr.State, tr.Reason)
			}
			if got := e.machine("b1").Boot(); got.Target != "Hdd" || got.Enabled != "Once" {
				t.Fatalf("machine boot %+v, want Hdd Once (overrides merge)", got)
			}
			// The lease holder that ran the ForceOff applied the override.
			// (the holder logs "task finished" just after the task's record
			// turned terminal: wait for the line)
			holder := ""
			waitFor(t, 10*time.Second, "the ForceOff's holder to log its end", func() bool {
				for _, r := range []string{"A", "B"} {
					if len(e.logs.find("["+r+"]", "task finished", off.Task)) > 0 {
						holder = r
					}
				}
				return holder != ""
			})
			if holder == "" || len(e.logs.find("["+holder+"]", "boot override applied", "target=Hdd")) != 1 {
				t.Fatalf("the override was not applied by the lease holder %q:\n%s", holder, e.logs.tail(40))
			}
		})
	}
}

// TestBootErrorIsReported: a BMC refusing the override reaches the caller
// (and the next one is applied all the same).
func TestBootErrorIsReported(t *testing.T) {
	e, svc := oneNode(t, simulator.MachineConfig{}, nil)
	err := svc.SetBoot(context.Background(), node1, schemas.BootOverride{Target: "NotATarget"})
	if err == nil || !errors.Is(err, serializer.ErrBMC) {
		t.Fatalf("SetBoot with a bad target: %v, want a BMC error", err)
	}
	if err := svc.SetBoot(context.Background(), node1, schemas.BootOverride{Target: "Pxe", Enabled: "Once"}); err != nil {
		t.Fatalf("SetBoot after a failed one: %v", err)
	}
	if got := e.machine(node1).Boot(); got.Target != "Pxe" {
		t.Fatalf("machine boot %+v", got)
	}
}

// waitFor waits until cond holds.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
