package proxy

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// logBuffer is a slog JSON output that tests can read while servers write.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// records returns the log records with message msg.
func (l *logBuffer) records(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestWritesAudited: every pass-through write is logged at INFO with its
// method, path, user, the client's address and its status, whether it
// was forwarded or refused; reads are not (issue 10, item 7).
func TestWritesAudited(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(t, false)
	logs := &logBuffer{}
	p, err := New(Target{
		Node: "n17", Endpoint: bmc.URL(), User: bmcUser, Password: bmcPassword,
		SystemPath: "/redfish/v1/Systems/1", ManagerPath: "/redfish/v1/Managers/BMC", ChassisPath: "/redfish/v1/Chassis/1",
	}, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(withTestCaller(p))
	t.Cleanup(func() { srv.Close(); p.Close() })
	g := &gateway{p: p, srv: srv, bmc: bmc}

	type want struct {
		method, path, role string
		status             int
	}
	writes := []want{
		{"PATCH", "/redfish/v1/Systems/n17/Bios/Settings", "Operator", http.StatusAccepted},
		{"POST", "/redfish/v1/Systems/n17/Actions/ComputerSystem.Reset", "Administrator", http.StatusBadRequest},
		{"POST", "/redfish/v1/Systems/n17/Actions/ComputerSystem.Reset;x=1", "Administrator", http.StatusBadRequest},
		{"POST", "/redfish/v1/Managers/n17/Actions/Manager.Reset", "Operator", http.StatusForbidden},
		{"DELETE", "/redfish/v1/Managers/n17/Jobs/JID_1", "Administrator", http.StatusNotFound}, // the BMC's 404
	}
	// The read goes first: had it been audited, its record would be in
	// by the time the writes sent after it are (no wait for an absence).
	g.do(t, "GET", "/redfish/v1/Systems/n17/Bios", "")
	for _, w := range writes {
		r := g.do(t, w.method, w.path, map[bool]string{true: "", false: `{}`}[w.method == "DELETE"], roleHeader, w.role)
		wantEq(t, w.method+" "+w.path+" status", r.status, w.status)
	}

	var recs []map[string]any
	waitUntil(t, "every write audited", func() bool { recs = logs.records("pass-through write"); return len(recs) >= len(writes) })
	if recs = logs.records("pass-through write"); len(recs) != len(writes) {
		t.Fatalf("%d audit records for %d writes (and a read): %v", len(recs), len(writes), recs)
	}
	for _, w := range writes {
		found := false
		for _, rec := range recs {
			if rec["method"] == w.method && rec["path"] == w.path {
				found = true
				wantEq(t, w.path+" level", rec["level"], "INFO")
				wantEq(t, w.path+" user", rec["user"], gwUser)
				wantEq(t, w.path+" remote", rec["remote"], "127.0.0.1")
				wantEq(t, w.path+" status", rec["status"], float64(w.status))
				wantEq(t, w.path+" node", rec["node"], "n17")
			}
		}
		if !found {
			t.Errorf("no audit record of %s %s in %v", w.method, w.path, recs)
		}
	}

	// The router's idea of the client's address wins over the socket's.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("PATCH", "/redfish/v1/Systems/n17/Bios/Settings", strings.NewReader(`{}`))
	req.Header.Set("X-Forwarded-For", "203.0.113.9") // a header the client set: never taken
	p.ServeHTTP(rec, req.WithContext(WithCaller(req.Context(), Caller{User: "u2", Remote: "198.51.100.7", Privileges: RolePrivileges("Operator")})))
	waitUntil(t, "the last write audited", func() bool { return len(logs.records("pass-through write")) == len(writes)+1 })
	last := logs.records("pass-through write")[len(writes)]
	wantEq(t, "remote from the Caller", last["remote"], "198.51.100.7")
	wantEq(t, "user from the Caller", last["user"], "u2")
}
