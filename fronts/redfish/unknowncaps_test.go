package redfish_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	rfbackend "github.com/fishgate/fishgate/backends/redfish"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/serializer"
)

// closedAddr is a loopback address nothing listens on, for the whole
// test: the port is held on 127.0.0.1 (so no test running beside can
// bind it, not even on every address) and the address is 127.0.0.2.
func closedAddr(t *testing.T) string {
	t.Helper()
	return testkit.RefusedAddr(t)
}

// deadEnv is node1 (simulated) and "dead", a Redfish node whose BMC cannot
// be reached, so the gateway never learns what it supports. The
// pass-through of dead discovers its BMC's paths as the gateway does (and
// fails); node1's pass-through fails as a BMC that answered badly would.
func deadEnv(t *testing.T) *env {
	t.Helper()
	dead, err := rfbackend.New(rfbackend.Config{Endpoint: "http://" + closedAddr(t), User: "admin", Password: "password", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, testkit.MiniRedis(t), time.Minute, envConfig{
		nodes: 1,
		extra: []serializer.Node{{ID: "dead", Backend: dead, Kind: "redfish"}},
		passthrough: func(ctx context.Context, node string) (http.Handler, error) {
			if node == "dead" {
				_, err := dead.ResourcePaths(ctx)
				return nil, fmt.Errorf("discover BMC resources: %w", err)
			}
			return nil, errors.New("discover BMC resources: redfish: read /redfish/v1/Systems/1: 500 Internal Server Error")
		},
	})
	// The first sweep has tried the BMC and says why it failed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := e.nodes.View("dead")
		if err != nil {
			t.Fatal(err)
		}
		if v.CapsKnown {
			t.Fatal("dead node: capabilities known")
		}
		if strings.Contains(v.LastError, "connection refused") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead node: LastError %q after 10 s", v.LastError)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e
}

// wantUnavailable checks a 503 ServiceTemporarilyUnavailable with
// Retry-After whose messages (top-level and the MessageId's) name problem.
func wantUnavailable(t *testing.T, what string, r response, problem string) {
	t.Helper()
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("%s: status %d, want 503: %s", what, r.Status, r.Body)
	}
	if id := r.messageID(t); id != "Base.1.22.ServiceTemporarilyUnavailable" {
		t.Errorf("%s: MessageId %s", what, id)
	}
	if ra := r.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("%s: Retry-After %q", what, ra)
	}
	var body struct {
		Error struct {
			Message string `json:"message"`
			Info    []struct {
				Message string `json:"Message"`
			} `json:"@Message.ExtendedInfo"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body.Error.Message, problem) || !strings.Contains(body.Error.Info[0].Message, problem) {
		t.Errorf("%s: messages %q / %q do not name the problem %q", what, body.Error.Message, body.Error.Info[0].Message, problem)
	}
}

// TestUnknownCapabilitiesAnswer503: a node whose BMC has not been read
// answers Reset and Boot PATCH with 503 naming the BMC's problem, never a
// 400 that blames the client; the pass-through of an unreachable BMC is a
// 503 too, and one whose BMC answered badly a 502 with its error text.
func TestUnknownCapabilitiesAnswer503(t *testing.T) {
	e := deadEnv(t)
	const problem = "connection refused"
	for _, base := range []string{"", "/bmc/dead"} {
		sys := base + "/redfish/v1/Systems/dead"
		for _, rt := range []string{"On", "ForceOff", "GracefulRestart", "PowerCycle", "Nmi"} {
			r := e.do("POST", sys+"/Actions/ComputerSystem.Reset", `{"ResetType":"`+rt+`"}`)
			wantUnavailable(t, base+" Reset "+rt, r, problem)
		}
		r := e.do("PATCH", sys, `{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}`)
		wantUnavailable(t, base+" PATCH Boot", r, problem)
		r = e.do("GET", sys+"/Bios", "")
		wantUnavailable(t, base+" pass-through", r, problem)

		// What is wrong whatever the BMC supports is still the client's.
		if r := e.do("POST", sys+"/Actions/ComputerSystem.Reset", `{"ResetType":"Explode"}`); r.Status != http.StatusBadRequest {
			t.Errorf("%s unknown ResetType: %d, want 400", base, r.Status)
		}
		if r := e.do("PATCH", sys, `{"Boot":{"BootSourceOverrideTarget":"Floppy9"}}`); r.Status != http.StatusBadRequest {
			t.Errorf("%s unknown boot target: %d, want 400", base, r.Status)
		}
	}

	// node1's BMC was read: a pass-through failure there is the BMC's
	// answer, a 502 with its text.
	r := e.do("GET", "/redfish/v1/Systems/node1/Bios", "")
	if r.Status != http.StatusBadGateway || r.messageID(t) != "Base.1.22.GeneralError" || !strings.Contains(string(r.Body), "500 Internal Server Error") {
		t.Errorf("pass-through of a BMC that answered badly: %d %s", r.Status, r.Body)
	}
	// Nothing was admitted for the dead node.
	if v, _ := e.nodes.View("dead"); v.State.Slots.Now.Task != "" || len(v.State.Slots.Waiting) != 0 {
		t.Errorf("dead node has tasks: %+v", v.State.Slots)
	}
}
