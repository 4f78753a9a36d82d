package serializer_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/internal/metrics"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// Fencing (docs/architecture.md#leases-and-fencing): a replica that was
// paused while it held a node's lease, and whose lease expired meanwhile,
// must neither send a BMC command nor write a result once it runs again; the
// replica that took the node over finishes the action, and its result is the
// one that stays.

// pausable wraps a backend so that one chosen PowerState call freezes, like
// a replica stopped by the OS or a long GC pause: the read happens, then the
// call does not return until released, whatever its context says, and
// returns the (by then stale) value it read.
type pausable struct {
	backends.Backend

	mu      sync.Mutex
	calls   int
	pauseAt int // the call that freezes (1 = the first after arm), 0 = none
	paused  chan struct{}
	release chan struct{}
	unpause func()
}

// arm makes the nth PowerState call from now freeze, until unfreeze.
func (p *pausable) arm(nth int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls, p.pauseAt = 0, nth
	p.paused, p.release = make(chan struct{}), make(chan struct{})
	p.unpause = sync.OnceFunc(func() { close(p.release) })
}

func (p *pausable) unfreeze() {
	p.mu.Lock()
	f := p.unpause
	p.mu.Unlock()
	if f != nil {
		f()
	}
}

func (p *pausable) PowerState(ctx context.Context) (schemas.PowerState, error) {
	ps, err := p.Backend.PowerState(ctx)
	p.mu.Lock()
	p.calls++
	freeze := p.pauseAt != 0 && p.calls == p.pauseAt
	paused, release := p.paused, p.release
	p.mu.Unlock()
	if freeze {
		close(paused)
		<-release
	}
	return ps, err
}

// leaseKey is the Redis key of a node's lease (store.go's nodeKeys).
func leaseKey(node string) string { return "fg:node:{" + node + "}:lease" }

// fenceEnv starts node f1 and replica A, whose lease outlives the test (it
// renews every 10s, so it does not notice the expiry the test causes), with
// a pausable backend.
func fenceEnv(t *testing.T, m simulator.MachineConfig, metricsA *metrics.Metrics) (*env, *serializer.Service, *pausable) {
	t.Helper()
	e := newEnv(t, testkit.MiniRedis(t), []simNode{{ID: "f1", Machine: m}})
	var gate *pausable
	optsA := fastOptions()
	optsA.LeaseTTL = 30 * time.Second
	optsA.Metrics = metricsA
	a := e.addReplica("A", optsA, func(_ string, b backends.Backend) backends.Backend {
		gate = &pausable{Backend: b}
		return gate
	})
	t.Cleanup(gate.unfreeze) // before A closes, or Close would wait forever
	return e, a, gate
}

// expireLease deletes the node's lease, as its expiry would, after checking
// that holder has it.
func expireLease(t *testing.T, e *env, node, holder string) {
	t.Helper()
	ctx := context.Background()
	v, err := e.rdb.Get(ctx, leaseKey(node)).Result()
	if err != nil || v != holder {
		t.Fatalf("lease of %s is %q (%v), want %q", node, v, err, holder)
	}
	if err := e.rdb.Del(ctx, leaseKey(node)).Err(); err != nil {
		t.Fatal(err)
	}
}

