package amt_test

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	amtbackend "github.com/fishgate/fishgate/backends/amt"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/internal/retry"
	"github.com/fishgate/fishgate/internal/testkit/backendtest"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/simulator"
)

const (
	testUser     = "admin"
	testPassword = "Sup3r$ecret"
)

// startNode runs one simulated node with an AMT front on a free loopback port.
func startNode(t testing.TB, spec simulator.NodeSpec) *simulator.Node {
	t.Helper()
	fleet := simulator.NewFleet(nil)
	t.Cleanup(func() {
		if err := fleet.Close(); err != nil {
			t.Error(err)
		}
	})
	if spec.ID == "" {
		spec.ID = "amt1"
	}
	spec.User, spec.Password, spec.AMTListen = testUser, testPassword, "127.0.0.1:0"
	if spec.Machine.DelayMax == 0 {
		spec.Machine.DelayMin, spec.Machine.DelayMax = 5*time.Millisecond, 15*time.Millisecond
	}
	n, err := fleet.Add(spec)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newBackend returns a backend for endpoint with quick retries.
func newBackend(t testing.TB, endpoint string, mod func(*amtbackend.Config)) *amtbackend.Backend {
	t.Helper()
	cfg := amtbackend.Config{
		Endpoint: endpoint, User: testUser, Password: testPassword,
		Retries: 3, RetryBackoff: 10 * time.Millisecond, Poll: 10 * time.Millisecond, Timeout: 5 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&cfg)
	}
	b, err := amtbackend.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// settle waits until the machine carries out no command.
func settle(t testing.TB, m *simulator.Machine) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := m.Status()
		if st.InFlight == 0 && (st.PowerState == simulator.PowerOn || st.PowerState == simulator.PowerOff) {
			return st.PowerState
		}
		if time.Now().After(deadline) {
			t.Fatalf("machine did not settle: %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// commandsSince returns the machine's command log entries after seq.
func commandsSince(m *simulator.Machine, seq int) []string {
	var out []string
	for _, c := range m.Status().Commands {
		if c.Seq > seq {
			out = append(out, fmt.Sprintf("%s %s: %s", c.Protocol, c.Action, c.Result))
		}
	}
	return out
}

// Each ResetType reaches the machine as its PowerState value
// (docs/architecture.md#backends).
func TestResetTypesReachMachine(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{})
	m := n.Machine()
	b := newBackend(t, n.AMTURL(), nil)
	ctx := testCtx(t, 20*time.Second)
	for _, tc := range []struct {
		from  string
		reset schemas.ResetType
		logs  string
		after string
	}{
		{simulator.PowerOff, schemas.ResetOn, "amt On (2): accepted", simulator.PowerOn},
		{simulator.PowerOn, schemas.ResetForceOff, "amt ForceOff (8): accepted", simulator.PowerOff},
		{simulator.PowerOn, schemas.ResetForceRestart, "amt ForceRestart (10): accepted", simulator.PowerOn},
		{simulator.PowerOn, schemas.ResetPowerCycle, "amt PowerCycle (5): accepted", simulator.PowerOn},
		{simulator.PowerOn, schemas.ResetNmi, "amt Nmi (11): accepted", simulator.PowerOn},
		{simulator.PowerOn, schemas.ResetGracefulShutdown, "amt GracefulShutdown (12): accepted", simulator.PowerOff},
		{simulator.PowerOn, schemas.ResetGracefulRestart, "amt GracefulRestart (14): accepted", simulator.PowerOn},
	} {
		m.SetPower(tc.from)
		seq := m.Status().CommandCount
		if err := b.Reset(ctx, tc.reset); err != nil {
			t.Fatalf("%s: %v", tc.reset, err)
		}
		if got := commandsSince(m, seq); !slices.Equal(got, []string{tc.logs}) {
			t.Errorf("%s: machine logged %q, want %q", tc.reset, got, tc.logs)
		}
		if got := settle(t, m); got != tc.after {
			t.Errorf("%s from %s: machine %s, want %s", tc.reset, tc.from, got, tc.after)
		}
		if ps, err := b.PowerState(ctx); err != nil || string(ps) != tc.after {
			t.Errorf("%s: PowerState = %s, %v; want %s", tc.reset, ps, err, tc.after)
		}
	}
	if st := m.Status(); st.MaxInFlight != 1 {
		t.Errorf("MaxInFlight %d", st.MaxInFlight)
	}

	// No AMT value: refused before anything is sent.
	before := b.Requests()
	for _, r := range []schemas.ResetType{schemas.ResetForceOn, schemas.ResetPushPowerButton} {
		if err := b.Reset(ctx, r); !errors.Is(err, backends.ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", r, err)
		}
	}
	if b.Requests() != before {
		t.Errorf("unsupported types sent %d requests", b.Requests()-before)
	}
}

// The graceful types are sent only when AvailableRequestedPowerStates offers
// them; Capabilities reports exactly what the machine offers.
func TestOfferedResetTypes(t *testing.T) {
	all := startNode(t, simulator.NodeSpec{ID: "all"})
	b := newBackend(t, all.AMTURL(), nil)
	ctx := testCtx(t, 10*time.Second)
	caps, err := b.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []schemas.ResetType{schemas.ResetOn, schemas.ResetForceOff, schemas.ResetGracefulShutdown, schemas.ResetGracefulRestart,
		schemas.ResetForceRestart, schemas.ResetNmi, schemas.ResetPowerCycle}
	if !slices.Equal(caps.ResetTypes, want) || !slices.Equal(caps.BootTargets, []string{"None", "Pxe", "Hdd", "Cd"}) {
		t.Errorf("capabilities %+v, want %v", caps, want)
	}

	hard := startNode(t, simulator.NodeSpec{ID: "hard", Machine: simulator.MachineConfig{InitialPower: simulator.PowerOn,
		ResetTypes: []string{"On", "ForceOff", "PowerCycle"}}})
	b = newBackend(t, hard.AMTURL(), nil)
	caps, err = b.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []schemas.ResetType{schemas.ResetOn, schemas.ResetForceOff, schemas.ResetPowerCycle}; !slices.Equal(caps.ResetTypes, want) {
		t.Errorf("capabilities %v, want %v", caps.ResetTypes, want)
	}
	for _, r := range []schemas.ResetType{schemas.ResetGracefulShutdown, schemas.ResetGracefulRestart} {
		err := b.Reset(ctx, r)
		if !errors.Is(err, backends.ErrUnsupported) || !strings.Contains(err.Error(), "does not offer") {
			t.Errorf("%s: %v, want ErrUnsupported (not offered)", r, err)
		}
	}
	if got := commandsSince(hard.Machine(), 0); len(got) != 0 {
		t.Errorf("graceful types not offered reached the machine: %q", got)
	}
	// A hard type the machine lacks is sent, and AMT answers 1 (Not Supported).
	err = b.Reset(ctx, schemas.ResetNmi)
	if !errors.Is(err, backends.ErrUnsupported) || !strings.Contains(err.Error(), "returned 1 (Not Supported)") {
		t.Errorf("Nmi: %v, want ReturnValue 1 as ErrUnsupported", err)
	}
	if got := commandsSince(hard.Machine(), 0); !slices.Equal(got, []string{"amt Nmi (11): refused: unsupported ResetType"}) {
		t.Errorf("machine logged %q", got)
	}
}

// FailFirst 2: AMT answers ReturnValue 2, then a SOAP fault; the third
// attempt is accepted.
func TestFailFirstRetried(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{Machine: simulator.MachineConfig{Faults: simulator.Faults{FailFirst: 2}}})
	b := newBackend(t, n.AMTURL(), nil)
	if err := b.Reset(testCtx(t, 10*time.Second), schemas.ResetOn); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"amt On (2): failed: simulated failure (1 left)",
		"amt On (2): failed: simulated failure (0 left)",
		"amt On (2): accepted",
	}
	if got := commandsSince(n.Machine(), 0); !slices.Equal(got, want) {
		t.Errorf("machine logged %q, want %q", got, want)
	}
	if got := settle(t, n.Machine()); got != simulator.PowerOn {
		t.Errorf("machine %s", got)
	}
	if st := n.AMT().Stats(); st.Faults != 1 {
		t.Errorf("AMT answered %d SOAP faults, want 1 (the other failure is ReturnValue 2)", st.Faults)
	}

	// Without retries the first failure is the answer, and says what AMT said.
	n.Machine().SetFaults(simulator.Faults{FailFirst: 1})
	b0 := newBackend(t, n.AMTURL(), func(c *amtbackend.Config) { c.Retries = -1 })
	err := b0.Reset(testCtx(t, 10*time.Second), schemas.ResetForceOff)
	if err == nil || !strings.Contains(err.Error(), "ForceOff") {
		t.Fatalf("Reset with FailFirst and no retries: %v", err)
	}
	var rv *amtbackend.ReturnValueError
	var fault *amtbackend.FaultError
	if !errors.As(err, &rv) && !errors.As(err, &fault) {
		t.Errorf("error %v is neither a ReturnValue nor a SOAP fault", err)
	}
}

