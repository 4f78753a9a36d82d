package redfish_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
)

// TestProtocolHeaders: what the DMTF Redfish Protocol Validator checks of
// every service (DSP0266 §8): OData-Version other than 4.0 is 412; GET
// answers Allow and a Link to the resource's schema; a POST to a
// collection's Members creates a member; an account PATCH honours If-Match
// and ignores OData annotations (a body of nothing else is NoOperation).
func TestProtocolHeaders(t *testing.T) {
	e := newEnvWith(t, testkit.MiniRedis(t), time.Minute, envConfig{nodes: 1})
	wantStatus(t, "OData-Version 4.1", e.do("GET", "/redfish/v1/Systems", "", basic(adminUser, adminPass), header("OData-Version", "4.1")), http.StatusPreconditionFailed)
	wantStatus(t, "OData-Version 4.0", e.do("GET", "/redfish/v1/Systems", "", basic(adminUser, adminPass), header("OData-Version", "4.0")), http.StatusOK)

	root := e.do("GET", "/redfish/v1", "", noAuth())
	if got := root.Header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("service root Allow %q", got)
	}
	if got := root.Header.Get("Link"); got != "<https://redfish.dmtf.org/schemas/v1/ServiceRoot.v1_17_0.json>; rel=describedby" {
		t.Errorf("service root Link %q", got)
	}
	sessions := e.do("GET", "/redfish/v1/SessionService/Sessions", "")
	if got := sessions.Header.Get("Allow"); got != "GET, HEAD, POST" {
		t.Errorf("Sessions Allow %q", got)
	}
	if !strings.Contains(sessions.Header.Get("Link"), "SessionCollection.json>; rel=describedby") {
		t.Errorf("Sessions Link %q", sessions.Header.Get("Link"))
	}

	r := e.do("POST", "/redfish/v1/SessionService/Sessions/Members", `{"UserName":"`+roUser+`","Password":"`+roPass+`"}`, noAuth())
	wantStatus(t, "POST to Sessions/Members", r, http.StatusCreated)
	if r.Header.Get("X-Auth-Token") == "" {
		t.Error("no X-Auth-Token")
	}

	const acct = "/redfish/v1/AccountService/Accounts/alice"
	wantStatus(t, "create", e.do("POST", "/redfish/v1/AccountService/Accounts", `{"UserName":"alice","Password":"alice-pw-1","RoleId":"ReadOnly"}`), http.StatusCreated)
	get := e.do("GET", acct, "")
	tag := get.Header.Get("ETag")
	if tag == "" {
		t.Fatal("account has no ETag")
	}
	wantStatus(t, "PATCH with a stale If-Match", e.do("PATCH", acct, `{"Enabled":false}`, basic(adminUser, adminPass), header("If-Match", `W/"stale"`)), http.StatusPreconditionFailed)
	noop := e.do("PATCH", acct, `{"@odata.id":"`+acct+`","@odata.type":"#ManagerAccount.v1_12_0.ManagerAccount"}`)
	wantStatus(t, "PATCH of annotations only", noop, http.StatusBadRequest)
	if id := noop.messageID(t); id != "Base.1.22.NoOperation" {
		t.Errorf("MessageId %s, want NoOperation", id)
	}
	wantStatus(t, "PATCH with If-Match and an annotation", e.do("PATCH", acct, `{"@odata.id":"`+acct+`","Enabled":false}`, basic(adminUser, adminPass), header("If-Match", tag)), http.StatusOK)
	// the same rule for a System (one decoder for every PATCH)
	wantStatus(t, "System PATCH with an annotation", e.do("PATCH", "/redfish/v1/Systems/node1", `{"@odata.etag":"x","Boot":{"BootSourceOverrideTarget":"Pxe"}}`), http.StatusOK)
	if r := e.do("PATCH", "/redfish/v1/Systems/node1", `{"@odata.id":"/redfish/v1/Systems/node1"}`); r.Status != http.StatusBadRequest || r.messageID(t) != "Base.1.22.NoOperation" {
		t.Errorf("System PATCH of annotations only: %d %s", r.Status, r.Body)
	}
}
