package redfish_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fishgate/fishgate/fronts/redfish"
	"github.com/fishgate/fishgate/internal/testkit"
)

// fakeSources keeps sources in memory and answers the errors a test sets.
type fakeSources struct {
	mu    sync.Mutex
	m     map[string]redfish.Source
	err   error // returned by the next Create, Update or Delete
	specs []redfish.SourceSpec
}

func newFakeSources() *fakeSources {
	s := "x"
	return &fakeSources{m: map[string]redfish.Source{
		"node1": {ID: "node1", Backend: "redfish", HostName: "https://10.0.0.1", UserName: "root", FromConfiguration: true,
			Options: redfish.SourceOptions{NodeID: &s}},
	}}
}

func (f *fakeSources) List() []redfish.Source {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []redfish.Source
	for _, s := range f.m {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (f *fakeSources) Get(id string) (redfish.Source, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.m[id]
	return s, ok
}

func (f *fakeSources) Create(_ context.Context, spec redfish.SourceSpec) (redfish.Source, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.specs = append(f.specs, spec)
	if err := f.err; err != nil {
		f.err = nil
		return redfish.Source{}, err
	}
	for prop, v := range map[string]*string{"Links/ConnectionMethod": spec.Backend, "HostName": spec.HostName, "UserName": spec.UserName} {
		if v == nil {
			return redfish.Source{}, &redfish.SourcePropertyError{Property: prop, Problem: "required", Kind: redfish.PropertyMissing}
		}
	}
	id := "node1"
	if spec.Options.NodeID != nil {
		id = *spec.Options.NodeID
	}
	s := redfish.Source{ID: id, Backend: *spec.Backend, HostName: *spec.HostName, UserName: *spec.UserName, Options: spec.Options}
	f.m[id] = s
	return s, nil
}

func (f *fakeSources) Update(_ context.Context, id string, spec redfish.SourceSpec) (redfish.Source, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.specs = append(f.specs, spec)
	if err := f.err; err != nil {
		f.err = nil
		return redfish.Source{}, err
	}
	return f.m[id], nil
}

func (f *fakeSources) Delete(_ context.Context, id string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.err; err != nil {
		f.err = nil
		return false, err
	}
	delete(f.m, id)
	return true, nil
}

func (f *fakeSources) failNext(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func sourcesEnv(t testing.TB) (*env, *fakeSources) {
	fs := newFakeSources()
	e := newEnvWith(t, testkit.MiniRedis(t), time.Minute, envConfig{nodes: 2, tune: func(o *redfish.Options) { o.Sources = fs }})
	return e, fs
}

const (
	sources = "/redfish/v1/AggregationService/AggregationSources"
	enrolRF = `{"HostName":"https://10.0.0.2","UserName":"root","Password":"calvin",
		"Links":{"ConnectionMethod":{"@odata.id":"/redfish/v1/AggregationService/ConnectionMethods/Redfish"}},
		"Oem":{"Fishgate":{"NodeId":"node2","Policy":"queue","CipherSuite":17}}}`
)

// TestAggregationServiceResources: every resource of the AggregationService
// validates against its DMTF schema, the service root links it, Password
// and IpmiPassword read null, and the per-node view shows the node's
// source only.
func TestAggregationServiceResources(t *testing.T) {
	e, _ := sourcesEnv(t)
	v := testkit.Schemas(t)
	if r := e.do("POST", sources, enrolRF, basic(adminUser, adminPass)); r.Status != http.StatusCreated {
		t.Fatalf("POST: %d %s", r.Status, r.Body)
	}
	root := e.do("GET", "/redfish/v1", "", noAuth()).json(t)
	if l, _ := root["AggregationService"].(map[string]any); l["@odata.id"] != "/redfish/v1/AggregationService" {
		t.Errorf("service root links AggregationService as %v", root["AggregationService"])
	}
	for _, p := range []string{
		"/redfish/v1/AggregationService", sources, sources + "/node1", sources + "/node2",
		"/redfish/v1/AggregationService/ConnectionMethods", "/redfish/v1/AggregationService/ConnectionMethods/Redfish",
		"/redfish/v1/AggregationService/ConnectionMethods/IPMI", "/redfish/v1/AggregationService/ConnectionMethods/AMT",
	} {
		r := e.do("GET", p, "", basic(roUser, roPass)) // reads need Login only
		if r.Status != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, r.Status, r.Body)
			continue
		}
		if err := v.Validate(r.Body); err != nil {
			t.Errorf("GET %s does not validate: %v\n%s", p, err, r.Body)
		}
	}
	src := e.do("GET", sources+"/node2", "", basic(adminUser, adminPass)).json(t)
	oem := src["Oem"].(map[string]any)["Fishgate"].(map[string]any)
	if pw, ok := src["Password"]; !ok || pw != nil {
		t.Errorf("Password is %v, want null", pw)
	}
	if pw, ok := oem["IpmiPassword"]; !ok || pw != nil {
		t.Errorf("IpmiPassword is %v, want null", pw)
	}
	if oem["Policy"] != "queue" || oem["CipherSuite"] != float64(17) {
		t.Errorf("options read back: %v", oem)
	}
	amt := e.do("GET", "/redfish/v1/AggregationService/ConnectionMethods/AMT", "", basic(adminUser, adminPass)).json(t)
	if amt["ConnectionMethodType"] != "OEM" || amt["ConnectionMethodVariant"] != "IntelAMT" {
		t.Errorf("AMT connection method: %v", amt)
	}
	per := e.do("GET", "/bmc/node2/redfish/v1/AggregationService/AggregationSources", "", basic(adminUser, adminPass)).json(t)
	if ms, _ := per["Members"].([]any); len(ms) != 1 || !strings.HasSuffix(ms[0].(map[string]any)["@odata.id"].(string), "/node2") {
		t.Errorf("per-node view of node2 lists sources %v", per["Members"])
	}
}

// TestSourcePrivilegesAndErrors: changes need ConfigureComponents; each
// error of the gateway's Sources is answered with its status and Base
// message.
func TestSourcePrivilegesAndErrors(t *testing.T) {
	e, fs := sourcesEnv(t)
	for _, c := range []struct{ method, path, body string }{
		{"POST", sources, enrolRF}, {"PATCH", sources + "/node1", `{"UserName":"x"}`}, {"DELETE", sources + "/node1", ""},
	} {
		if r := e.do(c.method, c.path, c.body, basic(roUser, roPass)); r.Status != http.StatusForbidden || r.messageID(t) != "Base.1.22.InsufficientPrivilege" {
			t.Errorf("%s %s as ReadOnly: %d %s", c.method, c.path, r.Status, r.Body)
		}
	}
	if len(fs.specs) != 0 {
		t.Fatalf("a refused request reached Sources: %+v", fs.specs)
	}
	for _, c := range []struct {
		name   string
		err    error
		method string
		path   string
		status int
		msg    string
	}{
		{"no key", redfish.ErrNoSecretsKey, "POST", sources, 405, "OperationNotAllowed"},
		{"exists", &redfish.SourceExistsError{NodeID: "node2"}, "POST", sources, 409, "ResourceAlreadyExists"},
		{"missing", &redfish.SourcePropertyError{Property: "HostName", Problem: "required", Kind: redfish.PropertyMissing}, "POST", sources, 400, "PropertyMissing"},
		{"not in list", &redfish.SourcePropertyError{Property: "Oem/Fishgate/Policy", Value: "x", Kind: redfish.PropertyNotInList}, "POST", sources, 400, "PropertyValueNotInList"},
		{"incorrect", &redfish.SourcePropertyError{Property: "Oem/Fishgate/CipherSuite", Value: "999"}, "POST", sources, 400, "PropertyValueIncorrect"},
		{"credentials", &redfish.SourceCredentialsError{HostName: "https://10.0.0.2", Err: errors.New("401")}, "POST", sources, 400, "ResourceAtUriUnauthorized"},
		{"not writable", &redfish.SourcePropertyError{Property: "Oem/Fishgate/Policy", Kind: redfish.PropertyNotWritable}, "PATCH", sources + "/node1", 400, "PropertyNotWritable"},
		{"read-only", redfish.ErrSourceReadOnly, "DELETE", sources + "/node1", 405, "ResourceCannotBeDeleted"},
		{"read-only PATCH", redfish.ErrSourceReadOnly, "PATCH", sources + "/node1", 405, "OperationNotAllowed"},
		{"redis", errors.New("redis: connection refused"), "POST", sources, 503, "ServiceTemporarilyUnavailable"},
	} {
		fs.failNext(c.err)
		body := enrolRF
		if c.method == "PATCH" {
			body = `{"UserName":"x"}`
		}
		if c.method == "DELETE" {
			body = ""
		}
		r := e.do(c.method, c.path, body, basic(adminUser, adminPass))
		if r.Status != c.status || r.messageID(t) != "Base.1.22."+c.msg {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.Status, r.Body, c.status, c.msg)
		}
	}
	// Decoding refusals never reach Sources.
	n := len(fs.specs)
	for _, c := range []struct{ body, msg string }{
		{`{"HostName":"h","Links":{"ConnectionMethod":{"@odata.id":"/redfish/v1/AggregationService/ConnectionMethods/SNMP"}}}`, "PropertyValueNotInList"},
		{`{"HostName":"h","Colour":1}`, "PropertyUnknown"},
		{`{"HostName":5}`, "PropertyValueTypeError"},
		{`{"Oem":{"Fishgate":{"Turbo":true}}}`, "PropertyUnknown"},
	} {
		r := e.do("POST", sources, c.body, basic(adminUser, adminPass))
		if r.Status != http.StatusBadRequest || r.messageID(t) != "Base.1.22."+c.msg {
			t.Errorf("POST %s: %d %s, want 400 %s", c.body, r.Status, r.Body, c.msg)
		}
	}
	if len(fs.specs) != n {
		t.Errorf("a malformed body reached Sources")
	}
	// A PATCH with a stale ETag is refused before Sources sees it.
	if r := e.do("PATCH", sources+"/node1", `{"UserName":"x"}`, basic(adminUser, adminPass), header("If-Match", `W/"stale"`)); r.Status != http.StatusPreconditionFailed {
		t.Errorf("PATCH with a stale If-Match: %d %s", r.Status, r.Body)
	}
}

// FuzzSourceBodies throws arbitrary bodies at the AggregationSources POST
// and PATCH: a 2xx, or a 4xx with a Base registry error; never a panic or
// a 5xx; and what reaches Sources has every field it needs typed.
func FuzzSourceBodies(f *testing.F) {
	for _, s := range []string{
		enrolRF, `{"HostName":null}`, `{"Links":{"ConnectionMethod":null}}`, `{"Links":{"ConnectionMethod":{"@odata.id":5}}}`,
		`{"Oem":{"Fishgate":{"CipherSuite":"17"}}}`, `{"Oem":{"Fishgate":null}}`, `{"Oem":[]}`, `{"Password":""}`, ``, `{`, `null`,
	} {
		f.Add(false, s)
		f.Add(true, s)
	}
	e, _ := sourcesEnv(f)
	handler := e.srv.Config.Handler
	f.Fuzz(func(t *testing.T, patch bool, body string) {
		method, path := "POST", sources
		if patch {
			method, path = "PATCH", sources+"/node1"
		}
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(adminUser, adminPass)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req) // a panic is recovered and answered 503, which fails below
		requireFuzzAnswer(t, method+" "+path, body, rec)
	})
}
