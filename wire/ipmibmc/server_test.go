package ipmibmc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fishgate/fishgate/wire/ipmi"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/fishgate/fishgate/internal/testkit"
)

// fakeTarget records what the server asks of it.
type fakeTarget struct {
	mu       sync.Mutex
	on       bool
	boot     ipmi.Boot
	calls    []string
	err      error         // returned by Control when set
	delay    time.Duration // Control waits this long (or until ctx ends)
	stateErr error         // returned by PowerState when set
}

func (f *fakeTarget) record(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fakeTarget) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeTarget) PowerState(ctx context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.on, f.stateErr
}

func (f *fakeTarget) Control(ctx context.Context, cmd ipmi.ChassisCommand) error {
	f.mu.Lock()
	delay, err := f.delay, f.err
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			f.record("control " + cmd.String() + ": " + ctx.Err().Error())
			return ctx.Err()
		}
	}
	f.record("control " + cmd.String())
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch cmd {
	case ipmi.PowerUp, ipmi.PowerCycle:
		f.on = true
	case ipmi.PowerDown, ipmi.SoftShutdown:
		f.on = false
	}
	return nil
}

func (f *fakeTarget) SetBoot(ctx context.Context, b ipmi.Boot) error {
	f.record(fmt.Sprintf("setboot %+v", b))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.boot = b
	return nil
}

func (f *fakeTarget) Boot(ctx context.Context) (ipmi.Boot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.boot, nil
}

func (f *fakeTarget) BMCReset(ctx context.Context, cold bool) error {
	f.record(fmt.Sprintf("bmcreset cold=%v", cold))
	return nil
}

const (
	testUser = "admin"
	testPass = "s3cret-pass"
)

func startServer(t *testing.T, target PowerTarget, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{Addr: "127.0.0.1:0", Name: t.Name(), User: testUser, Password: testPass}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, target)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func tool(s *Server) testkit.IPMITarget {
	return testkit.IPMITarget{Addr: s.Addr(), User: testUser, Password: testPass}
}

func TestConfigValidation(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no addr":         {User: "u", Password: "p"},
		"no user":         {Addr: "127.0.0.1:0", Password: "p"},
		"long user":       {Addr: "127.0.0.1:0", User: strings.Repeat("u", 17), Password: "p"},
		"no password":     {Addr: "127.0.0.1:0", User: "u"},
		"long password":   {Addr: "127.0.0.1:0", User: "u", Password: strings.Repeat("p", 21)},
		"unknown suite":   {Addr: "127.0.0.1:0", User: "u", Password: "p", CipherSuites: []int{99}},
		"suite not in go": {Addr: "127.0.0.1:0", User: "u", Password: "p", CipherSuites: []int{4}},
	} {
		if s, err := New(cfg, &fakeTarget{}); err == nil {
			s.Close()
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	if _, err := New(Config{Addr: "127.0.0.1:0", User: "u", Password: "p"}, nil); err == nil {
		t.Error("New accepted a nil target")
	}
}

// newClient connects go-ipmi's client (lanplus, or lan for IPMI v1.5).
func newClient(t *testing.T, s *Server, pass string, lan bool) (*client.Client, error) {
	t.Helper()
	return dialClient(t, s.Addr(), pass, lan)
}

// dialClient is newClient for the endpoint at addr.
func dialClient(t *testing.T, addr, pass string, lan bool) (*client.Client, error) {
	t.Helper()
	host, port := splitAddr(t, addr)
	c, err := client.NewClient(host, port, testUser, pass)
	if err != nil {
		t.Fatal(err)
	}
	c.WithTimeout(time.Second).WithRetry(1)
	if lan {
		c.WithInterface(client.InterfaceLan)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c.Close(ctx)
	})
	return c, nil
}