// A power command's attempts take from the budget its ctx carries
// (internal/retry): under the serializer's budget of one, the backend sends
// it once and the first failure is the answer; the reads it needs are not
// budgeted.
func TestCommandRetriesWithinCtxBudget(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{Machine: simulator.MachineConfig{InitialPower: simulator.PowerOn,
		Faults: simulator.Faults{FailFirst: 100}}})
	b := newBackend(t, n.AMTURL(), nil) // Retries 3
	for _, budget := range []int{1, 2} {
		seq := n.Machine().Status().CommandCount
		err := b.Reset(retry.WithBudget(testCtx(t, 10*time.Second), budget), schemas.ResetForceOff)
		var rv *amtbackend.ReturnValueError
		var fault *amtbackend.FaultError
		if err == nil || errors.Is(err, backends.ErrNoAnswer) || (!errors.As(err, &rv) && !errors.As(err, &fault)) {
			t.Errorf("budget %d: ForceOff to a failing AMT: %v, want what AMT said", budget, err)
		}
		if got := commandsSince(n.Machine(), seq); len(got) != budget {
			t.Errorf("budget %d: machine logged %q, want %d ForceOffs", budget, got, budget)
		}
	}
	// A spent budget sends nothing.
	ctx := retry.WithBudget(testCtx(t, 10*time.Second), 0)
	seq := n.Machine().Status().CommandCount
	if err := b.Reset(ctx, schemas.ResetForceOff); !errors.Is(err, retry.ErrBudgetSpent) {
		t.Errorf("budget 0: %v, want retry.ErrBudgetSpent", err)
	}
	if got := commandsSince(n.Machine(), seq); len(got) != 0 {
		t.Errorf("budget 0: machine logged %q", got)
	}
	if _, err := b.PowerState(ctx); err != nil {
		t.Errorf("a read under a spent command budget: %v", err)
	}
}

