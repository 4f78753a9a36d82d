package simulator

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stmcginnis/gofish"
	rf "github.com/stmcginnis/gofish/schemas"
)

// startNode starts a fleet with one node and closes it when the test ends.
func startNode(t *testing.T, spec NodeSpec) (*Fleet, *Node) {
	t.Helper()
	f := NewFleet(nil)
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if spec.ID == "" {
		spec.ID = "node01"
	}
	n, err := f.Add(spec)
	if err != nil {
		t.Fatal(err)
	}
	return f, n
}

// client talks to one node. Requests use the session token if set, else
// Basic credentials if set, else nothing.
type client struct {
	t          *testing.T
	base       string
	http       *http.Client
	user, pass string
	token      string
}

func newClient(t *testing.T, n *Node) *client {
	c := &client{t: t, base: n.URL(), http: &http.Client{Timeout: 5 * time.Second}}
	if roots := n.RootCAs(); roots != nil {
		c.http.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	}
	return c
}

func (c *client) basic() *client {
	c2 := *c
	c2.user, c2.pass, c2.token = "admin", "password", ""
	return &c2
}

type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (c *client) do(method, path string, body any, header ...string) response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case c.token != "":
		req.Header.Set("X-Auth-Token", c.token)
	case c.user != "":
		req.SetBasicAuth(c.user, c.pass)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			c.t.Fatalf("%s %s: body %q: %v", method, path, raw, err)
		}
	}
	return r
}

// expect fails the test unless r has status want.
func (r response) expect(t *testing.T, want int) response {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body %s", r.status, want, r.raw)
	}
	return r
}

// messageIDs returns the MessageIds of a Redfish error body, checking its
// shape (DSP0266 "Error responses").
func (r response) messageIDs(t *testing.T) []string {
	t.Helper()
	e, ok := r.body["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %s", r.raw)
	}
	info, _ := e["@Message.ExtendedInfo"].([]any)
	if len(info) == 0 || e["code"] == "" || e["message"] == "" {
		t.Fatalf("malformed error body %s", r.raw)
	}
	var ids []string
	for _, m := range info {
		id, _ := m.(map[string]any)["MessageId"].(string)
		ids = append(ids, id)
	}
	if e["code"] != ids[0] {
		t.Errorf("error code %v is not the first MessageId %s", e["code"], ids[0])
	}
	return ids
}

func (r response) expectError(t *testing.T, status int, messageID string) response {
	t.Helper()
	r.expect(t, status)
	if ids := r.messageIDs(t); !slices.Contains(ids, messageID) {
		t.Fatalf("MessageIds %v, want %s", ids, messageID)
	}
	return r
}

