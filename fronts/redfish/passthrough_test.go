package redfish_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fishgate/fishgate/fronts/redfish"
	"github.com/fishgate/fishgate/fronts/redfish/proxy"
	"github.com/fishgate/fishgate/internal/testkit"
)

const (
	ptOpUser = "operator"
	ptOpPass = "operator-pass-1"
)

// recordingBMC is a BMC that answers every request 200 {} and records it.
type recordingBMC struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string // "METHOD escaped-path"
}

func newRecordingBMC(t *testing.T) *recordingBMC {
	b := &recordingBMC{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.seen = append(b.seen, r.Method+" "+r.URL.EscapedPath())
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"@odata.id":%q}`, r.URL.Path)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *recordingBMC) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.seen)
}

// passThroughEnv is node1 with a real pass-through proxy in front of a
// recording BMC, and an Operator besides the Administrator and ReadOnly
// accounts.
func passThroughEnv(t *testing.T) (*env, *recordingBMC) {
	t.Helper()
	bmc := newRecordingBMC(t)
	p, err := proxy.New(proxy.Target{
		Node: "node1", Endpoint: bmc.srv.URL, User: "root", Password: "calvin",
		SystemPath: "/redfish/v1/Systems/1", ManagerPath: "/redfish/v1/Managers/1", ChassisPath: "/redfish/v1/Chassis/1",
		Timeout: 10 * time.Second,
	}, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	e := newEnvWith(t, testkit.MiniRedis(t), time.Minute, envConfig{
		nodes:    1,
		accounts: []redfish.Account{{User: ptOpUser, Password: ptOpPass, Role: redfish.RoleOperator}},
		passthrough: func(ctx context.Context, node string) (http.Handler, error) {
			if node == "node1" {
				return p, nil
			}
			return nil, nil
		},
	})
	return e, bmc
}

// TestPassThroughPrivilegesThroughTheRouter: the router hands the proxy
// who asks, and the proxy applies the privilege registry: an Operator
// changes a System's BIOS through the pass-through, not the BMC itself; a
// ReadOnly account reads (issue 10, items 2 and 6).
func TestPassThroughPrivilegesThroughTheRouter(t *testing.T) {
	e, bmc := passThroughEnv(t)
	admin, op, ro := basic(adminUser, adminPass), basic(ptOpUser, ptOpPass), basic(roUser, roPass)
	for _, base := range []string{"", "/bmc/node1"} {
		sys, mgr := base+"/redfish/v1/Systems/node1", base+"/redfish/v1/Managers/node1"
		for _, c := range []struct {
			who          string
			as           auth
			method, path string
			status       int
			messageID    string // of a refusal
		}{
			{"operator", op, "POST", mgr + "/Actions/Manager.ResetToDefaults", http.StatusForbidden, "InsufficientPrivilege"},
			{"operator", op, "POST", mgr + "/Actions/Manager.Reset", http.StatusForbidden, "InsufficientPrivilege"},
			{"operator", op, "PATCH", mgr + "/NetworkProtocol", http.StatusForbidden, "InsufficientPrivilege"},
			{"operator", op, "POST", mgr + "/VirtualMedia/CD/Actions/VirtualMedia.InsertMedia", http.StatusForbidden, "InsufficientPrivilege"},
			{"operator", op, "PATCH", sys + "/Bios/Settings", http.StatusOK, ""},
			{"operator", op, "GET", mgr + "/NetworkProtocol", http.StatusOK, ""},
			{"readonly", ro, "PATCH", sys + "/Bios/Settings", http.StatusForbidden, "InsufficientPrivilege"},
			{"readonly", ro, "GET", sys + "/Bios", http.StatusOK, ""},
			{"admin", admin, "POST", mgr + "/Actions/Manager.Reset", http.StatusOK, ""},
			{"admin", admin, "PATCH", mgr + "/NetworkProtocol", http.StatusOK, ""},
			// Power and boot never bypass the serializer, whoever asks.
			{"admin", admin, "POST", sys + "/Actions/ComputerSystem.Reset;x=1", http.StatusBadRequest, "InvalidURI"},
			{"admin", admin, "POST", sys + "/Actions/ComputerSystem.Reset%3Bx", http.StatusBadRequest, "InvalidURI"},
			{"admin", admin, "POST", sys + "/Actions/ComputerSystem.Reset.", http.StatusBadRequest, "InvalidURI"},
			{"admin", admin, "POST", sys + "/Actions/ComputerSystem.Reset%20", http.StatusBadRequest, "InvalidURI"},
			{"admin", admin, "POST", sys + "/actions/computersystem.reset", http.StatusBadRequest, "ActionNotSupported"},
			{"admin", admin, "POST", sys + "/Actions/ComputerSystem%2EReset", http.StatusBadRequest, "ActionNotSupported"},
			{"operator", op, "POST", sys + "/Actions/ComputerSystem.SetDefaultBootOrder", http.StatusBadRequest, "ActionNotSupported"},
			{"admin", admin, "POST", base + "/redfish/v1/Chassis/node1/Actions/Chassis.Reset", http.StatusBadRequest, "ActionNotSupported"},
			{"admin", admin, "PATCH", sys + "/Settings", http.StatusMethodNotAllowed, "OperationNotAllowed"},
		} {
			before := bmc.count()
			body := ""
			if c.method != "GET" {
				body = `{"ResetType":"ForceOff"}`
			}
			r := e.do(c.method, c.path, body, c.as)
			if r.Status != c.status {
				t.Errorf("%s %s as %s: %d %s, want %d", c.method, c.path, c.who, r.Status, r.Body, c.status)
				continue
			}
			forwarded := bmc.count() != before
			if forwarded != (c.messageID == "") {
				t.Errorf("%s %s as %s: forwarded %v", c.method, c.path, c.who, forwarded)
			}
			if c.messageID != "" {
				if id := r.messageID(t); id != "Base.1.22."+c.messageID {
					t.Errorf("%s %s as %s: MessageId %s, want %s", c.method, c.path, c.who, id, c.messageID)
				}
			}
		}
	}
	// A body over max_body_bytes never reaches the BMC.
	before := bmc.count()
	big := `{"Pad":"` + strings.Repeat("x", 64<<10) + `"}`
	if r := e.do("PATCH", "/redfish/v1/Systems/node1/Bios/Settings", big, op); r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over max_body_bytes: %d %s", r.Status, r.Body)
	} else if id := r.messageID(t); id != "Base.1.22.PayloadTooLarge" {
		t.Errorf("a body over max_body_bytes: MessageId %s", id)
	}
	if bmc.count() != before {
		t.Error("a body over max_body_bytes reached the BMC")
	}
	// The gateway's own Reset is still the gateway's.
	if r := e.do("POST", "/redfish/v1/Systems/node1/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`, op); r.Status != http.StatusAccepted {
		t.Errorf("the gateway's Reset: %d %s", r.Status, r.Body)
	}
}

