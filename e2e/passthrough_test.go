package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestPassThroughMounted: a node's other resources go to its BMC through
// the proxy (the simulated BMC answers 404 for a resource it lacks, in its
// own words, with the link rewritten to the gateway's URL); power actions
// under the pass-through are refused, never forwarded.
func TestPassThroughMounted(t *testing.T) {
	d := startDemo(t, 1)
	url := d.URL() + "/redfish/v1/Systems/node01/Bios"
	st, _, body := do(t, http.MethodGet, url, nil, basic(d))
	if st != http.StatusNotFound {
		t.Fatalf("GET %s: %d %s", url, st, body)
	}
	var e struct {
		Error struct {
			Info []struct{ MessageArgs []string } `json:"@Message.ExtendedInfo"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Error.Info) == 0 {
		t.Fatalf("not a Redfish error: %s", body)
	}
	if args := strings.Join(e.Error.Info[0].MessageArgs, " "); !strings.Contains(args, "/redfish/v1/Systems/node01/Bios") {
		t.Errorf("the BMC's answer was not rewritten to the gateway's URL: %s", body)
	}
	if st, _, _ := do(t, http.MethodGet, url, nil, nil); st != http.StatusUnauthorized {
		t.Errorf("pass-through without auth: %d, want 401", st)
	}
	// A Reset addressed below the System never bypasses the serializer.
	st, _, body = do(t, http.MethodPost, d.URL()+"/redfish/v1/Systems/node01/Oem/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`, basic(d))
	if st < 400 || st >= 500 {
		t.Errorf("a Reset through the pass-through: %d %s, want a 4xx refusal", st, body)
	}
	// Nor does any other spelling a BMC's web server might read as the
	// System's Reset (issue 10, item 2), nor a System's other actions.
	// ("//" and ".." are cleaned by the listener's ServeMux, which sends
	// the client to the gateway's own Reset; the proxy's tests cover them.)
	sys := d.URL() + "/redfish/v1/Systems/node01"
	for _, path := range []string{
		"/Actions/ComputerSystem.Reset;x=1",
		"/Actions/ComputerSystem.Reset%3Bx",
		"/Actions/ComputerSystem.Reset.",
		"/Actions/ComputerSystem.Reset%20",
		"/Actions/ComputerSystem.Reset%2E",
		"/Actions/ComputerSystem%2EReset",
		"/Actions%2FComputerSystem.Reset",
		"/actions/computersystem.reset",
		"/Actions/ComputerSystem.Reset%00",
		"/Actions/Oem/Contoso.PowerOn",
		"/Settings",
	} {
		st, _, body := do(t, http.MethodPost, sys+path, `{"ResetType":"On"}`, basic(d))
		if st < 400 || st >= 500 {
			t.Errorf("POST %s: %d %s, want a 4xx refusal", path, st, body)
		}
	}
	if n := machine(t, d, "node01").Status().CommandCount; n != 0 {
		t.Errorf("%d commands reached the BMC through the pass-through", n)
	}
}