// A machine that ignores every command: AMT says 0 each time. Without
// ConfirmTimeout that is success (the serializer verifies); with it, the
// backend re-sends and then gives up, saying so.
func TestIgnoreForever(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{Machine: simulator.MachineConfig{Faults: simulator.Faults{Ignore: true}}})
	m := n.Machine()
	ctx := testCtx(t, 10*time.Second)
	if err := newBackend(t, n.AMTURL(), nil).Reset(ctx, schemas.ResetOn); err != nil {
		t.Fatalf("ignored command without confirmation: %v", err)
	}
	b := newBackend(t, n.AMTURL(), func(c *amtbackend.Config) { c.Retries = 2; c.ConfirmTimeout = 60 * time.Millisecond })
	seq := m.Status().CommandCount
	err := b.Reset(ctx, schemas.ResetOn)
	if !errors.Is(err, amtbackend.ErrNotConfirmed) || !strings.Contains(err.Error(), "failed after 3 attempts") {
		t.Fatalf("Reset of an ignoring machine: %v, want ErrNotConfirmed after 3 attempts", err)
	}
	if got := commandsSince(m, seq); !slices.Equal(got, slices.Repeat([]string{"amt On (2): ignored"}, 3)) {
		t.Errorf("machine logged %q", got)
	}
	if m.PowerState() != simulator.PowerOff {
		t.Errorf("machine %s", m.PowerState())
	}

	// A soft off the OS ignores is not confirmed either.
	m.SetFaults(simulator.Faults{NeverFinishSoftOff: true})
	m.SetPower(simulator.PowerOn)
	if err := b.Reset(ctx, schemas.ResetGracefulShutdown); !errors.Is(err, amtbackend.ErrNotConfirmed) {
		t.Errorf("GracefulShutdown ignored by the OS: %v, want ErrNotConfirmed", err)
	}
	// And a command carried out is confirmed.
	m.SetFaults(simulator.Faults{})
	if err := b.Reset(ctx, schemas.ResetForceOff); err != nil {
		t.Errorf("ForceOff with confirmation: %v", err)
	}
	if got := m.PowerState(); got != simulator.PowerOff {
		t.Errorf("after a confirmed ForceOff the machine is %s", got)
	}
}

