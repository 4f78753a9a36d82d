package serializer_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// Worker behaviour on one node (docs/architecture.md#actions): retries,
// verification, abort, supersede, and commands that need no BMC call. Each
// test drives one serializer replica over one simulated Redfish BMC and
// checks the task record, the node's state in Redis and the BMC's own command
// log.

const node1 = "n1"

func oneNode(t *testing.T, m simulator.MachineConfig, tweak func(*serializer.Options)) (*env, *serializer.Service) {
	t.Helper()
	e := newEnv(t, testkit.MiniRedis(t), []simNode{{ID: node1, Machine: m}})
	o := fastOptions()
	if tweak != nil {
		tweak(&o)
	}
	return e, e.addReplica("r1", o, nil)
}

// reset admits r on node1 and checks the outcome.
func reset(t *testing.T, svc *serializer.Service, r schemas.ResetType, want serializer.Outcome) serializer.Admission {
	t.Helper()
	a, err := svc.Reset(context.Background(), node1, r, "test "+string(r))
	if err != nil {
		t.Fatalf("Reset %s: %v", r, err)
	}
	if a.Outcome != want {
		t.Fatalf("Reset %s: outcome %s, want %s (%+v)", r, a.Outcome, want, a)
	}
	return a
}

func terminal(tr serializer.TaskRecord) bool { return tr.Terminal() }

// waitMachine waits until the machine shows power state p.
func waitMachine(t *testing.T, m *simulator.Machine, p string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for m.PowerState() != p {
		if time.Now().After(deadline) {
			t.Fatalf("machine never showed %s (now %s)", p, m.PowerState())
		}
		time.Sleep(time.Millisecond)
	}
}

func wantCommands(t *testing.T, m *simulator.Machine, want ...string) {
	t.Helper()
	if got := bmcCommands(m); !slices.Equal(got, want) {
		t.Fatalf("BMC commands %v, want %v", got, want)
	}
	if st := m.Status(); st.MaxInFlight > 1 {
		t.Fatalf("MaxInFlight %d: two commands overlapped on the BMC", st.MaxInFlight)
	}
}

// settledAs checks that the machine, the last observed power in Redis and
// the node's desired state agree on p.
func settledAs(t *testing.T, e *env, p schemas.PowerState) {
	t.Helper()
	if got := e.machine(node1).PowerState(); got != string(p) {
		t.Fatalf("machine power %s, want %s", got, p)
	}
	ns := e.state(node1)
	if ns.Desired != p || ns.Power != p {
		t.Fatalf("node state desired=%s power=%s, want both %s", ns.Desired, ns.Power, p)
	}
}

func TestWorkerRetriesAFailingCommand(t *testing.T) {
	e, svc := oneNode(t, simulator.MachineConfig{DelayMin: 20 * time.Millisecond, DelayMax: 40 * time.Millisecond,
		Faults: simulator.Faults{FailFirst: 2}}, func(o *serializer.Options) { o.Retries = 2 })
	a := reset(t, svc, schemas.ResetOn, serializer.Started)
	e.waitQuiet(10*time.Second, []string{node1}, []string{a.Task})
	tr := e.task(a.Task)
	if tr.State != schemas.TaskStateCompleted || tr.Status != "OK" || !strings.Contains(tr.Reason, "after 3 attempts") {
		t.Fatalf("task %+v: want Completed OK \"... after 3 attempts\"", tr)
	}
	wantCommands(t, e.machine(node1), "On:failed", "On:failed", "On:accepted")
	settledAs(t, e, schemas.PowerOn)
}

