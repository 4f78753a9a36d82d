package proxy

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
)

// gateway is a Proxy for node n17 in front of a fake BMC, served over HTTP.
type gateway struct {
	p   *Proxy
	srv *httptest.Server
	bmc *fakeBMC
}

func newGateway(t *testing.T, bmc *fakeBMC, mod func(*Target)) *gateway {
	t.Helper()
	tg := Target{
		Node:        "n17",
		Endpoint:    bmc.URL(),
		User:        bmcUser,
		Password:    bmcPassword,
		SystemPath:  "/redfish/v1/Systems/1",
		ManagerPath: "/redfish/v1/Managers/BMC",
		ChassisPath: "/redfish/v1/Chassis/1",
	}
	if mod != nil {
		mod(&tg)
	}
	p, err := New(tg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(withTestCaller(p))
	t.Cleanup(func() { srv.Close(); p.Close() })
	return &gateway{p: p, srv: srv, bmc: bmc}
}

// roleHeader names the role of the test client (Administrator when absent;
// "none": no Caller at all), as the router would have authenticated it;
// maxBodyHeader its MaxBodyBytes.
const (
	roleHeader    = "X-Test-Role"
	maxBodyHeader = "X-Test-Max-Body"
)

// withTestCaller plays the router: it puts the Caller of roleHeader in the
// request's context.
func withTestCaller(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role := r.Header.Get(roleHeader)
		maxBody, _ := strconv.ParseInt(r.Header.Get(maxBodyHeader), 10, 64)
		r.Header.Del(roleHeader)
		r.Header.Del(maxBodyHeader)
		switch role {
		case "none":
		case "":
			role = "Administrator"
			fallthrough
		default:
			r = r.WithContext(WithCaller(r.Context(), Caller{User: gwUser, Privileges: RolePrivileges(role), MaxBodyBytes: maxBody}))
		}
		h.ServeHTTP(w, r)
	})
}

// response is what a client of the gateway got.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any // nil unless the body is a JSON object
}

// do sends a request to the gateway as an authenticated client would: with
// the gateway's Basic credentials, a session token and a cookie.
func (g *gateway) do(t *testing.T, method, path, body string, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, g.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(gwUser, gwPassword)
	req.Header.Set("X-Auth-Token", gwToken)
	req.Header.Set("Cookie", gwCookie)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := g.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	r := response{status: res.StatusCode, header: res.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// get walks a decoded JSON document: get(doc, "Actions", "#Bios.ResetBios",
// "target"); integers index arrays.
func get(t *testing.T, doc any, path ...any) any {
	t.Helper()
	cur := doc
	for _, k := range path {
		switch k := k.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("get %v: %v is not an object", path, cur)
			}
			cur = m[k]
		case int:
			a, ok := cur.([]any)
			if !ok || k >= len(a) {
				t.Fatalf("get %v: %v is not an array of more than %d", path, cur, k)
			}
			cur = a[k]
		}
	}
	return cur
}

func wantEq(t *testing.T, what string, got, want any) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// wantRedfishError checks a Redfish error body (DSP0266 §9.7) whose first
// message has MessageId Base.1.22.<key>.
func wantRedfishError(t *testing.T, r response, status int, key string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status = %d, want %d (body %s)", r.status, status, r.raw)
	}
	if r.body == nil {
		t.Fatalf("error body is not a JSON object: %q", r.raw)
	}
	wantEq(t, "error.code", get(t, r.body, "error", "code"), "Base.1.22."+key)
	wantEq(t, "MessageId", get(t, r.body, "error", "@Message.ExtendedInfo", 0, "MessageId"), "Base.1.22."+key)
	if msg, _ := get(t, r.body, "error", "message").(string); msg == "" {
		t.Errorf("error.message is empty")
	}
}

var bases = []string{"", "/bmc/n17"}