// A hanging AMT: the caller's deadline ends the call, promptly.
func TestHangHonoursDeadline(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{Machine: simulator.MachineConfig{Faults: simulator.Faults{Hang: 10 * time.Second}}})
	b := newBackend(t, n.AMTURL(), nil)
	if _, err := b.PowerState(testCtx(t, 5*time.Second)); err != nil { // reads do not hang
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := b.Reset(ctx, schemas.ResetPowerCycle)
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Reset took %v with a 300ms deadline", elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Reset of a hanging AMT: %v, want a deadline error", err)
	}
	// The machine saw the client go away and did nothing.
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(commandsSince(n.Machine(), 0), "amt PowerCycle (5): failed: context canceled") {
		if time.Now().After(deadline) {
			t.Fatalf("machine logged %q", commandsSince(n.Machine(), 0))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A slow AMT (issue 9): a power command answered after the backend's
// Timeout, or after the caller's deadline, is sent once.
func TestSlowAMTCommandNotResent(t *testing.T) {
	backendtest.CheckSlowCommands(t, func(t *testing.T, timeout time.Duration, mc simulator.MachineConfig) (backends.Backend, *simulator.Machine) {
		n := startNode(t, simulator.NodeSpec{Machine: mc})
		return newBackend(t, n.AMTURL(), func(c *amtbackend.Config) { c.Timeout = timeout }), n.Machine()
	}, schemas.ResetOn)
}

// A command that could not be sent (AMT gone: connection refused) is
// retried, and is no lost answer.
func TestUnsentCommandRetried(t *testing.T) {
	m := simulator.NewMachine("gone", simulator.MachineConfig{})
	front := simulator.NewAMTFront(m, simulator.AMTConfig{User: testUser, Password: testPassword}, nil)
	srv := httptest.NewServer(front)
	t.Cleanup(func() {
		srv.Close()
		m.Close()
	})
	b := newBackend(t, srv.URL, nil)
	ctx := testCtx(t, 10*time.Second)
	if err := b.Reset(ctx, schemas.ResetOn); err != nil { // finds the ManagedSystem
		t.Fatal(err)
	}
	settle(t, m)
	srv.Close()
	// A request on the connection kept alive may have been written before
	// it broke: a read that finds it so is retried, a command is not. Let
	// a read use it up.
	if _, err := b.PowerState(ctx); err == nil {
		t.Fatal("PowerState from a closed port")
	}
	before := b.Requests()
	err := b.Reset(ctx, schemas.ResetForceOff)
	if err == nil || errors.Is(err, backends.ErrNoAnswer) || !strings.Contains(err.Error(), "failed after 4 attempts") {
		t.Errorf("ForceOff to a closed port: %v, want a failure after 4 attempts, not a lost answer", err)
	}
	if got := b.Requests() - before; got < 4 {
		t.Errorf("%d requests tried, want 4", got)
	}
}

// ReturnValue 4096: the backend follows the CIM_ConcreteJob to its end.
func TestJobPolling(t *testing.T) {
	m := simulator.NewMachine("jobs", simulator.MachineConfig{DelayMin: 150 * time.Millisecond, DelayMax: 150 * time.Millisecond})
	front := simulator.NewAMTFront(m, simulator.AMTConfig{User: testUser, Password: testPassword, Jobs: true}, nil)
	srv := httptest.NewServer(front)
	t.Cleanup(func() {
		srv.Close()
		m.Close()
		front.Wait()
	})
	b := newBackend(t, srv.URL, nil)
	ctx := testCtx(t, 10*time.Second)
	start := time.Now()
	if err := b.Reset(ctx, schemas.ResetOn); err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed < 150*time.Millisecond {
		t.Errorf("Reset returned after %v, before the job could end", elapsed)
	}
	if st := m.Status(); st.PowerState != simulator.PowerOn || st.InFlight != 0 {
		t.Errorf("after the job completed the machine is %s with %d in flight", st.PowerState, st.InFlight)
	}
	if got := front.Stats().Actions["Get"]; got < 1 {
		t.Errorf("%d job polls", got)
	}
	// A job that fails (FailFirst) ends in Exception and is retried.
	m.SetFaults(simulator.Faults{FailFirst: 1})
	if err := b.Reset(ctx, schemas.ResetForceOff); err != nil {
		t.Fatal(err)
	}
	if got := commandsSince(m, 1); !slices.Equal(got, []string{"amt ForceOff (8): failed: simulated failure (0 left)", "amt ForceOff (8): accepted"}) {
		t.Errorf("machine logged %q", got)
	}
	// Without retries the failed job is the error.
	m.SetFaults(simulator.Faults{FailFirst: 1})
	b0 := newBackend(t, srv.URL, func(c *amtbackend.Config) { c.Retries = -1 })
	if err := b0.Reset(ctx, schemas.ResetOn); !errors.Is(err, amtbackend.ErrJobFailed) || !strings.Contains(err.Error(), "JobState 10") {
		t.Errorf("failed job: %v, want ErrJobFailed with JobState 10", err)
	}
}

func TestWrongPassword(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{})
	b := newBackend(t, n.AMTURL(), func(c *amtbackend.Config) { c.Password = "wrong" })
	ctx := testCtx(t, 10*time.Second)
	_, err := b.PowerState(ctx)
	if !errors.Is(err, amtbackend.ErrAuthentication) || !strings.Contains(err.Error(), "refused the credentials") {
		t.Fatalf("PowerState with a wrong password: %v", err)
	}
	if got := b.Requests(); got != 2 {
		t.Errorf("%d requests: want the challenge and one refused answer, no retries", got)
	}
	if err := b.Reset(ctx, schemas.ResetOn); !errors.Is(err, amtbackend.ErrAuthentication) {
		t.Errorf("Reset with a wrong password: %v", err)
	}
	if st := n.Machine().Status(); st.CommandCount != 0 {
		t.Errorf("the machine got %d commands", st.CommandCount)
	}
}

func TestBootOverride(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{})
	m := n.Machine()
	b := newBackend(t, n.AMTURL(), nil)
	ctx := testCtx(t, 10*time.Second)
	for _, tc := range []struct {
		set  schemas.BootOverride
		want simulator.Boot
	}{
		{schemas.BootOverride{Target: "Pxe", Enabled: "Once"}, simulator.Boot{Target: "Pxe", Enabled: "Once", Mode: "UEFI"}},
		{schemas.BootOverride{Target: "Hdd"}, simulator.Boot{Target: "Hdd", Enabled: "Once", Mode: "UEFI"}},
		{schemas.BootOverride{Target: "Cd", Enabled: "Once"}, simulator.Boot{Target: "Cd", Enabled: "Once", Mode: "UEFI"}},
		{schemas.BootOverride{Enabled: "Disabled"}, simulator.Boot{Target: "None", Enabled: "Disabled", Mode: "UEFI"}},
		{schemas.BootOverride{Target: "Pxe"}, simulator.Boot{Target: "Pxe", Enabled: "Once", Mode: "UEFI"}},
		{schemas.BootOverride{Target: "None"}, simulator.Boot{Target: "None", Enabled: "Disabled", Mode: "UEFI"}},
	} {
		if err := b.SetBoot(ctx, tc.set); err != nil {
			t.Fatalf("SetBoot %+v: %v", tc.set, err)
		}
		if got := m.Boot(); got != tc.want {
			t.Errorf("SetBoot %+v: machine boot %+v, want %+v", tc.set, got, tc.want)
		}
		got, err := b.Boot(ctx)
		if err != nil || got.Target != tc.want.Target || got.Enabled != tc.want.Enabled {
			t.Errorf("Boot after %+v = %+v, %v", tc.set, got, err)
		}
	}
	for _, bad := range []schemas.BootOverride{{Target: "Pxe", Enabled: "Continuous"}, {Target: "Usb"}, {Target: "Pxe", Mode: "UEFI"}} {
		if err := b.SetBoot(ctx, bad); !errors.Is(err, backends.ErrUnsupported) {
			t.Errorf("SetBoot %+v: %v, want ErrUnsupported", bad, err)
		}
	}
}