func TestWorkerGivesUpWhenTheNodeIgnoresCommands(t *testing.T) {
	e, svc := oneNode(t, simulator.MachineConfig{Faults: simulator.Faults{Ignore: true}}, func(o *serializer.Options) {
		o.Retries = 2
		o.VerifyTimeout = 150 * time.Millisecond
	})
	a := reset(t, svc, schemas.ResetOn, serializer.Started)
	e.waitQuiet(10*time.Second, []string{node1}, []string{a.Task})
	tr := e.task(a.Task)
	if tr.State != schemas.TaskStateException || tr.Status != "Critical" {
		t.Fatalf("task %+v: want Exception Critical", tr)
	}
	for _, part := range []string{"did not reach On", "after 3 attempts"} {
		if !strings.Contains(tr.Reason, part) {
			t.Fatalf("reason %q does not say %q", tr.Reason, part)
		}
	}
	wantCommands(t, e.machine(node1), "On:ignored", "On:ignored", "On:ignored")
	if p := e.machine(node1).PowerState(); p != simulator.PowerOff {
		t.Fatalf("machine %s, want Off", p)
	}
}

func TestWorkerDeleteOfARunningTask(t *testing.T) {
	e, svc := oneNode(t, simulator.MachineConfig{DelayMin: 300 * time.Millisecond, DelayMax: 300 * time.Millisecond}, nil)
	a := reset(t, svc, schemas.ResetOn, serializer.Started)
	waitMachine(t, e.machine(node1), simulator.PowerPoweringOn) // the command is out
	res, err := svc.CancelTask(context.Background(), a.Task)
	if err != nil || res != serializer.CancelCancelling {
		t.Fatalf("CancelTask: %v %v, want cancelling", res, err)
	}
	tr := e.waitTask(10*time.Second, a.Task, "terminal", terminal)
	if tr.State != schemas.TaskStateCancelled || !strings.Contains(tr.Reason, "cancelled by a client (DELETE)") {
		t.Fatalf("task %+v: want Cancelled by a client", tr)
	}
	e.waitQuiet(10*time.Second, []string{node1}, nil)
	// The On could not be unsent: the node settled On, and the desired
	// state follows what was observed (docs/architecture.md#desired-state).
	wantCommands(t, e.machine(node1), "On:accepted")
	settledAs(t, e, schemas.PowerOn)
	if !strings.Contains(tr.Reason, "the node is On") {
		t.Fatalf("reason %q does not report the observed state", tr.Reason)
	}
}

func TestWorkerDeleteOfAWaitingTask(t *testing.T) {
	e, svc := oneNode(t, simulator.MachineConfig{DelayMin: 200 * time.Millisecond, DelayMax: 200 * time.Millisecond}, nil)
	on := reset(t, svc, schemas.ResetOn, serializer.Started)
	waiting := reset(t, svc, schemas.ResetGracefulRestart, serializer.Queued)
	res, err := svc.CancelTask(context.Background(), waiting.Task)
	if err != nil || res != serializer.CancelDropped {
		t.Fatalf("CancelTask: %v %v, want dropped", res, err)
	}
	// Dropped at once, not at the end of the running action.
	tr := e.task(waiting.Task)
	if tr.State != schemas.TaskStateCancelled || !strings.Contains(tr.Reason, "before it started") {
		t.Fatalf("waiting task right after DELETE: %+v, want Cancelled before it started", tr)
	}
	if tr := e.task(on.Task); tr.Terminal() {
		t.Fatalf("the running task ended with the DELETE of another: %+v", tr)
	}
	e.waitQuiet(10*time.Second, []string{node1}, []string{on.Task})
	if tr := e.task(on.Task); tr.State != schemas.TaskStateCompleted {
		t.Fatalf("running task %+v, want Completed", tr)
	}
	if tr := e.task(waiting.Task); tr.State != schemas.TaskStateCancelled || tr.Start != 0 || tr.Issued != 0 {
		t.Fatalf("dropped task %+v: it must never start", tr)
	}
	wantCommands(t, e.machine(node1), "On:accepted") // the restart was never sent
	settledAs(t, e, schemas.PowerOn)
}

