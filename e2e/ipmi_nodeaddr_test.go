package e2e

import (
	"fmt"
	"net"
	"path"
	"strconv"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/demo"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/simulator"
)

// TestIPMIAtDemoNodeAddresses (issue 16): the demo's node N answers
// ipmitool at 127.0.10.N on the gateway's one IPMI port for node
// addresses; a power command at node02's address reaches node02 alone, and
// one at node01's address joins the Redfish On already running for node01
// (one serializer for both fronts).
func TestIPMIAtDemoNodeAddresses(t *testing.T) {
	testkit.IpmitoolPath(t)
	g := startBackendDemo(t, demo.Options{Nodes: 2, Backends: []string{"ipmi"}, IPMIFront: true})
	port := g.nodeIPMIPort()
	if port == 0 {
		t.Fatal("the demo's gateway has no IPMI port for node addresses")
	}
	at := func(host string) testkit.IPMITarget {
		return testkit.IPMITarget{Addr: net.JoinHostPort(host, strconv.Itoa(port)), User: gwUser, Password: gwPass}
	}
	for _, host := range []string{"127.0.10.1", "127.0.10.2"} {
		waitFor(t, 30*time.Second, "power status at "+host, func() (bool, string) {
			r := testkit.Ipmitool(t, at(host), "chassis", "power", "status")
			return r.Err == nil && r.Output == "Chassis Power is off", fmt.Sprintf("%q (%v)", r.Output, r.Err)
		})
	}
	testkit.MustIpmitool(t, at("127.0.10.2"), "chassis", "power", "on")
	waitFor(t, 30*time.Second, "node02 on", func() (bool, string) {
		p := g.machine(t, "node02").Status().PowerState
		return p == simulator.PowerOn, p
	})
	if p := g.machine(t, "node01").Status().PowerState; p != simulator.PowerOff {
		t.Errorf("node01 is %s after a power on at node02's address", p)
	}

	m := g.machine(t, "node01")
	release := m.HoldTransitions()
	defer release()
	on := g.reset(t, "node01", schemas.ResetOn)
	waitFor(t, 30*time.Second, "the On in flight", func() (bool, string) {
		st := m.Status()
		return st.InFlight == 1, fmt.Sprintf("%s, in flight %d", st.PowerState, st.InFlight)
	})
	testkit.MustIpmitool(t, at("127.0.10.1"), "chassis", "power", "on")
	oem, _ := g.system(t, "node01")["Oem"].(map[string]any)
	fg, _ := oem["Fishgate"].(map[string]any)
	if now, queued := path.Base(runningTask(fg)), queuedTasks(fg); now != on || len(queued) != 0 {
		t.Errorf("after ipmitool power on at 127.0.10.1: running %q, queued %v; want %s alone (joined)", now, queued, on)
	}
}
