package redfish_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
)

// TestBadInput is the bad-input table: every refusal has its status and
// Base registry MessageId, and nothing answers 500.
func TestBadInput(t *testing.T) {
	e := newEnv(t, testkit.MiniRedis(t), 2, time.Minute)
	reset := "/redfish/v1/Systems/node1/Actions/ComputerSystem.Reset"
	sys := "/redfish/v1/Systems/node1"
	huge := `{"ResetType":"` + strings.Repeat("x", 70<<10) + `"}`
	cases := []struct {
		name, method, path, body string
		as                       []auth
		status                   int
		msg                      string
	}{
		{"malformed JSON", "POST", reset, `{"ResetType":`, nil, 400, "Base.1.22.MalformedJSON"},
		{"not an object", "POST", reset, `["On"]`, nil, 400, "Base.1.22.MalformedJSON"},
		{"trailing garbage", "POST", reset, `{"ResetType":"On"} x`, nil, 400, "Base.1.22.MalformedJSON"},
		{"empty body", "POST", reset, ``, nil, 400, "Base.1.22.MalformedJSON"},
		{"missing ResetType", "POST", reset, `{}`, nil, 400, "Base.1.22.ActionParameterMissing"},
		{"unknown action parameter", "POST", reset, `{"ResetType":"On","Force":true}`, nil, 400, "Base.1.22.ActionParameterUnknown"},
		{"wrong type in action", "POST", reset, `{"ResetType":5}`, nil, 400, "Base.1.22.ActionParameterValueTypeError"},
		{"unknown ResetType", "POST", reset, `{"ResetType":"Explode"}`, nil, 400, "Base.1.22.ActionParameterValueNotInList"},
		{"unknown property", "PATCH", sys, `{"AssetTag":"x"}`, nil, 400, "Base.1.22.PropertyUnknown"},
		{"unknown nested property", "PATCH", sys, `{"Boot":{"Colour":"red"}}`, nil, 400, "Base.1.22.PropertyUnknown"},
		{"wrong type in patch", "PATCH", sys, `{"Boot":{"BootSourceOverrideTarget":5}}`, nil, 400, "Base.1.22.PropertyValueTypeError"},
		{"value not in list", "PATCH", sys, `{"Boot":{"BootSourceOverrideTarget":"Floppy9"}}`, nil, 400, "Base.1.22.PropertyValueNotInList"},
		{"unknown node", "GET", "/redfish/v1/Systems/nope", "", nil, 404, "Base.1.22.ResourceNotFound"},
		{"unknown node reset", "POST", "/redfish/v1/Systems/nope/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`, nil, 404, "Base.1.22.ResourceNotFound"},
		{"unknown per-node BMC", "GET", "/bmc/nope/redfish/v1/Systems", "", nil, 404, "Base.1.22.ResourceNotFound"},
		{"other node through per-node view", "GET", "/bmc/node1/redfish/v1/Systems/node2", "", nil, 404, "Base.1.22.ResourceNotFound"},
		{"unknown URI", "GET", "/redfish/v1/Nothing", "", nil, 404, "Base.1.22.ResourceMissingAtURI"},
		{"huge body", "POST", reset, huge, nil, 413, "Base.1.22.PayloadTooLarge"},
		{"wrong method", "PUT", sys, `{}`, nil, 405, "Base.1.22.OperationNotAllowed"},
		{"no auth", "GET", sys, "", []auth{noAuth()}, 401, "Base.1.22.NoValidSession"},
		{"wrong password", "GET", sys, "", []auth{basic(adminUser, "wrong")}, 401, "Base.1.22.NoValidSession"},
		{"unknown user", "GET", sys, "", []auth{basic("mallory", adminPass)}, 401, "Base.1.22.NoValidSession"},
		{"bogus token", "GET", sys, "", []auth{token("not-a-token")}, 401, "Base.1.22.NoValidSession"},
		{"read-only reset", "POST", reset, `{"ResetType":"On"}`, []auth{basic(roUser, roPass)}, 403, "Base.1.22.InsufficientPrivilege"},
		{"read-only patch", "PATCH", sys, `{"Boot":{"BootSourceOverrideTarget":"Pxe"}}`, []auth{basic(roUser, roPass)}, 403, "Base.1.22.InsufficientPrivilege"},
		{"login wrong password", "POST", "/redfish/v1/SessionService/Sessions", `{"UserName":"admin","Password":"no"}`, []auth{noAuth()}, 401, "Base.1.22.NoValidSession"},
		{"login missing password", "POST", "/redfish/v1/SessionService/Sessions", `{"UserName":"admin"}`, []auth{noAuth()}, 400, "Base.1.22.PropertyMissing"},
		{"stale If-Match", "PATCH", sys, `{"Boot":{"BootSourceOverrideTarget":"Pxe"}}`, []auth{basic(adminUser, adminPass), header("If-Match", `W/"0000000000000000"`)}, 412, "Base.1.22.PreconditionFailed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.method, c.path, c.body, c.as...)
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
			}
			if got := r.messageID(t); got != c.msg {
				t.Fatalf("MessageId %s, want %s", got, c.msg)
			}
			if c.status == 401 && r.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if c.status == 405 && r.Header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
	// None of the refused resets reached a BMC.
	for _, id := range []string{"node1", "node2"} {
		n, _ := e.fleet.Node(id)
		if got := n.Machine().Status().CommandCount; got != 0 {
			t.Errorf("%s: %d commands reached the BMC, want 0", id, got)
		}
	}
}

func TestPublicAndProtected(t *testing.T) {
	e := newEnv(t, testkit.MiniRedis(t), 1, time.Minute)
	for _, p := range []string{"/redfish", "/redfish/v1", "/redfish/v1/", "/redfish/v1/odata", "/redfish/v1/$metadata", "/bmc/node1/redfish/v1/"} {
		if r := e.do("GET", p, "", noAuth()); r.Status != 200 {
			t.Errorf("GET %s without auth: %d", p, r.Status)
		}
	}
	for _, p := range []string{"/redfish/v1/Systems", "/redfish/v1/Managers/node1", "/redfish/v1/SessionService/Sessions", "/bmc/node1/redfish/v1/Systems"} {
		if r := e.do("GET", p, "", noAuth()); r.Status != 401 {
			t.Errorf("GET %s without auth: %d, want 401", p, r.Status)
		}
	}
	if v := e.do("GET", "/redfish", "", noAuth()).json(t)["v1"]; v != "/redfish/v1/" {
		t.Errorf("/redfish v1 = %v", v)
	}
	if v := e.do("GET", "/bmc/node1/redfish", "", noAuth()).json(t)["v1"]; v != "/bmc/node1/redfish/v1/" {
		t.Errorf("/bmc/node1/redfish v1 = %v", v)
	}
	md := e.do("GET", "/redfish/v1/$metadata", "", noAuth())
	if !strings.Contains(string(md.Body), `Namespace="ComputerSystem.v1_20_0"`) || !strings.HasPrefix(md.Header.Get("Content-Type"), "application/xml") {
		t.Errorf("$metadata: %s %s", md.Header.Get("Content-Type"), md.Body)
	}
}

func TestResetReachesBMCAndViewFollows(t *testing.T) {
	e := newEnv(t, testkit.MiniRedis(t), 1, time.Minute)
	sys := e.do("GET", "/redfish/v1/Systems/node1", "").json(t)
	if sys["PowerState"] != "Off" {
		t.Fatalf("PowerState %v, want Off", sys["PowerState"])
	}
	allowed := sys["Actions"].(map[string]any)["#ComputerSystem.Reset"].(map[string]any)["ResetType@Redfish.AllowableValues"].([]any)
	if len(allowed) != 9 {
		t.Errorf("allowable ResetTypes %v: want the simulator's nine", allowed)
	}
	r := e.do("POST", "/redfish/v1/Systems/node1/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`)
	if r.Status/100 != 2 {
		t.Fatalf("reset: %d %s", r.Status, r.Body)
	}
	e.waitPower("node1", "On")
	deadline := time.Now().Add(5 * time.Second)
	for e.do("GET", "/redfish/v1/Systems/node1", "").json(t)["PowerState"] != "On" {
		if time.Now().After(deadline) {
			t.Fatal("gateway PowerState never showed On")
		}
		time.Sleep(10 * time.Millisecond)
	}
	n, _ := e.fleet.Node("node1")
	st := n.Machine().Status()
	if st.CommandCount != 1 || st.Commands[0].Action != "On" {
		t.Errorf("BMC saw %+v, want one On", st.Commands)
	}
}

func TestBootPatchAndETag(t *testing.T) {
	e := newEnv(t, testkit.MiniRedis(t), 1, time.Minute)
	get := e.do("GET", "/redfish/v1/Systems/node1", "")
	tag := get.Header.Get("ETag")
	if tag == "" {
		t.Fatal("no ETag on GET")
	}
	if r := e.do("GET", "/redfish/v1/Systems/node1", "", basic(adminUser, adminPass), header("If-None-Match", tag)); r.Status != http.StatusNotModified {
		t.Errorf("If-None-Match with current ETag: %d, want 304", r.Status)
	}
	body := `{"Boot":{"BootSourceOverrideEnabled":"Once","BootSourceOverrideTarget":"Pxe"}}`
	r := e.do("PATCH", "/redfish/v1/Systems/node1", body, basic(adminUser, adminPass), header("If-Match", tag))
	if r.Status != 200 {
		t.Fatalf("PATCH with current If-Match: %d %s", r.Status, r.Body)
	}
	boot := r.json(t)["Boot"].(map[string]any)
	if boot["BootSourceOverrideTarget"] != "Pxe" || boot["BootSourceOverrideEnabled"] != "Once" {
		t.Errorf("Boot after PATCH: %v", boot)
	}
	n, _ := e.fleet.Node("node1")
	if b := n.Machine().Boot(); b.Target != "Pxe" || b.Enabled != "Once" {
		t.Errorf("simulated BMC boot %+v, want Pxe/Once", b)
	}
	// If-Match is never required (MAAS sends it only when it saw an ETag).
	if r := e.do("PATCH", "/redfish/v1/Systems/node1", `{"Boot":{"BootSourceOverrideTarget":"Hdd"}}`); r.Status != 200 {
		t.Errorf("PATCH without If-Match: %d %s", r.Status, r.Body)
	}
	// The old ETag is stale now.
	if r := e.do("PATCH", "/redfish/v1/Systems/node1", body, basic(adminUser, adminPass), header("If-Match", tag)); r.Status != http.StatusPreconditionFailed {
		t.Errorf("PATCH with stale If-Match: %d, want 412", r.Status)
	}
}
