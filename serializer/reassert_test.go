package serializer_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	rfbackend "github.com/fishgate/fishgate/backends/redfish"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

type recordingEmitter struct {
	mu  sync.Mutex
	ids []string
}

func (r *recordingEmitter) Emit(_ context.Context, e serializer.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, e.Node+" "+e.Message.MessageID)
}

func (r *recordingEmitter) has(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.ids {
		if x == s {
			return true
		}
	}
	return false
}

// TestPowerSyncDriftAndReassert: the sweep reports a node that changed
// outside the gateway, and converges it back to its desired state only
// when the node is configured to.
func TestPowerSyncDriftAndReassert(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fleet := simulator.NewFleet(log)
	t.Cleanup(func() { fleet.Close() })
	var nodes []serializer.Node
	for _, c := range []struct {
		id       string
		reassert bool
	}{{"keep", false}, {"fix", true}} {
		sn, err := fleet.Add(simulator.NodeSpec{ID: c.id, Machine: simulator.MachineConfig{InitialPower: "Off"}})
		if err != nil {
			t.Fatal(err)
		}
		b, err := rfbackend.New(rfbackend.Config{Endpoint: sn.URL(), User: "admin", Password: "password", Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, serializer.Node{ID: c.id, Backend: b, Reassert: c.reassert})
	}
	ev := &recordingEmitter{}
	o := configuredOptions()
	o.Redis, o.ReplicaID, o.Logger, o.Events = testkit.MiniRedis(t), "r1", log, ev
	o.SyncInterval, o.VerifyInterval, o.LeaseTTL = 100*time.Millisecond, 5*time.Millisecond, time.Second
	svc, err := serializer.New(nodes, o)
	if err != nil {
		t.Fatal(err)
	}
	svc.Start(t.Context())
	t.Cleanup(func() { svc.Close() })
	ctx := t.Context()
	for _, id := range []string{"keep", "fix"} {
		a, err := svc.Reset(ctx, id, schemas.ResetOn, "test")
		if err != nil {
			t.Fatal(err)
		}
		waitTask(t, svc, a.Task, schemas.TaskStateCompleted)
	}
	keep, _ := fleet.Node("keep")
	fix, _ := fleet.Node("fix")
	keep.Machine().SetPower("Off") // drift: someone pressed the button
	fix.Machine().SetPower("Off")
	deadline := time.Now().Add(10 * time.Second)
	for fix.Machine().PowerState() != "On" {
		if time.Now().After(deadline) {
			t.Fatalf("node with reassert stayed %s", fix.Machine().PowerState())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for !ev.has("keep ResourceEvent.1.4.ResourcePoweredOff") {
		if time.Now().After(deadline) {
			t.Fatalf("no drift event for keep: %v", ev.ids)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // several sweeps
	if p := keep.Machine().PowerState(); p != "Off" {
		t.Errorf("node without reassert was converged to %s: the gateway must not fight the clients", p)
	}
	if st := keep.Machine().Status(); st.CommandCount != 1 {
		t.Errorf("node without reassert got %d commands, want only the first On", st.CommandCount)
	}
	if st := fix.Machine().Status(); st.CommandCount != 2 || st.MaxInFlight > 1 {
		t.Errorf("reasserted node: %d commands (want 2), max in flight %d", st.CommandCount, st.MaxInFlight)
	}
}

func waitTask(t *testing.T, svc *serializer.Service, id string, state schemas.TaskState) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tr, err := svc.Task(t.Context(), id)
		if err == nil && tr.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: %+v %v, want %s", id, tr, err, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDriftReportedOnceAcrossReplicas: two replicas sweep the same node;
// a change made outside the gateway is reported by one of them only.
func TestDriftReportedOnceAcrossReplicas(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fleet := simulator.NewFleet(log)
	t.Cleanup(func() { fleet.Close() })
	sn, err := fleet.Add(simulator.NodeSpec{ID: "d1", Machine: simulator.MachineConfig{InitialPower: "On"}})
	if err != nil {
		t.Fatal(err)
	}
	rdb := testkit.MiniRedis(t)
	ev := &recordingEmitter{}
	for _, replica := range []string{"a", "b"} {
		b, err := rfbackend.New(rfbackend.Config{Endpoint: sn.URL(), User: "admin", Password: "password", Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		o := configuredOptions()
		o.Redis, o.ReplicaID, o.Logger, o.Events = rdb, replica, log, ev
		o.SyncInterval, o.LeaseTTL = 50*time.Millisecond, time.Second
		svc, err := serializer.New([]serializer.Node{{ID: "d1", Backend: b}}, o)
		if err != nil {
			t.Fatal(err)
		}
		svc.Start(t.Context())
		t.Cleanup(func() { svc.Close() })
	}
	time.Sleep(200 * time.Millisecond) // both have swept the node On
	sn.Machine().SetPower("Off")
	deadline := time.Now().Add(5 * time.Second)
	for !ev.has("d1 ResourceEvent.1.4.ResourcePoweredOff") {
		if time.Now().After(deadline) {
			t.Fatalf("no drift event: %v", ev.ids)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // several more sweeps by both replicas
	ev.mu.Lock()
	defer ev.mu.Unlock()
	n := 0
	for _, id := range ev.ids {
		if id == "d1 ResourceEvent.1.4.ResourcePoweredOff" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("drift reported %d times by two replicas, want once: %v", n, ev.ids)
	}
}
