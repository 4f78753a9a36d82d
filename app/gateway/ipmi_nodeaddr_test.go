package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/simulator"
)

// TestIPMIAtNodeAddresses (issue 16): nodes with an address of their own
// answer IPMI there, all through one UDP socket at fronts.ipmi_port:
// ipmitool -H 127.0.10.2 reaches n1, -H 127.0.10.3 reaches n2; an ipmitool
// and a Redfish client of one node share its serializer (never two
// commands at once at the machine); a reload moves and removes addresses
// on the running socket.
func TestIPMIAtNodeAddresses(t *testing.T) {
	fleet := simulator.NewFleet(nil)
	defer fleet.Close()
	sims := map[string]*simulator.Node{}
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.TLS.Disabled = true
	// mixedStorm's conflicting changes, with the commands around it, can
	// pass the flip-flop guard's default 10 a minute, which would refuse
	// the power on after it (C0h, node busy): the guard has tests of its
	// own, these are about the wiring.
	cfg.Admission.FlipLimit = 0
	cfg.Accounts = []config.Account{{User: "admin", Password: "pw"}}
	cfg.Fronts.IPMIPort, cfg.Fronts.RedfishPort = 0, 0
	for i, id := range []string{"n1", "n2"} {
		sim, err := fleet.Add(simulator.NodeSpec{ID: id, IPMIListen: "127.0.0.1:0",
			Machine: simulator.MachineConfig{DelayMin: 20 * time.Millisecond, DelayMax: 100 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		sims[id] = sim
		cfg.Nodes = append(cfg.Nodes, config.Node{ID: id, Backend: "ipmi", Address: "ipmi://" + sim.IPMIAddr(), User: "admin", Password: "password",
			IPMIUser: "ironic", IPMIPassword: "front", BMCAddress: netip.AddrFrom4([4]byte{127, 0, 10, byte(2 + i)})})
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	port := g.NodeIPMIPort()
	if port == 0 {
		t.Fatal("no IPMI port for node addresses")
	}
	at := func(host string) testkit.IPMITarget {
		return testkit.IPMITarget{Addr: net.JoinHostPort(host, strconv.Itoa(port)), User: "ironic", Password: "front"}
	}
	if got, want := g.IPMIAddr("n1"), at("127.0.10.2").Addr; got != want {
		t.Errorf("IPMIAddr(n1) %q, want %q", got, want)
	}
	wait := func(to testkit.IPMITarget, want string) {
		t.Helper()
		testkit.WaitFor(t, 30*time.Second, to.Addr+" power status: "+want, func() (bool, string) {
			r := testkit.Ipmitool(t, to, "power", "status")
			return r.Err == nil && r.Output == want, fmt.Sprintf("%q (%v)", r.Output, r.Err)
		})
	}
	wait(at("127.0.10.2"), "Chassis Power is off")
	wait(at("127.0.10.3"), "Chassis Power is off")
	testkit.MustIpmitool(t, at("127.0.10.2"), "power", "on")
	wait(at("127.0.10.2"), "Chassis Power is on")
	if p := sims["n2"].Machine().PowerState(); p != "Off" {
		t.Errorf("n2 is %s after a power on sent to n1's address", p)
	}
	testkit.MustIpmitool(t, at("127.0.10.3"), "chassis", "bootdev", "pxe")
	if b := sims["n2"].Machine().Boot(); b.Target != "Pxe" {
		t.Errorf("n2's boot %+v after bootdev pxe at its address", b)
	}

	// ipmitool at n1's address and Redfish at once: one serializer.
	mixedStorm(t, g, at("127.0.10.2"), "n1", 4)
	testkit.MustIpmitool(t, at("127.0.10.2"), "power", "on")
	wait(at("127.0.10.2"), "Chassis Power is on")
	waitNodeIdle(t, g, sims["n1"], "n1")
	if st := sims["n1"].Machine().Status(); st.MaxInFlight != 1 {
		t.Errorf("n1 MaxInFlight %d: two commands at once", st.MaxInFlight)
	}

	// Reload: n1 and n2 swap addresses.
	shared := g.ipmi.shared
	swapped := cfg
	swapped.Nodes = slices.Clone(cfg.Nodes)
	swapped.Nodes[0].BMCAddress, swapped.Nodes[1].BMCAddress = cfg.Nodes[1].BMCAddress, cfg.Nodes[0].BMCAddress
	if _, err := g.Reload(ctx, swapped); err != nil {
		t.Fatal(err)
	}
	wait(at("127.0.10.3"), "Chassis Power is on")  // n1
	wait(at("127.0.10.2"), "Chassis Power is off") // n2
	if got, want := g.IPMIAddr("n1"), at("127.0.10.3").Addr; got != want {
		t.Errorf("IPMIAddr(n1) after the swap %q, want %q", got, want)
	}

	// Reload: n2 moves to 127.0.10.4, n1 leaves; the socket stays.
	cfg2 := swapped
	cfg2.Nodes = []config.Node{swapped.Nodes[1]}
	cfg2.Nodes[0].BMCAddress = netip.MustParseAddr("127.0.10.4")
	if _, err := g.Reload(ctx, cfg2); err != nil {
		t.Fatal(err)
	}
	wait(at("127.0.10.4"), "Chassis Power is off")
	testkit.WaitFor(t, 30*time.Second, "n1's and n2's old addresses no longer served", func() (bool, string) {
		a, b := shared.Has(netip.MustParseAddr("127.0.10.2")), shared.Has(netip.MustParseAddr("127.0.10.3"))
		return !a && !b, fmt.Sprintf("127.0.10.2 served %v, 127.0.10.3 served %v", a, b)
	})
	if g.ipmi.shared != shared || g.NodeIPMIPort() != port {
		t.Error("the reload replaced the shared socket")
	}
}
