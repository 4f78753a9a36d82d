package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	amtbackend "github.com/fishgate/fishgate/backends/amt"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/simulator"
)

func TestNodeID(t *testing.T) {
	for _, tc := range []struct {
		i, n int
		want string
	}{{1, 8, "node01"}, {8, 8, "node08"}, {99, 99, "node99"}, {7, 100, "node007"}, {100, 100, "node100"}, {42, 1000, "node0042"}} {
		if got := nodeID(tc.i, tc.n); got != tc.want {
			t.Errorf("nodeID(%d, %d) = %s, want %s", tc.i, tc.n, got, tc.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe to write from the command and read from
// the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startBmcsim runs bmcsim with args until ctx ends. It returns the control
// API's URL once bmcsim is up, its output, and where its exit error arrives.
func startBmcsim(t *testing.T, ctx context.Context, args ...string) (control string, out *syncBuffer, done <-chan error) {
	t.Helper()
	ready := make(chan string, 1)
	cmd := newCommand(func(u string) { ready <- u })
	out = &syncBuffer{}
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SetArgs(args)
	exited := make(chan error, 1)
	go func() { exited <- cmd.ExecuteContext(ctx) }()
	select {
	case control = <-ready:
	case err := <-exited:
		t.Fatalf("bmcsim exited early: %v\n%s", err, out.String())
	case <-time.After(5 * time.Second):
		t.Fatal("bmcsim did not start")
	}
	return control, out, exited
}

// waitPowerState polls the control API for node id until it reads state or
// 3s pass, and returns the last view read.
func waitPowerState(t *testing.T, control, id, state string) simulator.NodeView {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	var v simulator.NodeView
	for {
		getJSON(t, control+"/nodes/"+id, &v)
		if v.PowerState == state || time.Now().After(deadline) {
			return v
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRun starts bmcsim with three nodes, powers one on through Redfish,
// reads it back through the control API, and stops it with the context
// (as SIGINT does).
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	control, out, done := startBmcsim(t, ctx, "--nodes", "3", "--control", "127.0.0.1:0", "--delay-min", "10ms", "--delay-max", "20ms",
		"--user", "root", "--password", "calvin", "--seed", "5", "--log-level", "warn")

	var nodes []simulator.NodeView
	getJSON(t, control+"/nodes", &nodes)
	if len(nodes) != 3 || nodes[0].ID != "node01" || nodes[2].ID != "node03" {
		t.Fatalf("nodes %+v", nodes)
	}
	for _, n := range nodes {
		if !strings.Contains(out.String(), n.ID+"\t"+n.RedfishURL+n.SystemPath) {
			t.Errorf("output lacks %s's URL:\n%s", n.ID, out.String())
		}
	}
	if !strings.Contains(out.String(), "control\t"+control+"/nodes") {
		t.Errorf("output lacks the control URL:\n%s", out.String())
	}

	// Power node02 on with the flags' credentials.
	req, _ := http.NewRequest("POST", nodes[1].RedfishURL+nodes[1].SystemPath+"/Actions/ComputerSystem.Reset",
		strings.NewReader(`{"ResetType":"On"}`))
	req.SetBasicAuth("root", "calvin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("Reset: %d", resp.StatusCode)
	}
	n2 := waitPowerState(t, control, "node02", "On")
	if n2.PowerState != "On" || n2.PowerOnCount != 1 || n2.CommandCount != 1 {
		t.Errorf("node02 %+v", n2)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("bmcsim: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("bmcsim did not stop")
	}
	if _, err := http.Get(control + "/nodes"); err == nil {
		t.Error("control API still up after shutdown")
	}
	if _, err := http.Get(nodes[0].RedfishURL + "/redfish/v1"); err == nil {
		t.Error("node01 still up after shutdown")
	}
}

// TestRunAMT starts nodes with --amt and drives one through its AMT front
// with the AMT backend.
func TestRunAMT(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	control, out, done := startBmcsim(t, ctx, "--nodes", "2", "--amt", "--control", "127.0.0.1:0", "--delay-min", "5ms", "--delay-max", "10ms",
		"--user", "admin", "--password", "Amt-P4ss", "--log-level", "warn")
	var n2 simulator.NodeView
	getJSON(t, control+"/nodes/node02", &n2)
	if !strings.HasPrefix(n2.AMTURL, "http://127.0.0.1:") || !strings.Contains(out.String(), "node02\t"+n2.RedfishURL+n2.SystemPath+"\t"+n2.AMTURL+"/wsman") {
		t.Fatalf("AMT URL %q not in the view or the output:\n%s", n2.AMTURL, out.String())
	}
	b, err := amtbackend.New(amtbackend.Config{Endpoint: n2.AMTURL, User: "admin", Password: "Amt-P4ss", RetryBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Reset(ctx, schemas.ResetOn); err != nil {
		t.Fatal(err)
	}
	n2 = waitPowerState(t, control, "node02", "On")
	if n2.PowerState != "On" || len(n2.Commands) != 1 || n2.Commands[0].Protocol != "amt" || n2.Commands[0].Action != "On (2)" {
		t.Errorf("node02 %+v", n2)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--nodes", "0"},
		{"--delay-min", "2s", "--delay-max", "1s"},
		{"--host", "localhost"},
		{"--base-port", "65535", "--nodes", "2"},
		{"--amt", "--amt-base-port", "65535", "--nodes", "2"},
		{"--log-level", "loud"},
		{"extra"},
	} {
		cmd := newCommand(nil)
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append(args, "--control", "127.0.0.1:0"))
		if err := cmd.ExecuteContext(t.Context()); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