func TestWorkerRestartsAreVerifiedOn(t *testing.T) {
	for _, tc := range []struct {
		r        schemas.ResetType
		initial  string
		offs     int // transitions into Off the restart must have made
		commands []string
	}{
		{schemas.ResetForceRestart, simulator.PowerOff, 0, []string{"ForceRestart:accepted"}},
		{schemas.ResetGracefulRestart, simulator.PowerOff, 0, []string{"GracefulRestart:accepted"}},
		{schemas.ResetPowerCycle, simulator.PowerOff, 0, []string{"PowerCycle:accepted"}},
		{schemas.ResetPowerCycle, simulator.PowerOn, 1, []string{"PowerCycle:accepted"}},
		{schemas.ResetForceRestart, simulator.PowerOn, 1, []string{"ForceRestart:accepted"}},
	} {
		t.Run(string(tc.r)+"From"+tc.initial, func(t *testing.T) {
			e, svc := oneNode(t, simulator.MachineConfig{DelayMin: 40 * time.Millisecond, DelayMax: 80 * time.Millisecond, InitialPower: tc.initial}, nil)
			a := reset(t, svc, tc.r, serializer.Started)
			e.waitQuiet(10*time.Second, []string{node1}, []string{a.Task})
			tr := e.task(a.Task)
			if tr.State != schemas.TaskStateCompleted || !strings.Contains(tr.Reason, "On confirmed by the BMC") {
				t.Fatalf("task %+v: want Completed, On confirmed", tr)
			}
			wantCommands(t, e.machine(node1), tc.commands...)
			st := e.machine(node1).Status()
			if st.PowerOffCount != tc.offs || st.PowerOnCount != 1 {
				t.Fatalf("machine went Off %d and On %d times, want %d and 1", st.PowerOffCount, st.PowerOnCount, tc.offs)
			}
			settledAs(t, e, schemas.PowerOn)
		})
	}
}

func TestWorkerOnWhenAlreadyOnSendsNothing(t *testing.T) {
	e, svc := oneNode(t, simulator.MachineConfig{InitialPower: simulator.PowerOn}, nil)
	a := reset(t, svc, schemas.ResetOn, serializer.Started)
	e.waitQuiet(10*time.Second, []string{node1}, []string{a.Task})
	tr := e.task(a.Task)
	if tr.State != schemas.TaskStateCompleted || !strings.Contains(tr.Reason, "no command sent") {
		t.Fatalf("task %+v: want Completed, no command sent", tr)
	}
	if n := e.machine(node1).Status().CommandCount; n != 0 {
		t.Fatalf("the BMC received %d commands, want none: %v", n, bmcCommands(e.machine(node1)))
	}
	settledAs(t, e, schemas.PowerOn)
}

func TestWorkerNmiCompletesOnceAccepted(t *testing.T) {
	e, svc := oneNode(t, simulator.MachineConfig{InitialPower: simulator.PowerOn}, nil)
	a := reset(t, svc, schemas.ResetNmi, serializer.Started)
	e.waitQuiet(10*time.Second, []string{node1}, []string{a.Task})
	tr := e.task(a.Task)
	if tr.State != schemas.TaskStateCompleted || !strings.Contains(tr.Reason, "Nmi accepted by the BMC") {
		t.Fatalf("task %+v: want Completed, Nmi accepted", tr)
	}
	wantCommands(t, e.machine(node1), "Nmi:accepted")
	if p := e.machine(node1).PowerState(); p != simulator.PowerOn {
		t.Fatalf("machine %s after Nmi, want On", p)
	}
}

