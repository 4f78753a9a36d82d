package bmclibcheck_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bmclib "github.com/bmc-toolbox/bmclib/v2"
)

// demoRun is a running `fishgate demo`.
type demoRun struct {
	nodeURL map[string]string // node id -> http://127.0.10.N:PORT
	simURL  string            // the simulator's control API
	user    string
	pass    string
}

var (
	nodeLine = regexp.MustCompile(`^\s+(node\d+)\s+redfish (http://[0-9.]+:\d+)/redfish/v1/Systems/`)
	simLine  = regexp.MustCompile(`^\s+simulator\s+(http://\S+)/nodes`)
)

// startDemo builds the fishgate command and runs `fishgate demo` with n
// Redfish nodes on free loopback ports until the test ends; it returns
// what the demo printed: each node's own URL.
func startDemo(t *testing.T, n int) *demoRun {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fishgate")
	build := exec.Command("go", "build", "-o", bin, "./cmd/fishgate")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/fishgate: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "demo", "--listen", "127.0.0.1:0", "--sim-listen", "127.0.0.1:0", "--nodes", fmt.Sprint(n),
		"--backends", "redfish", "--ipmi-front=false", "--delay-min", "10ms", "--delay-max", "50ms", "--node-redfish-port", "0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Error("fishgate demo did not stop within 30s of SIGINT")
		}
		if t.Failed() {
			t.Logf("demo stderr:\n%s", stderr.String())
		}
	})
	d := &demoRun{nodeURL: map[string]string{}, user: "admin", pass: "fishgate"}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if m := nodeLine.FindStringSubmatch(line); m != nil {
				d.nodeURL[m[1]] = m[2]
			}
			if m := simLine.FindStringSubmatch(line); m != nil {
				d.simURL = m[1]
			}
			if strings.HasPrefix(line, "Ctrl-C stops it.") {
				close(ready)
			}
		}
		exited <- cmd.Wait()
	}()
	select {
	case <-ready:
	case err := <-exited:
		exited <- err
		t.Fatalf("fishgate demo ended before printing its nodes: %v", err)
	case <-time.After(3 * time.Minute):
		t.Fatal("fishgate demo printed no node list within 3 minutes")
	}
	if len(d.nodeURL) != n || d.simURL == "" {
		t.Fatalf("demo printed node URLs %v and simulator %q", d.nodeURL, d.simURL)
	}
	return d
}

// machine is a simulated machine's state, from the simulator's control API.
type machine struct {
	PowerState    string
	PowerOnCount  int
	PowerOffCount int
	Boot          struct {
		Target  string `json:"BootSourceOverrideTarget"`
		Enabled string `json:"BootSourceOverrideEnabled"`
	}
	Commands []struct{ Action, Result string }
}

func (d *demoRun) machine(t *testing.T, id string) machine {
	t.Helper()
	resp, err := http.Get(d.simURL + "/nodes/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m machine
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// waitFor polls cond until it holds (it reports what it saw otherwise).
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s (last: %s)", what, saw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBmclibAtNodeAddress (issue 16): bmclib v2, given only the node's own
// address and port (no system name, as rufio's Machine has none), reads
// the power state, powers on, off, cycles and sets a PXE boot; each
// reaches that node's machine only.
func TestBmclibAtNodeAddress(t *testing.T) {
	d := startDemo(t, 2)
	u, err := url.Parse(d.nodeURL["node01"])
	if err != nil || !strings.HasPrefix(u.Hostname(), "127.0.10.") {
		t.Fatalf("node01 URL %q", d.nodeURL["node01"])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := bmclib.NewClient("http://"+u.Hostname(), d.user, d.pass, bmclib.WithRedfishPort(u.Port()))
	cl.Registry.Drivers = cl.Registry.For("gofish")
	if err := cl.Open(ctx); err != nil {
		t.Fatalf("bmclib Open at %s: %v", u, err)
	}
	defer cl.Close(ctx)

	power := func() string {
		st, err := cl.GetPowerState(ctx)
		if err != nil {
			t.Fatalf("bmclib GetPowerState: %v", err)
		}
		return strings.ToLower(st)
	}
	if p := power(); p != "off" {
		t.Fatalf("power status %q, want off (the demo starts machines off)", p)
	}
	set := func(state, machineState string) {
		t.Helper()
		if ok, err := cl.SetPowerState(ctx, state); err != nil || !ok {
			t.Fatalf("bmclib SetPowerState(%s): %v %v", state, ok, err)
		}
		waitFor(t, "machine "+machineState+" after "+state, func() (bool, string) {
			m := d.machine(t, "node01")
			return m.PowerState == machineState && power() == strings.ToLower(machineState), m.PowerState
		})
	}
	set("on", "On")
	set("off", "Off")
	set("on", "On")
	before := d.machine(t, "node01")
	if ok, err := cl.SetPowerState(ctx, "cycle"); err != nil || !ok {
		t.Fatalf("bmclib SetPowerState(cycle): %v %v", ok, err)
	}
	waitFor(t, "machine power-cycled", func() (bool, string) {
		m := d.machine(t, "node01")
		return m.PowerOnCount > before.PowerOnCount && m.PowerOffCount > before.PowerOffCount && m.PowerState == "On",
			fmt.Sprintf("%s, %d on, %d off", m.PowerState, m.PowerOnCount, m.PowerOffCount)
	})
	if ok, err := cl.SetBootDevice(ctx, "pxe", false, true); err != nil || !ok {
		t.Fatalf("bmclib SetBootDevice(pxe): %v %v", ok, err)
	}
	if m := d.machine(t, "node01"); m.Boot.Target != "Pxe" || m.Boot.Enabled != "Once" {
		t.Errorf("machine boot override %+v, want Pxe once", m.Boot)
	}
	// Only node01's machine was driven.
	if m := d.machine(t, "node02"); len(m.Commands) != 0 || m.PowerState != "Off" {
		t.Errorf("node02's machine was driven: %s, %+v", m.PowerState, m.Commands)
	}
}
