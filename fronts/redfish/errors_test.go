package redfish_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	rfbackend "github.com/fishgate/fishgate/backends/redfish"
	"github.com/fishgate/fishgate/fronts/redfish"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/serializer"
)

// TestServerErrorsHideAddresses: a 5xx body does not show the BMC's (or
// Redis's) address; the log has the full error under the reference the
// body gives.
func TestServerErrorsHideAddresses(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	dead, err := rfbackend.New(rfbackend.Config{Endpoint: "http://" + closedAddr(t), User: "admin", Password: "password", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, testkit.MiniRedis(t), time.Minute, envConfig{
		extra: []serializer.Node{{ID: "dead", Backend: dead, Kind: "redfish"}},
		tune:  func(o *redfish.Options) { o.Logger = slog.New(slog.NewTextHandler(logs, nil)) },
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if v, _ := e.nodes.View("dead"); strings.Contains(v.LastError, "connection refused") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dead node's BMC was not tried within 10 s")
		}
	}
	r := e.do("POST", "/redfish/v1/Systems/dead/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`)
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("Reset of an unreachable node: %d %s", r.Status, r.Body)
	}
	body := string(r.Body)
	if strings.Contains(body, "127.0.0.1") || strings.Contains(body, "http://") || !strings.Contains(body, "connection refused") {
		t.Errorf("error body shows the BMC's address or lost the problem: %s", body)
	}
	i := strings.Index(body, "(reference ")
	if i < 0 {
		t.Fatalf("no reference in %s", body)
	}
	ref := strings.Fields(body[i+len("(reference "):])[0]
	ref = strings.TrimSuffix(ref, ":")
	if !strings.Contains(logs.String(), "ref="+ref) || !strings.Contains(logs.String(), "127.0.0.1") {
		t.Errorf("log lacks reference %s with the full error:\n%s", ref, logs.String())
	}
}
