package gateway

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/simulator"
)

func TestIPMIWiring(t *testing.T) {
	fleet := simulator.NewFleet(nil)
	defer fleet.Close()
	sim, err := fleet.Add(simulator.NodeSpec{ID: "n1", IPMIListen: "127.0.0.1:0",
		Machine: simulator.MachineConfig{DelayMin: 20 * time.Millisecond, DelayMax: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.TLS.Disabled = true
	// mixedStorm's conflicting changes, with the commands around it, can
	// pass the flip-flop guard's default 10 a minute, which would refuse
	// the power on after it (C0h, node busy): the guard has tests of its
	// own, these are about the wiring.
	cfg.Admission.FlipLimit = 0
	cfg.Accounts = []config.Account{{User: "admin", Password: "pw"}}
	cfg.Nodes = []config.Node{{ID: "n1", Backend: "ipmi", Address: "ipmi://" + sim.IPMIAddr(), User: "admin", Password: "password",
		IPMIListen: "127.0.0.1:0", IPMIUser: "ironic", IPMIPassword: "front"}}
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	g, err := New(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	to := testkit.IPMITarget{Addr: g.IPMIAddr("n1"), User: "ironic", Password: "front"}
	// Until the gateway has read the node's power state once, its IPMI
	// front answers D5h ("not supported in present state"): waiting for a
	// status is waiting for that first read too.
	wait := func(want string) {
		t.Helper()
		testkit.WaitFor(t, 30*time.Second, "ipmitool power status: "+want, func() (bool, string) {
			r := testkit.Ipmitool(t, to, "power", "status")
			return r.Err == nil && r.Output == want, fmt.Sprintf("%q (%v); machine %+v", r.Output, r.Err, sim.Machine().Status())
		})
	}
	wait("Chassis Power is off")
	testkit.MustIpmitool(t, to, "power", "on")
	wait("Chassis Power is on")
	testkit.MustIpmitool(t, to, "chassis", "bootdev", "pxe")
	if b := sim.Machine().Boot(); b.Target != "Pxe" {
		t.Errorf("boot %+v", b)
	}
	mixedStorm(t, g, to, "n1", 6)
	testkit.MustIpmitool(t, to, "power", "on")
	wait("Chassis Power is on")
	// Every command of the storm has reached the machine and ended: the
	// node has no running or queued task and nothing is in flight.
	waitNodeIdle(t, g, sim, "n1")
	st := sim.Machine().Status()
	if st.MaxInFlight != 1 {
		t.Errorf("MaxInFlight %d", st.MaxInFlight)
	}
	var acts []string
	for _, c := range st.Commands {
		acts = append(acts, c.Protocol+" "+c.Action+":"+c.Result)
	}
	t.Logf("machine log: %s", strings.Join(acts, ", "))
}

// mixedStorm sends node id n power commands over IPMI (to) and n over
// Redfish at once, ignoring their results. Run it with the flip-flop
// guard off: its changes conflict.
func mixedStorm(t *testing.T, g *Gateway, to testkit.IPMITarget, id string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			testkit.Ipmitool(t, to, "power", []string{"off", "on", "cycle"}[i%3])
		})
		wg.Go(func() {
			rt := []string{"ForceOff", "On", "PowerCycle"}[(i+1)%3]
			req, _ := http.NewRequest("POST", g.URL()+"/redfish/v1/Systems/"+id+"/Actions/ComputerSystem.Reset", bytes.NewBufferString(`{"ResetType":"`+rt+`"}`))
			req.SetBasicAuth("admin", "pw")
			req.Header.Set("Content-Type", "application/json")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
}

// waitNodeIdle waits until node id has no running or queued task and its
// simulated machine no command in flight.
func waitNodeIdle(t *testing.T, g *Gateway, sim *simulator.Node, id string) {
	t.Helper()
	testkit.WaitFor(t, 30*time.Second, "node "+id+" idle", func() (bool, string) {
		v, err := g.nodes.View(id)
		in := sim.Machine().Status().InFlight
		return err == nil && v.State.Slots.Now.Task == "" && len(v.State.Slots.Waiting) == 0 && in == 0,
			fmt.Sprintf("slots %+v, in flight %d, err %v", v.State.Slots, in, err)
	})
}
