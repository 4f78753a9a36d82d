package simulator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/wire/ipmi"

	"github.com/fishgate/fishgate/internal/testkit"
)

func startIPMINode(t *testing.T, mc MachineConfig) (*Node, testkit.IPMITarget) {
	t.Helper()
	_, n := startNode(t, NodeSpec{IPMIListen: "127.0.0.1:0", User: "root", Password: "calvin", Machine: mc})
	if n.IPMIAddr() == "" || n.Spec().IPMIListen != n.IPMIAddr() {
		t.Fatalf("IPMIAddr %q, Spec().IPMIListen %q", n.IPMIAddr(), n.Spec().IPMIListen)
	}
	return n, testkit.IPMITarget{Addr: n.IPMIAddr(), User: "root", Password: "calvin"}
}

// lastCommand is the newest entry of the machine's command log.
func lastCommand(t *testing.T, m *Machine) Command {
	t.Helper()
	st := m.Status()
	if len(st.Commands) == 0 {
		t.Fatal("empty command log")
	}
	return st.Commands[len(st.Commands)-1]
}

func TestIPMIFrontIpmitool(t *testing.T) {
	n, to := startIPMINode(t, MachineConfig{})
	m := n.Machine()

	// ipmitool's own timing: a discovery command left unanswered would
	// cost ~10 s here.
	slow := to
	slow.DefaultTiming = true
	out := testkit.MustIpmitool(t, slow, "mc", "info")
	if !strings.Contains(out, "IPMI Version              : 2.0") {
		t.Errorf("mc info:\n%s", out)
	}
	for _, suite := range []int{3, 17} {
		to := to
		to.CipherSuite = suite
		if out := testkit.MustIpmitool(t, to, "chassis", "power", "status"); out != "Chassis Power is off" {
			t.Errorf("-C %d: %q", suite, out)
		}
	}

	for _, step := range []struct {
		cmd, output, action, power string
	}{
		{"on", "Chassis Power Control: Up/On", ResetOn, PowerOn},
		{"diag", "Chassis Power Control: Diag", ResetNmi, PowerOn},
		{"reset", "Chassis Power Control: Reset", ResetForceRestart, PowerOn},
		{"cycle", "Chassis Power Control: Cycle", ResetPowerCycle, PowerOn},
		{"soft", "Chassis Power Control: Soft", ResetGracefulShutdown, PowerOff},
		{"on", "Chassis Power Control: Up/On", ResetOn, PowerOn},
		{"off", "Chassis Power Control: Down/Off", ResetForceOff, PowerOff},
	} {
		if out := testkit.MustIpmitool(t, to, "chassis", "power", step.cmd); out != step.output {
			t.Errorf("power %s: %q, want %q", step.cmd, out, step.output)
		}
		if c := lastCommand(t, m); c.Protocol != "ipmi" || c.Action != step.action || c.Result != "accepted" {
			t.Errorf("power %s logged %+v, want ipmi %s accepted", step.cmd, c, step.action)
		}
		waitPower(t, m, step.power)
		want := "Chassis Power is " + strings.ToLower(step.power)
		if out := testkit.MustIpmitool(t, to, "power", "status"); out != want {
			t.Errorf("after power %s: %q, want %q", step.cmd, out, want)
		}
	}
	if st := m.Status(); st.MaxInFlight != 1 {
		t.Errorf("MaxInFlight %d", st.MaxInFlight)
	}

	testkit.MustIpmitool(t, to, "chassis", "bootdev", "pxe")
	if b := m.Boot(); b != (Boot{Target: "Pxe", Enabled: "Once", Mode: "Legacy"}) {
		t.Errorf("bootdev pxe: %+v", b)
	}
	if c := lastCommand(t, m); c.Protocol != "ipmi" || c.Action != "SetBoot" {
		t.Errorf("bootdev logged %+v", c)
	}
	testkit.MustIpmitool(t, to, "chassis", "bootdev", "disk", "options=efiboot,persistent")
	if b := m.Boot(); b != (Boot{Target: "Hdd", Enabled: "Continuous", Mode: "UEFI"}) {
		t.Errorf("bootdev disk efiboot,persistent: %+v", b)
	}
	out = testkit.MustIpmitool(t, to, "chassis", "bootparam", "get", "5")
	if !strings.Contains(out, "Force Boot from default Hard-Drive") || !strings.Contains(out, "BIOS EFI boot") {
		t.Errorf("bootparam get 5:\n%s", out)
	}

	bad := to
	bad.Password = "wrong"
	before := m.Status().CommandCount
	if r := testkit.Ipmitool(t, bad, "chassis", "power", "on"); r.Err == nil {
		t.Errorf("wrong password accepted:\n%s", r.Output)
	}
	if st := m.Status(); st.CommandCount != before || st.PowerState != PowerOff {
		t.Errorf("a refused login reached the machine: %+v", st.Commands[len(st.Commands)-1])
	}
}