// waitLog waits for a log record containing every part.
func waitLog(t *testing.T, e *env, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(e.logs.find(parts...)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no log record with %q\n%s", parts, e.logs.tail(40))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitClosed(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// eventsBy lists the node log events written under lease value fence.
func eventsBy(e *env, node, fence string) []string {
	var out []string
	for _, ev := range e.nodeLog(node) {
		if ev["fence"] == fence {
			out = append(out, fmt.Sprint(ev["event"]))
		}
	}
	return out
}

func TestFencePausedReplicaBeforeItsCommand(t *testing.T) {
	mA, mB := metrics.New(metrics.Build{}), metrics.New(metrics.Build{})
	e, a, gate := fenceEnv(t, simulator.MachineConfig{DelayMin: 30 * time.Millisecond, DelayMax: 50 * time.Millisecond}, mA)
	gate.arm(1) // A freezes right after its first read, before sending
	adm, err := a.Reset(context.Background(), "f1", schemas.ResetOn, "test")
	if err != nil || adm.Outcome != serializer.Started {
		t.Fatalf("Reset: %+v %v", adm, err)
	}
	waitClosed(t, gate.paused, "replica A to pause")
	expireLease(t, e, "f1", "A|1")

	// B takes the node over and finishes the action.
	optsB := fastOptions()
	optsB.Metrics = mB
	e.addReplica("B", optsB, nil)
	done := e.waitTask(10*time.Second, adm.Task, "terminal", terminalTask)
	e.waitQuiet(10*time.Second, []string{"f1"}, nil)
	if done.State != schemas.TaskStateCompleted || !strings.Contains(done.Reason, "On confirmed by the BMC") {
		t.Fatalf("task after take-over: %+v", done)
	}

	// A wakes up with a stale read (Off) and tries to carry on.
	gate.unfreeze()
	waitLog(t, e, "[A]", "lease lost; stopping without writing results", "fenced")

	if got := bmcCommands(e.machine("f1")); !slices.Equal(got, []string{"On:accepted"}) {
		t.Fatalf("BMC commands %v, want B's one On", got)
	}
	if after := e.task(adm.Task); !reflect.DeepEqual(after, done) {
		t.Fatalf("task rewritten after the take-over:\nB wrote %+v\nnow     %+v", done, after)
	}
	if evs := eventsBy(e, "f1", "A|1"); !slices.Equal(evs, []string{"begin"}) {
		t.Fatalf("events under A's lease %v, want only its begin", evs)
	}
	if evs := eventsBy(e, "f1", "B|2"); !slices.Equal(evs, []string{"begin", "command", "finish"}) {
		t.Fatalf("events under B's lease %v, want begin, command, finish", evs)
	}
	settled(t, e, "f1", schemas.PowerOn)

	// The metrics of each replica say so: A's stale write was fenced, B
	// took the action over and finished it.
	sA, sB := testkit.ScrapeHandler(t, mA.Handler()), testkit.ScrapeHandler(t, mB.Handler())
	for _, c := range []struct {
		who  string
		s    testkit.Scrape
		name string
		want float64
	}{
		{"A", sA, "fishgate_fencing_rejections_total", 1},
		{"B", sB, "fishgate_fencing_rejections_total", 0},
		{"A", sA, "fishgate_lease_takeovers_total", 0},
		{"B", sB, "fishgate_lease_takeovers_total", 1},
		{"A", sA, "fishgate_tasks_finished_total", 0},
		{"B", sB, "fishgate_tasks_finished_total", 1},
	} {
		if got := c.s.Value(c.name); got != c.want {
			t.Errorf("replica %s: %s = %v, want %v", c.who, c.name, got, c.want)
		}
	}
}

func TestFencePausedReplicaAfterItsCommand(t *testing.T) {
	// A long transition: B takes over while the node is still PoweringOn.
	e, a, gate := fenceEnv(t, simulator.MachineConfig{DelayMin: 600 * time.Millisecond, DelayMax: 600 * time.Millisecond}, nil)
	gate.arm(2) // A freezes at its first verification read, after the On
	adm, err := a.Reset(context.Background(), "f1", schemas.ResetOn, "test")
	if err != nil || adm.Outcome != serializer.Started {
		t.Fatalf("Reset: %+v %v", adm, err)
	}
	waitClosed(t, gate.paused, "replica A to pause")
	expireLease(t, e, "f1", "A|1")

	e.addReplica("B", fastOptions(), nil)
	done := e.waitTask(10*time.Second, adm.Task, "terminal", terminalTask)
	e.waitQuiet(10*time.Second, []string{"f1"}, nil)
	// B must not send the On again (docs/architecture.md#recovery): it waits
	// for the BMC and confirms the command A had sent.
	if done.State != schemas.TaskStateCompleted || !strings.Contains(done.Reason, "confirmed On after recovery") {
		t.Fatalf("task after take-over: %+v", done)
	}

	gate.unfreeze() // A's stale read says PoweringOn: it would keep waiting
	waitLog(t, e, "[A]", "lease lost; stopping without writing results", "fenced")

	m := e.machine("f1")
	if got := bmcCommands(m); !slices.Equal(got, []string{"On:accepted"}) || m.Status().MaxInFlight != 1 {
		t.Fatalf("BMC commands %v (MaxInFlight %d), want A's one On", got, m.Status().MaxInFlight)
	}
	if after := e.task(adm.Task); !reflect.DeepEqual(after, done) {
		t.Fatalf("task rewritten after the take-over:\nB wrote %+v\nnow     %+v", done, after)
	}
	if evs := eventsBy(e, "f1", "A|1"); !slices.Equal(evs, []string{"begin", "command"}) {
		t.Fatalf("events under A's lease %v, want its begin and command", evs)
	}
	if evs := eventsBy(e, "f1", "B|2"); !slices.Equal(evs, []string{"begin", "finish"}) {
		t.Fatalf("events under B's lease %v, want begin and finish", evs)
	}
	settled(t, e, "f1", schemas.PowerOn)
}

func TestFenceHolderThatCannotRenewStops(t *testing.T) {
	// A's lease disappears while it waits for a slow On; it polls the BMC
	// only once a second, so its renewal (every 333ms) finds out first. It
	// must stop without writing a result; taking the node again under a
	// new lease, it confirms the On without sending it twice.
	e := newEnv(t, testkit.MiniRedis(t), []simNode{{ID: "f1", Machine: simulator.MachineConfig{DelayMin: 1500 * time.Millisecond, DelayMax: 1500 * time.Millisecond}}})
	opts := fastOptions()
	opts.VerifyInterval = time.Second
	a := e.addReplica("A", opts, nil)
	adm, err := a.Reset(context.Background(), "f1", schemas.ResetOn, "test")
	if err != nil || adm.Outcome != serializer.Started {
		t.Fatalf("Reset: %+v %v", adm, err)
	}
	waitMachine(t, e.machine("f1"), simulator.PowerPoweringOn)
	expireLease(t, e, "f1", "A|1")
	waitLog(t, e, "[A]", "lease renewal failed; cancelling the action", "lease=A|1")
	waitLog(t, e, "[A]", "lease lost; stopping without writing results", "lease=A|1")

	done := e.waitTask(10*time.Second, adm.Task, "terminal", terminalTask)
	e.waitQuiet(10*time.Second, []string{"f1"}, nil)
	if done.State != schemas.TaskStateCompleted || !strings.Contains(done.Reason, "confirmed On after recovery") {
		t.Fatalf("task after take-over: %+v", done)
	}
	m := e.machine("f1")
	if got := bmcCommands(m); !slices.Equal(got, []string{"On:accepted"}) || m.Status().MaxInFlight != 1 {
		t.Fatalf("BMC commands %v (MaxInFlight %d), want the one On", got, m.Status().MaxInFlight)
	}
	if evs := eventsBy(e, "f1", "A|1"); !slices.Equal(evs, []string{"begin", "command"}) {
		t.Fatalf("events under the lost lease %v, want its begin and command", evs)
	}
	if evs := eventsBy(e, "f1", "A|2"); !slices.Equal(evs, []string{"begin", "finish"}) {
		t.Fatalf("events under the new lease %v, want begin and finish", evs)
	}
	settled(t, e, "f1", schemas.PowerOn)
}

func terminalTask(tr serializer.TaskRecord) bool { return tr.Terminal() }

// settled checks the machine, the observed power in Redis and the desired
// state of node agree on p, with nothing left in its slots.
func settled(t *testing.T, e *env, node string, p schemas.PowerState) {
	t.Helper()
	if got := e.machine(node).PowerState(); got != string(p) {
		t.Fatalf("machine %s, want %s", got, p)
	}
	ns := e.state(node)
	if ns.Desired != p || ns.Power != p || ns.Slots.Now.Task != "" || ns.Issued != "" {
		t.Fatalf("node state %+v, want idle, desired and power %s", ns, p)
	}
}