func waitPower(t *testing.T, m *Machine, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for m.PowerState() != want {
		if time.Now().After(deadline) {
			t.Fatalf("PowerState %s, want %s", m.PowerState(), want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRedfishAuth(t *testing.T) {
	_, n := startNode(t, NodeSpec{})
	anon := newClient(t, n)
	for _, p := range []string{"/redfish", "/redfish/v1", "/redfish/v1/", "/redfish/v1/odata", "/redfish/v1/$metadata"} {
		anon.do("GET", p, nil).expect(t, http.StatusOK)
	}
	for _, p := range []string{"/redfish/v1/Systems", n.SystemPath(), "/redfish/v1/Managers/BMC",
		"/redfish/v1/SessionService/Sessions", "/redfish/v1/NoSuchThing"} {
		r := anon.do("GET", p, nil).expectError(t, http.StatusUnauthorized, "Base.1.22.NoValidSession")
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("401 for %s without WWW-Authenticate", p)
		}
	}
	anon.do("POST", n.SystemPath()+"/Actions/ComputerSystem.Reset", map[string]string{"ResetType": "On"}).
		expect(t, http.StatusUnauthorized)
	if got := n.Machine().Status().CommandCount; got != 0 {
		t.Errorf("an unauthenticated Reset reached the machine: %d commands", got)
	}

	wrong := newClient(t, n)
	wrong.user, wrong.pass = "admin", "wrong"
	wrong.do("GET", "/redfish/v1/Systems", nil).expect(t, http.StatusUnauthorized)
	wrong.token = "not-a-token"
	wrong.do("GET", "/redfish/v1/Systems", nil).expect(t, http.StatusUnauthorized)

	anon.basic().do("GET", "/redfish/v1/Systems", nil).expect(t, http.StatusOK)
}

func TestRedfishCustomCredentials(t *testing.T) {
	_, n := startNode(t, NodeSpec{User: "root", Password: "calvin"})
	c := newClient(t, n)
	c.basic().do("GET", "/redfish/v1/Systems", nil).expect(t, http.StatusUnauthorized)
	c.user, c.pass = "root", "calvin"
	c.do("GET", "/redfish/v1/Systems", nil).expect(t, http.StatusOK)
}

func TestRedfishSessions(t *testing.T) {
	_, n := startNode(t, NodeSpec{})
	c := newClient(t, n)
	c.do("POST", "/redfish/v1/SessionService/Sessions", map[string]string{"UserName": "admin", "Password": "nope"}).
		expectError(t, http.StatusUnauthorized, "Base.1.22.NoValidSession")
	c.do("POST", "/redfish/v1/SessionService/Sessions", map[string]string{"UserName": "admin"}).
		expectError(t, http.StatusBadRequest, "Base.1.22.PropertyMissing")
	c.do("POST", "/redfish/v1/SessionService/Sessions", "{not json").
		expectError(t, http.StatusBadRequest, "Base.1.22.MalformedJSON")

	r := c.do("POST", "/redfish/v1/SessionService/Sessions", map[string]string{"UserName": "admin", "Password": "password"}).
		expect(t, http.StatusCreated)
	token, loc := r.header.Get("X-Auth-Token"), r.header.Get("Location")
	if token == "" || !strings.HasPrefix(loc, "/redfish/v1/SessionService/Sessions/") {
		t.Fatalf("login: token %q, Location %q", token, loc)
	}
	if r.body["@odata.id"] != loc || r.body["UserName"] != "admin" {
		t.Errorf("session body %s", r.raw)
	}

	s := newClient(t, n)
	s.token = token
	s.do("GET", n.SystemPath(), nil).expect(t, http.StatusOK)
	coll := s.do("GET", "/redfish/v1/SessionService/Sessions", nil).expect(t, http.StatusOK)
	if !strings.Contains(string(coll.raw), `"`+loc+`"`) {
		t.Errorf("Sessions collection lacks %s: %s", loc, coll.raw)
	}
	s.do("GET", loc, nil).expect(t, http.StatusOK)

	// A second session is independent of the first.
	r2 := c.do("POST", "/redfish/v1/SessionService/Sessions/", map[string]string{"UserName": "admin", "Password": "password"}).
		expect(t, http.StatusCreated)
	if r2.header.Get("X-Auth-Token") == token || r2.header.Get("Location") == loc {
		t.Fatalf("second session reuses the first's token or URI")
	}

	// Logout: the token stops working; the other session still works.
	s.do("DELETE", loc, nil).expect(t, http.StatusNoContent)
	s.do("GET", n.SystemPath(), nil).expectError(t, http.StatusUnauthorized, "Base.1.22.NoValidSession")
	c.basic().do("DELETE", loc, nil).expectError(t, http.StatusNotFound, "Base.1.22.ResourceMissingAtURI")
	s2 := newClient(t, n)
	s2.token = r2.header.Get("X-Auth-Token")
	s2.do("GET", n.SystemPath(), nil).expect(t, http.StatusOK)
}

func TestRedfishServiceRoot(t *testing.T) {
	for _, async := range []bool{false, true} {
		_, n := startNode(t, NodeSpec{ID: "n1", AsyncReset: async, SystemID: "System.Embedded.1"})
		c := newClient(t, n)
		root := c.do("GET", "/redfish/v1/", nil).expect(t, http.StatusOK).body
		if root["@odata.type"] != "#ServiceRoot.v1_5_0.ServiceRoot" || root["RedfishVersion"] != "1.15.0" {
			t.Errorf("service root %v", root)
		}
		link := func(v any) string { return v.(map[string]any)["@odata.id"].(string) }
		if link(root["Systems"]) != "/redfish/v1/Systems" || link(root["Managers"]) != "/redfish/v1/Managers" ||
			link(root["SessionService"]) != "/redfish/v1/SessionService" ||
			link(root["Links"].(map[string]any)["Sessions"]) != "/redfish/v1/SessionService/Sessions" {
			t.Errorf("service root links %v", root)
		}
		if _, ok := root["TaskService"]; ok != async {
			t.Errorf("AsyncReset %v: TaskService link present %v", async, ok)
		}
		wantTaskSvc := http.StatusNotFound
		if async {
			wantTaskSvc = http.StatusOK
		}
		c.basic().do("GET", "/redfish/v1/TaskService", nil).expect(t, wantTaskSvc)

		b := c.basic()
		systems := b.do("GET", "/redfish/v1/Systems/", nil).expect(t, http.StatusOK).body
		members := systems["Members"].([]any)
		if len(members) != 1 || link(members[0]) != "/redfish/v1/Systems/System.Embedded.1" || n.SystemPath() != link(members[0]) {
			t.Errorf("Systems %v, SystemPath %s", systems, n.SystemPath())
		}
		managers := b.do("GET", "/redfish/v1/Managers", nil).expect(t, http.StatusOK).body
		if link(managers["Members"].([]any)[0]) != "/redfish/v1/Managers/BMC" {
			t.Errorf("Managers %v", managers)
		}
		mgr := b.do("GET", "/redfish/v1/Managers/BMC", nil).expect(t, http.StatusOK).body
		if mgr["ManagerType"] != "BMC" {
			t.Errorf("Manager %v", mgr)
		}
		b.do("GET", "/redfish/v1/Systems/1", nil).expectError(t, http.StatusNotFound, "Base.1.22.ResourceMissingAtURI")
		r := b.do("DELETE", n.SystemPath(), nil).expectError(t, http.StatusMethodNotAllowed, "Base.1.22.OperationNotAllowed")
		if r.header.Get("Allow") != "GET, PATCH" {
			t.Errorf("Allow %q", r.header.Get("Allow"))
		}
		if r.header.Get("OData-Version") != "4.0" {
			t.Errorf("OData-Version %q", r.header.Get("OData-Version"))
		}
	}
}

func TestRedfishSystem(t *testing.T) {
	_, n := startNode(t, NodeSpec{Machine: MachineConfig{InitialPower: "On", ResetTypes: []string{"On", "ForceOff", "ForceRestart"}}})
	c := newClient(t, n).basic()
	r := c.do("GET", n.SystemPath(), nil).expect(t, http.StatusOK)
	sys := r.body
	if sys["@odata.type"] != "#ComputerSystem.v1_13_0.ComputerSystem" || sys["Id"] != "1" || sys["PowerState"] != "On" {
		t.Errorf("system %s", r.raw)
	}
	reset := sys["Actions"].(map[string]any)["#ComputerSystem.Reset"].(map[string]any)
	if reset["target"] != n.SystemPath()+"/Actions/ComputerSystem.Reset" {
		t.Errorf("Reset target %v", reset["target"])
	}
	if got := reset["ResetType@Redfish.AllowableValues"]; !jsonEqual(got, []string{"On", "ForceOff", "ForceRestart"}) {
		t.Errorf("ResetType@Redfish.AllowableValues %v", got)
	}
	boot := sys["Boot"].(map[string]any)
	if boot["BootSourceOverrideTarget"] != "None" || boot["BootSourceOverrideEnabled"] != "Disabled" ||
		!jsonEqual(boot["BootSourceOverrideTarget@Redfish.AllowableValues"], BootTargets()) {
		t.Errorf("Boot %v", boot)
	}
	etag := r.header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if again := c.do("GET", n.SystemPath(), nil).header.Get("ETag"); again != etag {
		t.Errorf("ETag changed without a change: %s, %s", etag, again)
	}
	// The ETag covers the writable Boot override, not PowerState.
	n.Machine().SetPower(PowerOff)
	if after := c.do("GET", n.SystemPath(), nil).header.Get("ETag"); after != etag {
		t.Errorf("ETag changed from %s to %s with PowerState", etag, after)
	}
	if err := n.Machine().SetBoot("test", Boot{Target: "Cd"}); err != nil {
		t.Fatal(err)
	}
	if after := c.do("GET", n.SystemPath(), nil).header.Get("ETag"); after == etag {
		t.Errorf("ETag %s unchanged after Boot changed", etag)
	}
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestRedfishReset(t *testing.T) {
	// 100ms leaves time to see PoweringOn right after the 204.
	_, n := startNode(t, NodeSpec{Machine: MachineConfig{DelayMin: 100 * time.Millisecond, DelayMax: 100 * time.Millisecond}})
	c := newClient(t, n).basic()
	action := n.SystemPath() + "/Actions/ComputerSystem.Reset"
	m := n.Machine()

	c.do("POST", action, map[string]string{"ResetType": "On"}).expect(t, http.StatusNoContent)
	if s := c.do("GET", n.SystemPath(), nil).body["PowerState"]; s != "PoweringOn" {
		t.Errorf("PowerState right after On: %v, want PoweringOn", s)
	}
	waitPower(t, m, PowerOn)
	if s := c.do("GET", n.SystemPath(), nil).body["PowerState"]; s != "On" {
		t.Errorf("PowerState %v after the transition", s)
	}
	c.do("POST", action, map[string]string{"ResetType": "ForceRestart"}).expect(t, http.StatusNoContent)
	waitPower(t, m, PowerOn)
	c.do("POST", action, map[string]string{"ResetType": "ForceOff"}).expect(t, http.StatusNoContent)
	waitPower(t, m, PowerOff)

	st := m.Status()
	if st.PowerOnCount != 2 || st.PowerOffCount != 2 || st.MaxInFlight != 1 {
		t.Errorf("status %+v; want 2 ons, 2 offs (one from the restart), MaxInFlight 1", st)
	}
	var actions []string
	for _, cmd := range st.Commands {
		if cmd.Protocol != "redfish" || cmd.Result != "accepted" {
			t.Errorf("command %+v", cmd)
		}
		actions = append(actions, cmd.Action)
	}
	if !slices.Equal(actions, []string{"On", "ForceRestart", "ForceOff"}) {
		t.Errorf("command log %v", actions)
	}
}

func TestRedfishResetBadRequests(t *testing.T) {
	_, n := startNode(t, NodeSpec{Machine: MachineConfig{ResetTypes: []string{"On", "ForceOff"}}})
	c := newClient(t, n).basic()
	action := n.SystemPath() + "/Actions/ComputerSystem.Reset"

	r := c.do("POST", action, map[string]string{"ResetType": "ForceRestart"}).
		expectError(t, http.StatusBadRequest, "Base.1.22.ActionParameterValueNotInList")
	if !strings.Contains(string(r.raw), "'ForceRestart'") {
		t.Errorf("error does not name the value: %s", r.raw)
	}
	c.do("POST", action, map[string]string{"ResetType": "Explode"}).
		expectError(t, http.StatusBadRequest, "Base.1.22.ActionParameterValueNotInList")
	c.do("POST", action, map[string]string{}).
		expectError(t, http.StatusBadRequest, "Base.1.22.ActionParameterMissing")
	c.do("POST", action, map[string]any{"ResetType": 3}).
		expectError(t, http.StatusBadRequest, "Base.1.22.ActionParameterValueTypeError")
	c.do("POST", action, map[string]string{"ResetType": "On", "Force": "yes"}).
		expectError(t, http.StatusBadRequest, "Base.1.22.ActionParameterUnknown")
	c.do("POST", action, `{"ResetType":`).
		expectError(t, http.StatusBadRequest, "Base.1.22.MalformedJSON")
	c.do("POST", action, `[]`).
		expectError(t, http.StatusBadRequest, "Base.1.22.MalformedJSON")
	c.do("GET", action, nil).expectError(t, http.StatusMethodNotAllowed, "Base.1.22.OperationNotAllowed")

	// The unsupported ones reached the machine and were logged as refused;
	// malformed requests did not.
	st := n.Machine().Status()
	if st.CommandCount != 2 || st.Commands[0].Result != "refused: unsupported ResetType" || st.PowerState != PowerOff {
		t.Errorf("status %+v", st)
	}
}

func TestRedfishResetFaults(t *testing.T) {
	_, n := startNode(t, NodeSpec{Machine: MachineConfig{InitialPower: "On", DelayMin: 10 * time.Millisecond, DelayMax: 10 * time.Millisecond}})
	c := newClient(t, n).basic()
	action := n.SystemPath() + "/Actions/ComputerSystem.Reset"
	m := n.Machine()

	m.SetFaults(Faults{FailFirst: 1})
	r := c.do("POST", action, map[string]string{"ResetType": "ForceOff"}).
		expectError(t, http.StatusInternalServerError, "Base.1.22.GeneralError")
	if !strings.Contains(string(r.raw), "simulated failure (0 left)") {
		t.Errorf("error body lacks the machine's text: %s", r.raw)
	}
	if m.PowerState() != PowerOn {
		t.Fatalf("a failed command changed the power state")
	}
	c.do("POST", action, map[string]string{"ResetType": "ForceOff"}).expect(t, http.StatusNoContent)
	waitPower(t, m, PowerOff)

	m.SetFaults(Faults{RefuseOnWithin: 2 * time.Second})
	r = c.do("POST", action, map[string]string{"ResetType": "On"}).
		expectError(t, http.StatusServiceUnavailable, "Base.1.22.ServiceTemporarilyUnavailable")
	if ra := r.header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2", ra)
	}

	// Hang delays the answer.
	m.SetFaults(Faults{Hang: 60 * time.Millisecond})
	start := time.Now()
	c.do("POST", action, map[string]string{"ResetType": "Nmi"}).expect(t, http.StatusNoContent)
	if took := time.Since(start); took < 60*time.Millisecond {
		t.Errorf("answered after %v despite Hang 60ms", took)
	}
}

// TestRedfishResetLatency: CommandLatency delays the answer, and a client
// that gives up before it does not stop the command: a slow BMC carries it
// out all the same.
func TestRedfishResetLatency(t *testing.T) {
	const latency = 200 * time.Millisecond
	_, n := startNode(t, NodeSpec{Machine: MachineConfig{CommandLatency: latency}})
	c := newClient(t, n).basic()
	action := n.SystemPath() + "/Actions/ComputerSystem.Reset"
	m := n.Machine()

	start := time.Now()
	c.do("POST", action, map[string]string{"ResetType": "On"}).expect(t, http.StatusNoContent)
	if took := time.Since(start); took < latency {
		t.Errorf("answered after %v despite CommandLatency %v", took, latency)
	}
	waitPower(t, m, PowerOn)

	impatient := &http.Client{Timeout: 20 * time.Millisecond}
	req, err := http.NewRequest("POST", c.base+action, strings.NewReader(`{"ResetType":"ForceOff"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(c.user, c.pass)
	if resp, err := impatient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("answered %s within 20ms despite CommandLatency %v", resp.Status, latency)
	}
	waitPower(t, m, PowerOff)
	st := m.Status()
	if got := st.Commands[len(st.Commands)-1]; got.Action != "ForceOff" || got.Result != "accepted" {
		t.Errorf("the abandoned command logged %+v, want ForceOff accepted", got)
	}
	if st.CommandCount != 2 || st.MaxInFlight != 1 {
		t.Errorf("CommandCount %d, MaxInFlight %d; want 2, 1", st.CommandCount, st.MaxInFlight)
	}
}

// task GETs a task and returns its state.
func (c *client) task(t *testing.T, loc string) map[string]any {
	t.Helper()
	return c.do("GET", loc, nil).expect(t, http.StatusOK).body
}

func (c *client) waitTask(t *testing.T, loc string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		body := c.task(t, loc)
		if body["TaskState"] != "Running" {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still Running", loc)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRedfishAsyncReset(t *testing.T) {
	_, n := startNode(t, NodeSpec{AsyncReset: true, Machine: MachineConfig{DelayMin: 100 * time.Millisecond, DelayMax: 100 * time.Millisecond}})
	c := newClient(t, n).basic()
	action := n.SystemPath() + "/Actions/ComputerSystem.Reset"
	m := n.Machine()

	// Completed: the task ends when the transition settles.
	r := c.do("POST", action, map[string]string{"ResetType": "On"}).expect(t, http.StatusAccepted)
	loc := r.header.Get("Location")
	if loc != "/redfish/v1/TaskService/Tasks/1" || r.body["@odata.id"] != loc || r.body["TaskState"] != "Running" {
		t.Fatalf("202: Location %q, body %s", loc, r.raw)
	}
	if got := c.task(t, loc); got["TaskState"] != "Running" || m.PowerState() != PowerPoweringOn {
		t.Errorf("right after: task %v, PowerState %s", got["TaskState"], m.PowerState())
	}
	done := c.waitTask(t, loc)
	if done["TaskState"] != "Completed" || done["TaskStatus"] != "OK" || done["PercentComplete"] != 100.0 || done["EndTime"] == nil {
		t.Errorf("finished task %v", done)
	}
	if m.PowerState() != PowerOn {
		t.Errorf("task Completed while PowerState %s", m.PowerState())
	}

	// Exception: the machine's error text goes into Messages.
	m.SetFaults(Faults{FailFirst: 1})
	r = c.do("POST", action, map[string]string{"ResetType": "ForceOff"}).expect(t, http.StatusAccepted)
	failed := c.waitTask(t, r.header.Get("Location"))
	msgs, _ := failed["Messages"].([]any)
	if failed["TaskState"] != "Exception" || len(msgs) == 0 ||
		!strings.Contains(msgs[0].(map[string]any)["Message"].(string), "simulated failure (0 left)") {
		t.Errorf("failed task %v", failed)
	}
	if m.PowerState() != PowerOn {
		t.Errorf("failed command changed PowerState to %s", m.PowerState())
	}

	// Cancelled: a later command took over before the transition settled.
	r1 := c.do("POST", action, map[string]string{"ResetType": "GracefulShutdown"}).expect(t, http.StatusAccepted)
	r2 := c.do("POST", action, map[string]string{"ResetType": "On"}).expect(t, http.StatusAccepted)
	if first := c.waitTask(t, r1.header.Get("Location")); first["TaskState"] != "Cancelled" {
		t.Errorf("superseded task %v", first)
	}
	if second := c.waitTask(t, r2.header.Get("Location")); second["TaskState"] != "Completed" {
		t.Errorf("second task %v", second)
	}
	if st := m.Status(); st.MaxInFlight != 2 || st.InFlight != 0 {
		t.Errorf("MaxInFlight %d InFlight %d after overlapping commands", st.MaxInFlight, st.InFlight)
	}

	// Unsupported types are refused at once, without a task.
	c.do("POST", action, map[string]string{"ResetType": "Explode"}).
		expectError(t, http.StatusBadRequest, "Base.1.22.ActionParameterValueNotInList")
	tasks := c.do("GET", "/redfish/v1/TaskService/Tasks", nil).expect(t, http.StatusOK).body
	if tasks["Members@odata.count"] != 4.0 {
		t.Errorf("Tasks %v", tasks)
	}
	c.do("GET", "/redfish/v1/TaskService/Tasks/99", nil).expectError(t, http.StatusNotFound, "Base.1.22.ResourceMissingAtURI")
}

func TestRedfishPatchBoot(t *testing.T) {
	_, n := startNode(t, NodeSpec{})
	c := newClient(t, n).basic()
	m := n.Machine()

	r := c.do("PATCH", n.SystemPath(), map[string]any{"Boot": map[string]string{
		"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}).expect(t, http.StatusOK)
	boot := r.body["Boot"].(map[string]any)
	if boot["BootSourceOverrideTarget"] != "Pxe" || boot["BootSourceOverrideEnabled"] != "Once" || boot["BootSourceOverrideMode"] != "UEFI" {
		t.Errorf("PATCH answer Boot %v", boot)
	}
	if got := m.Boot(); got != (Boot{Target: "Pxe", Enabled: "Once", Mode: "UEFI"}) {
		t.Errorf("machine Boot %+v", got)
	}
	if st := m.Status(); st.CommandCount != 1 || st.Commands[0].Action != "SetBoot" || st.Commands[0].Protocol != "redfish" {
		t.Errorf("command log %+v", st.Commands)
	}

	c.do("PATCH", n.SystemPath(), map[string]any{"Boot": map[string]string{"BootSourceOverrideTarget": "Tape"}}).
		expectError(t, http.StatusBadRequest, "Base.1.22.PropertyValueNotInList")
	c.do("PATCH", n.SystemPath(), map[string]any{"Boot": map[string]any{"BootSourceOverrideTarget": 1}}).
		expectError(t, http.StatusBadRequest, "Base.1.22.PropertyValueTypeError")
	c.do("PATCH", n.SystemPath(), map[string]any{"Boot": map[string]string{"BootNext": "0001"}}).
		expectError(t, http.StatusBadRequest, "Base.1.22.PropertyUnknown")
	c.do("PATCH", n.SystemPath(), map[string]any{"PowerState": "On"}).
		expectError(t, http.StatusBadRequest, "Base.1.22.PropertyNotWritable")
	c.do("PATCH", n.SystemPath(), map[string]any{"AssetTag": "x"}).
		expectError(t, http.StatusBadRequest, "Base.1.22.PropertyUnknown")
	c.do("PATCH", n.SystemPath(), "Boot").expectError(t, http.StatusBadRequest, "Base.1.22.MalformedJSON")
	if got := m.Boot(); got.Target != "Pxe" || m.PowerState() != PowerOff {
		t.Errorf("rejected PATCHes changed the machine: %+v %s", got, m.PowerState())
	}

	// If-Match: a stale ETag is refused, the current one accepted.
	etag := c.do("GET", n.SystemPath(), nil).header.Get("ETag")
	c.do("PATCH", n.SystemPath(), map[string]any{"Boot": map[string]string{"BootSourceOverrideMode": "Legacy"}},
		"If-Match", `W/"stale"`).expectError(t, http.StatusPreconditionFailed, "Base.1.22.PreconditionFailed")
	r = c.do("PATCH", n.SystemPath(), map[string]any{"Boot": map[string]string{"BootSourceOverrideMode": "Legacy"}},
		"If-Match", etag).expect(t, http.StatusOK)
	if r.header.Get("ETag") == etag || m.Boot().Mode != "Legacy" {
		t.Errorf("after PATCH: ETag %s (was %s), Boot %+v", r.header.Get("ETag"), etag, m.Boot())
	}
}

func TestRedfishNotFoundIsJSON(t *testing.T) {
	_, n := startNode(t, NodeSpec{})
	c := newClient(t, n).basic()
	r := c.do("GET", "/redfish/v1/Chassis", nil).expectError(t, http.StatusNotFound, "Base.1.22.ResourceMissingAtURI")
	if !strings.Contains(string(r.raw), "/redfish/v1/Chassis") {
		t.Errorf("404 does not name the URI: %s", r.raw)
	}
}

func TestRedfishTLS(t *testing.T) {
	_, n := startNode(t, NodeSpec{TLS: true, Machine: MachineConfig{InitialPower: "On"}})
	if !strings.HasPrefix(n.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL %s", n.URL())
	}
	c := newClient(t, n).basic()
	if s := c.do("GET", n.SystemPath(), nil).expect(t, http.StatusOK).body["PowerState"]; s != "On" {
		t.Errorf("PowerState %v over TLS", s)
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if _, err := plain.Get(n.URL() + "/redfish/v1"); err == nil {
		t.Error("a client without the node's root CA accepted its certificate")
	}
}

// TestGofishClient drives a node with gofish, the Redfish client library the
// gateway's Redfish backend uses: session login, system, Reset, PATCH Boot,
// async tasks, logout.
func TestGofishClient(t *testing.T) {
	for _, async := range []bool{false, true} {
		_, n := startNode(t, NodeSpec{ID: "gofish", AsyncReset: async,
			Machine: MachineConfig{DelayMin: 20 * time.Millisecond, DelayMax: 20 * time.Millisecond}})
		c, err := gofish.Connect(gofish.ClientConfig{Endpoint: n.URL(), Username: "admin", Password: "password"})
		if err != nil {
			t.Fatal(err)
		}
		sess, err := c.GetSession()
		if err != nil || sess.Token == "" {
			t.Fatalf("no session: %v", err)
		}
		systems, err := c.Service.Systems()
		if err != nil || len(systems) != 1 {
			t.Fatalf("Systems: %v, %d", err, len(systems))
		}
		sys := systems[0]
		if sys.PowerState != rf.OffPowerState {
			t.Errorf("PowerState %s", sys.PowerState)
		}
		types, err := sys.GetSupportedResetTypes()
		if err != nil || len(types) != 9 {
			t.Errorf("supported ResetTypes %v, %v", types, err)
		}
		resp, ti, err := rf.PostWithTask(c, n.SystemPath()+"/Actions/ComputerSystem.Reset", map[string]string{"ResetType": "On"}, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if resp != nil {
			resp.Body.Close()
		}
		if (ti != nil) != async {
			t.Errorf("AsyncReset %v: task monitor %+v", async, ti)
		}
		if ti != nil && (ti.Task == nil || ti.Task.TaskState != rf.RunningTaskState) {
			t.Errorf("202 task %+v", ti.Task)
		}
		waitPower(t, n.Machine(), PowerOn)
		if err := sys.SetBoot(&rf.Boot{BootSourceOverrideTarget: rf.PxeBootSource, BootSourceOverrideEnabled: rf.OnceBootSourceOverrideEnabled}); err != nil {
			t.Fatal(err)
		}
		if b := n.Machine().Boot(); b.Target != "Pxe" || b.Enabled != "Once" {
			t.Errorf("Boot after gofish SetBoot: %+v", b)
		}
		sys2, err := rf.GetObject[rf.ComputerSystem](c, n.SystemPath())
		if err != nil || sys2.PowerState != rf.OnPowerState || sys2.Boot.BootSourceOverrideTarget != rf.PxeBootSource {
			t.Errorf("system after: %+v, %v", sys2, err)
		}
		c.Logout()
		var e *rf.Error
		if _, err := c.Get(n.SystemPath()); !errors.As(err, &e) || e.HTTPReturnedStatusCode != http.StatusUnauthorized {
			t.Errorf("after logout: %v", err)
		}
	}
}

func TestFleet(t *testing.T) {
	f := NewFleet(nil)
	for _, id := range []string{"node02", "node01", "node10"} {
		if _, err := f.Add(NodeSpec{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Add(NodeSpec{ID: "node01"}); err == nil {
		t.Error("duplicate id accepted")
	}
	for _, bad := range []NodeSpec{{ID: ""}, {ID: "a/b"}, {ID: "x", SystemID: "1/2"},
		{ID: "y", Machine: MachineConfig{ResetTypes: []string{"Explode"}}},
		{ID: "z", Machine: MachineConfig{InitialPower: "Maybe"}},
		{ID: "w", Listen: "256.0.0.1:0"}} {
		if _, err := f.Add(bad); err == nil {
			t.Errorf("Add(%+v) accepted", bad)
		}
	}
	var ids []string
	for _, n := range f.Nodes() {
		ids = append(ids, n.ID())
	}
	if !slices.Equal(ids, []string{"node01", "node02", "node10"}) {
		t.Errorf("Nodes() %v", ids)
	}
	n, ok := f.Node("node02")
	if !ok || n.Machine().ID() != "node02" || n.Spec().User != "admin" || n.Spec().SystemID != "1" ||
		!strings.HasSuffix(n.URL(), strings.TrimPrefix(n.Spec().Listen, "127.0.0.1")) {
		t.Errorf("node02: %+v %s", n.Spec(), n.URL())
	}
	if _, ok := f.Node("node03"); ok {
		t.Error("Node found a node that does not exist")
	}
	url := n.URL()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(url + "/redfish/v1"); err == nil {
		t.Error("node still serving after Fleet.Close")
	}
	if _, err := f.Add(NodeSpec{ID: "late"}); err == nil {
		t.Error("Add after Close accepted")
	}
	if err := n.Machine().Reset(t.Context(), "redfish", "On"); !errors.Is(err, ErrClosed) {
		t.Errorf("machine after Fleet.Close: %v", err)
	}
}

// FuzzRedfish: no request makes the Redfish front panic, answer 5xx (the
// node has no faults), or answer an error that is not a Redfish error body.
func FuzzRedfish(f *testing.F) {
	for _, seed := range []struct{ method, path, body string }{
		{"POST", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", `{"ResetType":"ForceRestart"}`},
		{"POST", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", `{"ResetType":null}`},
		{"PATCH", "/redfish/v1/Systems/1", `{"Boot":{"BootSourceOverrideTarget":"Pxe"}}`},
		{"PATCH", "/redfish/v1/Systems/1", `{"Boot":null}`},
		{"POST", "/redfish/v1/SessionService/Sessions", `{"UserName":"admin","Password":"password"}`},
		{"DELETE", "/redfish/v1/SessionService/Sessions/1", ``},
		{"GET", "/redfish/v1/TaskService/Tasks/1", ``},
		{"GET", "/redfish/v1//Systems/../Managers", ``},
	} {
		f.Add(seed.method, seed.path, seed.body)
	}
	m := NewMachine("n1", MachineConfig{})
	f.Cleanup(m.Close)
	front := newRedfishFront(NodeSpec{ID: "n1", User: "admin", Password: "password", SystemID: "1", AsyncReset: true}, m, discardLogger())
	f.Cleanup(front.wait)
	f.Fuzz(func(t *testing.T, method, path, body string) {
		req, err := http.NewRequest(method, "http://bmcsim.test"+path, strings.NewReader(body))
		if err != nil || !strings.HasPrefix(path, "/") {
			t.Skip()
		}
		req.SetBasicAuth("admin", "password")
		w := httptest.NewRecorder()
		front.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q: status %d: %s", method, path, body, w.Code, w.Body)
		}
		if w.Code >= 400 {
			var e errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" || len(e.Error.ExtendedInfo) == 0 {
				t.Fatalf("%s %s %q: %d with body %s", method, path, body, w.Code, w.Body)
			}
		}
	})
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
