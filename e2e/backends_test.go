package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/app/demo"
	"github.com/fishgate/fishgate/app/gateway"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// IPMI- and AMT-backed nodes through the gateway's Redfish API (issues 4
// and 5): the ResetTypes each advertises, the wire command each Reset
// becomes at the simulated machine (its command log), AMT's failing first
// attempts and ignored commands, and Redfish and IPMI clients of one node
// serialized together.

// amtPowerStates is the AMT mapping of ResetTypes to the PowerState
// values of RequestPowerStateChange; the simulator logs an AMT command as
// "<ResetType> (<value>)".
var amtPowerStates = map[schemas.ResetType]int{
	schemas.ResetOn: 2, schemas.ResetPowerCycle: 5, schemas.ResetForceOff: 8, schemas.ResetForceRestart: 10,
	schemas.ResetNmi: 11, schemas.ResetGracefulShutdown: 12, schemas.ResetGracefulRestart: 14,
}

// ipmiResets are the ResetTypes IPMI's Chassis Control carries out (power
// up, power down, soft shutdown, hard reset, power cycle, diagnostic
// interrupt); the simulator logs each as the ResetType it maps the control
// back to.
var ipmiResets = []schemas.ResetType{
	schemas.ResetOn, schemas.ResetForceOff, schemas.ResetGracefulShutdown,
	schemas.ResetForceRestart, schemas.ResetPowerCycle, schemas.ResetNmi,
}

// wireAction is how the simulator's command log names rt sent over proto.
func wireAction(proto string, rt schemas.ResetType) string {
	if proto == "amt" {
		return fmt.Sprintf("%s (%d)", rt, amtPowerStates[rt])
	}
	return string(rt)
}

// amtOffers is what an AMT in front of a machine offering types can do:
// types ∩ the mapping.
func amtOffers(types []string) []schemas.ResetType {
	var out []schemas.ResetType
	for _, r := range types {
		if _, ok := amtPowerStates[schemas.ResetType(r)]; ok {
			out = append(out, schemas.ResetType(r))
		}
	}
	return out
}

// gw is a running gateway as a test sees it: its base URL, its Redfish
// credentials and the simulated fleet behind it.
type gw struct {
	url   string
	auth  map[string]string
	fleet *simulator.Fleet
	// ipmiAddr is the gateway's IPMI front address of a node ("" without).
	ipmiAddr func(node string) string
	// nodeIPMIPort is the UDP port of IPMI at node addresses (0 without).
	nodeIPMIPort func() int
}

// basicAuth is the Authorization header of HTTP Basic for user.
func basicAuth(user, pass string) map[string]string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return map[string]string{"Authorization": req.Header.Get("Authorization")}
}

// waitReady waits until the gateway's service root answers.
func (g *gw) waitReady(t *testing.T) {
	t.Helper()
	waitFor(t, 20*time.Second, "gateway "+g.url+" answers", func() (bool, string) {
		st, _, _ := do(t, http.MethodGet, g.url+"/redfish/v1", nil, nil)
		return st == http.StatusOK, fmt.Sprint(st)
	})
}

// startBackendDemo runs a demo (demo.Start with o, on free loopback
// ports, account gwUser/gwPass, which is also the IPMI front's) until the
// test ends.
// fastRestarts fits the gateway to the tests' fast simulated machines: a
// restart's Off phase lasts a few tens of milliseconds there, too short to
// be seen between power reads, so restarts end Completed with a Warning
// (no evidence) after restart_evidence; a native GracefulRestart waits
// soft_off_timeout for it.
func fastRestarts(c *config.Config) {
	c.RestartEvidence = config.Duration(time.Second)
	c.SoftOffTimeout = config.Duration(3 * time.Second)
}

