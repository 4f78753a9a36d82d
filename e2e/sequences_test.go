package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/demo"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/simulator"
)

// Client sequences against the Task-based Reset
// (docs/architecture.md#admission, #tasks): every Reset answers 202 +
// Location of a task monitor + a Task body; identical requests coalesce,
// conflicting ones supersede or queue (now-next), DELETE cancels. Each test
// runs its own demo; the simulator's MaxInFlight proves invariant 1 (never
// two BMC commands in flight for one node).

const (
	monitorPath = "/TaskService/TaskMonitors/"
	tasksPath   = "/TaskService/Tasks/"
	// taskTimeout bounds the wait for a task to end.
	taskTimeout = 30 * time.Second
)

// resetAnswer is a Reset POST's answer.
type resetAnswer struct {
	status   int
	location string
	taskID   string
	body     []byte
	task     map[string]any
}

// postReset POSTs a Reset of node under root (a service root path such as
// /redfish/v1 or /bmc/<node>/redfish/v1) with Basic auth, and requires 202,
// a Location naming a task monitor under root, and a Task body.
func postReset(t *testing.T, d *demo.Demo, root, node, rt string) resetAnswer {
	t.Helper()
	url := d.URL() + root + "/Systems/" + node + "/Actions/ComputerSystem.Reset"
	st, h, b := do(t, http.MethodPost, url, map[string]string{"ResetType": rt}, basic(d))
	a := resetAnswer{status: st, location: h.Get("Location"), body: b}
	if st != http.StatusAccepted {
		t.Fatalf("POST %s ResetType %s: status %d, want 202; body %s", url, rt, st, b)
	}
	id, ok := strings.CutPrefix(a.location, root+monitorPath)
	if !ok || id == "" || strings.Contains(id, "/") {
		t.Fatalf("POST Reset %s on %s: Location %q is not a task monitor under %s", rt, node, a.location, root+monitorPath)
	}
	a.taskID = id
	if err := json.Unmarshal(b, &a.task); err != nil {
		t.Fatalf("POST Reset %s on %s: 202 body is not JSON: %v\n%s", rt, node, err, b)
	}
	if typ, _ := a.task["@odata.type"].(string); !strings.HasPrefix(typ, "#Task.") {
		t.Errorf("POST Reset %s on %s: 202 body @odata.type %q, want a Task", rt, node, typ)
	}
	if got, _ := a.task["Id"].(string); got != id {
		t.Errorf("POST Reset %s on %s: body Id %q, Location names task %q", rt, node, got, id)
	}
	return a
}

// taskURL is the aggregate-view URL of a task.
func taskURL(d *demo.Demo, id string) string { return d.URL() + "/redfish/v1" + tasksPath + id }

// readTask GETs a task resource (200 required).
func readTask(t *testing.T, d *demo.Demo, id string) map[string]any {
	t.Helper()
	return getJSON(t, d, taskURL(d, id))
}

func taskState(task map[string]any) string {
	s, _ := task["TaskState"].(string)
	return s
}

func terminal(state string) bool {
	return state == "Completed" || state == "Exception" || state == "Cancelled"
}

// waitTask waits until the task is terminal and returns it.
func waitTask(t *testing.T, d *demo.Demo, id string) map[string]any {
	t.Helper()
	var last map[string]any
	waitFor(t, taskTimeout, "task "+id+" terminal", func() (bool, string) {
		last = readTask(t, d, id)
		return terminal(taskState(last)), taskState(last)
	})
	return last
}

// taskMessages lists a task's Messages as MessageId -> Resolution.
func taskMessages(task map[string]any) (ids []string, resolution map[string]string) {
	resolution = map[string]string{}
	msgs, _ := task["Messages"].([]any)
	for _, m := range msgs {
		mm, _ := m.(map[string]any)
		id, _ := mm["MessageId"].(string)
		res, _ := mm["Resolution"].(string)
		msg, _ := mm["Message"].(string)
		ids = append(ids, id)
		resolution[id] = strings.TrimSpace(res + " | " + msg)
	}
	return ids, resolution
}

// hasMessage reports whether ids holds the registry key (TaskEvent.1.0.X
// or Base.1.x.X), and returns its full id.
func hasMessage(ids []string, key string) (string, bool) {
	for _, id := range ids {
		if strings.HasSuffix(id, "."+key) {
			return id, true
		}
	}
	return "", false
}

// requireTaskEnd checks a finished task: state, TaskEvent message, 100 %,
// EndTime, and (for Cancelled) a reason mentioning want.
func requireTaskEnd(t *testing.T, what string, task map[string]any, state, message, reasonHas string) {
	t.Helper()
	if got := taskState(task); got != state {
		t.Errorf("%s: TaskState %q, want %s; task %v", what, got, state, task)
		return
	}
	ids, res := taskMessages(task)
	full, ok := hasMessage(ids, message)
	if !ok || !strings.HasPrefix(full, "TaskEvent.") {
		t.Errorf("%s: Messages %v, want TaskEvent.*.%s", what, ids, message)
	}
	if pct, _ := task["PercentComplete"].(float64); pct != 100 {
		t.Errorf("%s: PercentComplete %v, want 100", what, task["PercentComplete"])
	}
	if end, _ := task["EndTime"].(string); end == "" {
		t.Errorf("%s: no EndTime", what)
	}
	if reasonHas != "" && !strings.Contains(res[full], reasonHas) {
		t.Errorf("%s: %s message %q does not give the reason (want it to mention %q)", what, message, res[full], reasonHas)
	}
}

