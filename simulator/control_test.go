package simulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// ctl sends one request to the control API and decodes the JSON answer
// into out (if not nil).
func ctl(t *testing.T, h http.Handler, method, path, body string, out any) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, rd))
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q, body %s", method, path, ct, w.Body)
	}
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, w.Body)
		}
	}
	return w
}

func expectStatus(t *testing.T, w *httptest.ResponseRecorder, want int) {
	t.Helper()
	if w.Code != want {
		t.Fatalf("status %d, want %d; body %s", w.Code, want, w.Body)
	}
}

func TestControlAPI(t *testing.T) {
	f, n1 := startNode(t, NodeSpec{ID: "node02"})
	n2, err := f.Add(NodeSpec{ID: "node01", Machine: MachineConfig{InitialPower: "On"}})
	if err != nil {
		t.Fatal(err)
	}
	h := f.ControlHandler()

	var all []NodeView
	expectStatus(t, ctl(t, h, "GET", "/nodes", "", &all), http.StatusOK)
	if len(all) != 2 || all[0].ID != "node01" || all[1].ID != "node02" ||
		all[0].PowerState != "On" || all[1].PowerState != "Off" ||
		all[0].RedfishURL != n2.URL() || all[1].SystemPath != "/redfish/v1/Systems/1" {
		t.Errorf("GET /nodes: %+v", all)
	}

	// GET /nodes/{id} is the node's Status plus where to reach it.
	var raw map[string]any
	expectStatus(t, ctl(t, h, "GET", "/nodes/node02", "", &raw), http.StatusOK)
	for _, k := range []string{"Id", "PowerState", "Boot", "Commands", "CommandCount", "InFlight", "MaxInFlight",
		"PowerOnCount", "PowerOffCount", "Faults", "RedfishURL"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("GET /nodes/node02 lacks %s", k)
		}
	}
	if raw["RedfishURL"] != n1.URL() {
		t.Errorf("RedfishURL %v, want %s", raw["RedfishURL"], n1.URL())
	}

	// Faults: durations as strings or nanoseconds; the machine applies them.
	var v NodeView
	expectStatus(t, ctl(t, h, "PUT", "/nodes/node02/faults", `{"FailFirst":1,"Hang":"20ms","RefuseOnWithin":5000000000}`, &v), http.StatusOK)
	want := Faults{FailFirst: 1, Hang: 20 * time.Millisecond, RefuseOnWithin: 5 * time.Second}
	if v.Faults != want || n1.Machine().Status().Faults != want {
		t.Errorf("faults %+v / machine %+v, want %+v", v.Faults, n1.Machine().Status().Faults, want)
	}
	c := newClient(t, n1).basic()
	c.do("POST", n1.SystemPath()+"/Actions/ComputerSystem.Reset", map[string]string{"ResetType": "On"}).
		expect(t, http.StatusInternalServerError)
	expectStatus(t, ctl(t, h, "GET", "/nodes/node02", "", &v), http.StatusOK)
	if v.Faults.FailFirst != 0 || v.CommandCount != 1 || v.Commands[0].Result != "failed: simulated failure (0 left)" {
		t.Errorf("after the injected failure: %+v", v)
	}
	// PUT replaces all faults.
	expectStatus(t, ctl(t, h, "PUT", "/nodes/node02/faults", `{"Ignore":true}`, &v), http.StatusOK)
	if v.Faults != (Faults{Ignore: true}) {
		t.Errorf("faults after PUT {Ignore}: %+v", v.Faults)
	}

	// Latency: how long the BMC takes to answer power commands from now on.
	expectStatus(t, ctl(t, h, "PUT", "/nodes/node02/latency", `{"CommandLatency":"250ms"}`, &v), http.StatusOK)
	if v.CommandLatency != 250*time.Millisecond || n1.Machine().Status().CommandLatency != 250*time.Millisecond {
		t.Errorf("latency %v / machine %v, want 250ms", v.CommandLatency, n1.Machine().Status().CommandLatency)
	}
	expectStatus(t, ctl(t, h, "PUT", "/nodes/node02/latency", `{"CommandLatency":0}`, &v), http.StatusOK)
	if v.CommandLatency != 0 {
		t.Errorf("latency %v after PUT 0", v.CommandLatency)
	}

	// Power: a setup jump, not a command.
	expectStatus(t, ctl(t, h, "PUT", "/nodes/node02/power", `{"PowerState":"On"}`, &v), http.StatusOK)
	if v.PowerState != "On" || n1.Machine().PowerState() != "On" || v.CommandCount != 1 || v.PowerOnCount != 0 {
		t.Errorf("after PUT power On: %+v", v)
	}
}

