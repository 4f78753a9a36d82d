package serializer_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// TestReadYourWrites: right after Reset (and CancelTask) returns, the
// replica's view shows what was admitted, without waiting for the change
// to be published. The replica here is never started, so nothing but the
// admission itself can have refreshed its view.
func TestReadYourWrites(t *testing.T) {
	e := newEnv(t, testkit.MiniRedis(t), []simNode{{ID: "n1", Machine: simulator.MachineConfig{DelayMin: time.Millisecond, DelayMax: 2 * time.Millisecond}}})
	release := e.machine("n1").Hold() // the On stays running
	defer release()
	b, err := redfishProtocol.open(e.sims["n1"], slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	opts := fastOptions()
	opts.Redis, opts.ReplicaID, opts.Logger = e.rdb, "r1", slog.New(slog.DiscardHandler)
	svc, err := serializer.New([]serializer.Node{{ID: "n1", Backend: b}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx := context.Background()

	on, err := svc.Reset(ctx, "n1", schemas.ResetOn, "test")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := svc.View("n1")
	if v.State.Desired != schemas.PowerOn || v.State.Slots.Now.Task != on.Task {
		t.Fatalf("view right after the On's admission: desired %q, running %q; want On, %s", v.State.Desired, v.State.Slots.Now.Task, on.Task)
	}
	off, err := svc.Reset(ctx, "n1", schemas.ResetForceOff, "test")
	if err != nil {
		t.Fatal(err)
	}
	v, _ = svc.View("n1")
	if v.State.Desired != schemas.PowerOff || len(v.State.Slots.Waiting) != 1 || v.State.Slots.Waiting[0].Task != off.Task {
		t.Fatalf("view right after the ForceOff's admission: desired %q, waiting %+v; want Off, [%s]", v.State.Desired, v.State.Slots.Waiting, off.Task)
	}
	if _, err := svc.CancelTask(ctx, off.Task); err != nil {
		t.Fatal(err)
	}
	v, _ = svc.View("n1")
	if len(v.State.Slots.Waiting) != 0 {
		t.Fatalf("view right after the ForceOff was cancelled: waiting %+v, want none", v.State.Slots.Waiting)
	}
}