// fishgateOem returns the System's Oem.Fishgate and the raw System body.
func fishgateOem(t *testing.T, d *demo.Demo, node string) (map[string]any, []byte) {
	t.Helper()
	url := d.URL() + "/redfish/v1/Systems/" + node
	st, _, b := do(t, http.MethodGet, url, nil, basic(d))
	if st != http.StatusOK {
		t.Fatalf("GET %s: status %d; body %s", url, st, b)
	}
	var sys struct {
		Oem struct {
			Fishgate map[string]any `json:"Fishgate"`
		} `json:"Oem"`
	}
	if err := json.Unmarshal(b, &sys); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if sys.Oem.Fishgate == nil {
		t.Fatalf("GET %s: no Oem.Fishgate:\n%s", url, b)
	}
	return sys.Oem.Fishgate, b
}

// runningTask is the @odata.id of Oem.Fishgate.RunningTask ("" when null).
func runningTask(oem map[string]any) string {
	rt, _ := oem["RunningTask"].(map[string]any)
	id, _ := rt["@odata.id"].(string)
	return id
}

// queuedTasks lists Oem.Fishgate.QueuedTasks' @odata.ids.
func queuedTasks(oem map[string]any) []string {
	var ids []string
	q, _ := oem["QueuedTasks"].([]any)
	for _, e := range q {
		id, _ := e.(map[string]any)["@odata.id"].(string)
		ids = append(ids, id)
	}
	return ids
}

// waitIdle waits until the gateway shows node with no running or queued
// task, and returns its Oem.Fishgate.
func waitIdle(t *testing.T, d *demo.Demo, node string) map[string]any {
	t.Helper()
	var oem map[string]any
	waitFor(t, taskTimeout, node+" idle", func() (bool, string) {
		oem, _ = fishgateOem(t, d, node)
		return runningTask(oem) == "" && len(queuedTasks(oem)) == 0, fmt.Sprint(oem)
	})
	return oem
}

// waitInFlight waits until a power command is in flight at node's BMC.
func waitInFlight(t *testing.T, d *demo.Demo, node string) {
	t.Helper()
	m := machine(t, d, node)
	waitFor(t, powerTimeout, node+" command in flight", func() (bool, string) {
		n := m.Status().InFlight
		return n > 0, fmt.Sprint(n)
	})
}

// requireOneInFlight checks invariant 1 on node's simulated BMC.
func requireOneInFlight(t *testing.T, d *demo.Demo, node string) {
	t.Helper()
	if st := machine(t, d, node).Status(); st.MaxInFlight > 1 {
		t.Errorf("%s: MaxInFlight %d: two power commands overlapped at the BMC; commands %+v", node, st.MaxInFlight, st.Commands)
	}
}

// powerCommands lists the accepted power commands of a machine (boot
// overrides left out), oldest first, from index from of its log.
func powerCommands(st simulator.Status, from int) []string {
	var out []string
	for i, c := range st.Commands {
		if i < from || c.Action == "SetBoot" || c.Result != "accepted" {
			continue
		}
		out = append(out, c.Action)
	}
	return out
}

// validateBody validates a Redfish resource body, naming it on failure.
func validateBody(t *testing.T, v *testkit.SchemaValidator, what string, body []byte) {
	t.Helper()
	if err := v.Validate(body); err != nil {
		t.Errorf("%s does not validate: %v\n%s", what, err, body)
	}
}

// ---------------------------------------------------------------------------
// Ironic (sushy)

// ironicResult is what testdata/sushy_ironic.py prints.
type ironicResult struct {
	SushyVersion  string   `json:"sushy_version"`
	Session       bool     `json:"session"`
	SystemID      string   `json:"system_id"`
	InitialPower  string   `json:"initial_power"`
	AllowedResets []string `json:"allowed_resets"`
	Sequences     map[string]struct {
		Resets []struct {
			Path      string            `json:"path"`
			Data      map[string]string `json:"data"`
			Status    int               `json:"status"`
			Location  string            `json:"location"`
			BodyState string            `json:"body_state"`
			BodyType  string            `json:"body_type"`
		} `json:"resets"`
		States map[string][]string `json:"states"`
		Tasks  []struct {
			Location        string         `json:"location"`
			FirstProcessing bool           `json:"first_processing"`
			Polls           int            `json:"polls"`
			FinalStatus     int            `json:"final_status"`
			ID              string         `json:"id"`
			State           string         `json:"state"`
			Status          string         `json:"status"`
			Percent         *int           `json:"percent"`
			Messages        []string       `json:"messages"`
			MessageTexts    []string       `json:"message_texts"`
			Progress        []string       `json:"progress"`
			Oem             map[string]any `json:"oem"`
			EndTime         string         `json:"end_time"`
		} `json:"tasks"`
		Power string `json:"power"`
	} `json:"sequences"`
	TaskService struct {
		ID      string            `json:"id"`
		Enabled bool              `json:"enabled"`
		Members []string          `json:"members"`
		Summary map[string]string `json:"summary"`
	} `json:"task_service"`
	FinalPower string `json:"final_power"`
}

// ironicNode is one node TestIronicSequencesSushy drives: its protocol
// and the wire commands of Ironic's soft reboot (GracefulRestart) there.
type ironicNode struct {
	node, proto string
	softReboot  []schemas.ResetType
}

