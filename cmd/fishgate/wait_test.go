package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/app/demo"
	rfbackend "github.com/fishgate/fishgate/backends/redfish"
	"github.com/fishgate/fishgate/events"
	"github.com/fishgate/fishgate/fronts/redfish"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

func record(origin, msgID, msg string) schemas.EventRecord {
	return schemas.EventRecord{MessageID: msgID, Message: msg, OriginOfCondition: &schemas.Link{ODataID: origin}}
}

// TestWatch is the wait decision as a table: starting state, events, verdict.
func TestWatch(t *testing.T) {
	sys := "/redfish/v1/Systems/n1"
	on := record(sys, "ResourceEvent.1.4.ResourcePoweredOn", "")
	off := record(sys, "ResourceEvent.1.4.ResourcePoweredOff", "")
	poweringOn := record(sys, "ResourceEvent.1.4.ResourcePoweringOn", "")
	otherOn := record("/redfish/v1/Systems/n2", "ResourceEvent.1.4.ResourcePoweredOn", "")
	failed := record(sys, "ResourceEvent.1.4.ResourceErrorsDetected", "PowerState failed")
	aborted := record("/redfish/v1/TaskService/Tasks/n1.abc", "TaskEvent.1.0.TaskAborted", "aborted")
	otherAborted := record("/redfish/v1/TaskService/Tasks/n10.abc", "TaskEvent.1.0.TaskAborted", "aborted")
	cases := []struct {
		name   string
		states []string
		start  string
		events []schemas.EventRecord
		done   bool
		code   int
	}{
		{"already there", []string{"On"}, "On", nil, true, exitOK},
		{"first of a sequence already holds", []string{"Off", "On"}, "Off", []schemas.EventRecord{on}, true, exitOK},
		{"only the first may already hold", []string{"Off", "On"}, "On", nil, false, 0},
		{"sequence seen", []string{"Off", "On"}, "On", []schemas.EventRecord{off, on}, true, exitOK},
		{"order matters", []string{"Off", "On"}, "PoweringOn", []schemas.EventRecord{on, off}, false, 0},
		{"other states do not set back", []string{"Off", "On"}, "On", []schemas.EventRecord{off, poweringOn, off, on}, true, exitOK},
		{"transitional states", []string{"PoweringOn", "On"}, "Off", []schemas.EventRecord{poweringOn, on}, true, exitOK},
		{"another node", []string{"On"}, "Off", []schemas.EventRecord{otherOn}, false, 0},
		{"node failure", []string{"Off", "On"}, "On", []schemas.EventRecord{off, failed}, true, exitFailed},
		{"task of the node aborted", []string{"On"}, "Off", []schemas.EventRecord{aborted}, true, exitFailed},
		{"task of another node aborted", []string{"On"}, "Off", []schemas.EventRecord{otherAborted}, false, 0},
		{"per-node view URIs", []string{"On"}, "Off", []schemas.EventRecord{record("/bmc/n1"+sys, "ResourceEvent.1.4.ResourcePoweredOn", "")}, true, exitOK},
	}
	for _, c := range cases {
		w := &watch{node: "n1", states: c.states}
		v := w.startPower(c.start)
		for _, e := range c.events {
			if v.done {
				break
			}
			v = w.event(e)
		}
		if v.done != c.done || v.code != c.code {
			t.Errorf("%s: %+v, want done=%v code=%d", c.name, v, c.done, c.code)
		}
	}

	tk := "/redfish/v1/TaskService/Tasks/n1.t"
	for _, c := range []struct {
		start task
		ev    schemas.EventRecord
		done  bool
		code  int
	}{
		{task{TaskState: "Completed"}, schemas.EventRecord{}, true, exitOK},
		{task{TaskState: "Exception"}, schemas.EventRecord{}, true, exitFailed},
		{task{TaskState: "Cancelled"}, schemas.EventRecord{}, true, exitFailed},
		{task{TaskState: "Running"}, record(tk, "TaskEvent.1.0.TaskCompletedOK", ""), true, exitOK},
		{task{TaskState: "Running"}, record(tk, "TaskEvent.1.0.TaskCompletedWarning", ""), true, exitOK},
		{task{TaskState: "Running"}, record(tk, "TaskEvent.1.0.TaskAborted", ""), true, exitFailed},
		{task{TaskState: "New"}, record(tk, "TaskEvent.1.0.TaskCancelled", ""), true, exitFailed},
		{task{TaskState: "Running"}, record(tk, "TaskEvent.1.0.TaskStarted", ""), false, 0},
		{task{TaskState: "Running"}, record(tk+"x", "TaskEvent.1.0.TaskCompletedOK", ""), false, 0},
	} {
		w := &watch{task: "n1.t"}
		v := w.startTask(c.start)
		if !v.done {
			v = w.event(c.ev)
		}
		if v.done != c.done || v.code != c.code {
			t.Errorf("task %s then %s: %+v, want done=%v code=%d", c.start.TaskState, c.ev.MessageID, v, c.done, c.code)
		}
	}
}