func TestWorkerForceOffSupersedesARunningOn(t *testing.T) {
	e, svc := oneNode(t, simulator.MachineConfig{DelayMin: 300 * time.Millisecond, DelayMax: 300 * time.Millisecond}, nil)
	on := reset(t, svc, schemas.ResetOn, serializer.Started)
	waitMachine(t, e.machine(node1), simulator.PowerPoweringOn)
	off := reset(t, svc, schemas.ResetForceOff, serializer.Queued)
	if !off.CancelNow {
		t.Fatalf("ForceOff did not cancel the running On: %+v", off)
	}
	e.waitQuiet(10*time.Second, []string{node1}, []string{on.Task, off.Task})
	ton, toff := e.task(on.Task), e.task(off.Task)
	if ton.State != schemas.TaskStateCancelled || !strings.Contains(ton.Reason, "superseded by ForceOff") {
		t.Fatalf("On task %+v: want Cancelled, superseded by ForceOff", ton)
	}
	if toff.State != schemas.TaskStateCompleted || !strings.Contains(toff.Reason, "Off confirmed by the BMC") {
		t.Fatalf("ForceOff task %+v: want Completed, Off confirmed", toff)
	}
	if toff.Start < ton.End {
		t.Fatalf("ForceOff started (%d) before the On ended (%d)", toff.Start, ton.End)
	}
	wantCommands(t, e.machine(node1), "On:accepted", "ForceOff:accepted")
	settledAs(t, e, schemas.PowerOff)
}

func TestWorkerForceOffSupersedesARestartInItsDarkPhase(t *testing.T) {
	// From On, a ForceRestart goes PoweringOff (200ms), Off (200ms),
	// PoweringOn (400ms), On. The ForceOff arrives while the node is Off on
	// its way back On: Off is not where the restart settles, so the ForceOff
	// must wait for it and then really power the node off.
	e, svc := oneNode(t, simulator.MachineConfig{DelayMin: 800 * time.Millisecond, DelayMax: 800 * time.Millisecond, InitialPower: simulator.PowerOn}, nil)
	restart := reset(t, svc, schemas.ResetForceRestart, serializer.Started)
	waitMachine(t, e.machine(node1), simulator.PowerPoweringOff)
	waitMachine(t, e.machine(node1), simulator.PowerOff)
	off := reset(t, svc, schemas.ResetForceOff, serializer.Queued)
	if !off.CancelNow {
		t.Fatalf("ForceOff did not cancel the running restart: %+v", off)
	}
	e.waitQuiet(10*time.Second, []string{node1}, []string{restart.Task, off.Task})
	if tr := e.task(restart.Task); tr.State != schemas.TaskStateCancelled || !strings.Contains(tr.Reason, "the node is On") {
		t.Fatalf("restart task %+v: want Cancelled once the node was back On", tr)
	}
	if tr := e.task(off.Task); tr.State != schemas.TaskStateCompleted || !strings.Contains(tr.Reason, "Off confirmed by the BMC") {
		t.Fatalf("ForceOff task %+v: want Completed, Off confirmed", tr)
	}
	wantCommands(t, e.machine(node1), "ForceRestart:accepted", "ForceOff:accepted")
	settledAs(t, e, schemas.PowerOff)
}

// TestWorkerIgnoredRestartIsAWarning: a BMC that accepts ForceRestart,
// PowerCycle or GracefulRestart and does nothing (issue 9: such restarts
// ended Completed, OK, in 0.4 s). With no evidence that the node restarted
// (never seen outside On) the task ends Completed with a Warning saying
// so, and the restart is not sent again (a second one could be real).
func TestWorkerIgnoredRestartIsAWarning(t *testing.T) {
	for _, rt := range []schemas.ResetType{schemas.ResetForceRestart, schemas.ResetPowerCycle, schemas.ResetGracefulRestart} {
		t.Run(string(rt), func(t *testing.T) {
			e, svc := oneNode(t, simulator.MachineConfig{InitialPower: simulator.PowerOn, Faults: simulator.Faults{Ignore: true}}, func(o *serializer.Options) {
				o.SoftOffTimeout = time.Second // the evidence window of a native GracefulRestart
			})
			a := reset(t, svc, rt, serializer.Started)
			tr := e.waitTask(20*time.Second, a.Task, "terminal", terminal)
			if tr.State != schemas.TaskStateCompleted || tr.Status != "Warning" || !strings.Contains(tr.Reason, "not seen going through Off") {
				t.Fatalf("task %s %s: %s; want Completed, Warning, no evidence", tr.State, tr.Status, tr.Reason)
			}
			wantCommands(t, e.machine(node1), string(rt)+":ignored")
		})
	}
}

