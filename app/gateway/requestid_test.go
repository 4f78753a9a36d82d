package gateway_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/internal/testkit"
)

// TestRequestIDFollowsAReset follows one X-Request-Id from a client's Reset
// through the gateway: it comes back on the answer, every log record of
// the request and of the action it started carries it (the access log
// line with the route template, status and user among them), the Task
// shows it in Oem.Fishgate.RequestId, and the simulated Redfish BMC
// received it with the power command.
func TestRequestIDFollowsAReset(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	logs := &testkit.SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sn := simulatedNode01(t)
	cfg, err := config.Parse([]byte(`
listen: 127.0.0.1:0
redis_url: redis://` + rdb.Options().Addr + `
tls: {disabled: true}
accounts: [{user: ` + user + `, password: ` + pass + `}]
nodes: [{id: node01, backend: redfish, address: "` + sn.URL() + `", user: bmc, password: bmc-pw}]
`))
	if err != nil {
		t.Fatal(err)
	}
	g := serve(t, cfg, log)
	const rid = "ironic-req-7f3a.b2"

	var resp *http.Response
	var body []byte
	// The first answers may be 503 until the node's BMC was read.
	testkit.WaitFor(t, 20*time.Second, "the Reset admitted", func() (bool, string) {
		resp = request(t, http.MethodPost, g.URL()+"/redfish/v1/Systems/node01/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`, "X-Request-Id", rid)
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusAccepted, resp.Status + " " + string(body)
	})
	if got := resp.Header.Get("X-Request-Id"); got != rid {
		t.Errorf("answer's X-Request-Id %q, want %q", got, rid)
	}
	var task struct {
		ID  string `json:"Id"`
		Oem struct {
			Fishgate struct{ RequestId string }
		}
	}
	if err := json.Unmarshal(body, &task); err != nil {
		t.Fatal(err)
	}
	if task.Oem.Fishgate.RequestId != rid {
		t.Errorf("Task Oem.Fishgate.RequestId %q, want %q: %s", task.Oem.Fishgate.RequestId, rid, body)
	}

	// The BMC received it with the command.
	testkit.WaitFor(t, 20*time.Second, "the On command at the BMC", func() (bool, string) {
		for _, c := range sn.Machine().Status().Commands {
			if c.Action == "On" {
				if c.RequestID != rid {
					t.Fatalf("the BMC's On came with request id %q, want %q", c.RequestID, rid)
				}
				return true, ""
			}
		}
		return false, "no On yet"
	})

	// The task, read by another request, still names the first.
	resp = request(t, http.MethodGet, g.URL()+"/redfish/v1/TaskService/Tasks/"+task.ID, "")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"RequestId":"`+rid+`"`) {
		t.Errorf("GET of the task does not show RequestId %q: %s", rid, body)
	}
	if other := resp.Header.Get("X-Request-Id"); other == "" || other == rid {
		t.Errorf("the GET was answered with request id %q, want a new one", other)
	}

	// The logs: the access line of the Reset, the admission, and the
	// worker's end of the task all carry the id.
	want := map[string]bool{"http request": false, "reset admitted": false, "task finished": false}
	testkit.WaitFor(t, 20*time.Second, "the task's end in the log", func() (bool, string) {
		return strings.Contains(logs.String(), `"task finished"`), ""
	})
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["request_id"] != rid {
			continue
		}
		msg, _ := rec["msg"].(string)
		if _, ok := want[msg]; ok {
			want[msg] = true
		}
		if msg == "http request" && rec["status"] == float64(http.StatusAccepted) {
			if rec["route"] != "/redfish/v1/Systems/:id/Actions/ComputerSystem.Reset" || rec["method"] != "POST" ||
				rec["user"] != user || rec["remote"] != "127.0.0.1" || rec["duration"] == nil {
				t.Errorf("access log line: %s", line)
			}
		}
	}
	for msg, seen := range want {
		if !seen {
			t.Errorf("no %q record with request_id %s:\n%s", msg, rid, logs.String())
		}
	}
}

// TestRequestIDIsCheckedOrMade: a request without X-Request-Id, or with
// one that is too long or not printable, gets a new id; probes get one
// too; the access log shows the route template, never the query string.
func TestRequestIDIsCheckedOrMade(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	logs := &testkit.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	cfg, err := config.Parse([]byte(`
listen: 127.0.0.1:0
redis_url: redis://` + rdb.Options().Addr + `
tls: {disabled: true}
accounts: [{user: ` + user + `, password: ` + pass + `}]
`))
	if err != nil {
		t.Fatal(err)
	}
	g := serve(t, cfg, log)
	made := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, given := range []string{"", strings.Repeat("a", 129), "two words", "tab\there", "é"} {
		resp := request(t, http.MethodGet, g.URL()+"/redfish/v1/Systems?token=s3cr3t", "", "X-Request-Id", given)
		resp.Body.Close()
		if got := resp.Header.Get("X-Request-Id"); !made.MatchString(got) {
			t.Errorf("X-Request-Id %q answered %q, want a new id", given, got)
		}
	}
	ok := strings.Repeat("b", 128)
	resp := request(t, http.MethodGet, g.URL()+"/healthz", "", "X-Request-Id", ok)
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != ok {
		t.Errorf("/healthz answered X-Request-Id %q, want the one given", got)
	}
	if strings.Contains(logs.String(), "s3cr3t") {
		t.Errorf("a query string reached the log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "route=/redfish/v1/Systems status=200") {
		t.Errorf("no access line for GET /redfish/v1/Systems:\n%s", logs.String())
	}
}
