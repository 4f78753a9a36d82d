package ipmi

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/wire/ipmibmc"
)

// fakeGateway stands in for the serializer.
type fakeGateway struct {
	mu       sync.Mutex
	view     serializer.View
	resets   []schemas.ResetType
	reqs     []string
	boots    []schemas.BootOverride
	outcome  serializer.Admission
	resetErr error
}

func (g *fakeGateway) View(id string) (serializer.View, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if id != g.view.ID {
		return serializer.View{}, fmt.Errorf("node %s: %w", id, serializer.ErrNodeNotFound)
	}
	return g.view, nil
}

func (g *fakeGateway) Reset(ctx context.Context, id string, r schemas.ResetType, req string) (serializer.Admission, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.resetErr != nil {
		return serializer.Admission{}, g.resetErr
	}
	g.resets = append(g.resets, r)
	g.reqs = append(g.reqs, req)
	a := g.outcome
	if a.Outcome == "" {
		a = serializer.Admission{Outcome: serializer.Started, Task: id + ".t1"}
	}
	return a, nil
}

func (g *fakeGateway) SetBoot(ctx context.Context, id string, b schemas.BootOverride) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.boots = append(g.boots, b)
	g.view.Boot = b
	return nil
}

func (g *fakeGateway) set(f func(*fakeGateway)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g)
}

func (g *fakeGateway) resetCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.resets)
}

func startFront(t *testing.T, g *fakeGateway) (*Server, testkit.IPMITarget) {
	t.Helper()
	s, err := Serve(context.Background(), Config{Addr: "127.0.0.1:0", Node: "n1", User: "ironic", Password: "front-pass", Logger: slog.New(slog.DiscardHandler)}, g)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, testkit.IPMITarget{Addr: s.Addr(), User: "ironic", Password: "front-pass"}
}

