package redfish

// These tests drive the backend against the real BMC simulator
// (simulator.Fleet), over loopback HTTP(S). No mocks: where a test needs a
// BMC that advertises ResetTypes differently, a rewriting reverse proxy sits
// in front of the simulator.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/internal/testkit/backendtest"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/simulator"
)

const sessionsURI = "/redfish/v1/SessionService/Sessions"

// startNode runs one simulated BMC for the test.
func startNode(t *testing.T, spec simulator.NodeSpec) *simulator.Node {
	t.Helper()
	fleet := simulator.NewFleet(nil)
	t.Cleanup(func() { _ = fleet.Close() })
	if spec.ID == "" {
		spec.ID = "n1"
	}
	n, err := fleet.Add(spec)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newBackend returns a backend for n with the simulator's default
// credentials and fast task polling; edit adjusts the config.
func newBackend(t *testing.T, n *simulator.Node, edit func(*Config)) *Backend {
	t.Helper()
	cfg := Config{
		Endpoint:    n.URL(),
		User:        "admin",
		Password:    "password",
		TaskPoll:    5 * time.Millisecond,
		TaskPollMax: 50 * time.Millisecond,
		Logger:      slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// bmcSessions lists the session URIs the BMC holds, asking with Basic auth
// as an operator would.
func bmcSessions(t *testing.T, n *simulator.Node) []string {
	t.Helper()
	resp := basicAuth(t, n, http.MethodGet, sessionsURI)
	defer resp.Body.Close()
	var coll struct {
		Members []struct {
			ID string `json:"@odata.id"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&coll); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range coll.Members {
		ids = append(ids, m.ID)
	}
	return ids
}

func basicAuth(t *testing.T, n *simulator.Node, method, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, n.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", "password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %s", method, path, resp.Status)
	}
	return resp
}

// expireSessions deletes every session on the BMC, as an idle timeout or
// another admin would.
func expireSessions(t *testing.T, n *simulator.Node) {
	t.Helper()
	for _, s := range bmcSessions(t, n) {
		basicAuth(t, n, http.MethodDelete, s).Body.Close()
	}
}

// eventually waits up to 5s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPowerState(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{Machine: simulator.MachineConfig{InitialPower: "On"}})
	b := newBackend(t, n, nil)
	ctx := ctxFor(t, 10*time.Second)

	if got, err := b.PowerState(ctx); err != nil || got != schemas.PowerOn {
		t.Fatalf("PowerState = %q, %v; want On", got, err)
	}
	n.Machine().SetPower("Off")
	if got, err := b.PowerState(ctx); err != nil || got != schemas.PowerOff {
		t.Fatalf("PowerState = %q, %v; want Off", got, err)
	}
	if s := bmcSessions(t, n); len(s) != 1 {
		t.Errorf("BMC holds sessions %v; want the one session reused", s)
	}
}

func TestEachResetTypeReachesMachine(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{})
	b := newBackend(t, n, nil)
	ctx := ctxFor(t, 30*time.Second)
	m := n.Machine()

	for _, r := range schemas.AllResetTypes {
		t.Run(string(r), func(t *testing.T) {
			before := m.Status().CommandCount
			if err := b.Reset(ctx, r); err != nil {
				t.Fatal(err)
			}
			st := m.Status()
			if st.CommandCount != before+1 {
				t.Fatalf("machine saw %d commands; want 1", st.CommandCount-before)
			}
			last := st.Commands[len(st.Commands)-1]
			if last.Action != string(r) || last.Protocol != "redfish" || last.Result != "accepted" {
				t.Fatalf("last command = %+v; want %s via redfish, accepted", last, r)
			}
			if want, ok := r.Target(); ok {
				eventually(t, "power state "+string(want), func() bool { return m.PowerState() == string(want) })
			}
		})
	}
	if got := m.Status().MaxInFlight; got != 1 {
		t.Errorf("MaxInFlight = %d; want 1", got)
	}
}

func TestAsyncResetFollowsTask(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{AsyncReset: true, Machine: simulator.MachineConfig{
		DelayMin: 300 * time.Millisecond, DelayMax: 300 * time.Millisecond,
	}})
	b := newBackend(t, n, nil)
	ctx := ctxFor(t, 10*time.Second)

	if err := b.Reset(ctx, schemas.ResetOn); err != nil {
		t.Fatal(err)
	}
	// The simulator's task completes when the transition settles, so a
	// Reset that followed the task returns with the machine On, not
	// PoweringOn.
	if got := n.Machine().PowerState(); got != "On" {
		t.Fatalf("after Reset(On) returned, machine is %s; want On (task not followed?)", got)
	}
	if got := n.Machine().Status().CommandCount; got != 1 {
		t.Errorf("machine saw %d commands; want 1", got)
	}
}

func TestAsyncResetTaskFailure(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{AsyncReset: true, Machine: simulator.MachineConfig{
		Faults: simulator.Faults{FailFirst: 1},
	}})
	b := newBackend(t, n, nil)

	err := b.Reset(ctxFor(t, 10*time.Second), schemas.ResetOn)
	if !errors.Is(err, ErrTaskFailed) {
		t.Fatalf("Reset = %v; want ErrTaskFailed", err)
	}
	for _, want := range []string{n.URL(), "Exception", "simulated failure"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestSyncResetFailure(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{})
	n.Machine().SetFaults(simulator.Faults{FailFirst: 1})
	b := newBackend(t, n, nil)
	ctx := ctxFor(t, 10*time.Second)

	err := b.Reset(ctx, schemas.ResetOn)
	if err == nil || !strings.Contains(err.Error(), n.URL()) || !strings.Contains(err.Error(), "500") {
		t.Fatalf("Reset = %v; want the BMC's 500, naming the endpoint", err)
	}
	if errors.Is(err, ErrTaskFailed) || errors.Is(err, backends.ErrUnsupported) {
		t.Errorf("Reset = %v; a refused synchronous command is neither a task failure nor unsupported", err)
	}
	if err := b.Reset(ctx, schemas.ResetOn); err != nil {
		t.Fatalf("second Reset = %v; the fault was for the first only", err)
	}
}

func TestUnsupportedResetNotSent(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{Machine: simulator.MachineConfig{ResetTypes: []string{"On", "ForceOff"}}})
	b := newBackend(t, n, nil)

	err := b.Reset(ctxFor(t, 10*time.Second), schemas.ResetNmi)
	if !errors.Is(err, backends.ErrUnsupported) {
		t.Fatalf("Reset(Nmi) = %v; want ErrUnsupported", err)
	}
	if !strings.Contains(err.Error(), n.URL()) {
		t.Errorf("error %q does not name the endpoint", err)
	}
	if got := n.Machine().Status().CommandCount; got != 0 {
		t.Errorf("machine saw %d commands; want none sent", got)
	}
}

func TestCapabilities(t *testing.T) {
	offered := []string{"On", "ForceOff", "PowerCycle"}
	n := startNode(t, simulator.NodeSpec{Machine: simulator.MachineConfig{ResetTypes: offered}})
	b := newBackend(t, n, nil)

	caps, err := b.Capabilities(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := []schemas.ResetType{"On", "ForceOff", "PowerCycle"}
	if !slices.Equal(caps.ResetTypes, want) {
		t.Errorf("ResetTypes = %v; want %v", caps.ResetTypes, want)
	}
	if !slices.Equal(caps.BootTargets, simulator.BootTargets()) {
		t.Errorf("BootTargets = %v; want the BMC's %v", caps.BootTargets, simulator.BootTargets())
	}
	if caps.BootModes != nil {
		t.Errorf("BootModes = %v; the simulator advertises none", caps.BootModes)
	}
	if caps.Supports(schemas.ResetNmi) {
		t.Error("Supports(Nmi) on a BMC without Nmi")
	}
}

func TestBootOverride(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{})
	b := newBackend(t, n, nil)
	ctx := ctxFor(t, 10*time.Second)

	set := schemas.BootOverride{Target: "Pxe", Enabled: "Once", Mode: "UEFI"}
	if err := b.SetBoot(ctx, set); err != nil {
		t.Fatal(err)
	}
	if got := n.Machine().Boot(); got != (simulator.Boot{Target: "Pxe", Enabled: "Once", Mode: "UEFI"}) {
		t.Fatalf("machine boot = %+v; want %+v", got, set)
	}
	if got, err := b.Boot(ctx); err != nil || got != set {
		t.Fatalf("Boot = %+v, %v; want %+v", got, err, set)
	}

	// Empty fields are left as they are.
	if err := b.SetBoot(ctx, schemas.BootOverride{Target: "Cd"}); err != nil {
		t.Fatal(err)
	}
	want := schemas.BootOverride{Target: "Cd", Enabled: "Once", Mode: "UEFI"}
	if got, err := b.Boot(ctx); err != nil || got != want {
		t.Fatalf("Boot = %+v, %v; want %+v", got, err, want)
	}

	// A target outside the BMC's AllowableValues is refused before sending.
	before := n.Machine().Status().CommandCount
	err := b.SetBoot(ctx, schemas.BootOverride{Target: "RemoteDrive"})
	if !errors.Is(err, backends.ErrUnsupported) {
		t.Fatalf("SetBoot(RemoteDrive) = %v; want ErrUnsupported", err)
	}
	if got := n.Machine().Status().CommandCount; got != before {
		t.Errorf("machine saw %d commands; want none sent", got-before)
	}
}

func TestBootOverrideAfterConcurrentChange(t *testing.T) {
	// The system's ETag changes between SetBoot's GET and its PATCH (on
	// many BMCs PowerState alone does it; here another client changes the
	// boot override). SetBoot sends only the caller's values, so it must
	// not fail with 412: the caller's values win.
	n := startNode(t, simulator.NodeSpec{})
	b := newBackend(t, n, nil)
	b.beforeBootPatch = func() {
		if err := n.Machine().SetBoot("other", simulator.Boot{Target: "Cd", Enabled: "Once"}); err != nil {
			t.Error(err)
		}
	}
	if err := b.SetBoot(ctxFor(t, 10*time.Second), schemas.BootOverride{Target: "Hdd", Enabled: "Continuous"}); err != nil {
		t.Fatal(err)
	}
	if got := n.Machine().Boot(); got.Target != "Hdd" || got.Enabled != "Continuous" {
		t.Fatalf("machine boot = %+v; want Hdd/Continuous", got)
	}
}

func TestReloginAfterSessionExpired(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{})
	b := newBackend(t, n, nil)
	ctx := ctxFor(t, 10*time.Second)

	if _, err := b.PowerState(ctx); err != nil {
		t.Fatal(err)
	}
	first := bmcSessions(t, n)
	expireSessions(t, n)

	// A read logs in again and succeeds.
	if _, err := b.PowerState(ctx); err != nil {
		t.Fatalf("PowerState after session expiry: %v", err)
	}
	second := bmcSessions(t, n)
	if len(first) != 1 || len(second) != 1 || first[0] == second[0] {
		t.Fatalf("sessions before %v, after %v; want one new session", first, second)
	}

	// A command refused with 401 is sent again once, after the new login,
	// and reaches the machine exactly once. Capabilities first, so that the
	// Reset action is known and the 401 answers the POST itself.
	if _, err := b.Capabilities(ctx); err != nil {
		t.Fatal(err)
	}
	expireSessions(t, n)
	if err := b.Reset(ctx, schemas.ResetOn); err != nil {
		t.Fatalf("Reset after session expiry: %v", err)
	}
	if got := n.Machine().Status().CommandCount; got != 1 {
		t.Errorf("machine saw %d commands; want 1", got)
	}
}

func TestConcurrentCallsShareOneLogin(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{})
	b := newBackend(t, n, nil)
	ctx := ctxFor(t, 20*time.Second)

	for round := range 2 {
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 40 {
			wg.Go(func() {
				var err error
				switch i % 4 {
				case 0:
					_, err = b.PowerState(ctx)
				case 1:
					_, err = b.Boot(ctx)
				case 2:
					_, err = b.Capabilities(ctx)
				case 3:
					err = b.SetBoot(ctx, schemas.BootOverride{Target: "Pxe"})
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if s := bmcSessions(t, n); len(s) != 1 {
			t.Fatalf("round %d: BMC holds sessions %v; want 1", round, s)
		}
		expireSessions(t, n) // round 1 starts with 40 callers seeing 401
	}
	b.mu.Lock()
	gen := b.gen
	b.mu.Unlock()
	if gen != 2 {
		t.Errorf("logged in %d times; want 2 (first use, one re-login)", gen)
	}
}

func TestContextDeadline(t *testing.T) {
	t.Run("BMC hangs on Reset", func(t *testing.T) {
		n := startNode(t, simulator.NodeSpec{Machine: simulator.MachineConfig{Faults: simulator.Faults{Hang: time.Minute}}})
		b := newBackend(t, n, nil)
		start := time.Now()
		err := b.Reset(ctxFor(t, 300*time.Millisecond), schemas.ResetOn)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Reset = %v; want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Reset returned after %v", d)
		}
	})
	t.Run("task outlives ctx", func(t *testing.T) {
		n := startNode(t, simulator.NodeSpec{AsyncReset: true, Machine: simulator.MachineConfig{
			DelayMin: time.Minute, DelayMax: time.Minute,
		}})
		b := newBackend(t, n, nil)
		err := b.Reset(ctxFor(t, 300*time.Millisecond), schemas.ResetOn)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, backends.ErrNoAnswer) {
			t.Fatalf("Reset = %v; want DeadlineExceeded and backends.ErrNoAnswer (the task's outcome is unknown)", err)
		}
		if got := n.Machine().Status().CommandCount; got != 1 {
			t.Errorf("machine saw %d commands; want 1", got)
		}
	})
	t.Run("Config.Timeout bounds a request without ctx deadline", func(t *testing.T) {
		n := startNode(t, simulator.NodeSpec{Machine: simulator.MachineConfig{Faults: simulator.Faults{Hang: time.Minute}}})
		b := newBackend(t, n, func(c *Config) { c.Timeout = 300 * time.Millisecond })
		err := b.Reset(t.Context(), schemas.ResetOn)
		if err == nil || !strings.Contains(err.Error(), "Timeout") {
			t.Fatalf("Reset = %v; want the client timeout", err)
		}
	})
	t.Run("already expired", func(t *testing.T) {
		n := startNode(t, simulator.NodeSpec{})
		b := newBackend(t, n, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := b.PowerState(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("PowerState = %v; want Canceled", err)
		}
	})
}

// A slow BMC (issue 9): a Reset answered after the backend's Timeout, or
// after the caller's deadline, is POSTed once.
func TestSlowBMCCommandNotResent(t *testing.T) {
	backendtest.CheckSlowCommands(t, func(t *testing.T, timeout time.Duration, mc simulator.MachineConfig) (backends.Backend, *simulator.Machine) {
		n := startNode(t, simulator.NodeSpec{Machine: mc})
		return newBackend(t, n, func(c *Config) { c.Timeout = timeout }), n.Machine()
	}, schemas.ResetOn)
}

// A Reset that surely did not reach the BMC is no lost answer.
func TestUnsentResetIsNoLostAnswer(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{})
	b := newBackend(t, n, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Reset(ctx, schemas.ResetOn); err == nil || errors.Is(err, backends.ErrNoAnswer) {
		t.Errorf("Reset with a done ctx = %v; want an error, not backends.ErrNoAnswer", err)
	}
	if err := b.Reset(ctxFor(t, 5*time.Second), schemas.ResetOn); err != nil { // logs in, reads the Reset action
		t.Fatal(err)
	}
	gone := newBackend(t, n, func(c *Config) { c.Endpoint = "http://" + testkit.RefusedAddr(t) }) // nothing listens there
	if err := gone.Reset(ctxFor(t, 5*time.Second), schemas.ResetOn); err == nil || errors.Is(err, backends.ErrNoAnswer) {
		t.Errorf("Reset to a closed port = %v; want an error, not backends.ErrNoAnswer", err)
	}
	if st := n.Machine().Status(); st.CommandCount != 1 {
		t.Errorf("machine logged %+v, want the one On", st.Commands)
	}
}

func TestWrongPassword(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{})
	b := newBackend(t, n, func(c *Config) { c.Password = "not-the-password" })

	_, err := b.PowerState(ctxFor(t, 10*time.Second))
	if !errors.Is(err, ErrAuthentication) {
		t.Fatalf("PowerState = %v; want ErrAuthentication", err)
	}
	for _, want := range []string{n.URL(), `"admin"`, "401"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Errorf("error %q leaks the password", err)
	}
	if err := b.Reset(ctxFor(t, 10*time.Second), schemas.ResetOn); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("Reset = %v; want ErrAuthentication", err)
	}
	if got := n.Machine().Status().CommandCount; got != 0 {
		t.Errorf("machine saw %d commands; want 0", got)
	}
}

func TestCloseLogsOut(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{})
	b := newBackend(t, n, nil)
	ctx := ctxFor(t, 10*time.Second)

	if _, err := b.PowerState(ctx); err != nil {
		t.Fatal(err)
	}
	if s := bmcSessions(t, n); len(s) != 1 {
		t.Fatalf("sessions %v; want 1", s)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if s := bmcSessions(t, n); len(s) != 0 {
		t.Errorf("sessions after Close %v; want none", s)
	}
	if _, err := b.PowerState(ctx); err == nil {
		t.Error("PowerState after Close succeeded")
	}
}

func TestNoIOUntilFirstCall(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{})
	newBackend(t, n, nil)
	if s := bmcSessions(t, n); len(s) != 0 {
		t.Errorf("sessions %v after New; want none", s)
	}
}

func TestSystemSelection(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{SystemID: "blade-7", Machine: simulator.MachineConfig{InitialPower: "On"}})
	for _, id := range []string{"", "blade-7", n.SystemPath()} {
		b := newBackend(t, n, func(c *Config) { c.SystemID = id })
		if got, err := b.PowerState(ctxFor(t, 10*time.Second)); err != nil || got != schemas.PowerOn {
			t.Errorf("SystemID %q: PowerState = %q, %v", id, got, err)
		}
	}
	b := newBackend(t, n, func(c *Config) { c.SystemID = "nope" })
	if _, err := b.PowerState(ctxFor(t, 10*time.Second)); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("SystemID nope: PowerState = %v; want 404", err)
	}
}

func TestTLS(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{TLS: true})
	b := newBackend(t, n, func(c *Config) { c.Insecure = true })
	if _, err := b.PowerState(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatalf("Insecure: %v", err)
	}
	b = newBackend(t, n, nil)
	if _, err := b.PowerState(ctxFor(t, 10*time.Second)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("verifying a self-signed certificate: %v; want a certificate error", err)
	}
}

// rewriteSystem puts a reverse proxy in front of n that rewrites the
// ComputerSystem's Reset action as edit says, to play a BMC that advertises
// its ResetTypes differently. extra serves further paths (an ActionInfo).
func rewriteSystem(t *testing.T, n *simulator.Node, edit func(reset map[string]any), extra map[string]any) string {
	t.Helper()
	target, err := url.Parse(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path != n.SystemPath() || resp.StatusCode != http.StatusOK {
			return nil
		}
		var sys map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&sys); err != nil {
			return err
		}
		resp.Body.Close()
		edit(sys["Actions"].(map[string]any)["#ComputerSystem.Reset"].(map[string]any))
		body, err := json.Marshal(sys)
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v, ok := extra[r.URL.Path]; ok {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(v)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestResetTypesFromActionInfo(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{Machine: simulator.MachineConfig{ResetTypes: []string{"On", "ForceOff", "Nmi"}}})
	infoPath := n.SystemPath() + "/ResetActionInfo"
	endpoint := rewriteSystem(t, n, func(reset map[string]any) {
		delete(reset, "ResetType@Redfish.AllowableValues")
		reset["@Redfish.ActionInfo"] = infoPath
	}, map[string]any{infoPath: map[string]any{
		"@odata.id":   infoPath,
		"@odata.type": "#ActionInfo.v1_1_2.ActionInfo",
		"Id":          "ResetActionInfo",
		"Parameters": []map[string]any{{
			"Name": "ResetType", "Required": true, "DataType": "String",
			"AllowableValues": []string{"On", "ForceOff"},
		}},
	}})
	b := newBackend(t, n, func(c *Config) { c.Endpoint = endpoint })
	ctx := ctxFor(t, 10*time.Second)

	caps, err := b.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []schemas.ResetType{"On", "ForceOff"}; !slices.Equal(caps.ResetTypes, want) {
		t.Errorf("ResetTypes = %v; want the ActionInfo's %v", caps.ResetTypes, want)
	}
	if err := b.Reset(ctx, schemas.ResetNmi); !errors.Is(err, backends.ErrUnsupported) {
		t.Errorf("Reset(Nmi) = %v; want ErrUnsupported (not in the ActionInfo)", err)
	}
	if err := b.Reset(ctx, schemas.ResetOn); err != nil {
		t.Fatal(err)
	}
	if got := n.Machine().Status().CommandCount; got != 1 {
		t.Errorf("machine saw %d commands; want 1 (On only)", got)
	}
}

func TestResetTypesDefault(t *testing.T) {
	n := startNode(t, simulator.NodeSpec{})
	endpoint := rewriteSystem(t, n, func(reset map[string]any) {
		delete(reset, "ResetType@Redfish.AllowableValues")
	}, nil)
	b := newBackend(t, n, func(c *Config) { c.Endpoint = endpoint })
	ctx := ctxFor(t, 10*time.Second)

	caps, err := b.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(caps.ResetTypes, DefaultResetTypes()) {
		t.Errorf("ResetTypes = %v; want DefaultResetTypes %v", caps.ResetTypes, DefaultResetTypes())
	}
	if err := b.Reset(ctx, schemas.ResetPowerCycle); !errors.Is(err, backends.ErrUnsupported) {
		t.Errorf("Reset(PowerCycle) = %v; want ErrUnsupported (not in the default set)", err)
	}
	if err := b.Reset(ctx, schemas.ResetForceOff); err != nil {
		t.Fatal(err)
	}
}
