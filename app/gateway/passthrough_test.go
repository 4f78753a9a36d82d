package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/schemas"
)

// idleBackend is a BMC that is off and does what it is told: enough for
// the serializer. It offers no pass-through.
type idleBackend struct{}

func (idleBackend) PowerState(context.Context) (schemas.PowerState, error) {
	return schemas.PowerOff, nil
}
func (idleBackend) Reset(context.Context, schemas.ResetType) error { return nil }
func (idleBackend) Boot(context.Context) (schemas.BootOverride, error) {
	return schemas.BootOverride{}, nil
}
func (idleBackend) SetBoot(context.Context, schemas.BootOverride) error { return nil }
func (idleBackend) Capabilities(context.Context) (backends.Capabilities, error) {
	return backends.Capabilities{ResetTypes: []schemas.ResetType{schemas.ResetOn, schemas.ResetForceOff}}, nil
}
func (idleBackend) Close() error { return nil }

// redfishSpeaking is a backend of another type than backends/redfish that
// offers pass-through (backends.PassThrough) to target.
type redfishSpeaking struct {
	idleBackend
	target backends.RedfishTarget
	asked  atomic.Int32 // PassThroughTarget calls
}

func (b *redfishSpeaking) PassThroughTarget(context.Context) (backends.RedfishTarget, error) {
	b.asked.Add(1)
	return b.target, nil
}

// TestPassThroughByInterface: the gateway forwards a node's other Redfish
// resources to its BMC whatever the type of its backend, as long as the
// backend offers backends.PassThrough, with the BMC account and paths the
// backend gives; a node whose backend does not offer it answers 404
// ResourceMissingAtURI and nothing reaches a BMC (issue 11, item 6).
func TestPassThroughByInterface(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string // "path user:password" of each request the BMC got
	)
	bmc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		mu.Lock()
		seen = append(seen, r.URL.Path+" "+user+":"+pass)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"@odata.id":%q}`, r.URL.Path)
	}))
	t.Cleanup(bmc.Close)
	rf := &redfishSpeaking{target: backends.RedfishTarget{
		Endpoint: bmc.URL, User: "bmc-user", Password: "bmc-pass",
		SystemPath: "/redfish/v1/Systems/7", ManagerPath: "/redfish/v1/Managers/BMC", ChassisPath: "/redfish/v1/Chassis/7",
	}}
	newBackend := func(n config.Node, _ *slog.Logger) (backends.Backend, error) {
		if n.ID == "rf" {
			return rf, nil
		}
		return idleBackend{}, nil
	}
	g, stop := runTestGatewayWith(t, func(c *config.Config) {
		c.Nodes = []config.Node{
			// Addresses nothing listens on: the backends are the test's.
			{ID: "rf", Backend: "redfish", Address: "http://127.0.0.1:1", User: "u"},
			{ID: "plain", Backend: "amt", Address: "http://127.0.0.1:1", User: "u"},
		}
	}, newBackend)
	t.Cleanup(stop)
	hc := testClient()

	for _, path := range []string{"/redfish/v1/Systems/rf/Bios", "/redfish/v1/Managers/rf/NetworkProtocol"} {
		st, body := getBody(t, hc, g, path)
		var got struct {
			ID string `json:"@odata.id"`
		}
		if st != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || got.ID != path {
			t.Errorf("GET %s: %d %s; want 200 from the BMC with its link rewritten to %s", path, st, body, path)
		}
	}
	mu.Lock()
	want := []string{"/redfish/v1/Systems/7/Bios bmc-user:bmc-pass", "/redfish/v1/Managers/BMC/NetworkProtocol bmc-user:bmc-pass"}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("the BMC got:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
	seen = nil
	mu.Unlock()
	if n := rf.asked.Load(); n != 1 {
		t.Errorf("the backend was asked for its pass-through target %d times, want once", n)
	}

	st, body := getBody(t, hc, g, "/redfish/v1/Systems/plain/Bios")
	if st != http.StatusNotFound || !strings.Contains(body, "ResourceMissingAtURI") {
		t.Errorf("GET of a node without pass-through: %d %s; want 404 ResourceMissingAtURI", st, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 0 {
		t.Errorf("a request for a node without pass-through reached a BMC: %q", seen)
	}
}