func TestServeChecks(t *testing.T) {
	g := &fakeGateway{view: serializer.View{ID: "n1"}}
	if _, err := Serve(context.Background(), Config{Addr: "127.0.0.1:0", Node: "nope", User: "u", Password: "p", Logger: slog.New(slog.DiscardHandler)}, g); err == nil {
		t.Error("Serve accepted an unknown node")
	}
	if _, err := Serve(context.Background(), Config{Addr: "127.0.0.1:0", Node: "n1", User: "u", Password: "p", Logger: slog.New(slog.DiscardHandler)}, nil); err == nil {
		t.Error("Serve accepted a nil gateway")
	}
	if _, err := Serve(context.Background(), Config{Addr: "127.0.0.1:0", Node: "n1", User: "u", Logger: slog.New(slog.DiscardHandler)}, g); err == nil {
		t.Error("Serve accepted an empty password")
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Serve(ctx, Config{Addr: "127.0.0.1:0", Node: "n1", User: "u", Password: "p", Logger: slog.New(slog.DiscardHandler)}, g)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := s.Close(); err != nil {
		t.Errorf("Close after ctx end: %v", err)
	}
}

func TestPowerStatusMapping(t *testing.T) {
	g := &fakeGateway{view: serializer.View{ID: "n1"}}
	_, to := startFront(t, g)
	for _, tc := range []struct {
		state schemas.PowerState
		want  string
	}{
		{schemas.PowerOn, "Chassis Power is on"},
		{schemas.PowerOff, "Chassis Power is off"},
		{schemas.PowerPoweringOn, "Chassis Power is off"},
		{schemas.PowerPoweringOff, "Chassis Power is on"},
		{schemas.PowerPaused, "Chassis Power is on"},
	} {
		g.set(func(g *fakeGateway) { g.view.PowerState = tc.state })
		if out := testkit.MustIpmitool(t, to, "chassis", "power", "status"); out != tc.want {
			t.Errorf("%s: %q, want %q", tc.state, out, tc.want)
		}
	}
	g.set(func(g *fakeGateway) { g.view.PowerState = schemas.PowerUnknown })
	if r := testkit.Ipmitool(t, to, "chassis", "power", "status"); r.Err == nil {
		t.Errorf("unknown power state answered: %q", r.Output)
	}
}

func TestPowerCommandsBecomeAdmissions(t *testing.T) {
	g := &fakeGateway{view: serializer.View{ID: "n1", PowerState: schemas.PowerOff}}
	_, to := startFront(t, g)

	slow := to
	slow.DefaultTiming = true // a stalled discovery command would cost ~10 s
	if out := testkit.MustIpmitool(t, slow, "mc", "info"); !strings.Contains(out, "IPMI Version              : 2.0") {
		t.Errorf("mc info:\n%s", out)
	}
	for _, suite := range []int{3, 17} {
		to := to
		to.CipherSuite = suite
		testkit.MustIpmitool(t, to, "chassis", "power", "status")
	}
	for _, cmd := range []string{"on", "off", "soft", "reset", "cycle", "diag"} {
		testkit.MustIpmitool(t, to, "chassis", "power", cmd)
	}
	want := []schemas.ResetType{schemas.ResetOn, schemas.ResetForceOff, schemas.ResetGracefulShutdown,
		schemas.ResetForceRestart, schemas.ResetPowerCycle, schemas.ResetNmi}
	g.mu.Lock()
	got, reqs := slices.Clone(g.resets), slices.Clone(g.reqs)
	g.mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("admissions %v, want %v", got, want)
	}
	for _, r := range reqs {
		if !strings.HasPrefix(r, "ipmi user=ironic remote=127.0.0.1:") || !strings.Contains(r, "action=") {
			t.Errorf("request description %q", r)
		}
	}

	// A coalesced or queued admission is accepted like a started one.
	g.set(func(g *fakeGateway) { g.outcome = serializer.Admission{Outcome: serializer.Coalesced, Task: "n1.t0"} })
	testkit.MustIpmitool(t, to, "chassis", "power", "on")

	for _, tc := range []struct {
		name  string
		setup func(*fakeGateway)
		want  string
	}{
		{"refused", func(g *fakeGateway) {
			g.outcome = serializer.Admission{Outcome: serializer.Refused, Refusal: serializer.RefusedFlipFlop}
		}, "Node busy"},
		{"redis down", func(g *fakeGateway) {
			g.resetErr = fmt.Errorf("%w: dial tcp: refused", serializer.ErrUnavailable)
		}, "Node busy"},
		{"unsupported", func(g *fakeGateway) {
			g.resetErr = fmt.Errorf("node n1: Nmi: %w", serializer.ErrUnsupportedReset)
		}, "Invalid data field"},
	} {
		g.set(func(g *fakeGateway) { g.outcome, g.resetErr = serializer.Admission{}, nil; tc.setup(g) })
		r := testkit.Ipmitool(t, to, "chassis", "power", "cycle")
		if r.Err == nil || !strings.Contains(r.Output, tc.want) {
			t.Errorf("%s: %v %q, want %q", tc.name, r.Err, r.Output, tc.want)
		}
	}
	g.set(func(g *fakeGateway) { g.outcome, g.resetErr = serializer.Admission{}, nil })

	// A BMC reset is no power action.
	n := g.resetCount()
	testkit.MustIpmitool(t, to, "raw", "0x06", "0x02")
	testkit.MustIpmitool(t, to, "mc", "reset", "cold")
	if g.resetCount() != n {
		t.Errorf("a BMC reset became an admission")
	}

	bad := to
	bad.Password = "nope"
	if r := testkit.Ipmitool(t, bad, "chassis", "power", "on"); r.Err == nil {
		t.Errorf("wrong password accepted:\n%s", r.Output)
	}
	if g.resetCount() != n {
		t.Error("a refused login was admitted")
	}
}

func TestBootdev(t *testing.T) {
	g := &fakeGateway{view: serializer.View{ID: "n1", PowerState: schemas.PowerOff}}
	_, to := startFront(t, g)
	testkit.MustIpmitool(t, to, "chassis", "bootdev", "pxe")
	testkit.MustIpmitool(t, to, "chassis", "bootdev", "cdrom", "options=efiboot,persistent")
	want := []schemas.BootOverride{{Target: "Pxe", Enabled: "Once", Mode: "Legacy"}, {Target: "Cd", Enabled: "Continuous", Mode: "UEFI"}}
	g.mu.Lock()
	got := slices.Clone(g.boots)
	g.mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("SetBoot calls %v, want %v", got, want)
	}
	out := testkit.MustIpmitool(t, to, "chassis", "bootparam", "get", "5")
	if !strings.Contains(out, "Force Boot from CD/DVD") || !strings.Contains(out, "Options apply to all future boots") {
		t.Errorf("bootparam get 5:\n%s", out)
	}
}