func TestPathMappingAndLinkRewriting(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(t, false)
	g := newGateway(t, bmc, nil)
	for _, base := range bases {
		t.Run("base="+base, func(t *testing.T) {
			sys := base + "/redfish/v1/Systems/n17"

			r := g.do(t, "GET", sys+"/Bios", "")
			if r.status != http.StatusOK {
				t.Fatalf("GET Bios: %d %s", r.status, r.raw)
			}
			wantEq(t, "BMC path", bmc.last().RawPath, "/redfish/v1/Systems/1/Bios")
			wantEq(t, "@odata.id", get(t, r.body, "@odata.id"), sys+"/Bios")
			wantEq(t, "SettingsObject", get(t, r.body, "@Redfish.Settings", "SettingsObject", "@odata.id"), sys+"/Bios/Settings")
			wantEq(t, "ResetBios target", get(t, r.body, "Actions", "#Bios.ResetBios", "target"), sys+"/Bios/Actions/Bios.ResetBios")
			wantEq(t, "absolute target", get(t, r.body, "Actions", "#Bios.ChangePassword", "target"), sys+"/Bios/Actions/Bios.ChangePassword")
			wantEq(t, "ActionInfo", get(t, r.body, "Actions", "#Bios.ChangePassword", "@Redfish.ActionInfo"), sys+"/Bios/ChangePasswordActionInfo")
			// Outside the three subtrees, in a message text, or under
			// another System: left alone.
			wantEq(t, "unmapped link", get(t, r.body, "Links", "ActiveSoftwareImage", "@odata.id"), "/redfish/v1/UpdateService/FirmwareInventory/BIOS")
			wantEq(t, "@odata.context", get(t, r.body, "@odata.context"), "/redfish/v1/$metadata#Bios.Bios")
			wantEq(t, "Description", get(t, r.body, "Description"), "See /redfish/v1/Systems/1/Bios for details")
			wantEq(t, "Attributes.Path", get(t, r.body, "Attributes", "Path"), "/redfish/v1/Systems/10")
			// Byte-level rewrite: key order, layout and number literals kept.
			if want := "{\n  \"@odata.id\": \"" + sys + "/Bios\",\n  \"@odata.type\""; !strings.HasPrefix(string(r.raw), want) {
				t.Errorf("body does not start with %q: %.80s", want, r.raw)
			}
			if !strings.Contains(string(r.raw), `"ProcCores": 9007199254740993`) {
				t.Errorf("number literal not kept: %s", r.raw)
			}
			wantEq(t, "Content-Length", r.header.Get("Content-Length"), itoa(len(r.raw)))
			wantEq(t, "ETag", r.header.Get("ETag"), biosETag)
			wantEq(t, "Link", r.header.Get("Link"), `</redfish/v1/SchemaStore/en/Bios.json>; rel=describedby, <`+sys+`/Bios/Settings>; rel=settings`)
			for _, h := range []string{"Set-Cookie", "X-Auth-Token", "WWW-Authenticate"} {
				if v := r.header.Get(h); v != "" {
					t.Errorf("BMC's %s reached the client: %q", h, v)
				}
			}

			r = g.do(t, "GET", sys+"/EthernetInterfaces", "")
			wantEq(t, "BMC path", bmc.last().RawPath, "/redfish/v1/Systems/1/EthernetInterfaces")
			wantEq(t, "collection @odata.id", get(t, r.body, "@odata.id"), sys+"/EthernetInterfaces")
			wantEq(t, "member", get(t, r.body, "Members", 0, "@odata.id"), sys+"/EthernetInterfaces/NIC.1")
			wantEq(t, "nextLink", get(t, r.body, "Members@odata.nextLink"), sys+"/EthernetInterfaces?$skip=1")

			r = g.do(t, "GET", sys+"/EthernetInterfaces/NIC.1", "")
			wantEq(t, "BMC path", bmc.last().RawPath, "/redfish/v1/Systems/1/EthernetInterfaces/NIC.1")
			wantEq(t, "escaped-slash @odata.id", get(t, r.body, "@odata.id"), sys+"/EthernetInterfaces/NIC.1")
			wantEq(t, "chassis link", get(t, r.body, "Links", "Chassis", "@odata.id"), base+"/redfish/v1/Chassis/n17")
			wantEq(t, "fabric link", get(t, r.body, "Links", "Endpoints", 0, "@odata.id"), "/redfish/v1/Fabrics/1/Endpoints/NIC.1")

			r = g.do(t, "GET", base+"/redfish/v1/Managers/n17/NetworkProtocol", "")
			wantEq(t, "BMC path", bmc.last().RawPath, "/redfish/v1/Managers/BMC/NetworkProtocol")
			wantEq(t, "@odata.id", get(t, r.body, "@odata.id"), base+"/redfish/v1/Managers/n17/NetworkProtocol")
			wantEq(t, "ManagedSystem", get(t, r.body, "Links", "ManagedSystem", "@odata.id"), sys+"/")
			wantEq(t, "HTTPS.Port", get(t, r.body, "HTTPS", "Port"), 443.0)

			r = g.do(t, "GET", base+"/redfish/v1/Chassis/n17/Power", "")
			wantEq(t, "BMC path", bmc.last().RawPath, "/redfish/v1/Chassis/1/Power")
			wantEq(t, "fragment link", get(t, r.body, "PowerControl", 0, "@odata.id"), base+"/redfish/v1/Chassis/n17/Power#/PowerControl/0")
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestCredentialsSwapped(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(t, false)
	g := newGateway(t, bmc, nil)
	for _, m := range []struct{ method, path, body string }{
		{"GET", "/redfish/v1/Systems/n17/Bios", ""},
		{"PATCH", "/bmc/n17/redfish/v1/Systems/n17/Bios/Settings", `{"Attributes":{"BootMode":"Legacy"}}`},
		{"DELETE", "/redfish/v1/Managers/n17/Jobs/JID_1", ""},
	} {
		g.do(t, m.method, m.path, m.body, "Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(gwUser+":"+gwPassword)))
		s := bmc.last()
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(bmcUser+":"+bmcPassword))
		wantEq(t, m.method+" Authorization at the BMC", s.Header.Get("Authorization"), want)
		for _, h := range []string{"X-Auth-Token", "Cookie", "Proxy-Authorization", "X-Forwarded-For", "X-Forwarded-Host", "Forwarded"} {
			if v := s.Header.Get(h); v != "" {
				t.Errorf("%s %s: BMC received %s: %q", m.method, m.path, h, v)
			}
		}
	}
	// The fakeBMC fails the test itself if a gateway secret arrived anywhere.
}

func TestBMCRefusesCredentials(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(t, false)
	g := newGateway(t, bmc, func(tg *Target) { tg.Password = "wrong" })
	r := g.do(t, "GET", "/redfish/v1/Systems/n17/Bios", "")
	wantRedfishError(t, r, http.StatusBadGateway, "ResourceAtUriUnauthorized")
	if v := r.header.Get("WWW-Authenticate"); v != "" {
		t.Errorf("the BMC's challenge reached the client: %q", v)
	}
}

func TestIfMatchAndLocation(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(t, false)
	g := newGateway(t, bmc, nil)
	for _, base := range bases {
		r := g.do(t, "PATCH", base+"/redfish/v1/Systems/n17/Bios/Settings", `{"Attributes":{"BootMode":"Legacy"}}`, "If-Match", biosETag)
		s := bmc.last()
		wantEq(t, "BMC method", s.Method, "PATCH")
		wantEq(t, "BMC path", s.RawPath, "/redfish/v1/Systems/1/Bios/Settings")
		wantEq(t, "If-Match at the BMC", s.Header.Get("If-Match"), biosETag)
		wantEq(t, "body at the BMC", s.Body, `{"Attributes":{"BootMode":"Legacy"}}`)
		wantEq(t, "Content-Type at the BMC", s.Header.Get("Content-Type"), "application/json")
		wantEq(t, "status", r.status, http.StatusAccepted)
		// An absolute Location on the BMC, under the Manager: made a
		// gateway path.
		wantEq(t, "Location", r.header.Get("Location"), base+"/redfish/v1/Managers/n17/Jobs/JID_1")
		wantEq(t, "job @odata.id", get(t, r.body, "@odata.id"), base+"/redfish/v1/Managers/n17/Jobs/JID_1")

		r = g.do(t, "PATCH", base+"/redfish/v1/Systems/n17/Bios/Settings", `{}`, "If-Match", `"stale"`)
		wantEq(t, "status with a stale ETag", r.status, http.StatusPreconditionFailed)
		wantEq(t, "If-Match at the BMC", bmc.last().Header.Get("If-Match"), `"stale"`)

		r = g.do(t, "POST", base+"/redfish/v1/Managers/n17/Jobs", `{"TargetSettingsURI":"/redfish/v1/Systems/n17/Bios/Settings"}`)
		wantEq(t, "status", r.status, http.StatusCreated)
		wantEq(t, "relative Location", r.header.Get("Location"), base+"/redfish/v1/Managers/n17/Jobs/JID_2")
		wantEq(t, "request body link, back to the BMC's", bmc.last().Body, `{"TargetSettingsURI":"/redfish/v1/Systems/1/Bios/Settings"}`)

		// A Location outside the three subtrees stays as the BMC sent it.
		r = g.do(t, "POST", base+"/redfish/v1/Systems/n17/Bios/Actions/Bios.ResetBios", `{}`)
		wantEq(t, "status", r.status, http.StatusAccepted)
		wantEq(t, "unmapped Location", r.header.Get("Location"), "/redfish/v1/TaskService/Tasks/3")
	}
}

func TestRequestBodyLinksRewrittenBack(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(t, false)
	g := newGateway(t, bmc, nil)
	body := `{"Links":{"Chassis":[{"@odata.id":"/redfish/v1/Chassis/n17"},{"@odata.id":"/bmc/n17/redfish/v1/Chassis/n17/Sub"}]},"Name":"/redfish/v1/Systems/n17x","Other":"/redfish/v1/Systems/n18"}`
	r := g.do(t, "PUT", "/bmc/n17/redfish/v1/Systems/n17/Storage/1/Volumes/2", body)
	wantEq(t, "body at the BMC", bmc.last().Body,
		`{"Links":{"Chassis":[{"@odata.id":"/redfish/v1/Chassis/1"},{"@odata.id":"/redfish/v1/Chassis/1/Sub"}]},"Name":"/redfish/v1/Systems/n17x","Other":"/redfish/v1/Systems/n18"}`)
	// The BMC echoes it; on the way back it becomes the per-node view's.
	wantEq(t, "echoed link", get(t, r.body, "Links", "Chassis", 1, "@odata.id"), "/bmc/n17/redfish/v1/Chassis/n17/Sub")

	// Not JSON: forwarded untouched.
	g.do(t, "PATCH", "/redfish/v1/Systems/n17/Storage/1", `{"broken": "/redfish/v1/Chassis/n17"`)
	wantEq(t, "malformed body at the BMC", bmc.last().Body, `{"broken": "/redfish/v1/Chassis/n17"`)
}

func TestQueryForwarded(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(t, false)
	g := newGateway(t, bmc, nil)
	for _, q := range []string{
		"$expand=.($levels=1)",
		"$select=Id,Name&$top=2&$skip=1",
		"$filter=Name%20eq%20%27NIC.1%27",
		"only;semicolon=1",
	} {
		g.do(t, "GET", "/redfish/v1/Systems/n17/EthernetInterfaces?"+q, "")
		s := bmc.last()
		wantEq(t, "BMC path", s.RawPath, "/redfish/v1/Systems/1/EthernetInterfaces")
		wantEq(t, "BMC query", s.RawQuery, q)
	}
}

// serveDirect sends a request as a server parses it (httptest.NewRequest,
// i.e. http.ReadRequest) straight to ServeHTTP, as an Administrator.
func (g *gateway) serveDirect(method, path, body string) response {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	withTestCaller(g.p).ServeHTTP(rec, req)
	r := response{status: rec.Code, header: rec.Header(), raw: rec.Body.Bytes()}
	_ = json.Unmarshal(r.raw, &r.body)
	return r
}

// TestPathsThatMustNotBeForwarded: paths outside the node's subtrees are
// 404; paths a BMC's web server could read otherwise than the gateway does
// are 400 InvalidURI; neither reaches the BMC.
func TestPathsThatMustNotBeForwarded(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(t, false)
	g := newGateway(t, bmc, func(tg *Target) { tg.ManagerPath = "" })
	for _, path := range []string{
		"/redfish/v1/Systems/n17",
		"/redfish/v1/Systems/n17/",
		"/redfish/v1/Systems/n18/Bios",
		"/redfish/v1/Systems/n17x/Bios",
		"/redfish/v1/Systems/n17;x/Bios",
		"/redfish/v1/Systems/1/Bios",
		"/redfish/v1/systems/n17/Bios",
		"/redfish/v1/Systems",
		"/redfish/v1/TaskService/Tasks/1",
		"/redfish/v1/Managers/n17/NetworkProtocol", // ManagerPath unknown
		"/redfish/v1//Systems/n17/Bios",
		"//redfish/v1/Systems/n17/Bios",
		"/bmc/n18/redfish/v1/Systems/n17/Bios",
		"/bmc/n17/redfish/v1/Systems/n18/Bios",
		"/bmc/n17/../redfish/v1/Systems/n17/Bios",
		"/bmc/%2e%2e/redfish/v1/Systems/n17/Bios",
		"/bmc/n17//redfish/v1/Systems/n17/Bios",
		"/bmc/n17",
		"/",
	} {
		before := len(bmc.requests())
		r := g.serveDirect("GET", path, "")
		t.Run("404 "+path, func(t *testing.T) { wantRedfishError(t, r, http.StatusNotFound, "ResourceMissingAtURI") })
		if n := len(bmc.requests()); n != before {
			t.Errorf("%s was forwarded to the BMC as %s", path, bmc.last().RawPath)
		}
	}
	for _, path := range []string{
		"/redfish/v1/Systems/n17/../../Managers/BMC",
		"/redfish/v1/Systems/n17/Bios/../../../Managers/BMC",
		"/redfish/v1/Systems/n17/%2e%2e/%2e%2e/Managers/BMC",
		"/redfish/v1/Systems/n17/%2E%2E/x",
		"/redfish/v1/Systems/n17/.%2e/x",
		"/redfish/v1/Systems/n17/./Bios",
		"/redfish/v1/Systems/n17//Bios",
		"/redfish/v1/Systems/n17/Bios//",
		"/redfish/v1/Systems/n17/Bios%2f..%2f..%2fManagers",
		"/redfish/v1/Systems/n17/..%5c..%5cManagers",
		"/redfish/v1/Systems/n17/%252e%252e/x",
		"/redfish/v1/Systems/n17/..;/x",
		"/redfish/v1/Systems/n17/Bios;jsessionid=1",
		"/redfish/v1/Systems/n17/Bios%3Bx",
		"/redfish/v1/Systems/n17/Bios%00",
		"/redfish/v1/Systems/n17/Bios%0a",
		"/redfish/v1/Systems/n17/Bios.",
		"/redfish/v1/Systems/n17/Bios%2E",
		"/redfish/v1/Systems/n17/Bios%20",
		"/redfish/v1/Systems/n17/%20Bios",
		"/redfish/v1/Systems/n17/Bios%09",
		"/redfish/v1/Systems/n17/Bios%C2%A0",      // no-break space
		"/redfish/v1/Systems/n17/Bios%E2%80%8B",   // zero-width space
		"/redfish/v1/Systems/n17/Bios%ff",         // not UTF-8
		"/redfish/v1/Systems/n17/Certificates%3F", // "?": the path ends there, after decoding
		"/redfish/v1/Systems/n17/Bios%23x",
		"/bmc/n17/redfish/v1/Systems/n17/Bios/.", // per-node view too
	} {
		before := len(bmc.requests())
		r := g.serveDirect("GET", path, "")
		t.Run("400 "+path, func(t *testing.T) { wantRedfishError(t, r, http.StatusBadRequest, "InvalidURI") })
		if n := len(bmc.requests()); n != before {
			t.Errorf("%s was forwarded to the BMC as %s", path, bmc.last().RawPath)
		}
	}

	// Controls: the same machinery forwards what it should, each segment
	// in the one form the gateway decided on.
	for path, want := range map[string]string{
		"/redfish/v1/Systems/%6e17/Bios":            "/redfish/v1/Systems/1/Bios",
		"/redfish/v1/Systems/n17/Bios/":             "/redfish/v1/Systems/1/Bios/",
		"/redfish/v1/Systems/n17/Echo%20Space":      "/redfish/v1/Systems/1/Echo%20Space",
		"/redfish/v1/Systems/n17/Echo..Dots":        "/redfish/v1/Systems/1/Echo..Dots",
		"/bmc/n17/redfish/v1/Systems/n17/Echo,1:2":  "/redfish/v1/Systems/1/Echo,1:2",
		"/redfish/v1/Systems/n17/Echo%2D%41%2e%7e":  "/redfish/v1/Systems/1/Echo-A.~",
		"/redfish/v1/Systems/n17/Echo%C3%A9%22%3Cx": "/redfish/v1/Systems/1/Echo%C3%A9%22%3Cx",
	} {
		r := g.serveDirect("GET", path, "")
		if r.status != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, r.status, r.raw)
			continue
		}
		wantEq(t, "BMC path of "+path, bmc.last().RawPath, want)
	}
}

// TestPowerActionsNotPassedThrough: no write reaches a power action, or any
// action of the System or Chassis, whatever its spelling; every such path
// either is refused as ambiguous (400 InvalidURI) or names the action it is
// (400 ActionNotSupported). Writes directly below the System that are none
// of its known sub-resources (its pending settings hold Boot) are 405.
func TestPowerActionsNotPassedThrough(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(t, false)
	g := newGateway(t, bmc, nil)
	const sys, ch = "/redfish/v1/Systems/n17", "/bmc/n17/redfish/v1/Chassis/n17"
	for path, want := range map[string]string{
		sys + "/Actions/ComputerSystem.Reset":                     "ActionNotSupported",
		sys + "/Actions/ComputerSystem.Reset/":                    "ActionNotSupported",
		sys + "/actions/computersystem.reset":                     "ActionNotSupported",
		sys + "/Actions/%23ComputerSystem.Reset":                  "InvalidURI",
		sys + "/Actions/ComputerSystem%2EReset":                   "ActionNotSupported",
		sys + "/%41ctions/ComputerSystem.Reset":                   "ActionNotSupported",
		sys + "/Actions/ComputerSystem.Reset;x=1":                 "InvalidURI",
		sys + "/Actions/ComputerSystem.Reset%3Bx":                 "InvalidURI",
		sys + "/Actions/ComputerSystem.Reset%3bx=1":               "InvalidURI",
		sys + "/Actions/ComputerSystem.Reset.":                    "InvalidURI",
		sys + "/Actions/ComputerSystem.Reset%2E":                  "InvalidURI",
		sys + "/Actions/ComputerSystem.Reset%20":                  "InvalidURI",
		sys + "/Actions/ComputerSystem.Reset%09":                  "InvalidURI",
		sys + "/Actions/ComputerSystem.Reset%00":                  "InvalidURI",
		sys + "/Actions%2FComputerSystem.Reset":                   "InvalidURI",
		sys + "/Actions%5CComputerSystem.Reset":                   "InvalidURI",
		sys + "/Actions//ComputerSystem.Reset":                    "InvalidURI",
		sys + "/Bios/../Actions/ComputerSystem.Reset":             "InvalidURI",
		sys + "/Actions/ComputerSystem.Reset//":                   "InvalidURI",
		sys + "/Actions/ComputerSystem%252EReset":                 "InvalidURI",
		sys + "/Actions/ComputerSystem.SetDefaultBootOrder":       "ActionNotSupported",
		sys + "/Actions/Oem/Hpe/HpeComputerSystemExt.PowerButton": "ActionNotSupported",
		sys + "/Actions": "ActionNotSupported",
		sys + "/Oem/Actions/ComputerSystem.Reset":                        "ActionNotSupported",
		sys + "/Bios/Actions/ComputerSystem.Reset":                       "ActionNotSupported",
		ch + "/Actions/Chassis.Reset":                                    "ActionNotSupported",
		ch + "/Actions/chassis.reset":                                    "ActionNotSupported",
		ch + "/Actions/%23Chassis.Reset":                                 "InvalidURI",
		ch + "/Actions/Oem/Contoso.PowerOff":                             "ActionNotSupported",
		ch + "/PowerSubsystem/PowerSupplies/0/Actions/PowerSupply.Reset": "ActionNotSupported",
		"/redfish/v1/Managers/n17/Actions/ComputerSystem.Reset":          "ActionNotSupported",
		sys + "/Settings":                                                "OperationNotAllowed",
		sys + "/SD":                                                      "OperationNotAllowed",
		sys + "/Pending":                                                 "OperationNotAllowed",
		sys + "/Oem/Dell/Boot":                                           "OperationNotAllowed",
		sys + "/Boot":                                                    "OperationNotAllowed",
		ch + "/Oem/Contoso/Power":                                        "OperationNotAllowed",
	} {
		for _, m := range []string{"POST", "PATCH", "PUT", "DELETE"} {
			r := g.serveDirect(m, path, `{"ResetType":"ForceOff"}`)
			status := http.StatusBadRequest
			if want == "OperationNotAllowed" {
				status = http.StatusMethodNotAllowed
				wantEq(t, "Allow of "+path, r.header.Get("Allow"), "GET, HEAD")
			}
			t.Run(m+" "+path, func(t *testing.T) { wantRedfishError(t, r, status, want) })
		}
	}
	if n := len(bmc.requests()); n != 0 {
		t.Errorf("%d refused writes reached the BMC, last %s %s", n, bmc.last().Method, bmc.last().RawPath)
	}
	// Reading them is harmless, and writes elsewhere are forwarded.
	r := g.do(t, "GET", sys+"/Actions/ComputerSystem.Reset", "")
	wantEq(t, "GET of the action forwarded", bmc.last().RawPath, "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset")
	r = g.do(t, "POST", "/redfish/v1/Managers/n17/Jobs", `{}`)
	wantEq(t, "non-power action status", r.status, http.StatusCreated)
	r = g.do(t, "PATCH", sys+"/Bios/Settings", `{}`)
	wantEq(t, "Bios settings status", r.status, http.StatusAccepted)
	r = g.do(t, "POST", sys+"/Bios/Actions/Bios.ResetBios", `{}`)
	wantEq(t, "Bios action status", r.status, http.StatusAccepted)
}

func TestBMCUnreachable(t *testing.T) {
	t.Parallel()
	addr := testkit.RefusedAddr(t) // nothing listens there during the test
	bmc := newFakeBMC(t, false)
	g := newGateway(t, bmc, func(tg *Target) { tg.Endpoint = "http://" + addr })
	for _, m := range []string{"GET", "PATCH"} {
		r := g.do(t, m, "/bmc/n17/redfish/v1/Systems/n17/Bios", `{}`)
		// Nothing reached the BMC: come back later (503 + Retry-After),
		// and here is why.
		wantRedfishError(t, r, http.StatusServiceUnavailable, "ServiceTemporarilyUnavailable")
		wantEq(t, "Content-Type", r.header.Get("Content-Type"), "application/json; charset=utf-8")
		wantEq(t, "Retry-After", r.header.Get("Retry-After"), itoa(UnreachableRetryAfter))
		for _, msg := range []any{get(t, r.body, "error", "message"), get(t, r.body, "error", "@Message.ExtendedInfo", 0, "Message")} {
			if s, _ := msg.(string); !strings.Contains(s, "n17") || !strings.Contains(s, "connection refused") {
				t.Errorf("message %q does not name the node and the problem", s)
			}
			// ... without the BMC's address (issue 10: error bodies named it)
			if s, _ := msg.(string); strings.Contains(s, addr) || strings.Contains(s, "127.0.0.") {
				t.Errorf("message %q shows the BMC's address", s)
			}
		}
	}
}

// TestBMCAnswersGarbage: a BMC whose answer is not HTTP is a 502 that says
// what went wrong.
func TestBMCAnswersGarbage(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 4096)
				c.Read(buf)
				io.WriteString(c, "SSH-2.0-OpenSSH_9.2\r\n\r\n")
			}()
		}
	}()
	bmc := newFakeBMC(t, false)
	g := newGateway(t, bmc, func(tg *Target) { tg.Endpoint = "http://" + ln.Addr().String() })
	r := g.do(t, "GET", "/redfish/v1/Systems/n17/Bios", "")
	wantRedfishError(t, r, http.StatusBadGateway, "GeneralError")
	if s, _ := get(t, r.body, "error", "message").(string); !strings.Contains(s, "malformed HTTP") {
		t.Errorf("message %q does not say what the BMC did", s)
	}
	if r.header.Get("Retry-After") != "" {
		t.Errorf("Retry-After %q on a 502", r.header.Get("Retry-After"))
	}
}

