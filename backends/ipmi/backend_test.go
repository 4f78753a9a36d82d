package ipmi

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	wire "github.com/fishgate/fishgate/wire/ipmi"

	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/internal/retry"
	"github.com/fishgate/fishgate/internal/testkit/backendtest"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/simulator"
	"github.com/fishgate/fishgate/wire/ipmibmc"
)

var quiet = slog.New(slog.DiscardHandler)

// simNode starts one simulated node with an IPMI front.
func simNode(t testing.TB, mc simulator.MachineConfig) *simulator.Node {
	t.Helper()
	f := simulator.NewFleet(nil)
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("fleet: %v", err)
		}
	})
	n, err := f.Add(simulator.NodeSpec{ID: "node01", IPMIListen: "127.0.0.1:0", User: "admin", Password: "password", Machine: mc})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newBackend points a Backend at addr and closes it when the test ends.
func newBackend(t testing.TB, addr string, mod func(*Config)) *Backend {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	cfg := Config{Host: host, Port: p, User: "admin", Password: "password", Logger: quiet}
	if mod != nil {
		mod(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitState polls the backend, as the serializer does, until want.
func waitState(t *testing.T, b *Backend, want schemas.PowerState) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := b.PowerState(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("power state %s, want %s", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNewChecksConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no host":      {},
		"bad port":     {Host: "h", Port: 70000},
		"interface":    {Host: "h", Interface: "open"},
		"cipher suite": {Host: "h", CipherSuite: 99},
		"long user":    {Host: "h", User: "12345678901234567"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	b, err := New(Config{Host: "10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if b.cfg.Port != DefaultPort || b.cfg.Interface != Lanplus || b.cfg.Timeout != DefaultTimeout ||
		b.cfg.Retries != DefaultRetries || b.cfg.SessionMaxAge != DefaultSessionMaxAge {
		t.Errorf("defaults: %+v", b.cfg)
	}
	if b, _ := New(Config{Host: "h", Retries: -1, SessionMaxAge: time.Hour}); b.cfg.Retries != 0 || b.cfg.SessionMaxAge != maxSessionAge {
		t.Errorf("Retries -1 → %d, SessionMaxAge 1h → %v", b.cfg.Retries, b.cfg.SessionMaxAge)
	}
}

func TestCapabilities(t *testing.T) {
	b, _ := New(Config{Host: "h"})
	c, err := b.Capabilities(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []schemas.ResetType{schemas.ResetOn, schemas.ResetForceOff, schemas.ResetGracefulShutdown,
		schemas.ResetForceRestart, schemas.ResetNmi, schemas.ResetPowerCycle}
	if !slices.Equal(c.ResetTypes, want) {
		t.Errorf("ResetTypes %v, want %v", c.ResetTypes, want)
	}
	for _, target := range []string{"None", "Pxe", "Hdd", "Cd", "BiosSetup"} {
		if !slices.Contains(c.BootTargets, target) {
			t.Errorf("BootTargets %v lack %s", c.BootTargets, target)
		}
	}
}

// TestResetTypesReachTheMachine: every ResetType reaches the simulated
// machine as the right IPMI command, one at a time.
func TestResetTypesReachTheMachine(t *testing.T) {
	for _, intf := range []struct {
		name  string
		intf  string
		suite int
	}{{"lanplus", Lanplus, 0}, {"cipher3", Lanplus, 3}, {"cipher17", Lanplus, 17}, {"lan", Lan, 0}} {
		t.Run(intf.name, func(t *testing.T) {
			n := simNode(t, simulator.MachineConfig{DelayMin: 20 * time.Millisecond, DelayMax: 60 * time.Millisecond})
			b := newBackend(t, n.IPMIAddr(), func(c *Config) { c.Interface, c.CipherSuite = intf.intf, intf.suite })
			m := n.Machine()
			steps := []struct {
				r      schemas.ResetType
				action string
				after  schemas.PowerState
			}{
				{schemas.ResetOn, "On", schemas.PowerOn},
				{schemas.ResetNmi, "Nmi", schemas.PowerOn},
				{schemas.ResetForceRestart, "ForceRestart", schemas.PowerOn},
				{schemas.ResetPowerCycle, "PowerCycle", schemas.PowerOn},
				{schemas.ResetGracefulShutdown, "GracefulShutdown", schemas.PowerOff},
				{schemas.ResetForceOn, "On", schemas.PowerOn},
				{schemas.ResetForceOff, "ForceOff", schemas.PowerOff},
			}
			for _, s := range steps {
				if err := b.Reset(ctxT(t), s.r); err != nil {
					t.Fatalf("%s: %v", s.r, err)
				}
				waitState(t, b, s.after)
			}
			st := m.Status()
			var got []string
			for _, c := range st.Commands {
				if c.Protocol != "ipmi" || c.Result != "accepted" {
					t.Errorf("log entry %+v", c)
				}
				got = append(got, c.Action)
			}
			var want []string
			for _, s := range steps {
				want = append(want, s.action)
			}
			if !slices.Equal(got, want) {
				t.Errorf("command log %v, want %v", got, want)
			}
			if st.MaxInFlight != 1 {
				t.Errorf("MaxInFlight %d", st.MaxInFlight)
			}
			for _, r := range []schemas.ResetType{schemas.ResetGracefulRestart, schemas.ResetPushPowerButton, "Bogus"} {
				if err := b.Reset(ctxT(t), r); !errors.Is(err, backends.ErrUnsupported) {
					t.Errorf("%s: %v", r, err)
				}
			}
			if c := m.Status().CommandCount; c != len(steps) {
				t.Errorf("unsupported types reached the machine: %d commands", c)
			}
		})
	}
}

func TestBootOverride(t *testing.T) {
	n := simNode(t, simulator.MachineConfig{})
	b := newBackend(t, n.IPMIAddr(), nil)
	m := n.Machine()
	ctx := ctxT(t)
	if got, err := b.Boot(ctx); err != nil || got != (schemas.BootOverride{Target: "None", Enabled: "Disabled", Mode: "UEFI"}) {
		t.Fatalf("initial Boot %+v, %v", got, err)
	}
	for _, tc := range []struct {
		set  schemas.BootOverride
		want simulator.Boot
	}{
		{schemas.BootOverride{Target: "Pxe", Enabled: "Once", Mode: "UEFI"}, simulator.Boot{Target: "Pxe", Enabled: "Once", Mode: "UEFI"}},
		{schemas.BootOverride{Enabled: "Continuous"}, simulator.Boot{Target: "Pxe", Enabled: "Continuous", Mode: "UEFI"}},
		{schemas.BootOverride{Target: "Hdd", Mode: "Legacy"}, simulator.Boot{Target: "Hdd", Enabled: "Continuous", Mode: "Legacy"}},
		{schemas.BootOverride{Target: "Cd", Enabled: "Once"}, simulator.Boot{Target: "Cd", Enabled: "Once", Mode: "Legacy"}},
		{schemas.BootOverride{Target: "BiosSetup"}, simulator.Boot{Target: "BiosSetup", Enabled: "Once", Mode: "Legacy"}},
		{schemas.BootOverride{Enabled: "Disabled"}, simulator.Boot{Target: "None", Enabled: "Disabled", Mode: "Legacy"}},
	} {
		if err := b.SetBoot(ctx, tc.set); err != nil {
			t.Fatalf("SetBoot %+v: %v", tc.set, err)
		}
		if got := m.Boot(); got != tc.want {
			t.Errorf("SetBoot %+v: machine %+v, want %+v", tc.set, got, tc.want)
		}
		got, err := b.Boot(ctx)
		want := schemas.BootOverride{Target: tc.want.Target, Enabled: tc.want.Enabled, Mode: tc.want.Mode}
		if err != nil || got != want {
			t.Errorf("Boot after %+v: %+v, %v", tc.set, got, err)
		}
	}
	if err := b.SetBoot(ctx, schemas.BootOverride{Target: "UefiHttp"}); !errors.Is(err, backends.ErrUnsupported) {
		t.Errorf("UefiHttp: %v", err)
	}
	for _, c := range m.Status().Commands {
		if c.Protocol != "ipmi" || c.Action != "SetBoot" {
			t.Errorf("log entry %+v", c)
		}
	}
}

// silentUDP is a UDP socket that reads and never answers: a BMC that is
// not there. It counts what it received.
type silentUDP struct {
	conn *net.UDPConn
	mu   sync.Mutex
	n    int
}

func newSilentUDP(t *testing.T) *silentUDP {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &silentUDP{conn: c}
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
			s.mu.Lock()
			s.n++
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close() })
	return s
}

func (s *silentUDP) packets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// TestDeadlineHonoured: a BMC that does not answer costs the caller its
// ctx's deadline, not more.
func TestDeadlineHonoured(t *testing.T) {
	silent := newSilentUDP(t)
	b := newBackend(t, silent.conn.LocalAddr().String(), func(c *Config) { c.Timeout = 10 * time.Second })
	for _, call := range []struct {
		name string
		f    func(context.Context) error
	}{
		{"PowerState", func(ctx context.Context) error { _, err := b.PowerState(ctx); return err }},
		{"Reset", func(ctx context.Context) error { return b.Reset(ctx, schemas.ResetPowerCycle) }},
		{"SetBoot", func(ctx context.Context) error { return b.SetBoot(ctx, schemas.BootOverride{Target: "Pxe"}) }},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		err := call.f(ctx)
		took := time.Since(start)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v, want a deadline error", call.name, err)
		}
		// Only session setup was sent: nothing that could have been
		// carried out.
		if errors.Is(err, backends.ErrNoAnswer) {
			t.Errorf("%s: %v: backends.ErrNoAnswer before the command was sent", call.name, err)
		}
		// A functional bound: the call must end with its ctx, far below
		// the 10 s exchange timeout.
		if took > 2*time.Second {
			t.Errorf("%s took %v with a 300ms deadline", call.name, took)
		}
	}
	if silent.packets() == 0 {
		t.Error("nothing was sent")
	}
}

// TestNoAnswerRetried: without a ctx deadline, an unanswered exchange is
// retried Retries times, then fails with ErrNoAnswer.
func TestNoAnswerRetried(t *testing.T) {
	silent := newSilentUDP(t)
	b := newBackend(t, silent.conn.LocalAddr().String(), func(c *Config) {
		c.Timeout, c.Retries, c.RetryBackoff = 100*time.Millisecond, 2, 10*time.Millisecond
	})
	start := time.Now()
	_, err := b.PowerState(context.Background())
	if !errors.Is(err, ErrNoAnswer) && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("PowerState: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v", took)
	}
	// Each try sends at least the first packet of session setup.
	if n := silent.packets(); n < 3 {
		t.Errorf("%d packets sent, want one per try (3)", n)
	}
}

// commandLog is the machine's command log as "Action: Result".
func commandLog(st simulator.Status) []string {
	var out []string
	for _, c := range st.Commands {
		out = append(out, c.Action+": "+c.Result)
	}
	return out
}

// TestSlowBMCCommandNotResent (issue 9): a BMC that answers a power
// command after the backend's Timeout, or after the caller's deadline, gets
// it once, whatever the command.
func TestSlowBMCCommandNotResent(t *testing.T) {
	backendtest.CheckSlowCommands(t, func(t *testing.T, timeout time.Duration, mc simulator.MachineConfig) (backends.Backend, *simulator.Machine) {
		n := simNode(t, mc)
		return newBackend(t, n.IPMIAddr(), func(c *Config) { c.Timeout, c.RetryBackoff = timeout, 10*time.Millisecond }), n.Machine()
	}, schemas.ResetOn, schemas.ResetNmi, schemas.ResetPowerCycle)
}

// TestBusyCommandRetried: "node busy" (C0h) means the BMC did not take the
// command: it is sent again.
func TestBusyCommandRetried(t *testing.T) {
	n := simNode(t, simulator.MachineConfig{InitialPower: simulator.PowerOn,
		Faults: simulator.Faults{RefuseOnWithin: 300 * time.Millisecond}})
	b := newBackend(t, n.IPMIAddr(), func(c *Config) { c.Retries, c.RetryBackoff = 4, 100*time.Millisecond })
	m := n.Machine()
	if err := b.Reset(ctxT(t), schemas.ResetForceOff); err != nil {
		t.Fatal(err)
	}
	waitState(t, b, schemas.PowerOff)
	if err := b.Reset(ctxT(t), schemas.ResetOn); err != nil {
		t.Fatalf("On right after a power-off: %v", err)
	}
	log := commandLog(m.Status())
	if len(log) < 3 || !strings.HasPrefix(log[1], "On: refused: power-on refused") || log[len(log)-1] != "On: accepted" {
		t.Errorf("command log %q, want ForceOff, refused Ons, then an accepted On", log)
	}
}

// TestBusyCommandWithinCtxBudget: the re-sends after "node busy" take from
// the attempt budget the ctx carries (internal/retry): under the
// serializer's budget of one, the command is sent once and "busy" is the
// answer (the serializer retries it after its own backoff).
func TestBusyCommandWithinCtxBudget(t *testing.T) {
	n := simNode(t, simulator.MachineConfig{InitialPower: simulator.PowerOn,
		Faults: simulator.Faults{RefuseOnWithin: time.Hour}})
	b := newBackend(t, n.IPMIAddr(), func(c *Config) { c.Retries, c.RetryBackoff = 4, 5*time.Millisecond })
	m := n.Machine()
	if err := b.Reset(ctxT(t), schemas.ResetForceOff); err != nil {
		t.Fatal(err)
	}
	waitState(t, b, schemas.PowerOff)
	for _, budget := range []int{1, 3} {
		before := len(commandLog(m.Status()))
		err := b.Reset(retry.WithBudget(ctxT(t), budget), schemas.ResetOn)
		var re *types.ResponseError
		if !errors.As(err, &re) || re.CompletionCode() != types.CodeNodeBusy || errors.Is(err, backends.ErrNoAnswer) {
			t.Errorf("budget %d: On to a busy BMC: %v, want its C0h answer", budget, err)
		}
		if log := commandLog(m.Status())[before:]; len(log) != budget {
			t.Errorf("budget %d: command log %q, want %d refused Ons", budget, log, budget)
		}
	}
}

// lateTarget is a PowerTarget whose Chassis Control outlives the BMC's
// command timeout, so that the BMC answers C3h (response unavailable).
type lateTarget struct{ controls atomic.Int32 }

func (l *lateTarget) PowerState(context.Context) (bool, error) { return false, nil }
func (l *lateTarget) Control(ctx context.Context, _ wire.ChassisCommand) error {
	l.controls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}
func (l *lateTarget) SetBoot(context.Context, wire.Boot) error      { return nil }
func (l *lateTarget) Boot(context.Context) (wire.Boot, error)       { return wire.Boot{}, nil }
func (l *lateTarget) BMCReset(ctx context.Context, cold bool) error { return nil }

// TestResponseUnavailableNotResent: a C3h answer to a command says the
// answer is lost, not that the command was not carried out.
func TestResponseUnavailableNotResent(t *testing.T) {
	target := &lateTarget{}
	srv, err := ipmibmc.New(ipmibmc.Config{Addr: "127.0.0.1:0", User: "admin", Password: "password",
		CommandTimeout: 50 * time.Millisecond}, target)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
		<-done
	})
	b := newBackend(t, srv.Addr(), func(c *Config) { c.RetryBackoff = 10 * time.Millisecond })
	err = b.Reset(ctxT(t), schemas.ResetOn)
	var re *types.ResponseError
	if !errors.Is(err, backends.ErrNoAnswer) || !errors.As(err, &re) || re.CompletionCode() != types.CodeProcessTimeout {
		t.Errorf("Reset answered C3h: %v, want backends.ErrNoAnswer wrapping the C3h answer", err)
	}
	if n := target.controls.Load(); n != 1 {
		t.Errorf("%d Chassis Controls reached the BMC, want 1", n)
	}
}

func TestWrongPassword(t *testing.T) {
	n := simNode(t, simulator.MachineConfig{})
	for _, intf := range []string{Lanplus, Lan} {
		b := newBackend(t, n.IPMIAddr(), func(c *Config) { c.Password, c.Interface = "wrong", intf })
		start := time.Now()
		_, err := b.PowerState(ctxT(t))
		if !errors.Is(err, ErrAuthentication) {
			t.Errorf("%s: %v, want ErrAuthentication", intf, err)
		}
		if took := time.Since(start); took > DefaultTimeout {
			t.Errorf("%s: a refused login took %v (retried?)", intf, took)
		}
	}
}

func TestSessionReuseAndRotation(t *testing.T) {
	n := simNode(t, simulator.MachineConfig{})
	b := newBackend(t, n.IPMIAddr(), func(c *Config) { c.SessionMaxAge = 300 * time.Millisecond })
	for range 20 {
		if _, err := b.PowerState(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	gen := func() uint64 {
		b.sem <- struct{}{}
		defer func() { <-b.sem }()
		return b.gen
	}
	if g := gen(); g != 1 {
		t.Errorf("20 calls opened %d sessions", g)
	}
	time.Sleep(time.Second)
	b.sem <- struct{}{}
	open := b.cl != nil
	<-b.sem
	if open {
		t.Error("an idle session outlived SessionMaxAge")
	}
	if _, err := b.PowerState(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if g := gen(); g != 2 {
		t.Errorf("gen %d after rotation", g)
	}
}

func TestConcurrentCallsTakeTurns(t *testing.T) {
	n := simNode(t, simulator.MachineConfig{})
	b := newBackend(t, n.IPMIAddr(), nil)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		wg.Go(func() {
			for range 8 {
				var err error
				if i%2 == 0 {
					_, err = b.PowerState(ctxT(t))
				} else {
					_, err = b.Boot(ctxT(t))
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClose(t *testing.T) {
	n := simNode(t, simulator.MachineConfig{})
	b := newBackend(t, n.IPMIAddr(), nil)
	if _, err := b.PowerState(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PowerState(ctxT(t)); !errors.Is(err, errClosed) {
		t.Errorf("after Close: %v", err)
	}
	// A caller waiting for its turn honours its ctx.
	b2 := newBackend(t, n.IPMIAddr(), nil)
	b2.sem <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b2.PowerState(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for the turn: %v", err)
	}
	<-b2.sem
}

func TestSplitAddress(t *testing.T) {
	for in, want := range map[string]struct {
		host string
		port int
	}{
		"10.0.0.5": {"10.0.0.5", 0}, "10.0.0.5:6230": {"10.0.0.5", 6230}, "bmc-17.lab": {"bmc-17.lab", 0},
		"ipmi://bmc:623": {"bmc", 623}, "[fe80::1]:623": {"fe80::1", 623}, "fe80::1": {"fe80::1", 0},
	} {
		h, p, err := SplitAddress(in)
		if err != nil || h != want.host || p != want.port {
			t.Errorf("%q → %q %d %v", in, h, p, err)
		}
	}
	for _, in := range []string{"", "https://bmc", "bmc:0", "bmc:99999", "bmc:x", ":623", "[fe80::1"} {
		if h, p, err := SplitAddress(in); err == nil {
			t.Errorf("%q accepted: %q %d", in, h, p)
		}
	}
}