func TestIpmiPower(t *testing.T) {
	for _, p := range []schemas.PowerState{schemas.PowerOn, schemas.PowerOff, schemas.PowerPoweringOn, schemas.PowerPoweringOff, schemas.PowerPaused} {
		on, known := ipmiPower(p)
		target := p == schemas.PowerOn || p == schemas.PowerPoweringOff || p == schemas.PowerPaused
		if !known || on != target {
			t.Errorf("%s: on=%v known=%v", p, on, known)
		}
	}
	if _, known := ipmiPower(schemas.PowerUnknown); known {
		t.Error("unknown power state is known")
	}
}

// TestMalformedPacketsKeepServing: issue 10's packets, the 44-byte RAKP
// Message 1 that made go-ipmi panic among them, do not take the front (and
// the gateway with it) down.
func TestMalformedPacketsKeepServing(t *testing.T) {
	g := &fakeGateway{view: serializer.View{ID: "n1", PowerState: schemas.PowerOn}}
	_, to := startFront(t, g)
	if out := testkit.MalformedThenStatus(t, to); out != "Chassis Power is on" {
		t.Errorf("power status after malformed packets: %q", out)
	}
}

// TestIPMIv15OffByDefault: the gateway's IPMI front speaks IPMI 2.0
// (lanplus) only unless the node allows v1.5 ("-I lan": MD5, no
// encryption; issue 10).
func TestIPMIv15OffByDefault(t *testing.T) {
	g := &fakeGateway{view: serializer.View{ID: "n1", PowerState: "Off", CapsKnown: true}}
	_, to := startFront(t, g)
	if out := testkit.MustIpmitool(t, to, "chassis", "power", "status"); out != "Chassis Power is off" {
		t.Fatalf("lanplus: %q", out)
	}
	lan := to
	lan.Interface = "lan"
	if r := testkit.Ipmitool(t, lan, "chassis", "power", "status"); r.Err == nil {
		t.Fatalf("-I lan accepted by default:\n%s", r.Output)
	}
	s, err := Serve(context.Background(), Config{Addr: "127.0.0.1:0", Node: "n1", User: "ironic", Password: "front-pass", AllowV15: true, Logger: slog.New(slog.DiscardHandler)}, g)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lan.Addr = s.Addr()
	if out := testkit.MustIpmitool(t, lan, "chassis", "power", "status"); out != "Chassis Power is off" {
		t.Fatalf("-I lan with AllowV15: %q", out)
	}
}

// TestServeShared: a node's front at its own address on a shared socket
// is the same front: ipmitool there reads the node's power state and its
// power command becomes an admission; Close takes the address away.
func TestServeShared(t *testing.T) {
	m, err := ipmibmc.ListenShared(ipmibmc.SharedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	go m.Serve(context.Background())
	t.Cleanup(func() { m.Close() })
	g := &fakeGateway{view: serializer.View{ID: "n1", PowerState: schemas.PowerOn, CapsKnown: true}}
	a := netip.MustParseAddr("127.0.10.2")
	if _, err := ServeShared(m, a, Config{Node: "n2", User: "ironic", Password: "front-pass"}, g); err == nil {
		t.Error("ServeShared accepted an unknown node")
	}
	s, err := ServeShared(m, a, Config{Node: "n1", User: "ironic", Password: "front-pass", Logger: slog.New(slog.DiscardHandler)}, g)
	if err != nil {
		t.Fatal(err)
	}
	if want := "127.0.10.2:" + strconv.Itoa(m.Port()); s.Addr() != want {
		t.Errorf("Addr %q, want %q", s.Addr(), want)
	}
	to := testkit.IPMITarget{Addr: s.Addr(), User: "ironic", Password: "front-pass"}
	if out := testkit.MustIpmitool(t, to, "chassis", "power", "status"); out != "Chassis Power is on" {
		t.Errorf("power status: %q", out)
	}
	testkit.MustIpmitool(t, to, "chassis", "power", "off")
	g.mu.Lock()
	resets := slices.Clone(g.resets)
	g.mu.Unlock()
	if !slices.Equal(resets, []schemas.ResetType{schemas.ResetForceOff}) {
		t.Errorf("admissions: %v", resets)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if m.Has(a) {
		t.Error("the address is still served after Close")
	}
}
