package iamtcheck_test

import (
	"context"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jacobweinstock/iamt"

	"github.com/fishgate/fishgate/simulator"
)

// These tests drive the AMT front with an AMT client nobody here wrote:
// github.com/jacobweinstock/iamt (bmclib's Intel AMT provider).

const amtUser, amtPassword = "admin", "P@ssw0rd!"

// startAMT starts a fleet with one node serving AMT on a free loopback port.
func startAMT(tb testing.TB, mc simulator.MachineConfig) *simulator.Node {
	tb.Helper()
	fleet := simulator.NewFleet(nil)
	tb.Cleanup(func() {
		if err := fleet.Close(); err != nil {
			tb.Error(err)
		}
	})
	n, err := fleet.Add(simulator.NodeSpec{ID: "amt1", User: amtUser, Password: amtPassword, AMTListen: "127.0.0.1:0", Machine: mc})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// amtNode is startAMT with transitions of 10 to 30 ms unless mc says.
func amtNode(t *testing.T, mc simulator.MachineConfig) *simulator.Node {
	t.Helper()
	if mc.DelayMax == 0 {
		mc.DelayMin, mc.DelayMax = 10*time.Millisecond, 30*time.Millisecond
	}
	return startAMT(t, mc)
}

// iamtClient returns an iamt client for the node's AMT front.
func iamtClient(tb testing.TB, n *simulator.Node, password string) *iamt.Client {
	tb.Helper()
	u, err := url.Parse(n.AMTURL())
	if err != nil {
		tb.Fatal(err)
	}
	host, portStr, err := net.SplitHostPort(u.Host)
	if err != nil {
		tb.Fatal(err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		tb.Fatal(err)
	}
	return iamt.NewClient(host, amtUser, password, iamt.WithPort(uint32(port)))
}

// waitPower waits for the machine to settle in want.
func waitPower(t *testing.T, m *simulator.Machine, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for m.PowerState() != want || m.Status().InFlight != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("machine is %s, want %s", m.PowerState(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lastCommand returns the machine's last command log entry.
func lastCommand(t *testing.T, m *simulator.Machine) simulator.Command {
	t.Helper()
	cmds := m.Status().Commands
	if len(cmds) == 0 {
		t.Fatal("no command logged")
	}
	return cmds[len(cmds)-1]
}

func TestIAMTPower(t *testing.T) {
	n := amtNode(t, simulator.MachineConfig{})
	m := n.Machine()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := iamtClient(t, n, amtPassword)
	if err := c.Open(ctx); err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer c.Close(ctx)

	on, err := c.IsPoweredOn(ctx)
	if err != nil || on {
		t.Fatalf("IsPoweredOn = %v, %v; want false", on, err)
	}

	// iamt picks the value to send from AvailableRequestedPowerStates; with
	// every ResetType offered: On 2, off 12 (soft graceful first), cycle 5.
	steps := []struct {
		name   string
		do     func(context.Context) error
		action string
		want   string
	}{
		{"on", c.PowerOn, "On (2)", simulator.PowerOn},
		{"cycle", c.PowerCycle, "PowerCycle (5)", simulator.PowerOn},
		{"off", c.PowerOff, "GracefulShutdown (12)", simulator.PowerOff},
	}
	for _, s := range steps {
		if err := s.do(ctx); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := lastCommand(t, m)
		if got.Protocol != "amt" || got.Action != s.action || got.Result != "accepted" {
			t.Fatalf("%s: logged %+v, want amt %q accepted", s.name, got, s.action)
		}
		waitPower(t, m, s.want)
		on, err := c.IsPoweredOn(ctx)
		if err != nil || on != (s.want == simulator.PowerOn) {
			t.Fatalf("%s: IsPoweredOn = %v, %v with the machine %s", s.name, on, err, s.want)
		}
	}
	if st := m.Status(); st.MaxInFlight != 1 || st.PowerOnCount != 2 || st.PowerOffCount != 2 {
		t.Errorf("MaxInFlight %d, PowerOnCount %d, PowerOffCount %d; want 1, 2, 2", st.MaxInFlight, st.PowerOnCount, st.PowerOffCount)
	}
	// Asking for On when on sends nothing.
	count := m.Status().CommandCount
	if err := c.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	waitPower(t, m, simulator.PowerOn)
	if err := c.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	waitPower(t, m, simulator.PowerOff)
	if err := c.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	if got := m.Status().CommandCount; got != count+2 {
		t.Errorf("%d commands for on, off, off from off; want 2", got-count)
	}
}

// A machine without graceful types: iamt's off is AMT's 8, its cycle 5.
func TestIAMTHardOnly(t *testing.T) {
	n := amtNode(t, simulator.MachineConfig{InitialPower: simulator.PowerOn,
		ResetTypes: []string{"On", "ForceOff", "ForceRestart", "PowerCycle"}})
	m := n.Machine()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := iamtClient(t, n, amtPassword)
	if err := c.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	if got := lastCommand(t, m); got.Action != "ForceOff (8)" || got.Result != "accepted" {
		t.Fatalf("logged %+v", got)
	}
	waitPower(t, m, simulator.PowerOff)
	if err := c.PowerCycle(ctx); err != nil { // from off, iamt powers on
		t.Fatal(err)
	}
	if got := lastCommand(t, m); got.Action != "On (2)" {
		t.Fatalf("logged %+v", got)
	}
	waitPower(t, m, simulator.PowerOn)
}

func TestIAMTWrongPassword(t *testing.T) {
	n := amtNode(t, simulator.MachineConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := iamtClient(t, n, "wrong")
	// Open only fetches the Digest challenge: any client gets one.
	if err := c.Open(ctx); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := c.IsPoweredOn(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("IsPoweredOn with a wrong password: %v, want a 401 error", err)
	}
	if err := c.PowerOn(ctx); err == nil {
		t.Fatal("PowerOn with a wrong password succeeded")
	}
	if st := n.Machine().Status(); st.CommandCount != 0 || st.PowerState != simulator.PowerOff {
		t.Fatalf("a refused client reached the machine: %+v", st)
	}
	if st := n.AMT().Stats(); st.Unauthorized < 3 || len(st.Actions) != 0 {
		t.Fatalf("stats %+v: want only 401s", st)
	}
}

// iamt's SetPXE: Get and Put AMT_BootSettingData, SetBootConfigRole, then
// ChangeBootOrder with the PXE source found by EnumerateEPR.
func TestIAMTSetPXE(t *testing.T) {
	n := amtNode(t, simulator.MachineConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := iamtClient(t, n, amtPassword).SetPXE(ctx); err != nil {
		t.Fatal(err)
	}
	if b := n.Machine().Boot(); b.Target != "Pxe" || b.Enabled != "Once" {
		t.Fatalf("boot %+v, want Pxe Once", b)
	}
	if got := lastCommand(t, n.Machine()); got.Protocol != "amt" || got.Action != "SetBoot" {
		t.Fatalf("logged %+v", got)
	}
}