// TestIronicSequencesSushy runs Ironic's power on, reboot (ForceOff, wait,
// On, wait), soft reboot (GracefulRestart, wait On), power off, power on
// and soft power off through Debian's sushy against a Redfish, an IPMI and
// an AMT node, and follows every task with sushy's TaskMonitor. sushy
// refuses client-side a ResetType the System does not list, so the IPMI
// node must offer GracefulRestart (emulated: GracefulShutdown, then On).
func TestIronicSequencesSushy(t *testing.T) {
	t.Parallel()
	needSushy(t)
	// node04 (Redfish) is never driven: its BMC must get nothing.
	g := startBackendDemo(t, demo.Options{Nodes: 4, Backends: []string{"redfish", "ipmi", "amt", "redfish"},
		DelayMin: delayMin, DelayMax: delayMax})
	nodes := []ironicNode{
		{"node01", "redfish", []schemas.ResetType{schemas.ResetGracefulRestart}},
		{"node02", "ipmi", []schemas.ResetType{schemas.ResetGracefulShutdown, schemas.ResetOn}},
		{"node03", "amt", []schemas.ResetType{schemas.ResetGracefulRestart}},
	}
	for _, n := range nodes {
		t.Run(n.proto, func(t *testing.T) {
			t.Parallel()
			g.ironicSushy(t, n)
		})
	}
	t.Cleanup(func() {
		if c := commandsSince(g.machine(t, "node04"), 0); len(c) != 0 {
			t.Errorf("node04's BMC got %q", c)
		}
	})
}