func TestPowerPlan(t *testing.T) {
	for in, want := range map[string]string{
		"on": "On", "off": "ForceOff", "soft": "GracefulShutdown", "reboot": "ForceOff,On", "cycle": "PowerCycle",
		"reset": "ForceRestart", "nmi": "Nmi", "REBOOT": "ForceOff,On", "forceon": "ForceOn", "GracefulRestart": "GracefulRestart",
	} {
		p, err := powerPlan(in)
		if err != nil || strings.Join(p, ",") != want {
			t.Errorf("%s: %v %v, want %s", in, p, err, want)
		}
	}
	if _, err := powerPlan("explode"); err == nil {
		t.Error("explode accepted")
	}
}

// startDemo runs `fishgate demo`'s assembly (embedded Redis, simulated
// BMCs, the gateway with its EventService) on free loopback ports.
func startDemo(t *testing.T, nodes int) *demo.Demo {
	t.Helper()
	return startDemoWith(t, nodes, false)
}

// startDemoWith is startDemo, with the gateway's IPMI fronts when ipmi.
func startDemoWith(t *testing.T, nodes int, ipmi bool) *demo.Demo {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := demo.Start(ctx, demo.Options{Listen: "127.0.0.1:0", SimListen: "127.0.0.1:0", Nodes: nodes, IPMIFront: ipmi,
		DelayMin: 20 * time.Millisecond, DelayMax: 80 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-served:
		case <-time.After(20 * time.Second):
			t.Error("demo did not stop")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(d.URL() + "/redfish/v1")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo at %s did not answer", d.URL())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type cliResult struct {
	code        int
	out, stderr string
}

// cli runs a client command against url as admin.
func cli(t *testing.T, url, user, pass string, args ...string) cliResult {
	t.Helper()
	args = append(args, "--url", url, "--user", user, "--password", pass)
	code, out, errOut := runCLI(t, args...)
	return cliResult{code, out, errOut}
}

func TestWaitAndPowerAgainstDemo(t *testing.T) {
	d := startDemo(t, 2)
	run := func(args ...string) cliResult { return cli(t, d.URL(), d.User, d.Pass, args...) }

	if r := run("power", "on", "--node", "node01", "--wait"); r.code != 0 || !strings.Contains(r.out, "Completed") {
		t.Fatalf("power on --wait: %+v", r)
	}
	// A reboot, watched from the start: Off, then On. The reboot is sent
	// once the wait is listening; the BMC answers each command only after
	// 300 ms.
	n, _ := d.Fleet.Node("node01")
	n.Machine().SetFaults(simulator.Faults{Hang: 300 * time.Millisecond})
	waited := make(chan cliResult, 1)
	start := time.Now()
	testkit.WaitFor(t, 60*time.Second, "the power on's SSE stream closed", func() (bool, string) {
		n := d.Gateway.SSEStreams()
		return n == 0, fmt.Sprint(n, " SSE streams")
	})
	go func() { waited <- run("wait", "--node", "node01", "--state", "Off,On", "--timeout", "60s") }()
	testkit.WaitFor(t, 60*time.Second, "fishgate wait listening", func() (bool, string) {
		n := d.Gateway.SSEStreams()
		return n == 1, fmt.Sprint(n, " SSE streams")
	})
	r := run("power", "reboot", "--node", "node01", "--wait", "--timeout", "30s")
	if r.code != 0 || strings.Count(r.out, "Completed") != 2 || !strings.Contains(r.out, ": ForceOff: task node01.") {
		t.Fatalf("power reboot --wait: %+v", r)
	}
	w := <-waited
	if w.code != 0 || !strings.Contains(w.out, "node node01: Off,On") {
		t.Fatalf("wait Off,On: %+v", w)
	}
	if time.Since(start) < 600*time.Millisecond {
		t.Errorf("the reboot took %v: the BMC's 2 x 300 ms were not waited for", time.Since(start))
	}
	st := n.Machine().Status()
	if st.PowerOffCount != 1 || st.PowerOnCount != 2 {
		t.Errorf("BMC: %d offs, %d ons; want 1 and 2", st.PowerOffCount, st.PowerOnCount)
	}
	n.Machine().SetFaults(simulator.Faults{})
	_, lastTask, _ := strings.Cut(r.out, "node node01: On: task ")
	lastTask, _, _ = strings.Cut(lastTask, "\n")

	if r := run("wait", "--node", "node01", "--state", "on"); r.code != 0 {
		t.Errorf("wait for a state that holds: %+v", r)
	}
	if r := cli(t, d.URL()+"/bmc/node01", d.User, d.Pass, "wait", "--node", "node01", "--state", "On"); r.code != 0 {
		t.Errorf("wait through the per-node view: %+v", r)
	}
	if r := run("wait", "--task", lastTask); r.code != 0 || !strings.Contains(r.out, "Completed") {
		t.Errorf("wait --task %s (completed): %+v", lastTask, r)
	}
	begin := time.Now()
	if r := run("wait", "--node", "node02", "--state", "On", "--timeout", "300ms"); r.code != 1 || !strings.Contains(r.stderr, "timed out") {
		t.Errorf("wait that times out: %+v", r)
	}
	if el := time.Since(begin); el < 300*time.Millisecond || el > 10*time.Second {
		t.Errorf("timeout after %v", el)
	}
	for _, args := range [][]string{
		{"wait", "--state", "On"},
		{"wait", "--node", "node01"},
		{"wait", "--node", "node01", "--state", "Sideways"},
		{"wait", "--node", "node01", "--task", "x", "--state", "On"},
		{"wait", "--node", "nope", "--state", "On"},
		{"wait", "--task", "node01.nope"},
		{"wait", "--node", "node01", "--state", "On", "--bogus"},
		{"power", "explode", "--node", "node01"},
		{"power", "on"},
		{"power", "on", "--node", "nope"},
	} {
		if r := run(args...); r.code != exitError {
			t.Errorf("%v: exit %d (%q), want %d", args, r.code, r.stderr, exitError)
		}
	}
	if r := cli(t, d.URL(), d.User, "wrong", "wait", "--node", "node01", "--state", "On"); r.code != exitError || !strings.Contains(r.stderr, "401") {
		t.Errorf("wrong password: %+v", r)
	}
}

// TestWaitReportsFailure: a node whose BMC ignores every command: its task
// ends in Exception after the retries, and waiters are told (exit 2).
func TestWaitReportsFailure(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rdb := testkit.MiniRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	cfg := config.Default()
	bo := cfg.EventsOptions()
	bo.Redis, bo.ReplicaID, bo.Logger, bo.PollInterval = rdb, "test", log, 100*time.Millisecond
	bus, err := events.New(bo)
	if err != nil {
		t.Fatal(err)
	}
	bus.Start(ctx)
	fleet := simulator.NewFleet(log)
	sn, err := fleet.Add(simulator.NodeSpec{ID: "n1", Machine: simulator.MachineConfig{InitialPower: "Off"}})
	if err != nil {
		t.Fatal(err)
	}
	sn.Machine().SetFaults(simulator.Faults{Ignore: true})
	b, err := rfbackend.New(rfbackend.Config{Endpoint: sn.URL(), User: "admin", Password: "password", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	so := cfg.SerializerOptions()
	so.Redis, so.ReplicaID, so.Logger, so.Events = rdb, "test", log, bus
	so.VerifyTimeout, so.VerifyInterval, so.Retries, so.RetryBackoff = 300*time.Millisecond, 20*time.Millisecond, 1, 20*time.Millisecond
	svc, err := serializer.New([]serializer.Node{{ID: "n1", Backend: b}}, so)
	if err != nil {
		t.Fatal(err)
	}
	svc.Start(ctx)
	api, err := redfish.New(redfish.Options{Nodes: svc, Redis: rdb, Logger: log, Events: bus,
		Accounts: []redfish.Account{{User: "admin", Password: "pw", Role: redfish.RoleAdministrator}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(func() { cancel(); bus.Close(); srv.Close(); svc.Close(); fleet.Close() })
	run := func(args ...string) cliResult { return cli(t, srv.URL, "admin", "pw", args...) }

	waited := make(chan cliResult, 1)
	go func() { waited <- run("wait", "--node", "n1", "--state", "On", "--timeout", "30s") }()
	time.Sleep(100 * time.Millisecond) // connected; the task needs 2 x 300 ms to fail anyway
	r := run("power", "on", "--node", "n1", "--wait", "--timeout", "30s")
	if r.code != exitFailed || !strings.Contains(r.stderr, "Exception") {
		t.Errorf("power on --wait on a node that ignores commands: %+v", r)
	}
	w := <-waited
	if w.code != exitFailed || !strings.Contains(w.stderr, "n1") {
		t.Errorf("wait on a node that ignores commands: %+v", w)
	}
	id := r.out[strings.Index(r.out, "task ")+5:]
	id = strings.TrimSpace(id[:strings.IndexByte(id, '\n')])
	if r := run("wait", "--task", id); r.code != exitFailed {
		t.Errorf("wait --task %s (Exception): %+v", id, r)
	}
	if n := sn.Machine().Status().CommandCount; n != 2 {
		t.Errorf("BMC saw %d commands, want 2 (1 + 1 retry)", n)
	}
}