// RefuseOnWithin: AMT answers 4099 (Busy) to a power-on right after a
// power-off; the backend retries until the machine accepts.
func TestBusyRetried(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{Machine: simulator.MachineConfig{InitialPower: simulator.PowerOn,
		Faults: simulator.Faults{RefuseOnWithin: 300 * time.Millisecond}}})
	m := n.Machine()
	b := newBackend(t, n.AMTURL(), func(c *amtbackend.Config) { c.Retries = 8; c.RetryBackoff = 20 * time.Millisecond })
	ctx := testCtx(t, 10*time.Second)
	if err := b.Reset(ctx, schemas.ResetForceOff); err != nil {
		t.Fatal(err)
	}
	settle(t, m)
	if err := b.Reset(ctx, schemas.ResetOn); err != nil {
		t.Fatal(err)
	}
	log := commandsSince(m, 1)
	if len(log) < 2 || !strings.HasPrefix(log[0], "amt On (2): refused: power-on refused") || log[len(log)-1] != "amt On (2): accepted" {
		t.Errorf("machine logged %q, want refusals then accepted", log)
	}
}

// The requests an operation costs once the Digest challenge and the
// ManagedSystem reference are cached: one.
func TestRequestsPerOperation(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{})
	b := newBackend(t, n.AMTURL(), nil)
	ctx := testCtx(t, 10*time.Second)
	step := func(name string, want uint64, f func() error) {
		t.Helper()
		before := b.Requests()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := b.Requests() - before; got != want {
			t.Errorf("%s: %d requests, want %d", name, got, want)
		}
	}
	read := func() error { _, err := b.PowerState(ctx); return err }
	step("first read (401 challenge + Enumerate)", 2, read)
	step("read", 1, read)
	step("first Reset (EnumerateEPR ManagedSystem + RequestPowerStateChange)", 2, func() error { return b.Reset(ctx, schemas.ResetOn) })
	settle(t, n.Machine())
	step("Reset", 1, func() error { return b.Reset(ctx, schemas.ResetForceOff) })
	settle(t, n.Machine())
	step("graceful Reset, offered at the last read", 1, func() error { return b.Reset(ctx, schemas.ResetGracefulRestart) })
	step("SetBoot (ChangeBootOrder + SetBootConfigRole)", 2, func() error { return b.SetBoot(ctx, schemas.BootOverride{Target: "Pxe"}) })
}

