package serializer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/redisx"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// TestAcknowledgedAdmissions (config redis.min_replicas_ack): an accepted
// Reset is on the replica when Reset returns, and the node's lease holder
// runs it to the end through acknowledged writes.
func TestAcknowledgedAdmissions(t *testing.T) {
	master := testkit.RealRedis(t)
	replica := testkit.RedisReplica(t, master)
	e := newEnv(t, master, []simNode{{ID: "n1"}, {ID: "n2"}})
	opts := fastOptions()
	opts.Writes = redisx.Acked{Client: master, Replicas: 1, Timeout: 5 * time.Second}
	svc := e.addReplica("r1", opts, nil)
	ctx := context.Background()

	onReplica := serializer.NewStore(replica)
	var tasks []string
	for _, id := range e.ids {
		a, err := svc.Reset(ctx, id, schemas.ResetOn, "test")
		if err != nil {
			t.Fatalf("Reset %s: %v", id, err)
		}
		// read on the replica at once: WAIT confirmed it is there
		tr, err := onReplica.Task(ctx, a.Task)
		if err != nil {
			t.Fatalf("task %s of an acknowledged admission is not on the replica: %v", a.Task, err)
		}
		if tr.Type != schemas.ResetOn {
			t.Errorf("task on the replica: %+v", tr)
		}
		tasks = append(tasks, a.Task)
	}
	e.waitQuiet(30*time.Second, e.ids, tasks)
	for _, id := range tasks {
		tr, err := onReplica.Task(ctx, id)
		if err != nil || tr.State != schemas.TaskStateCompleted {
			t.Errorf("task %s on the replica: %+v, %v; want Completed", id, tr, err)
		}
	}
	for _, id := range e.ids {
		if p := e.machine(id).Status().PowerState; p != simulator.PowerOn {
			t.Errorf("%s is %s, want On", id, p)
		}
	}
}

// TestUnacknowledgedAdmissionIsWithdrawn: when no replica acknowledges an
// admission, Reset fails as unavailable (a 503) and the task it created is
// cancelled, so a request the client was told failed does not run; and
// no lease can be taken, so nothing is sent to the BMC.
func TestUnacknowledgedAdmissionIsWithdrawn(t *testing.T) {
	master := testkit.RealRedis(t) // no replica
	e := newEnv(t, master, []simNode{{ID: "n1", Machine: simulator.MachineConfig{InitialPower: simulator.PowerOff}}})
	opts := fastOptions()
	opts.Writes = redisx.Acked{Client: master, Replicas: 1, Timeout: 50 * time.Millisecond}
	svc := e.addReplica("r1", opts, nil)
	ctx := context.Background()

	_, err := svc.Reset(ctx, "n1", schemas.ResetOn, "test")
	if !errors.Is(err, serializer.ErrUnavailable) || !errors.Is(err, redisx.ErrNotReplicated) {
		t.Fatalf("Reset: %v; want ErrUnavailable wrapping ErrNotReplicated", err)
	}
	ids, err := e.store().TaskIDs(ctx, []string{"n1"}, 10)
	if err != nil || len(ids) != 1 {
		t.Fatalf("tasks of n1: %v, %v; want the one admitted", ids, err)
	}
	tr, err := e.store().Task(ctx, ids[0])
	if err != nil || (tr.State != schemas.TaskStateCancelling && tr.State != schemas.TaskStateCancelled) {
		t.Fatalf("withdrawn task: %+v, %v; want it cancelled", tr, err)
	}
	// Without a replica no lease can be taken: the withdrawn task stays
	// Cancelling and the BMC hears nothing. Once a replica is back, the
	// lease holder ends it.
	if st := e.machine("n1").Status(); st.PowerState != simulator.PowerOff || st.CommandCount != 0 {
		t.Errorf("the BMC was driven by a withdrawn action: %+v", st)
	}
	testkit.RedisReplica(t, master)
	e.waitQuiet(30*time.Second, e.ids, ids)
	if tr, err := e.store().Task(ctx, ids[0]); err != nil || tr.State != schemas.TaskStateCancelled {
		t.Fatalf("withdrawn task once a replica is back: %+v, %v; want Cancelled", tr, err)
	}
	if st := e.machine("n1").Status(); st.PowerState != simulator.PowerOff || st.CommandCount != 0 {
		t.Errorf("the BMC was driven by a withdrawn action: %+v", st)
	}
}