func TestControlAPIErrors(t *testing.T) {
	f, n := startNode(t, NodeSpec{ID: "node01"})
	h := f.ControlHandler()
	for _, tc := range []struct {
		method, path, body string
		status             int
		mentions           string
	}{
		{"GET", "/nodes/node99", "", http.StatusNotFound, "node99"},
		{"PUT", "/nodes/node99/faults", `{}`, http.StatusNotFound, "node99"},
		{"PUT", "/nodes/node99/power", `{"PowerState":"On"}`, http.StatusNotFound, "node99"},
		{"GET", "/nothing", "", http.StatusNotFound, "/nothing"},
		{"GET", "/nodes/node01/extra/deep", "", http.StatusNotFound, ""},
		{"DELETE", "/nodes/node01", "", http.StatusMethodNotAllowed, "GET"},
		{"POST", "/nodes", "", http.StatusMethodNotAllowed, "GET"},
		{"GET", "/nodes/node01/faults", "", http.StatusMethodNotAllowed, "PUT"},
		{"PUT", "/nodes/node01/faults", `{"FailFirst":`, http.StatusBadRequest, ""},
		{"PUT", "/nodes/node01/faults", `{"FailFrist":1}`, http.StatusBadRequest, "FailFrist"},
		{"PUT", "/nodes/node01/faults", `{"FailFirst":-1}`, http.StatusBadRequest, "negative"},
		{"PUT", "/nodes/node01/faults", `{"Hang":"-1s"}`, http.StatusBadRequest, "negative"},
		{"PUT", "/nodes/node01/faults", `{"Hang":"forever"}`, http.StatusBadRequest, ""},
		{"PUT", "/nodes/node01/faults", `{"Ignore":"yes"}`, http.StatusBadRequest, ""},
		{"PUT", "/nodes/node01/faults", `{} {}`, http.StatusBadRequest, "trailing"},
		{"PUT", "/nodes/node01/faults", ``, http.StatusBadRequest, ""},
		{"PUT", "/nodes/node01/faults", `[1,2]`, http.StatusBadRequest, ""},
		{"PUT", "/nodes/node01/power", `{"PowerState":"PoweringOn"}`, http.StatusBadRequest, "PowerState"},
		{"PUT", "/nodes/node01/power", `{}`, http.StatusBadRequest, "PowerState"},
		{"PUT", "/nodes/node01/power", `{"PowerState":"On","Now":true}`, http.StatusBadRequest, "Now"},
		{"PUT", "/nodes/node01/power", `"On"`, http.StatusBadRequest, ""},
		{"PUT", "/nodes/node99/latency", `{"CommandLatency":"1s"}`, http.StatusNotFound, "node99"},
		{"GET", "/nodes/node01/latency", "", http.StatusMethodNotAllowed, "PUT"},
		{"PUT", "/nodes/node01/latency", `{}`, http.StatusBadRequest, "CommandLatency"},
		{"PUT", "/nodes/node01/latency", `{"CommandLatency":"-1s"}`, http.StatusBadRequest, "negative"},
		{"PUT", "/nodes/node01/latency", `{"CommandLatency":"soon"}`, http.StatusBadRequest, ""},
		{"PUT", "/nodes/node01/latency", `{"Latency":"1s"}`, http.StatusBadRequest, "Latency"},
	} {
		var body map[string]string
		w := ctl(t, h, tc.method, tc.path, tc.body, &body)
		if w.Code != tc.status || body["error"] == "" || !strings.Contains(body["error"], tc.mentions) {
			t.Errorf("%s %s %s: %d %s; want %d mentioning %q", tc.method, tc.path, tc.body, w.Code, w.Body, tc.status, tc.mentions)
		}
	}
	if st := n.Machine().Status(); st.Faults != (Faults{}) || st.PowerState != PowerOff || st.CommandLatency != 0 {
		t.Errorf("bad requests changed the node: %+v", st)
	}
}

// FuzzControlAPI: no body or path makes the control API panic or answer
// anything but JSON with a known status.
func FuzzControlAPI(f *testing.F) {
	for _, seed := range []struct{ method, path, body string }{
		{"PUT", "/nodes/n1/faults", `{"FailFirst":2,"Hang":"1s"}`},
		{"PUT", "/nodes/n1/faults", `{"RefuseOnWithin":1e99}`},
		{"PUT", "/nodes/n1/power", `{"PowerState":null}`},
		{"GET", "/nodes/n1", ""},
		{"GET", "/nodes/%2e%2e", ""},
		{"PUT", "/nodes/n1/faults", "null"},
		{"PUT", "/nodes/n1/latency", `{"CommandLatency":"1ms"}`},
	} {
		f.Add(seed.method, seed.path, seed.body)
	}
	fleet := NewFleet(nil)
	if _, err := fleet.Add(NodeSpec{ID: "n1"}); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = fleet.Close() })
	h := fleet.ControlHandler()
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t#?") ||
			(method != "GET" && method != "PUT" && method != "POST" && method != "DELETE") {
			t.Skip()
		}
		req, err := http.NewRequest(method, "http://bmcsim.test"+path, strings.NewReader(body))
		if err != nil {
			t.Skip()
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed,
			http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		default:
			t.Fatalf("%s %s %q: status %d", method, path, body, w.Code)
		}
		if w.Code < 300 || w.Code >= 400 {
			if !json.Valid(w.Body.Bytes()) {
				t.Fatalf("%s %s %q: body not JSON: %s", method, path, body, w.Body)
			}
		}
	})
}