func TestBMCTooSlow(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(t, false)
	g := newGateway(t, bmc, func(tg *Target) { tg.Timeout = 200 * time.Millisecond })
	start := time.Now()
	r := g.do(t, "GET", "/redfish/v1/Systems/n17/Slow", "")
	wantRedfishError(t, r, http.StatusGatewayTimeout, "GeneralError")
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("the timeout did not bound the request: %v", d)
	}
}

func TestNonJSONAndUntypedBodies(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(t, false)
	g := newGateway(t, bmc, nil)
	r := g.do(t, "GET", "/redfish/v1/Managers/n17/SerialConsole/Log", "")
	wantEq(t, "text body", string(r.raw), "boot: see /redfish/v1/Systems/1\n\"/redfish/v1/Systems/1\"")
	r = g.do(t, "GET", "/redfish/v1/Systems/n17/NoType", "")
	wantEq(t, "untyped JSON @odata.id", get(t, r.body, "@odata.id"), "/redfish/v1/Systems/n17/NoType")
}

// TestCompression: the client asks for gzip; the transport negotiates gzip
// with the BMC on its own and decompresses, so links are still rewritten and
// the client gets identity bytes.
func TestCompression(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(t, false)
	g := newGateway(t, bmc, nil)
	r := g.do(t, "GET", "/redfish/v1/Systems/n17/Bios", "", "Accept-Encoding", "gzip")
	wantEq(t, "Content-Encoding", r.header.Get("Content-Encoding"), "")
	wantEq(t, "@odata.id", get(t, r.body, "@odata.id"), "/redfish/v1/Systems/n17/Bios")
	wantEq(t, "Accept-Encoding at the BMC", bmc.last().Header.Get("Accept-Encoding"), "gzip")
}