// TLS: verification against a CA file, or skipped with Insecure.
func TestTLS(t *testing.T) {
	m := simulator.NewMachine("tls", simulator.MachineConfig{InitialPower: simulator.PowerOn})
	front := simulator.NewAMTFront(m, simulator.AMTConfig{User: testUser, Password: testPassword}, nil)
	srv := httptest.NewTLSServer(front)
	t.Cleanup(func() {
		srv.Close()
		m.Close()
	})
	ctx := testCtx(t, 10*time.Second)

	if _, err := newBackend(t, srv.URL, nil).PowerState(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("unverifiable certificate: %v", err)
	}
	if ps, err := newBackend(t, srv.URL, func(c *amtbackend.Config) { c.Insecure = true }).PowerState(ctx); err != nil || ps != schemas.PowerOn {
		t.Errorf("Insecure: %s, %v", ps, err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if ps, err := newBackend(t, srv.URL, func(c *amtbackend.Config) { c.CAFile = caFile }).PowerState(ctx); err != nil || ps != schemas.PowerOn {
		t.Errorf("CAFile: %s, %v", ps, err)
	}
	if _, err := amtbackend.New(amtbackend.Config{Endpoint: srv.URL, CAFile: filepath.Join(t.TempDir(), "none.pem")}); err == nil {
		t.Error("missing CA file accepted")
	}

	// A fleet node with TLS serves AMT over HTTPS too.
	n := startNode(t, simulator.NodeSpec{TLS: true})
	if !strings.HasPrefix(n.AMTURL(), "https://") {
		t.Fatalf("AMT URL %s", n.AMTURL())
	}
	if _, err := newBackend(t, n.AMTURL(), func(c *amtbackend.Config) { c.Insecure = true }).PowerState(ctx); err != nil {
		t.Error(err)
	}
}

func TestNewConfig(t *testing.T) {
	for _, bad := range []string{"", "ftp://host", "http://"} {
		if _, err := amtbackend.New(amtbackend.Config{Endpoint: bad}); err == nil {
			t.Errorf("endpoint %q accepted", bad)
		}
	}
	b, err := amtbackend.New(amtbackend.Config{Endpoint: "127.0.0.1:1", Retries: -1, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing listens on port 1: a dial error, surely not sent.
	_, err = b.PowerState(testCtx(t, 5*time.Second))
	if err == nil || !strings.Contains(err.Error(), "http://127.0.0.1:1/wsman") {
		t.Errorf("PowerState of nothing: %v", err)
	}
	b.Close()
	if err := b.Reset(context.Background(), schemas.ResetOn); err == nil {
		t.Error("Reset after Close succeeded")
	}
}