// TestIPMIBMCResetKeepsHostPower: a BMC cold or warm reset restarts the
// BMC, not the host.
func TestIPMIBMCResetKeepsHostPower(t *testing.T) {
	n, to := startIPMINode(t, MachineConfig{InitialPower: PowerOn})
	m := n.Machine()
	// Cold Reset as a raw command: ipmitool waits for its answer.
	testkit.MustIpmitool(t, to, "raw", "0x06", "0x02")
	if c := lastCommand(t, m); c.Protocol != "ipmi" || c.Action != "ColdReset" || c.Result != "accepted" {
		t.Errorf("cold reset logged %+v", c)
	}
	testkit.MustIpmitool(t, to, "mc", "reset", "warm")
	testkit.MustIpmitool(t, to, "mc", "reset", "cold")
	// "mc reset" does not wait for the answer and closes its session at
	// once; go-ipmi may handle the two packets in either order.
	time.Sleep(100 * time.Millisecond)
	st := m.Status()
	if st.PowerState != PowerOn || st.PowerOnCount != 0 || st.PowerOffCount != 0 || st.InFlight != 0 {
		t.Errorf("BMC resets changed the host: %+v", st)
	}
	for _, c := range st.Commands {
		if c.Action != "ColdReset" && c.Action != "WarmReset" {
			t.Errorf("BMC resets sent a power command: %+v", c)
		}
	}
	if out := testkit.MustIpmitool(t, to, "power", "status"); out != "Chassis Power is on" {
		t.Errorf("power status after BMC resets: %q", out)
	}
}

func TestIPMIFrontFaults(t *testing.T) {
	n, to := startIPMINode(t, MachineConfig{Faults: Faults{FailFirst: 1}})
	m := n.Machine()
	if r := testkit.Ipmitool(t, to, "power", "on"); r.Err == nil {
		t.Errorf("FailFirst: power on succeeded:\n%s", r.Output)
	}
	if c := lastCommand(t, m); c.Action != ResetOn || !strings.HasPrefix(c.Result, "failed: ") {
		t.Errorf("logged %+v", c)
	}
	testkit.MustIpmitool(t, to, "power", "on")
	waitPower(t, m, PowerOn)

	m.SetFaults(Faults{RefuseOnWithin: time.Minute})
	testkit.MustIpmitool(t, to, "power", "off")
	waitPower(t, m, PowerOff)
	r := testkit.Ipmitool(t, to, "power", "on")
	if r.Err == nil || !strings.Contains(r.Output, "Node busy") {
		t.Errorf("RefuseOnWithin: power on answered %v:\n%s", r.Err, r.Output)
	}

	// A node that does not offer Nmi refuses the diagnostic interrupt.
	_, n2 := startNode(t, NodeSpec{ID: "node02", IPMIListen: "127.0.0.1:0",
		Machine: MachineConfig{ResetTypes: []string{ResetOn, ResetForceOff}}})
	to2 := testkit.IPMITarget{Addr: n2.IPMIAddr(), User: "admin", Password: "password"}
	if r := testkit.Ipmitool(t, to2, "power", "diag"); r.Err == nil || !strings.Contains(r.Output, "Invalid data field") {
		t.Errorf("diag on a node without Nmi: %v\n%s", r.Err, r.Output)
	}
}

// TestIPMIPowerDuringTransition: Get Chassis Status shows the target of a
// transition only once it has settled.
func TestIPMIPowerDuringTransition(t *testing.T) {
	m := NewMachine("m", MachineConfig{DelayMin: 700 * time.Millisecond, DelayMax: 700 * time.Millisecond})
	defer m.Close()
	target := machineTarget{m}
	ctx := context.Background()
	on := func() bool {
		v, err := target.PowerState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, step := range []struct {
		cmd        ipmi.ChassisCommand
		during     bool
		transition string
		after      string
	}{
		{ipmi.PowerUp, false, PowerPoweringOn, PowerOn},
		{ipmi.HardReset, false, PowerPoweringOff, PowerOn}, // restart: off until On again
		{ipmi.SoftShutdown, true, PowerPoweringOff, PowerOff},
		{ipmi.PowerCycle, false, PowerPoweringOn, PowerOn}, // from Off: as power up
		{ipmi.PowerDown, true, PowerPoweringOff, PowerOff},
	} {
		if err := target.Control(ctx, step.cmd); err != nil {
			t.Fatal(err)
		}
		if st := m.PowerState(); st != step.transition {
			t.Fatalf("%v: machine %s, want %s", step.cmd, st, step.transition)
		}
		if got := on(); got != step.during {
			t.Errorf("%v: during the transition power reads %v, want %v", step.cmd, got, step.during)
		}
		waitPower(t, m, step.after)
		if got := on(); got != (step.after == PowerOn) {
			t.Errorf("%v: settled %s but power reads %v", step.cmd, step.after, got)
		}
	}
}

func TestIPMINoFrontByDefault(t *testing.T) {
	_, n := startNode(t, NodeSpec{})
	if n.IPMIAddr() != "" {
		t.Errorf("IPMIAddr %q without IPMIListen", n.IPMIAddr())
	}
	f := NewFleet(nil)
	defer f.Close()
	if _, err := f.Add(NodeSpec{ID: "n", IPMIListen: "127.0.0.1:0", User: strings.Repeat("u", 17)}); err == nil {
		t.Error("a 17-byte IPMI user name was accepted")
	}
}

// TestIPMIFrontSurvivesMalformedPackets: issue 10's packets, the 44-byte
// RAKP Message 1 that made go-ipmi panic among them, do not take bmcsim
// down.
func TestIPMIFrontSurvivesMalformedPackets(t *testing.T) {
	_, to := startIPMINode(t, MachineConfig{})
	if out := testkit.MalformedThenStatus(t, to); out != "Chassis Power is off" {
		t.Errorf("power status after malformed packets: %q", out)
	}
}