func TestTLS(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(t, true)
	g := newGateway(t, bmc, func(tg *Target) { tg.Insecure = true })
	r := g.do(t, "GET", "/redfish/v1/Systems/n17/Bios", "")
	wantEq(t, "status", r.status, http.StatusOK)
	wantEq(t, "absolute https target", get(t, r.body, "Actions", "#Bios.ChangePassword", "target"), "/redfish/v1/Systems/n17/Bios/Actions/Bios.ChangePassword")

	strict := newGateway(t, bmc, nil) // the test certificate is not trusted
	r = strict.do(t, "GET", "/redfish/v1/Systems/n17/Bios", "")
	wantRedfishError(t, r, http.StatusBadGateway, "GeneralError")
}

func TestHEADAndMethods(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(t, false)
	g := newGateway(t, bmc, nil)
	r := g.do(t, "HEAD", "/redfish/v1/Systems/n17/Bios", "")
	wantEq(t, "HEAD status", r.status, http.StatusOK)
	wantEq(t, "HEAD body", len(r.raw), 0)
	wantEq(t, "HEAD at the BMC", bmc.last().Method, "HEAD")

	n := len(bmc.requests())
	r = g.do(t, "TRACE", "/redfish/v1/Systems/n17/Bios", "")
	wantRedfishError(t, r, http.StatusMethodNotAllowed, "OperationNotAllowed")
	if r.header.Get("Allow") == "" {
		t.Error("405 without Allow")
	}
	if len(bmc.requests()) != n {
		t.Error("TRACE was forwarded")
	}
}