func TestGoIPMIClient(t *testing.T) {
	for _, lan := range []bool{false, true} {
		t.Run(map[bool]string{false: "lanplus", true: "lan"}[lan], func(t *testing.T) {
			f := &fakeTarget{}
			s := startServer(t, f, nil)
			c, err := newClient(t, s, testPass, lan)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			st, err := c.GetChassisStatus(ctx)
			if err != nil || st.PowerIsOn {
				t.Fatalf("status: %+v, %v", st, err)
			}
			for _, a := range []chassis.ChassisControl{chassis.ChassisControlPowerUp, chassis.ChassisControlDiagnosticInterrupt,
				chassis.ChassisControlHardReset, chassis.ChassisControlPowerCycle, chassis.ChassisControlSoftShutdown, chassis.ChassisControlPowerDown} {
				if _, err := c.ChassisControl(ctx, a); err != nil {
					t.Fatalf("chassis control %d: %v", a, err)
				}
			}
			if _, err := c.ChassisControl(ctx, 6); err == nil {
				t.Error("reserved chassis control action 6 accepted")
			} else if re, ok := types.IsResponseError(err); !ok || re.CompletionCode() != ccInvalidDataField {
				t.Errorf("action 6: %v", err)
			}
			if err := c.SetBootDevice(ctx, types.BootDeviceSelectorForcePXE, types.BIOSBootTypeEFI, true); err != nil {
				t.Fatal(err)
			}
			flags := &types.BootOptionParam_BootFlags{}
			if err := c.GetSystemBootOptionsParamFor(ctx, flags); err != nil {
				t.Fatal(err)
			}
			if !flags.BootFlagsValid || flags.BootDeviceSelector != types.BootDeviceSelectorForcePXE || !flags.Persist || flags.BIOSBootType != types.BIOSBootTypeEFI {
				t.Errorf("boot flags read back: %+v", flags)
			}
			want := []string{"control power up", "control diagnostic interrupt", "control hard reset",
				"control power cycle", "control soft shutdown", "control power down",
				fmt.Sprintf("setboot %+v", ipmi.Boot{Device: ipmi.BootPXE, Persistent: true, EFI: true})}
			if got := f.Calls(); !slices.Equal(got, want) {
				t.Errorf("calls:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestWrongPasswordRefused(t *testing.T) {
	s := startServer(t, &fakeTarget{}, nil)
	for _, lan := range []bool{false, true} {
		if _, err := newClient(t, s, "wrong", lan); err == nil {
			t.Errorf("lan=%v: a wrong password opened a session", lan)
		}
	}
}

func TestCompletionCodes(t *testing.T) {
	f := &fakeTarget{}
	s := startServer(t, f, func(c *Config) { c.CommandTimeout = 200 * time.Millisecond })
	c, err := newClient(t, s, testPass, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		err   error
		delay time.Duration
		cc    uint8
	}{
		{fmt.Errorf("admission: %w", ipmi.ErrBusy), 0, ccNodeBusy},
		{fmt.Errorf("x: %w", ipmi.ErrUnsupported), 0, ccInvalidDataField},
		{ipmi.ErrNotNow, 0, ccNotInPresentState},
		{errors.New("boom"), 0, ccUnspecified},
		{nil, time.Second, ccTimeout},
	} {
		f.mu.Lock()
		f.err, f.delay = tc.err, tc.delay
		f.mu.Unlock()
		_, err := c.ChassisControl(ctx, chassis.ChassisControlPowerUp)
		re, ok := types.IsResponseError(err)
		if !ok || uint8(re.CompletionCode()) != tc.cc {
			t.Errorf("target error %v (delay %v): client got %v, want cc %#x", tc.err, tc.delay, err, tc.cc)
		}
	}
	f.mu.Lock()
	f.err, f.delay, f.stateErr = nil, 0, ipmi.ErrNotNow
	f.mu.Unlock()
	if _, err := c.GetChassisStatus(ctx); err == nil {
		t.Error("power state error answered as a status")
	}
}

// TestRetransmissionAnsweredOnce sends one Chassis Control packet twice (as
// go-ipmi's client does when an answer is late): the target runs it once.
func TestRetransmissionAnsweredOnce(t *testing.T) {
	f := &fakeTarget{delay: 1500 * time.Millisecond}
	s := startServer(t, f, nil)
	c, err := newClient(t, s, testPass, false)
	if err != nil {
		t.Fatal(err)
	}
	// 1 s per try, 1 retry: the first answer comes after the client resent
	// the same packet; the retransmission is answered from the first answer.
	ctx := context.Background()
	_, err = c.ChassisControl(ctx, chassis.ChassisControlPowerCycle)
	if err != nil {
		t.Fatalf("power cycle: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // let the retransmission be handled
	if got := f.Calls(); !slices.Equal(got, []string{"control power cycle"}) {
		t.Errorf("target saw %q, want one power cycle", got)
	}
	// A new request with the same content is a new command.
	f.mu.Lock()
	f.delay = 0
	f.mu.Unlock()
	if _, err := c.ChassisControl(ctx, chassis.ChassisControlPowerCycle); err != nil {
		t.Fatal(err)
	}
	if got := f.Calls(); len(got) != 2 {
		t.Errorf("second power cycle not run: %q", got)
	}
}

func TestManySessions(t *testing.T) {
	s := startServer(t, &fakeTarget{}, nil)
	// go-ipmi's default store holds 4; ours holds DefaultMaxSessions.
	for i := range 12 {
		if _, err := newClient(t, s, testPass, false); err != nil {
			t.Fatalf("session %d: %v", i+1, err)
		}
	}
}

func TestCloseCancelsCallsInFlight(t *testing.T) {
	f := &fakeTarget{delay: time.Minute}
	s := startServer(t, f, nil)
	c, err := newClient(t, s, testPass, false)
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		c.ChassisControl(ctx, chassis.ChassisControlPowerUp)
	}()
	// The client must be done before the cleanup closes it: go-ipmi's
	// client panics when closed under a running exchange.
	defer func() { <-sent }()
	time.Sleep(500 * time.Millisecond) // the request reaches the target and waits
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %v with a call in flight", took)
	}
	if got := f.Calls(); !slices.Equal(got, []string{"control power up: context canceled"}) {
		t.Errorf("target calls %q", got)
	}
}

func TestIpmitool(t *testing.T) {
	f := &fakeTarget{}
	s := startServer(t, f, nil)
	to := tool(s)
	// With ipmitool's own timing, an unanswered discovery command costs
	// about 10 s: FastBound catches it.
	slow := to
	slow.DefaultTiming = true
	testkit.MustIpmitool(t, slow, "chassis", "power", "status")
	out := testkit.MustIpmitool(t, to, "mc", "info")
	for _, want := range []string{"IPMI Version              : 2.0", "Chassis Device"} {
		if !strings.Contains(out, want) {
			t.Errorf("mc info lacks %q:\n%s", want, out)
		}
	}
	for _, suite := range []int{3, 17} {
		to := to
		to.CipherSuite = suite
		if out := testkit.MustIpmitool(t, to, "chassis", "power", "status"); out != "Chassis Power is off" {
			t.Errorf("-C %d power status: %q", suite, out)
		}
	}
	testkit.MustIpmitool(t, to, "chassis", "power", "diag")
	testkit.MustIpmitool(t, to, "chassis", "bootdev", "pxe", "options=efiboot,persistent")
	out = testkit.MustIpmitool(t, to, "chassis", "bootparam", "get", "5")
	if !strings.Contains(out, "Force PXE") || !strings.Contains(out, "Options apply to all future boots") {
		t.Errorf("bootparam get 5:\n%s", out)
	}
	// Cold and Warm Reset as raw commands: ipmitool waits for their answer.
	testkit.MustIpmitool(t, to, "raw", "0x06", "0x02")
	testkit.MustIpmitool(t, to, "raw", "0x06", "0x03")
	want := []string{"control diagnostic interrupt", fmt.Sprintf("setboot %+v", ipmi.Boot{Device: ipmi.BootPXE, Persistent: true, EFI: true}),
		"bmcreset cold=true", "bmcreset cold=false"}
	if got := f.Calls(); !slices.Equal(got, want) {
		t.Errorf("calls:\n got %q\nwant %q", got, want)
	}
	// "mc reset cold" sends the reset and, without waiting for its answer,
	// Close Session; go-ipmi dispatches each packet on its own goroutine,
	// so the reset may lose the race and be dropped with the session. It
	// must not fail either way.
	if out := testkit.MustIpmitool(t, to, "mc", "reset", "cold"); !strings.Contains(out, "Sent cold reset command to MC") {
		t.Errorf("mc reset cold: %q", out)
	}
	bad := to
	bad.Password = "wrong"
	if r := testkit.Ipmitool(t, bad, "chassis", "power", "status"); r.Err == nil {
		t.Errorf("wrong password accepted:\n%s", r.Output)
	}
	lan := to
	lan.Interface = "lan"
	if out := testkit.MustIpmitool(t, lan, "chassis", "power", "status"); out != "Chassis Power is off" {
		t.Errorf("-I lan power status: %q", out)
	}
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, p
}