// ironicSushy runs testdata/sushy_ironic.py against n and checks what sushy
// saw and what n's machine received.
func (g *gw) ironicSushy(t *testing.T, n ironicNode) {
	t.Helper()
	start := time.Now()
	out, stderr, err := run(t, 3*time.Minute, python, "testdata/sushy_ironic.py", g.url, gwUser, gwPass, "/redfish/v1/Systems/"+n.node)
	if err != nil {
		t.Fatalf("sushy Ironic sequences on %s: %v\nstdout: %s\nstderr: %s", n.node, err, out, stderr)
	}
	var r ironicResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("sushy script printed no JSON result: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	t.Logf("%s (%s): sushy %s ran Ironic's sequences in %v", n.node, n.proto, r.SushyVersion, time.Since(start).Round(time.Millisecond))
	if strings.Contains(stderr, "Traceback") || strings.Contains(stderr, "WARNING") || strings.Contains(stderr, "ERROR") {
		t.Errorf("sushy stderr shows trouble:\n%s", stderr)
	}
	if !r.Session {
		t.Errorf("sushy did not log in with a session (auth auto)")
	}
	if r.SystemID != n.node || r.InitialPower != "Off" {
		t.Errorf("system %q initial power %q, want %s Off", r.SystemID, r.InitialPower, n.node)
	}
	for _, rt := range []string{"On", "ForceOff", "ForceRestart", "GracefulRestart", "GracefulShutdown"} {
		if !slices.Contains(r.AllowedResets, rt) {
			t.Errorf("sushy reads ResetType@Redfish.AllowableValues %v: no %s, which Ironic sends", r.AllowedResets, rt)
		}
	}

	want := []struct {
		seq    string
		resets []string
		power  string
	}{
		{"power_on", []string{"On"}, "On"},
		{"reboot", []string{"ForceOff", "On"}, "On"},
		{"soft_reboot", []string{"GracefulRestart"}, "On"},
		{"power_off", []string{"ForceOff"}, "Off"},
		{"power_on_again", []string{"On"}, "On"},
		{"soft_power_off", []string{"GracefulShutdown"}, "Off"},
	}
	var own []string
	for _, w := range want {
		s, ok := r.Sequences[w.seq]
		if !ok {
			t.Errorf("sequence %s missing from sushy's result", w.seq)
			continue
		}
		var sent []string
		for _, p := range s.Resets {
			sent = append(sent, p.Data["ResetType"])
			if p.Status != http.StatusAccepted || !strings.HasPrefix(p.Location, "/redfish/v1"+monitorPath) || !strings.HasPrefix(p.BodyType, "#Task.") {
				t.Errorf("%s: Reset %s answered %d, Location %q, body %q; want 202 + task monitor + Task",
					w.seq, p.Data["ResetType"], p.Status, p.Location, p.BodyType)
			}
		}
		if !slices.Equal(sent, w.resets) {
			t.Errorf("%s: sushy sent %v, want %v", w.seq, sent, w.resets)
		}
		if s.Power != w.power {
			t.Errorf("%s: sushy reads %s at the end, want %s (states %v)", w.seq, s.Power, w.power, s.States)
		}
		if len(s.Tasks) != len(w.resets) {
			t.Errorf("%s: sushy followed %d tasks, want %d", w.seq, len(s.Tasks), len(w.resets))
		}
		for _, tk := range s.Tasks {
			what := fmt.Sprintf("%s %s: task %s via sushy's TaskMonitor", n.node, w.seq, tk.Location)
			if !strings.HasSuffix(tk.Location, "/"+tk.ID) {
				t.Errorf("%s: Id %q does not match the monitor", what, tk.ID)
			}
			if tk.Percent == nil || *tk.Percent != 100 || tk.EndTime == "" {
				t.Errorf("%s: PercentComplete %v, EndTime %q", what, tk.Percent, tk.EndTime)
			}
			final := ""
			if len(tk.MessageTexts) > 0 {
				final = tk.MessageTexts[len(tk.MessageTexts)-1]
			}
			checkIronicTask(t, what, w.seq, n.softReboot, tk.FinalStatus, tk.State, tk.Status, tk.Messages, final)
			if w.seq == "soft_reboot" {
				oem, _ := tk.Oem["Fishgate"].(map[string]any)
				if oem["ResetType"] != "GracefulRestart" {
					t.Errorf("%s: Oem.Fishgate.ResetType %v, want GracefulRestart", what, oem["ResetType"])
				}
				if len(n.softReboot) > 1 && !stepsInOrder(tk.MessageTexts, phaseSteps(n.softReboot)) {
					t.Errorf("%s: the task's messages %q do not show the steps %q in order", what, tk.MessageTexts, phaseSteps(n.softReboot))
				}
				if len(n.softReboot) > 1 && !phasesForward(tk.Progress) {
					t.Errorf("%s: the running task's messages went back to an earlier phase: %q", what, tk.Progress)
				}
				t.Logf("%s: %s %s, messages %q; seen while it ran: %q", what, tk.State, tk.Status, tk.MessageTexts, tk.Progress)
			}
			own = append(own, tk.ID)
		}
	}
	if r.TaskService.ID != "TaskService" || !r.TaskService.Enabled {
		t.Errorf("sushy TaskService: Id %q, enabled %v", r.TaskService.ID, r.TaskService.Enabled)
	}
	for _, id := range own {
		if !slices.Contains(r.TaskService.Members, "/redfish/v1"+tasksPath+id) {
			t.Errorf("sushy's TaskCollection %v lacks %s", r.TaskService.Members, id)
		}
		if st := r.TaskService.Summary[id]; st != "Completed" {
			t.Errorf("sushy TaskCollection summary: %s is %q, want Completed", id, st)
		}
	}
	if r.FinalPower != "Off" {
		t.Errorf("final power %q, want Off", r.FinalPower)
	}

	m := g.machine(t, n.node)
	var wire []string
	for _, rt := range slices.Concat([]schemas.ResetType{schemas.ResetOn, schemas.ResetForceOff, schemas.ResetOn}, n.softReboot,
		[]schemas.ResetType{schemas.ResetForceOff, schemas.ResetOn, schemas.ResetGracefulShutdown}) {
		wire = append(wire, n.proto+" "+wireAction(n.proto, rt)+": accepted")
	}
	st := m.Status()
	if got := commandsSince(m, 0); !slices.Equal(got, wire) {
		t.Errorf("%s BMC got %q, want exactly %q", n.node, got, wire)
	}
	if st.PowerState != simulator.PowerOff || st.MaxInFlight != 1 {
		t.Errorf("%s machine %s, MaxInFlight %d; want Off, 1", n.node, st.PowerState, st.MaxInFlight)
	}
}

// phasesForward reports whether the "phase i/n" of a running task's
// messages, in the order they were seen, never goes back.
func phasesForward(msgs []string) bool {
	last := 0
	for _, m := range msgs {
		_, after, ok := strings.Cut(m, " phase ")
		if !ok {
			continue
		}
		var i, n int
		if _, err := fmt.Sscanf(after, "%d/%d", &i, &n); err != nil {
			continue
		}
		if i < last {
			return false
		}
		last = i
	}
	return true
}

// checkIronicTask checks a task sushy followed to its end: 200 from the
// monitor, Completed. Its TaskStatus is OK, with TaskCompletedOK, except
// for a soft reboot carried out by one native GracefulRestart: these fast
// machines go through Off too briefly to be seen, and the task says so
// with a Warning. The soft reboot of an emulated GracefulRestart names its
// phases, in order, in its final message.
func checkIronicTask(t *testing.T, what, seq string, softReboot []schemas.ResetType, final int, state, status string, ids []string, finalText string) {
	t.Helper()
	if final != http.StatusOK || state != "Completed" {
		t.Errorf("%s: monitor ended with %d, TaskState %q (%q); want 200 Completed", what, final, state, finalText)
		return
	}
	warned := seq == "soft_reboot" && len(softReboot) == 1 && status == "Warning"
	switch _, ok := hasMessage(ids, "TaskCompletedWarning"); {
	case warned && (!ok || !strings.Contains(finalText, "not seen going through Off")):
		t.Errorf("%s: Warning with messages %v (%q); want TaskCompletedWarning saying the Off was not seen", what, ids, finalText)
	case warned:
	case status != "OK":
		t.Errorf("%s: TaskStatus %q (%q), want OK", what, status, finalText)
	default:
		if _, ok := hasMessage(ids, "TaskCompletedOK"); !ok {
			t.Errorf("%s: messages %v lack TaskCompletedOK", what, ids)
		}
	}
	if seq == "soft_reboot" && len(softReboot) > 1 && !inOrder(finalText, softReboot) {
		t.Errorf("%s: final message %q does not name the phases %v in order", what, finalText, softReboot)
	}
}

// ---------------------------------------------------------------------------
// MAAS

// maasSystem is what MAAS does first on every call without node_id: GET
// Systems and take Members[0]'s last segment.
func (m *maasClient) maasSystem(t *testing.T) string {
	t.Helper()
	coll, _ := m.object(t, "redfish/v1/Systems")
	members, _ := coll["Members"].([]any)
	if len(members) == 0 {
		t.Fatalf("MAAS: Systems has no members: %v", coll)
	}
	id, _ := members[0].(map[string]any)["@odata.id"].(string)
	id = strings.TrimSuffix(id, "/")
	return "redfish/v1/Systems/" + id[strings.LastIndex(id, "/")+1:]
}

// maasReset POSTs a Reset as MAAS does: any 2xx is success and a body must be
// JSON. It returns the Location.
func (m *maasClient) maasReset(t *testing.T, sysPath, rt string) string {
	t.Helper()
	st, h, b := m.do(t, http.MethodPost, sysPath+"/Actions/ComputerSystem.Reset", map[string]string{"ResetType": rt}, nil)
	m.ok2xx(t, "Reset "+rt, st, b)
	return h.Get("Location")
}

// maasOn is MAAS's "on": query, ForceOff and wait if on, PXE once, On,
// wait. It returns the Locations of the Resets it sent.
func (m *maasClient) maasOn(t *testing.T) []string {
	t.Helper()
	var locs []string
	sysPath := m.maasSystem(t)
	o, _ := m.object(t, sysPath)
	ps, _ := o["PowerState"].(string)
	if on, known := powerIsOn(ps); !known {
		t.Fatalf("MAAS query: PowerState %q is not an answer", ps)
	} else if on {
		locs = append(locs, m.maasReset(t, m.maasSystem(t), "ForceOff"))
		m.waitPower(t, sysPath, false)
	}
	sysPath = m.maasSystem(t)
	m.setPXE(t, sysPath)
	locs = append(locs, m.maasReset(t, m.maasSystem(t), "On"))
	m.waitPower(t, sysPath, true)
	return locs
}

// setPXE is MAAS's set_pxe_boot: read the System's ETag, then PATCH Boot
// Pxe/Once, with If-Match only when it saw an ETag.
func (m *maasClient) setPXE(t *testing.T, sysPath string) {
	t.Helper()
	o, h := m.object(t, sysPath)
	pxe := map[string]any{"Boot": map[string]string{"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe"}}
	var hdr map[string]string
	if tag := etag(o, h); tag != "" {
		hdr = map[string]string{"If-Match": tag}
	}
	st, _, b := m.do(t, http.MethodPatch, sysPath, pxe, hdr)
	m.ok2xx(t, "PATCH Pxe/Once", st, b)
}

// TestMAASSequences runs MAAS's "on" sequence through the per-node view,
// then MAAS's duplicate concurrent power-on: ten identical On at once.
func TestMAASSequences(t *testing.T) {
	t.Parallel()
	d := startDemo(t, 2)

	t.Run("on-sequence", func(t *testing.T) {
		t.Parallel()
		const node = "node01"
		m := newMAASClient(d, node)
		prefix := "/bmc/" + node + "/redfish/v1" + monitorPath
		// From Off: no ForceOff. From On: ForceOff, wait, PXE, On, wait.
		first := m.maasOn(t)
		second := m.maasOn(t)
		if len(first) != 1 || len(second) != 2 {
			t.Fatalf("MAAS on from Off sent %d Resets, from On %d; want 1 and 2", len(first), len(second))
		}
		for _, loc := range append(first, second...) {
			if !strings.HasPrefix(loc, prefix) {
				t.Errorf("Reset Location %q is not a task monitor of the per-node view (%s)", loc, prefix)
				continue
			}
			// The per-node monitor answers (finished: 200 with the Task).
			id := strings.TrimPrefix(loc, prefix)
			task := waitTask(t, d, id)
			requireTaskEnd(t, "MAAS task "+id, task, "Completed", "TaskCompletedOK", "")
			st, _, b := m.do(t, http.MethodGet, strings.TrimPrefix(loc, "/bmc/"+node+"/"), nil, nil)
			if st != http.StatusOK {
				t.Errorf("MAAS GET %s: status %d, want 200 once done; body %s", loc, st, b)
			}
		}
		st := machine(t, d, node).Status()
		if got, want := powerCommands(st, 0), []string{"On", "ForceOff", "On"}; !slices.Equal(got, want) {
			t.Errorf("%s BMC accepted %v, want %v", node, got, want)
		}
		if st.PowerState != "On" || st.Boot.Target != "Pxe" || st.Boot.Enabled != "Once" {
			t.Errorf("%s machine %s, boot %+v; want On, Pxe/Once", node, st.PowerState, st.Boot)
		}
		requireOneInFlight(t, d, node)
	})

	t.Run("duplicate-concurrent-on", func(t *testing.T) {
		t.Parallel()
		const node, n = "node02", 10
		mach := machine(t, d, node)
		// The BMC holds the first command until every request has been
		// answered, so the ten surely arrive while the first one's task runs.
		release := mach.Hold()
		defer release()
		m := newMAASClient(d, node)
		sysPath := m.maasSystem(t)
		url := m.address + sysPath + "/Actions/ComputerSystem.Reset"
		type answer struct {
			status   int
			location string
			body     []byte
			err      error
		}
		answers := make([]answer, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				// One connection per request, as MAAS.
				cl := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
				req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"ResetType": "On"}`))
				if err != nil {
					answers[i].err = err
					return
				}
				req.Header.Set("User-Agent", "MAAS")
				req.Header.Set("Accept", "application/json")
				req.Header.Set("Content-Type", "application/json")
				req.SetBasicAuth(d.User, d.Pass)
				resp, err := cl.Do(req)
				if err != nil {
					answers[i].err = err
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				answers[i] = answer{status: resp.StatusCode, location: resp.Header.Get("Location"), body: b, err: err}
			}()
		}
		close(start)
		wg.Wait()
		release()
		locs := map[string]int{}
		for i, a := range answers {
			if a.err != nil {
				t.Errorf("On #%d: %v", i, a.err)
				continue
			}
			if a.status < 200 || a.status > 299 || (len(a.body) > 0 && !json.Valid(a.body)) {
				t.Errorf("On #%d: status %d, body %s; want 2xx with JSON", i, a.status, a.body)
			}
			locs[a.location]++
		}
		if len(locs) != 1 {
			t.Fatalf("ten identical concurrent On got %d different Locations, want one task: %v", len(locs), locs)
		}
		var loc string
		for l := range locs {
			loc = l
		}
		id, ok := strings.CutPrefix(loc, "/bmc/"+node+"/redfish/v1"+monitorPath)
		if !ok || id == "" {
			t.Fatalf("Location %q is not a per-node task monitor", loc)
		}
		task := waitTask(t, d, id)
		requireTaskEnd(t, "coalesced On task", task, "Completed", "TaskCompletedOK", "")
		oem, _ := task["Oem"].(map[string]any)["Fishgate"].(map[string]any)
		if j, _ := oem["JoinedCount"].(float64); int(j) != n-1 {
			t.Errorf("coalesced task JoinedCount %v, want %d", oem["JoinedCount"], n-1)
		}
		waitMachine(t, d, node, "On")
		st := mach.Status()
		if got := accepted(st, "On"); got != 1 || st.CommandCount != 1 {
			t.Errorf("%s BMC got %d commands, %d On accepted; want exactly one On: %+v", node, st.CommandCount, got, st.Commands)
		}
		requireOneInFlight(t, d, node)
	})
}

// ---------------------------------------------------------------------------
// Conflicting requests

// TestConflictingResets sends conflicting Resets back to back. Every one is
// accepted (202), the last one wins, superseded tasks end Cancelled with a
// reason, and the BMC never sees two commands at once.
func TestConflictingResets(t *testing.T) {
	t.Parallel()
	v := validator(t)
	d := startDemo(t, 4)
	const root = "/redfish/v1"

	// settle checks the end of a case: every task terminal, the machine and
	// the gateway at want, the desired state want, nothing running.
	settle := func(t *testing.T, node, want string, tasks []resetAnswer) []map[string]any {
		t.Helper()
		var ends []map[string]any
		for _, a := range tasks {
			ends = append(ends, waitTask(t, d, a.taskID))
		}
		oem := waitIdle(t, d, node)
		waitMachine(t, d, node, want)
		waitGateway(t, d, node, want)
		if oem["DesiredPowerState"] != want {
			t.Errorf("%s: Oem.Fishgate.DesiredPowerState %v, want %s (the last request's target)", node, oem["DesiredPowerState"], want)
		}
		requireOneInFlight(t, d, node)
		_, body := fishgateOem(t, d, node)
		validateBody(t, v, node+" System", body)
		for _, a := range tasks {
			st, _, b := do(t, http.MethodGet, taskURL(d, a.taskID), nil, basic(d))
			if st == http.StatusOK {
				validateBody(t, v, "Task "+a.taskID, b)
			}
		}
		return ends
	}

	t.Run("on-then-forceoff", func(t *testing.T) {
		t.Parallel()
		const node = "node01"
		// The BMC holds the On until the checks below are done; the
		// ForceOff is sent as soon as the On is at the BMC, so the On task
		// is surely running (its command in flight) when the ForceOff
		// supersedes it.
		mach := machine(t, d, node)
		release := mach.Hold()
		defer release()
		on := postReset(t, d, root, node, "On")
		waitInFlight(t, d, node)
		off := postReset(t, d, root, node, "ForceOff")
		if on.taskID == off.taskID {
			t.Fatalf("On and ForceOff share task %s", on.taskID)
		}
		// While the On's command is still at the BMC: the On task is
		// Cancelling, the ForceOff waits, the desired state is Off.
		if s := taskState(readTask(t, d, on.taskID)); s != "Cancelling" {
			t.Errorf("superseded On task is %s while its command is at the BMC, want Cancelling", s)
		}
		oem, sys := fishgateOem(t, d, node)
		rt, _ := oem["RunningTask"].(map[string]any)
		if runningTask(oem) != root+tasksPath+on.taskID || rt["Cancelling"] != true ||
			!slices.Equal(queuedTasks(oem), []string{root + tasksPath + off.taskID}) || oem["DesiredPowerState"] != "Off" {
			t.Errorf("Oem.Fishgate %v: want RunningTask %s (Cancelling), QueuedTasks [%s], DesiredPowerState Off", oem, on.taskID, off.taskID)
		}
		// Validation can take seconds (a schema compiled the first time):
		// done after the BMC was let go, not while it holds the command.
		release()
		validateBody(t, v, "System with a superseded running task", sys)
		ends := settle(t, node, "Off", []resetAnswer{on, off})
		requireTaskEnd(t, "On superseded by ForceOff while its command was at the BMC", ends[0], "Cancelled", "TaskCancelled", "superseded by ForceOff")
		requireTaskEnd(t, "ForceOff", ends[1], "Completed", "TaskCompletedOK", "")
		if got, want := powerCommands(mach.Status(), 0), []string{"On", "ForceOff"}; !slices.Equal(got, want) {
			t.Errorf("%s BMC accepted %v, want %v", node, got, want)
		}
	})

	t.Run("on-then-forceoff-at-once", func(t *testing.T) {
		t.Parallel()
		const node = "node04"
		// Back to back, no waiting: the On may be superseded before or
		// after its command was sent; either way it ends Cancelled.
		machine(t, d, node).SetFaults(simulator.Faults{Hang: 100 * time.Millisecond})
		on := postReset(t, d, root, node, "On")
		off := postReset(t, d, root, node, "ForceOff")
		ends := settle(t, node, "Off", []resetAnswer{on, off})
		requireTaskEnd(t, "On superseded by ForceOff", ends[0], "Cancelled", "TaskCancelled", "superseded by ForceOff")
		requireTaskEnd(t, "ForceOff", ends[1], "Completed", "TaskCompletedOK", "")
		if cmds := powerCommands(machine(t, d, node).Status(), 0); len(cmds) > 0 && cmds[len(cmds)-1] != "ForceOff" {
			t.Errorf("%s BMC accepted %v: the last command is not ForceOff", node, cmds)
		}
	})

	t.Run("forceoff-then-on", func(t *testing.T) {
		t.Parallel()
		const node = "node02"
		setup := postReset(t, d, root, node, "On")
		requireTaskEnd(t, "setup On", waitTask(t, d, setup.taskID), "Completed", "TaskCompletedOK", "")
		mach := machine(t, d, node)
		from := len(mach.Status().Commands)
		mach.SetFaults(simulator.Faults{Hang: 200 * time.Millisecond})
		off := postReset(t, d, root, node, "ForceOff")
		on := postReset(t, d, root, node, "On")
		// now-next: On does not outrank the running ForceOff; it waits
		// behind it and runs next.
		ends := settle(t, node, "On", []resetAnswer{off, on})
		requireTaskEnd(t, "ForceOff (running when On arrived)", ends[0], "Completed", "TaskCompletedOK", "")
		requireTaskEnd(t, "On (queued behind ForceOff)", ends[1], "Completed", "TaskCompletedOK", "")
		if got, want := powerCommands(mach.Status(), from), []string{"ForceOff", "On"}; !slices.Equal(got, want) {
			t.Errorf("%s BMC accepted %v after setup, want %v", node, got, want)
		}
	})

	t.Run("on-forceoff-on", func(t *testing.T) {
		t.Parallel()
		const node = "node03"
		release := machine(t, d, node).Hold()
		defer release()
		on1 := postReset(t, d, root, node, "On")
		// The first On's command is held at the BMC: the ForceOff cancels
		// it and waits (next) until it has stopped; the second On replaces
		// the waiting ForceOff.
		waitInFlight(t, d, node)
		off := postReset(t, d, root, node, "ForceOff")
		on2 := postReset(t, d, root, node, "On")
		release()
		if on2.taskID == on1.taskID || on2.taskID == off.taskID {
			t.Errorf("the last On joined task %s (first On %s, ForceOff %s); the first On was superseded", on2.taskID, on1.taskID, off.taskID)
		}
		ends := settle(t, node, "On", []resetAnswer{on1, off, on2})
		// The first On is superseded while its command is in flight, as in
		// on-then-forceoff, which holds the strict check of its end.
		if s := taskState(ends[0]); s != "Cancelled" && s != "Completed" {
			t.Errorf("first On (superseded by ForceOff) ended %s", s)
		}
		requireTaskEnd(t, "waiting ForceOff (replaced by On)", ends[1], "Cancelled", "TaskCancelled", "superseded by On")
		requireTaskEnd(t, "last On", ends[2], "Completed", "TaskCompletedOK", "")
		if cmds := powerCommands(machine(t, d, node).Status(), 0); slices.Contains(cmds, "ForceOff") {
			t.Errorf("%s BMC accepted %v: the replaced ForceOff was sent", node, cmds)
		}
	})
}

// ---------------------------------------------------------------------------
// Task monitor

// TestTaskMonitor checks the task monitor and Task resources (DSP0266 async
// operations): 202 while running, 200 when done, DELETE cancels a waiting or
// running task and is refused (409) for a finished one; every body validates.
func TestTaskMonitor(t *testing.T) {
	t.Parallel()
	v := validator(t)
	d := startDemo(t, 2)
	const root = "/redfish/v1"

	t.Run("complete", func(t *testing.T) {
		const node = "node01"
		release := machine(t, d, node).Hold() // the task runs until released
		defer release()
		a := postReset(t, d, root, node, "On")
		mon := d.URL() + a.location

		st, h, b := do(t, http.MethodGet, mon, nil, basic(d))
		if st != http.StatusAccepted {
			t.Fatalf("GET %s while the task runs: status %d, want 202; body %s", a.location, st, b)
		}
		var running map[string]any
		json.Unmarshal(b, &running)
		if s := taskState(running); terminal(s) {
			t.Errorf("monitor answered 202 with TaskState %s", s)
		}
		if h.Get("Location") != a.location || h.Get("Retry-After") == "" {
			t.Errorf("202 from the monitor: Location %q, Retry-After %q; want the monitor and a Retry-After", h.Get("Location"), h.Get("Retry-After"))
		}
		oem, sys := fishgateOem(t, d, node)
		if runningTask(oem) != root+tasksPath+a.taskID || oem["DesiredPowerState"] != "On" {
			t.Errorf("Oem.Fishgate while running: %v; want RunningTask %s, DesiredPowerState On", oem, root+tasksPath+a.taskID)
		}
		// Validation can take seconds (a schema compiled the first time):
		// done after the BMC was let go, not while it holds the command.
		release()
		validateBody(t, v, "Reset 202 Task", a.body)
		validateBody(t, v, "running task monitor body", b)
		validateBody(t, v, "System with a running task", sys)

		var done []byte
		waitFor(t, taskTimeout, "monitor 200", func() (bool, string) {
			st, _, b := do(t, http.MethodGet, mon, nil, basic(d))
			if st == http.StatusOK {
				done = b
			}
			return st == http.StatusOK, fmt.Sprint(st)
		})
		validateBody(t, v, "finished task monitor body", done)
		var fin map[string]any
		json.Unmarshal(done, &fin)
		requireTaskEnd(t, "monitor when done", fin, "Completed", "TaskCompletedOK", "")
		if fin["TaskStatus"] != "OK" {
			t.Errorf("TaskStatus %v, want OK", fin["TaskStatus"])
		}
		if fin["TaskMonitor"] != a.location {
			t.Errorf("Task.TaskMonitor %v, want %s", fin["TaskMonitor"], a.location)
		}

		st, _, b = do(t, http.MethodGet, taskURL(d, a.taskID), nil, basic(d))
		if st != http.StatusOK {
			t.Fatalf("GET Task %s: %d", a.taskID, st)
		}
		validateBody(t, v, "Task resource", b)

		st, _, b = do(t, http.MethodGet, d.URL()+root+"/TaskService", nil, basic(d))
		if st != http.StatusOK {
			t.Fatalf("GET TaskService: %d", st)
		}
		validateBody(t, v, "TaskService", b)
		st, _, b = do(t, http.MethodGet, d.URL()+root+"/TaskService/Tasks", nil, basic(d))
		if st != http.StatusOK {
			t.Fatalf("GET TaskCollection: %d", st)
		}
		validateBody(t, v, "TaskCollection", b)
		var coll struct {
			Members []struct {
				ID string `json:"@odata.id"`
			} `json:"Members"`
			Count int `json:"Members@odata.count"`
		}
		json.Unmarshal(b, &coll)
		var ids []string
		for _, m := range coll.Members {
			ids = append(ids, m.ID)
		}
		if !slices.Contains(ids, root+tasksPath+a.taskID) || coll.Count != len(ids) {
			t.Errorf("TaskCollection %v (count %d) lacks %s", ids, coll.Count, a.taskID)
		}

		// DELETE of a finished task: 409 with a Redfish error, by monitor
		// and by Task URL; the task stays Completed.
		for _, u := range []string{mon, taskURL(d, a.taskID)} {
			st, _, b := do(t, http.MethodDelete, u, nil, basic(d))
			if st != http.StatusConflict {
				t.Errorf("DELETE %s of a finished task: status %d, want 409; body %s", u, st, b)
				continue
			}
			if err := v.ValidateError(b); err != nil {
				t.Errorf("409 body does not validate: %v\n%s", err, b)
			}
			if ids := messageIDs(b); len(ids) == 0 || !strings.HasPrefix(ids[0], "Base.") {
				t.Errorf("409 MessageIds %v, want Base registry ones", ids)
			}
		}
		if s := taskState(readTask(t, d, a.taskID)); s != "Completed" {
			t.Errorf("task %s is %s after a refused DELETE", a.taskID, s)
		}
		requireOneInFlight(t, d, node)
	})

	t.Run("cancel", func(t *testing.T) {
		const node = "node02"
		mach := machine(t, d, node)
		setup := postReset(t, d, root, node, "On")
		requireTaskEnd(t, "setup On", waitTask(t, d, setup.taskID), "Completed", "TaskCompletedOK", "")
		waitMachine(t, d, node, "On")
		// The OS ignores ACPI: a GracefulShutdown runs until its (long)
		// timeout unless cancelled.
		mach.SetFaults(simulator.Faults{NeverFinishSoftOff: true})
		soft := postReset(t, d, root, node, "GracefulShutdown")
		waitFor(t, taskTimeout, "GracefulShutdown at the BMC", func() (bool, string) {
			n := accepted(mach.Status(), "GracefulShutdown")
			return n == 1, fmt.Sprint(n)
		})
		if s := taskState(readTask(t, d, soft.taskID)); s != "Running" {
			t.Fatalf("GracefulShutdown task is %s once sent, want Running", s)
		}
		// On does not outrank GracefulShutdown: it waits.
		on := postReset(t, d, root, node, "On")
		oem, sys := fishgateOem(t, d, node)
		validateBody(t, v, "System with running and queued tasks", sys)
		if runningTask(oem) != root+tasksPath+soft.taskID || !slices.Equal(queuedTasks(oem), []string{root + tasksPath + on.taskID}) {
			t.Errorf("Oem.Fishgate %v: want RunningTask %s and QueuedTasks [%s]", oem, soft.taskID, on.taskID)
		}
		if oem["DesiredPowerState"] != "On" {
			t.Errorf("DesiredPowerState %v with On queued, want On", oem["DesiredPowerState"])
		}

		// DELETE of the waiting task (by its monitor): Cancelled at once.
		st, _, b := do(t, http.MethodDelete, d.URL()+on.location, nil, basic(d))
		if st < 200 || st > 299 {
			t.Fatalf("DELETE %s (waiting task): status %d; body %s", on.location, st, b)
		}
		if len(b) > 0 {
			validateBody(t, v, "DELETE answer", b)
		}
		requireTaskEnd(t, "waiting On after DELETE", readTask(t, d, on.taskID), "Cancelled", "TaskCancelled", "")

		// DELETE of the running task (by its Task URL): Cancelled at the
		// next step boundary; the node stays where it is (On).
		st, _, b = do(t, http.MethodDelete, taskURL(d, soft.taskID), nil, basic(d))
		if st < 200 || st > 299 {
			t.Fatalf("DELETE running task %s: status %d; body %s", soft.taskID, st, b)
		}
		var del map[string]any
		json.Unmarshal(b, &del)
		if s := taskState(del); s != "Cancelling" && s != "Cancelled" {
			t.Errorf("DELETE of the running task answered TaskState %q, want Cancelling or Cancelled", s)
		}
		end := waitTask(t, d, soft.taskID)
		requireTaskEnd(t, "running GracefulShutdown after DELETE", end, "Cancelled", "TaskCancelled", "")
		st, _, b = do(t, http.MethodGet, d.URL()+soft.location, nil, basic(d))
		if st != http.StatusOK {
			t.Errorf("GET monitor of the cancelled task: status %d, want 200", st)
		} else {
			validateBody(t, v, "cancelled task monitor body", b)
		}
		if st, _, b := do(t, http.MethodDelete, d.URL()+soft.location, nil, basic(d)); st != http.StatusConflict {
			t.Errorf("second DELETE of the cancelled task: status %d, want 409; body %s", st, b)
		}
		oem = waitIdle(t, d, node)
		if oem["DesiredPowerState"] != "On" {
			t.Errorf("after aborting a soft off, DesiredPowerState %v, want the observed On", oem["DesiredPowerState"])
		}
		if p := mach.PowerState(); p != "On" {
			t.Errorf("%s machine %s after the aborted soft off, want On", node, p)
		}
		if got := powerCommands(mach.Status(), 0); !slices.Equal(got, []string{"On", "GracefulShutdown"}) {
			t.Errorf("%s BMC accepted %v, want [On GracefulShutdown] (the cancelled On must not be sent)", node, got)
		}
		requireOneInFlight(t, d, node)
	})
}