func TestNewRejectsBadTargets(t *testing.T) {
	t.Parallel()
	ok := Target{Node: "n1", Endpoint: "https://10.0.0.5", SystemPath: "/redfish/v1/Systems/1"}
	if _, err := New(ok, nil); err != nil {
		t.Fatalf("valid target refused: %v", err)
	}
	for name, mod := range map[string]func(*Target){
		"empty node":          func(t *Target) { t.Node = "" },
		"node with slash":     func(t *Target) { t.Node = "a/b" },
		"dot-dot node":        func(t *Target) { t.Node = ".." },
		"no scheme":           func(t *Target) { t.Endpoint = "10.0.0.5" },
		"ftp":                 func(t *Target) { t.Endpoint = "ftp://10.0.0.5" },
		"endpoint path":       func(t *Target) { t.Endpoint = "https://10.0.0.5/x" },
		"endpoint user":       func(t *Target) { t.Endpoint = "https://u:p@10.0.0.5" },
		"endpoint query":      func(t *Target) { t.Endpoint = "https://10.0.0.5?a=1" },
		"relative path":       func(t *Target) { t.SystemPath = "Systems/1" },
		"dot-dot path":        func(t *Target) { t.ManagerPath = "/redfish/v1/Managers/../Systems" },
		"double slash path":   func(t *Target) { t.ChassisPath = "/redfish//v1/Chassis/1" },
		"path with query":     func(t *Target) { t.SystemPath = "/redfish/v1/Systems/1?x" },
		"encoded dot-dot":     func(t *Target) { t.SystemPath = "/redfish/v1/Systems/%2e%2e" },
		"path with backslash": func(t *Target) { t.SystemPath = `/redfish/v1\Systems` },
	} {
		tg := ok
		mod(&tg)
		if _, err := New(tg, nil); err == nil {
			t.Errorf("%s: New accepted %+v", name, tg)
		}
	}
}