func startBackendDemo(t *testing.T, o demo.Options) *gw {
	t.Helper()
	logs := &lockedBuffer{}
	o.Listen, o.SimListen = "127.0.0.1:0", "127.0.0.1:0"
	o.User, o.Password = gwUser, gwPass
	o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.Tune == nil {
		o.Tune = fastRestarts
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := demo.Start(ctx, o)
	if err != nil {
		cancel()
		t.Fatalf("demo.Start: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		stopped(t, "demo", served)
		if t.Failed() {
			t.Logf("demo log:\n%s", logs.String())
		}
	})
	g := &gw{url: d.URL(), auth: basicAuth(gwUser, gwPass), fleet: d.Fleet, ipmiAddr: d.Gateway.IPMIAddr, nodeIPMIPort: d.Gateway.NodeIPMIPort}
	g.waitReady(t)
	return g
}

// stopped waits for a Serve that was told to stop to return.
func stopped(t *testing.T, what string, served <-chan error) {
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("%s: Serve: %v", what, err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop within 20s", what)
	}
}

// gwNode is one simulated node behind a test gateway: its spec (its
// AMTListen or IPMIListen set to match backend) and backend kind.
type gwNode struct {
	backend string
	spec    simulator.NodeSpec
}

const gwUser, gwPass = "admin", "gw-secret"

// startGateway starts the simulated nodes and a gateway over them
// (gateway.New, embedded Redis) configured by config.Default() and then
// mod, when set.
func startGateway(t *testing.T, nodes []gwNode, mod func(*config.Config)) *gw {
	t.Helper()
	fleet := simulator.NewFleet(nil)
	t.Cleanup(func() { fleet.Close() })
	cfg := config.Default()
	fastRestarts(&cfg)
	cfg.Listen = "127.0.0.1:0"
	cfg.TLS.Disabled = true
	cfg.Accounts = []config.Account{{User: gwUser, Password: gwPass, Role: "Administrator"}}
	for _, n := range nodes {
		sn, err := fleet.Add(n.spec)
		if err != nil {
			t.Fatalf("simulated node %s: %v", n.spec.ID, err)
		}
		spec := sn.Spec()
		c := config.Node{ID: spec.ID, Backend: n.backend, User: spec.User, Password: spec.Password}
		switch n.backend {
		case "amt":
			c.Address = sn.AMTURL()
		case "ipmi":
			c.Address = "ipmi://" + sn.IPMIAddr()
		default:
			c.Address = sn.URL()
		}
		cfg.Nodes = append(cfg.Nodes, c)
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatalf("gateway.New: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx) }()
	t.Cleanup(func() { cancel(); stopped(t, "gateway", served) })
	w := &gw{url: g.URL(), auth: basicAuth(gwUser, gwPass), fleet: fleet, ipmiAddr: g.IPMIAddr}
	w.waitReady(t)
	return w
}

// system GETs a node's ComputerSystem.
func (g *gw) system(t *testing.T, node string) map[string]any {
	t.Helper()
	url := g.url + "/redfish/v1/Systems/" + node
	st, _, b := do(t, http.MethodGet, url, nil, g.auth)
	if st != http.StatusOK {
		t.Fatalf("GET %s: status %d, body %s", url, st, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, b)
	}
	return m
}

// allowedResets is the System's ResetType@Redfish.AllowableValues.
func (g *gw) allowedResets(t *testing.T, node string) []schemas.ResetType {
	t.Helper()
	sys := g.system(t, node)
	acts, _ := sys["Actions"].(map[string]any)
	reset, _ := acts["#ComputerSystem.Reset"].(map[string]any)
	vals, ok := reset["ResetType@Redfish.AllowableValues"].([]any)
	if !ok {
		t.Fatalf("System %s: no ResetType@Redfish.AllowableValues in %v", node, sys["Actions"])
	}
	var out []schemas.ResetType
	for _, v := range vals {
		s, _ := v.(string)
		out = append(out, schemas.ResetType(s))
	}
	return out
}

// reset POSTs a Reset and returns the task id its Location names (202
// required).
func (g *gw) reset(t *testing.T, node string, rt schemas.ResetType) string {
	t.Helper()
	st, h, b := g.postReset(t, node, rt)
	loc := h.Get("Location")
	if st != http.StatusAccepted || !strings.Contains(loc, monitorPath) {
		t.Fatalf("Reset %s of %s: status %d, Location %q, body %s", rt, node, st, loc, b)
	}
	return path.Base(loc)
}

// postReset POSTs a Reset of node and returns the answer as it is.
func (g *gw) postReset(t *testing.T, node string, rt schemas.ResetType) (int, http.Header, []byte) {
	t.Helper()
	return do(t, http.MethodPost, g.url+"/redfish/v1/Systems/"+node+"/Actions/ComputerSystem.Reset",
		map[string]string{"ResetType": string(rt)}, g.auth)
}

// task GETs a Task (200 required).
func (g *gw) task(t *testing.T, id string) map[string]any {
	t.Helper()
	url := g.url + "/redfish/v1" + tasksPath + id
	st, _, b := do(t, http.MethodGet, url, nil, g.auth)
	var m map[string]any
	if st != http.StatusOK || json.Unmarshal(b, &m) != nil {
		t.Fatalf("GET %s: status %d, body %s", url, st, b)
	}
	return m
}

// waitTask waits until task id is terminal and returns it.
func (g *gw) waitTask(t *testing.T, id string) map[string]any {
	t.Helper()
	var last map[string]any
	waitFor(t, taskTimeout, "task "+id+" terminal", func() (bool, string) {
		last = g.task(t, id)
		return terminal(taskState(last)), taskState(last)
	})
	return last
}

// machine is the simulated machine of node.
func (g *gw) machine(t *testing.T, node string) *simulator.Machine {
	t.Helper()
	n, ok := g.fleet.Node(node)
	if !ok {
		t.Fatalf("no simulated node %s", node)
	}
	return n.Machine()
}

// commandsSince lists the machine's commands numbered after seq as
// "<protocol> <action>: <result>", the result cut at its first colon
// (accepted, failed, ignored, refused).
func commandsSince(m *simulator.Machine, seq int) []string {
	var out []string
	for _, c := range m.Status().Commands {
		if c.Seq > seq {
			res, _, _ := strings.Cut(c.Result, ":")
			out = append(out, c.Protocol+" "+c.Action+": "+res)
		}
	}
	return out
}

// lastSeq is the number of the machine's last command (0: none yet).
func lastSeq(m *simulator.Machine) int {
	st := m.Status()
	if len(st.Commands) == 0 {
		return 0
	}
	return st.Commands[len(st.Commands)-1].Seq
}

// sameSet reports whether a and b hold the same ResetTypes.
func sameSet(a, b []schemas.ResetType) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// coverResets orders offered so that, from Off, each ResetType makes the
// gateway send a command (it sends none for an On of a node that is On, or
// an off of a node that is Off): the ons, restarts and Nmi while On is
// reachable, the offs last, an On again between two offs.
func coverResets(offered []schemas.ResetType) []schemas.ResetType {
	order := []schemas.ResetType{schemas.ResetOn, schemas.ResetForceRestart, schemas.ResetGracefulRestart,
		schemas.ResetPowerCycle, schemas.ResetNmi, schemas.ResetPushPowerButton, schemas.ResetForceOn,
		schemas.ResetGracefulShutdown, schemas.ResetOn, schemas.ResetForceOff, schemas.ResetForceOn, schemas.ResetForceOff}
	var seq []schemas.ResetType
	on := false
	for _, r := range order {
		if !slices.Contains(offered, r) {
			continue
		}
		target, steady := r.Target()
		if steady && (r == schemas.ResetOn || r == schemas.ResetForceOn || r == schemas.ResetForceOff || r == schemas.ResetGracefulShutdown) && (target == schemas.PowerOn) == on {
			continue // already there: nothing would be sent
		}
		seq = append(seq, r)
		switch {
		case steady:
			on = target == schemas.PowerOn
		case r == schemas.ResetPushPowerButton:
			on = !on
		}
	}
	return seq
}

// planWire is what the machine receives over proto for rt on a BMC whose
// own types are native, starting from power state before: the phases of
// serializer.Plan (native, or emulated), less those already satisfied.
// failFirst commands fail before the first one is accepted.
func planWire(proto string, native []schemas.ResetType, failFirst int) func(rt schemas.ResetType, before string) []string {
	return func(rt schemas.ResetType, before string) []string {
		failFirst := failFirst
		phases, err := serializer.Plan(rt, native, schemas.PowerState(before), false)
		if err != nil {
			return []string{"not offered: " + err.Error()}
		}
		var out []string
		state := schemas.PowerState(before)
		for _, p := range phases {
			if !p.Restart && p.Want != "" && p.Want == state {
				continue
			}
			a := proto + " " + wireAction(proto, p.Cmd)
			for ; failFirst > 0; failFirst-- {
				out = append(out, a+": failed")
			}
			out = append(out, a+": accepted")
			if p.Want != "" {
				state = p.Want
			}
		}
		return out
	}
}

// exercise sends every ResetType of offered to node, from Off, in the
// order of coverResets, and checks each one: its task Completed, the
// machine received exactly want(rt) (failed attempts included) over proto,
// and the machine and the gateway show the target state. arm, when set,
// runs before each Reset.
func (g *gw) exercise(t *testing.T, node, proto string, offered []schemas.ResetType, arm func(*simulator.Machine), want func(rt schemas.ResetType, before string) []string) {
	t.Helper()
	seq := coverResets(offered)
	for _, r := range offered {
		if !slices.Contains(seq, r) {
			t.Fatalf("test bug: coverResets(%v) = %v leaves out %s", offered, seq, r)
		}
	}
	m := g.machine(t, node)
	if ps := m.PowerState(); ps != simulator.PowerOff {
		t.Fatalf("%s starts %s, want Off", node, ps)
	}
	for _, rt := range seq {
		seq0 := lastSeq(m)
		before := m.PowerState()
		if arm != nil {
			arm(m)
		}
		start := time.Now()
		id := g.reset(t, node, rt)
		task := g.waitTask(t, id)
		if taskState(task) != "Completed" {
			ids, res := taskMessages(task)
			t.Fatalf("%s %s: task %s ended %s (%v %v); machine got %q", node, rt, id, taskState(task), ids, res, commandsSince(m, seq0))
		}
		if got, w := commandsSince(m, seq0), want(rt, before); !slices.Equal(got, w) {
			t.Errorf("%s %s: the machine got %q, want %q", node, rt, got, w)
		}
		if target, steady := rt.Target(); steady {
			if ps := m.PowerState(); ps != string(target) {
				t.Errorf("%s %s Completed, machine %s, want %s", node, rt, ps, target)
			}
			if ps, _ := g.system(t, node)["PowerState"].(string); ps != string(target) {
				t.Errorf("%s %s Completed, gateway shows PowerState %q, want %s", node, rt, ps, target)
			}
		}
		t.Logf("%s %s: Completed in %v, machine got %q", node, rt, time.Since(start).Round(time.Millisecond), commandsSince(m, seq0))
	}
	if st := m.Status(); st.MaxInFlight > 1 {
		t.Errorf("%s: MaxInFlight %d", node, st.MaxInFlight)
	}
}

// refused checks that node refuses rt with 400 ActionParameterValueNotInList
// and sends nothing.
func (g *gw) refused(t *testing.T, node string, rt schemas.ResetType) {
	t.Helper()
	m := g.machine(t, node)
	seq0 := lastSeq(m)
	st, _, b := g.postReset(t, node, rt)
	if _, ok := hasMessage(messageIDs(b), "ActionParameterValueNotInList"); st != http.StatusBadRequest || !ok {
		t.Errorf("Reset %s of %s (not offered): status %d, body %s; want 400 ActionParameterValueNotInList", rt, node, st, b)
	}
	if got := commandsSince(m, seq0); len(got) > 0 {
		t.Errorf("Reset %s of %s (not offered) reached the machine: %q", rt, node, got)
	}
}

// TestIPMIAndAMTNodesViaRedfish: a demo with an IPMI-backed and an
// AMT-backed node. Each advertises every ResetType its BMC's primitives
// give, natively or emulated, and says which is which; every advertised
// Reset reaches the machine as the right wire commands (the phases of an
// emulated one, in order).
func TestIPMIAndAMTNodesViaRedfish(t *testing.T) {
	t.Parallel()
	g := startBackendDemo(t, demo.Options{Nodes: 2, Backends: []string{"ipmi", "amt"}, DelayMin: delayMin, DelayMax: delayMax})
	t.Run("ipmi", func(t *testing.T) {
		const node = "node01"
		want := serializer.Offered(ipmiResets, false)
		if got := g.allowedResets(t, node); !sameSet(got, want) || len(want) != len(schemas.AllResetTypes) {
			t.Fatalf("IPMI node advertises %v, want exactly %v (every type)", got, want)
		}
		g.emulation(t, node, ipmiResets)
		g.exercise(t, node, "ipmi", want, nil, planWire("ipmi", ipmiResets, 0))
	})
	t.Run("amt", func(t *testing.T) {
		const node = "node02"
		native := amtOffers(g.machine(t, node).ResetTypes())
		want := serializer.Offered(native, false)
		if got := g.allowedResets(t, node); !sameSet(got, want) {
			t.Fatalf("AMT node advertises %v, want exactly %v", got, want)
		}
		g.emulation(t, node, native)
		g.exercise(t, node, "amt", want, nil, planWire("amt", native, 0))
	})
}

// emulation checks the System's Oem.Fishgate.ResetTypes: for every offered
// type, "native" or how it is emulated.
func (g *gw) emulation(t *testing.T, node string, native []schemas.ResetType) {
	t.Helper()
	oem, _ := g.system(t, node)["Oem"].(map[string]any)
	fg, _ := oem["Fishgate"].(map[string]any)
	got, _ := fg["ResetTypes"].(map[string]any)
	for _, r := range serializer.Offered(native, false) {
		how, _ := serializer.Emulation(r, native, false)
		if got[string(r)] != how {
			t.Errorf("%s: Oem.Fishgate.ResetTypes[%s] = %v, want %q", node, r, got[string(r)], how)
		}
	}
	if len(got) != len(serializer.Offered(native, false)) {
		t.Errorf("%s: Oem.Fishgate.ResetTypes %v lists other types", node, got)
	}
}

// TestAMTNodeWithoutGracefulTypes: an AMT whose machine offers no graceful
// power states (nor ForceRestart): the gateway advertises what its
// primitives give (ForceRestart as PowerCycle, ForceOn as On), refuses the
// graceful types without sending anything (no soft off to build them
// from), and carries out the rest.
func TestAMTNodeWithoutGracefulTypes(t *testing.T) {
	t.Parallel()
	types := []string{simulator.ResetOn, simulator.ResetForceOff, simulator.ResetPowerCycle, simulator.ResetNmi,
		simulator.ResetForceOn, simulator.ResetPushPowerButton}
	g := startGateway(t, []gwNode{{"amt", simulator.NodeSpec{ID: "amt1", AMTListen: "127.0.0.1:0",
		Machine: simulator.MachineConfig{DelayMin: delayMin, DelayMax: delayMax, ResetTypes: types}}}}, nil)
	native := []schemas.ResetType{schemas.ResetOn, schemas.ResetForceOff, schemas.ResetPowerCycle, schemas.ResetNmi}
	if got := amtOffers(types); !sameSet(got, native) {
		t.Fatalf("test setup: AMT offers %v, expected %v", got, native)
	}
	want := []schemas.ResetType{schemas.ResetOn, schemas.ResetForceOff, schemas.ResetPowerCycle, schemas.ResetNmi,
		schemas.ResetForceRestart, schemas.ResetForceOn}
	if got := g.allowedResets(t, "amt1"); !sameSet(got, want) {
		t.Fatalf("AMT node advertises %v, want exactly %v", got, want)
	}
	for _, rt := range []schemas.ResetType{schemas.ResetGracefulShutdown, schemas.ResetGracefulRestart, schemas.ResetPushPowerButton} {
		g.refused(t, "amt1", rt)
	}
	g.exercise(t, "amt1", "amt", want, nil, planWire("amt", native, 0))
}

// TestAMTFailingFirstAttempts: the machine fails the first 2 attempts of
// every command (re-armed before each Reset). Every Reset still completes,
// with the target state, after exactly two failed attempts at the wire.
func TestAMTFailingFirstAttempts(t *testing.T) {
	t.Parallel()
	g := startGateway(t, []gwNode{{"amt", simulator.NodeSpec{ID: "flaky", AMTListen: "127.0.0.1:0",
		Machine: simulator.MachineConfig{DelayMin: delayMin, DelayMax: delayMax}}}}, nil)
	offered := g.allowedResets(t, "flaky")
	native := amtOffers(simulator.DefaultResetTypes())
	if want := serializer.Offered(native, false); !sameSet(offered, want) {
		t.Fatalf("AMT node advertises %v, want exactly %v", offered, want)
	}
	arm := func(m *simulator.Machine) { m.SetFaults(simulator.Faults{FailFirst: 2}) }
	g.exercise(t, "flaky", "amt", offered, arm, planWire("amt", native, 2))
}

// sseStream collects the events of one SSE connection.
type sseStream struct {
	mu     sync.Mutex
	events []schemas.EventRecord
}

// openSSE opens the gateway's SSE stream (/redfish/v1/EventService/SSE)
// for the rest of the test.
func (g *gw) openSSE(t *testing.T) *sseStream {
	t.Helper()
	return openSSEAt(t, g.url, g.auth)
}

// find returns the events whose MessageId ends in "."+key and whose origin
// is origin.
func (s *sseStream) find(key, origin string) []schemas.EventRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []schemas.EventRecord
	for _, e := range s.events {
		if strings.HasSuffix(e.MessageID, "."+key) && e.OriginOfCondition != nil && e.OriginOfCondition.ODataID == origin {
			out = append(out, e)
		}
	}
	return out
}

// TestAMTIgnoringEveryCommand: the machine accepts every command and does
// nothing. The task ends in Exception after the configured retries (one
// command per attempt reached the machine), its message says the node did
// not reach the target, and a ResourceErrorsDetected event about the
// System is published on the SSE stream.
func TestAMTIgnoringEveryCommand(t *testing.T) {
	t.Parallel()
	const (
		node    = "deaf"
		retries = 2
	)
	g := startGateway(t, []gwNode{{"amt", simulator.NodeSpec{ID: node, AMTListen: "127.0.0.1:0",
		Machine: simulator.MachineConfig{DelayMin: delayMin, DelayMax: delayMax, Faults: simulator.Faults{Ignore: true}}}}},
		func(c *config.Config) { c.Retries, c.VerifyTimeout = retries, config.Duration(time.Second) })
	sse := g.openSSE(t)
	m := g.machine(t, node)

	id := g.reset(t, node, schemas.ResetOn)
	task := g.waitTask(t, id)
	if taskState(task) != "Exception" {
		t.Fatalf("task %s: %s, want Exception: %v", id, taskState(task), task)
	}
	ids, res := taskMessages(task)
	full, ok := hasMessage(ids, "TaskAborted")
	if !ok {
		t.Fatalf("task %s: Messages %v, want TaskEvent TaskAborted", id, ids)
	}
	for _, want := range []string{"did not reach On", fmt.Sprintf("after %d attempts", retries+1)} {
		if !strings.Contains(res[full], want) {
			t.Errorf("task %s: message %q does not say %q", id, res[full], want)
		}
	}
	want := slices.Repeat([]string{"amt " + wireAction("amt", schemas.ResetOn) + ": ignored"}, retries+1)
	if got := commandsSince(m, 0); !slices.Equal(got, want) {
		t.Errorf("the machine got %q, want %q (1 + %d retries)", got, want, retries)
	}
	if ps := m.PowerState(); ps != simulator.PowerOff {
		t.Errorf("machine %s, want Off", ps)
	}

	origin := "/redfish/v1/Systems/" + node
	waitFor(t, 10*time.Second, "ResourceErrorsDetected on the SSE stream", func() (bool, string) {
		return len(sse.find("ResourceErrorsDetected", origin)) > 0, "no such event"
	})
	ev := sse.find("ResourceErrorsDetected", origin)[0]
	if ev.MessageSeverity == "OK" || !strings.Contains(ev.Message, "did not reach On") {
		t.Errorf("ResourceErrorsDetected event: severity %s, message %q; want a warning that says the node did not reach On", ev.MessageSeverity, ev.Message)
	}

	// The System itself shows the failed action: Status.Health Warning and
	// Oem.Fishgate.LastFailedAction naming the task and why.
	var status, failed map[string]any
	waitFor(t, 5*time.Second, "the System to show the failed action", func() (bool, string) {
		sys := g.system(t, node)
		status, _ = sys["Status"].(map[string]any)
		oem, _ := sys["Oem"].(map[string]any)
		fg, _ := oem["Fishgate"].(map[string]any)
		failed, _ = fg["LastFailedAction"].(map[string]any)
		return status["Health"] == "Warning" && failed != nil, fmt.Sprint(status, fg)
	})
	if msg, _ := failed["Message"].(string); !strings.Contains(msg, "did not reach On") {
		t.Errorf("LastFailedAction message %q does not say the node did not reach On", msg)
	}
}

// TestMixedClientsOfOneIPMINode: one IPMI-backed node, driven through the
// gateway's Redfish API and through its IPMI front (ipmitool -I lanplus)
// at the same time. Both kinds of request are admissions in the same
// serializer: an ipmitool "power on" while a Redfish On runs joins that
// task, an ipmitool "power cycle" waits as the next action, a Redfish
// PowerCycle joins that one, and the BMC gets one command at a time.
// (app/gateway's TestIPMIWiring floods the same node from both
// clients; this test checks how the requests combine.)
func TestMixedClientsOfOneIPMINode(t *testing.T) {
	testkit.IpmitoolPath(t)
	const d = 100 * time.Millisecond
	g := startBackendDemo(t, demo.Options{Nodes: 1, Backends: []string{"ipmi"}, IPMIFront: true, DelayMin: d, DelayMax: d})
	const node = "node01"
	to := testkit.IPMITarget{Addr: g.ipmiAddr(node), User: gwUser, Password: gwPass}
	m := g.machine(t, node)
	// The machine stays in each transition until the requests below have
	// met the running action.
	release := m.HoldTransitions()
	defer release()
	running := func() (string, []string) {
		oem, _ := g.system(t, node)["Oem"].(map[string]any)
		fg, _ := oem["Fishgate"].(map[string]any)
		var queued []string
		for _, q := range queuedTasks(fg) {
			queued = append(queued, path.Base(q))
		}
		return path.Base(runningTask(fg)), queued
	}

	on := g.reset(t, node, schemas.ResetOn)
	waitFor(t, 30*time.Second, "the On in flight", func() (bool, string) {
		st := m.Status()
		return st.InFlight == 1, fmt.Sprintf("%s, in flight %d", st.PowerState, st.InFlight)
	})
	testkit.MustIpmitool(t, to, "chassis", "power", "on")
	if now, queued := running(); now != on || len(queued) != 0 {
		t.Fatalf("after ipmitool power on: running %q, queued %v; want %s running alone (joined)", now, queued, on)
	}
	testkit.MustIpmitool(t, to, "chassis", "power", "cycle")
	now, queued := running()
	if now != on || len(queued) != 1 {
		t.Fatalf("after ipmitool power cycle: running %q, queued %v; want %s running and one PowerCycle waiting", now, queued, on)
	}
	cycle := queued[0]
	if got := g.reset(t, node, schemas.ResetPowerCycle); got != cycle {
		t.Errorf("Redfish PowerCycle while ipmitool's waits: task %s, want the waiting %s", got, cycle)
	}
	if st := m.Status(); st.PowerState != simulator.PowerPoweringOn {
		t.Fatalf("the On ended before the requests met it (machine %s)", st.PowerState)
	}
	release()

	for _, c := range []struct {
		id     string
		typ    schemas.ResetType
		joined float64
	}{{on, schemas.ResetOn, 1}, {cycle, schemas.ResetPowerCycle, 1}} {
		task := g.waitTask(t, c.id)
		oem, _ := task["Oem"].(map[string]any)
		fg, _ := oem["Fishgate"].(map[string]any)
		if taskState(task) != "Completed" || fg["ResetType"] != string(c.typ) || fg["JoinedCount"] != c.joined {
			t.Errorf("task %s: %s, ResetType %v, JoinedCount %v; want Completed %s joined by %v", c.id, taskState(task), fg["ResetType"], fg["JoinedCount"], c.typ, c.joined)
		}
	}
	want := []string{"ipmi On: accepted", "ipmi PowerCycle: accepted"}
	if got := commandsSince(m, 0); !slices.Equal(got, want) {
		t.Errorf("the machine got %q, want %q", got, want)
	}
	st := m.Status()
	if st.MaxInFlight != 1 || st.PowerState != simulator.PowerOn {
		t.Errorf("machine: MaxInFlight %d, %s; want 1, On", st.MaxInFlight, st.PowerState)
	}
	if out := testkit.MustIpmitool(t, to, "chassis", "power", "status"); out != "Chassis Power is on" {
		t.Errorf("ipmitool power status: %q", out)
	}
}