// TestWorkerRestartSeenThroughOff: a restart whose Off phase the power
// reads see is Completed, OK, and says so.
func TestWorkerRestartSeenThroughOff(t *testing.T) {
	e, svc := oneNode(t, simulator.MachineConfig{InitialPower: simulator.PowerOn, DelayMin: 200 * time.Millisecond, DelayMax: 200 * time.Millisecond}, nil)
	a := reset(t, svc, schemas.ResetPowerCycle, serializer.Started)
	tr := e.waitTask(20*time.Second, a.Task, "terminal", terminal)
	if tr.State != schemas.TaskStateCompleted || tr.Status != "OK" || !strings.Contains(tr.Reason, "seen going through Off") {
		t.Fatalf("task %s %s: %s", tr.State, tr.Status, tr.Reason)
	}
	wantCommands(t, e.machine(node1), "PowerCycle:accepted")
}

// TestWorkerSoftOffTimeout: an OS that ignores the ACPI request. The soft
// off is sent once and bounded by soft_off_timeout (issue 9: about 30
// minutes with default settings before); then the node's
// soft_off_fallback decides: fail, or force it off.
func TestWorkerSoftOffTimeout(t *testing.T) {
	for _, fallback := range []string{"fail", "force"} {
		t.Run(fallback, func(t *testing.T) {
			e, svc := oneNode(t, simulator.MachineConfig{InitialPower: simulator.PowerOn, Faults: simulator.Faults{NeverFinishSoftOff: true}}, func(o *serializer.Options) {
				o.SoftOffTimeout = 500 * time.Millisecond
				o.SoftOffFallback = fallback
			})
			a := reset(t, svc, schemas.ResetGracefulShutdown, serializer.Started)
			tr := e.waitTask(20*time.Second, a.Task, "terminal", terminal)
			switch fallback {
			case "fail":
				if tr.State != schemas.TaskStateException || !strings.Contains(tr.Reason, "soft_off_timeout") {
					t.Fatalf("task %s: %s", tr.State, tr.Reason)
				}
				wantCommands(t, e.machine(node1), "GracefulShutdown:accepted")
			case "force":
				if tr.State != schemas.TaskStateCompleted || tr.Status != "Warning" || !strings.Contains(tr.Reason, "forced off") {
					t.Fatalf("task %s %s: %s", tr.State, tr.Status, tr.Reason)
				}
				wantCommands(t, e.machine(node1), "GracefulShutdown:accepted", "ForceOff:accepted")
				settledAs(t, e, schemas.PowerOff)
			}
		})
	}
}

// TestWorkerRestartConfirmedByTheBMCsTask: a Redfish BMC that answers a
// restart with a task, followed until it completed: the BMC's own word is
// the evidence, although the restart is too quick for the power reads to
// see it go through Off.
func TestWorkerRestartConfirmedByTheBMCsTask(t *testing.T) {
	async := protocol{name: "redfish", front: func(s *simulator.NodeSpec) { s.AsyncReset = true }, open: redfishProtocol.open}
	e := newEnvOver(t, testkit.MiniRedis(t), []simNode{{ID: node1, Machine: simulator.MachineConfig{InitialPower: simulator.PowerOn}}}, async)
	svc := e.addReplica("r1", fastOptions(), nil)
	a := reset(t, svc, schemas.ResetForceRestart, serializer.Started)
	tr := e.waitTask(20*time.Second, a.Task, "terminal", terminal)
	if tr.State != schemas.TaskStateCompleted || tr.Status != "OK" || !strings.Contains(tr.Reason, "the BMC reported the restart done") {
		t.Fatalf("task %s %s: %s", tr.State, tr.Status, tr.Reason)
	}
	wantCommands(t, e.machine(node1), "ForceRestart:accepted")
}