// TestPassThroughPrivileges: every pass-through request needs what the
// Redfish privilege registry asks of its entity and method; the BMC
// account behind does not make an Operator a BMC administrator (issue 10,
// item 6).
func TestPassThroughPrivileges(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(t, false)
	g := newGateway(t, bmc, nil)
	const (
		sys = "/redfish/v1/Systems/n17"
		mgr = "/bmc/n17/redfish/v1/Managers/n17"
		ch  = "/redfish/v1/Chassis/n17"
	)
	type allowedTo struct{ admin, operator, readOnly bool }
	all, adminOnly, opAndAdmin, none := allowedTo{true, true, true}, allowedTo{true, false, false}, allowedTo{true, true, false}, allowedTo{}
	for _, c := range []struct {
		method, path string
		who          allowedTo
	}{
		// Manager: ConfigureManager.
		{"POST", mgr + "/Actions/Manager.Reset", adminOnly},
		{"POST", mgr + "/Actions/Manager.ResetToDefaults", adminOnly},
		{"POST", mgr + "/Actions/Oem/Contoso.FactoryReset", adminOnly},
		{"PATCH", mgr + "/NetworkProtocol", adminOnly},
		{"PATCH", mgr + "/networkprotocol", adminOnly},
		{"POST", mgr + "/VirtualMedia/CD/Actions/VirtualMedia.InsertMedia", adminOnly},
		{"PATCH", mgr + "/VirtualMedia/CD", adminOnly},
		{"PATCH", mgr + "/EthernetInterfaces/eth0", adminOnly}, // SubordinateOverrides: below a Manager
		{"POST", mgr + "/LogServices/SEL/Actions/LogService.ClearLog", adminOnly},
		{"DELETE", mgr + "/LogServices/SEL/Entries/1", adminOnly},
		{"PATCH", mgr + "/RemoteAccountService/Accounts/2", adminOnly}, // ConfigureUsers
		{"POST", mgr + "/Jobs", adminOnly},                             // unknown below the Manager
		{"GET", mgr + "/NetworkProtocol", all},
		{"GET", mgr + "/Certificates", adminOnly}, // reading certificates needs ConfigureManager
		{"GET", mgr + "/NetworkProtocol/HTTPS/Certificates/1", adminOnly},
		{"GET", mgr + "/RemoteAccountService/Accounts/2", adminOnly}, // ConfigureSelf does not carry over
		{"GET", mgr + "/Oem/Anything", all},
		// System: ConfigureComponents, but VirtualMedia is the BMC's.
		{"PATCH", sys + "/Bios/Settings", opAndAdmin},
		{"POST", sys + "/Bios/Actions/Bios.ResetBios", opAndAdmin},
		{"PATCH", sys + "/EthernetInterfaces/NIC.1", opAndAdmin},
		{"POST", sys + "/Storage/1/Volumes", opAndAdmin},
		{"PATCH", sys + "/BootOptions/1", opAndAdmin},
		{"POST", sys + "/LogServices/Log/Actions/LogService.ClearLog", opAndAdmin},
		{"POST", sys + "/VirtualMedia/CD/Actions/VirtualMedia.InsertMedia", adminOnly},
		{"POST", sys + "/Bios/Oem/Contoso/Thing", adminOnly}, // unknown
		{"GET", sys + "/Bios", all},
		{"GET", sys + "/Boot/Certificates", opAndAdmin}, // Certificate below a ComputerSystem
		{"GET", sys + "/Unknown/Thing", all},
		// Chassis.
		{"PATCH", ch + "/Power", adminOnly}, // the registry says ConfigureManager
		{"PATCH", ch + "/Sensors/T1", opAndAdmin},
		{"POST", ch + "/LogServices/Log/Actions/LogService.ClearLog", opAndAdmin},
		{"GET", ch + "/Sensors/T1", all},
		// The power and boot rules come first, whoever asks.
		{"POST", sys + "/Actions/ComputerSystem.Reset", none},
		{"POST", ch + "/Actions/Chassis.Reset", none},
		{"PATCH", sys + "/Settings", none},
	} {
		for role, ok := range map[string]bool{"Administrator": c.who.admin, "Operator": c.who.operator, "ReadOnly": c.who.readOnly} {
			before := len(bmc.requests())
			body := ""
			if c.method != "GET" && c.method != "DELETE" {
				body = `{}`
			}
			r := g.do(t, c.method, c.path, body, roleHeader, role)
			forwarded := len(bmc.requests()) != before
			if forwarded != ok {
				t.Errorf("%s %s as %s: forwarded %v, want %v (status %d %s)", c.method, c.path, role, forwarded, ok, r.status, r.raw)
			}
			if !ok && c.who != none && r.status != http.StatusForbidden {
				t.Errorf("%s %s as %s: status %d, want 403", c.method, c.path, role, r.status)
			}
			if !ok && c.who != none {
				wantRedfishError(t, r, http.StatusForbidden, "InsufficientPrivilege")
			}
		}
	}
	// Without a Caller (a router that did not say who asks), nothing.
	before := len(bmc.requests())
	r := g.do(t, "GET", sys+"/Bios", "", roleHeader, "none")
	wantRedfishError(t, r, http.StatusForbidden, "InsufficientPrivilege")
	if len(bmc.requests()) != before {
		t.Error("a request without a Caller was forwarded")
	}
}

