package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/simulator"
)

// TestWaitStatusLine: the terminal's line and the timeout's report, from
// what the events showed.
func TestWaitStatusLine(t *testing.T) {
	w := &watch{node: "n1", states: []string{"Off", "On"}}
	var s seen
	w.startPower("Off")
	eventSeen(&s, w, record("/redfish/v1/Systems/n1", "ResourceEvent.1.4.ResourcePoweringOn", ""))
	eventSeen(&s, w, record("/redfish/v1/TaskService/Tasks/n1.t", "TaskEvent.1.0.TaskStarted", ""))
	p := record("/redfish/v1/TaskService/Tasks/n1.t", "TaskEvent.1.0.TaskProgressChanged", "")
	p.MessageArgs = []string{"n1.t", "40"}
	eventSeen(&s, w, p)
	if got, want := statusLine(w, s, 12300*time.Millisecond), "node n1: waiting for On (seen Off) | PowerState PoweringOn | task n1.t Running 40% | 12s"; got != want {
		t.Errorf("status line\n got %q\nwant %q", got, want)
	}
	s.phase = "waiting for the node to read On"
	if got, want := timeoutReport(w, s, 10*time.Second), "timed out after 10s: node n1: PowerState PoweringOn, waiting for On (seen Off); task n1.t Running 40%: waiting for the node to read On"; got != want {
		t.Errorf("timeout report\n got %q\nwant %q", got, want)
	}
	if got, want := timeoutReport(&watch{node: "n2", states: []string{"On"}}, seen{}, time.Second), "timed out after 1s: node n2: PowerState unknown, waiting for On; no task running"; got != want {
		t.Errorf("nothing seen\n got %q\nwant %q", got, want)
	}
	// a wait for a task: another task's events do not count
	tw := &watch{task: "n1.t"}
	s = seen{}
	eventSeen(&s, tw, record("/redfish/v1/TaskService/Tasks/n1.u", "TaskEvent.1.0.TaskStarted", ""))
	eventSeen(&s, tw, record("/redfish/v1/TaskService/Tasks/n1.t", "TaskEvent.1.0.TaskCompletedOK", ""))
	if got, want := statusLine(tw, s, 0), "task n1.t Completed 100% | 0s"; got != want {
		t.Errorf("task status line\n got %q\nwant %q", got, want)
	}
}

// TestWaitProgress (issue 14 item 6): off a terminal a wait prints only
// its outcome (no status line on stderr); on a timeout it says what it saw
// last, the node's PowerState and the task's state; a terminal's status
// line carries the task, its state and PowerState.
func TestWaitProgress(t *testing.T) {
	d := startDemo(t, 2)
	run := func(args ...string) cliResult { return cli(t, d.URL(), d.User, d.Pass, args...) }
	r := run("power", "on", "--node", "node01", "--wait")
	if r.code != 0 || !strings.Contains(r.out, "Completed") || r.stderr != "" {
		t.Fatalf("power on --wait off a terminal: %+v (want the outcome on stdout, nothing on stderr)", r)
	}
	r = run("wait", "--node", "node01", "--state", "Off", "--timeout", "300ms")
	if r.code != exitTimeout || r.out != "" || strings.Contains(r.stderr, "\r") ||
		!strings.Contains(r.stderr, "fishgate: timed out after ") || !strings.Contains(r.stderr, ": node node01: PowerState On, waiting for Off; no task running") {
		t.Errorf("wait that times out: %+v", r)
	}

	// A BMC that answers after 4 s: the task is still running when the
	// wait times out, and the report says so.
	n, _ := d.Fleet.Node("node02")
	n.Machine().SetFaults(simulator.Faults{Hang: 4 * time.Second})
	r = run("power", "on", "--node", "node02", "--wait", "--timeout", "1s")
	if r.code != exitTimeout || !strings.Contains(r.stderr, "fishgate: timed out after ") || !strings.Contains(r.stderr, ": task node02.") ||
		!strings.Contains(r.stderr, " Running") || !strings.Contains(r.stderr, "; node node02: PowerState ") || strings.Contains(r.stderr, "\r") || strings.Contains(r.stderr, "has changed to progress") {
		t.Errorf("power on --wait that times out (the phase without the registry's text): %+v", r)
	}
	_, id, _ := strings.Cut(r.out, "task ")
	id, _, _ = strings.Cut(id, "\n")

	// As on a terminal: the status line is drawn on the writer given.
	c, err := (&clientFlags{url: d.URL(), user: d.User, password: d.Pass}).client()
	if err != nil {
		t.Fatal(err)
	}
	term := &testkit.SyncBuffer{}
	ui := &waitUI{out: term, start: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	if v := c.follow(ctx, &watch{task: id}, ui, term); v.code != exitTimeout {
		t.Fatalf("follow: %+v", v)
	}
	out := term.String()
	if !strings.Contains(out, "\rtask "+id+" Running") || !strings.Contains(out, "| PowerState ") || !strings.HasSuffix(out, "\n") {
		t.Errorf("terminal output %q", out)
	}
	n.Machine().SetFaults(simulator.Faults{})
}