// TestPassThroughWritesAudited: a write passed through to a BMC is in the
// gateway's Audit log with who, from where, what and the answer; reads
// are not.
func TestPassThroughWritesAudited(t *testing.T) {
	e, _ := passThroughEnv(t)
	if r := e.do("GET", "/redfish/v1/Managers/node1/NetworkProtocol", ""); r.Status != http.StatusOK {
		t.Fatalf("GET: %d %s", r.Status, r.Body)
	}
	if r := e.do("PATCH", "/redfish/v1/Managers/node1/NetworkProtocol", `{"HTTPS":{"Port":443}}`); r.Status != http.StatusOK {
		t.Fatalf("PATCH: %d %s", r.Status, r.Body)
	}
	// the record is written once the BMC's answer was passed on: the
	// client may read the log a moment before
	var writes []string
	for deadline := time.Now().Add(5 * time.Second); len(writes) == 0 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		writes = nil
		log := e.do("GET", "/redfish/v1/Managers/fishgate/LogServices/Audit/Entries", "").json(t)
		for _, m := range log["Members"].([]any) {
			if msg := m.(map[string]any)["Message"].(string); strings.HasPrefix(msg, "passthrough-write") {
				writes = append(writes, msg)
			}
		}
	}
	want := "passthrough-write by " + adminUser + " from 127.0.0.1 (Redfish): 200 on PATCH /redfish/v1/Managers/node1/NetworkProtocol"
	if len(writes) != 1 || writes[0] != want {
		t.Fatalf("audited pass-through writes %q, want exactly %q", writes, want)
	}
}