func TestWalk(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		coll  int
		path  string
		want  string // entity, "" unknown
		chain string
		depth int
	}{
		{0, "Bios", "Bios", "ComputerSystem Bios", 1},
		{0, "Bios/Settings", "Bios", "ComputerSystem Bios", 2},
		{0, "Bios/Actions/Bios.ResetBios", "Bios", "ComputerSystem Bios", 1},
		{0, "EthernetInterfaces/1/VLANs/2", "VLanNetworkInterface", "ComputerSystem EthernetInterfaceCollection EthernetInterface VLanNetworkInterfaceCollection VLanNetworkInterface", 4},
		{0, "LogServices/Log/Entries/7", "LogEntry", "ComputerSystem LogServiceCollection LogService LogEntryCollection LogEntry", 4},
		{0, "Boot/Certificates/1", "Certificate", "ComputerSystem CertificateCollection Certificate", 3},
		{0, "Boot", "", "ComputerSystem", 0},
		{0, "Settings", "", "ComputerSystem", 0},
		{0, "Actions/ComputerSystem.Reset", "ComputerSystem", "ComputerSystem", 0},
		{1, "EthernetInterfaces/eth0", "EthernetInterface", "Manager EthernetInterfaceCollection EthernetInterface", 2},
		{1, "NETWORKPROTOCOL", "ManagerNetworkProtocol", "Manager ManagerNetworkProtocol", 1},
		{1, "Jobs/1", "", "Manager", 0},
		{2, "PowerSubsystem/PowerSupplies/0/Metrics", "PowerSupplyMetrics", "Chassis PowerSubsystem PowerSupplyCollection PowerSupply PowerSupplyMetrics", 4},
		{2, "Power/Oem/X", "", "Chassis Power", 1},
	} {
		ep := walk(c.coll, strings.Split(c.path, "/"))
		if ep.entity != c.want || strings.Join(ep.chain, " ") != c.chain || ep.depth != c.depth {
			t.Errorf("walk(%s, %s) = %q %v depth %d; want %q [%s] depth %d", collections[c.coll], c.path, ep.entity, ep.chain, ep.depth, c.want, c.chain, c.depth)
		}
	}
}
