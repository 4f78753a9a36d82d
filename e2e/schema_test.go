package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/fishgate/fishgate/app/demo"
	"github.com/fishgate/fishgate/internal/testkit"
)

// crawl is what a walk of one view saw.
type crawl struct {
	byType map[string][]string // last segment of @odata.type -> URLs
	count  int
}

// odataIDs collects every "@odata.id" string anywhere in v (Members included),
// without fragments.
func odataIDs(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "@odata.id" {
				s, _, _ = strings.Cut(s, "#")
				*out = append(*out, s)
				continue
			}
			odataIDs(e, out)
		}
	case []any:
		for _, e := range x {
			odataIDs(e, out)
		}
	}
}

// walk GETs root and everything reachable from it by @odata.id, with hdr
// as credentials. Every resource must answer 200 JSON with an ETag, name
// itself by @odata.id, validate against the DMTF schema of its @odata.type,
// and link only inside prefix.
func walk(t *testing.T, v *testkit.SchemaValidator, base, root, prefix string, hdr map[string]string) crawl {
	t.Helper()
	c := crawl{byType: map[string][]string{}}
	seen := map[string]bool{root: true}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		st, h, body := do(t, http.MethodGet, base+p, nil, hdr)
		if st != http.StatusOK {
			t.Errorf("GET %s: status %d, body %s", p, st, body)
			continue
		}
		c.count++
		if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("GET %s: Content-Type %q, want application/json", p, ct)
			continue
		}
		if h.Get("ETag") == "" {
			t.Errorf("GET %s: no ETag header (every GET carries one)", p)
		}
		if h.Get("OData-Version") != "4.0" {
			t.Errorf("GET %s: OData-Version %q, want 4.0", p, h.Get("OData-Version"))
		}
		var res map[string]any
		if err := json.Unmarshal(body, &res); err != nil {
			t.Errorf("GET %s: not a JSON object: %v", p, err)
			continue
		}
		typ, _ := res["@odata.type"].(string)
		if typ == "" {
			t.Errorf("GET %s: no @odata.type, so no schema to validate against:\n%s", p, body)
		} else if err := v.Validate(body); err != nil {
			t.Errorf("GET %s (%s) does not validate:\n%v\nbody: %s", p, typ, err, body)
		}
		if id, _ := res["@odata.id"].(string); strings.TrimSuffix(id, "/") != strings.TrimSuffix(p, "/") {
			t.Errorf("GET %s: @odata.id is %q", p, id)
		}
		if name, _ := res["Name"].(string); name == "" {
			t.Errorf("GET %s: no Name", p)
		}
		kind := typ[strings.LastIndex(typ, ".")+1:]
		if strings.HasSuffix(kind, "Collection") {
			members, ok := res["Members"].([]any)
			n, _ := res["Members@odata.count"].(float64)
			if !ok || int(n) != len(members) {
				t.Errorf("GET %s: Members@odata.count %v, %d Members", p, res["Members@odata.count"], len(members))
			}
		} else if id, _ := res["Id"].(string); id == "" && typ != "" {
			t.Errorf("GET %s: no Id", p)
		}
		if typ != "" {
			c.byType[kind] = append(c.byType[kind], p)
		}
		var links []string
		odataIDs(res, &links)
		for _, l := range links {
			if l == "" || seen[l] {
				continue
			}
			seen[l] = true
			if !strings.HasPrefix(l, prefix) {
				t.Errorf("GET %s links %s, outside this view (%s)", p, l, prefix)
				continue
			}
			queue = append(queue, l)
		}
	}
	return c
}

// requireSeen fails unless the crawl saw at least min resources of each type.
func requireSeen(t *testing.T, view string, c crawl, min map[string]int) {
	t.Helper()
	for typ, n := range min {
		if got := len(c.byType[typ]); got < n {
			t.Errorf("%s: crawl saw %d %s (%v), want at least %d", view, got, typ, c.byType[typ], n)
		}
	}
	if t.Failed() {
		var kinds []string
		for k, v := range c.byType {
			kinds = append(kinds, fmt.Sprintf("%s×%d", k, len(v)))
		}
		sort.Strings(kinds)
		t.Logf("%s: %d resources: %s", view, c.count, strings.Join(kinds, " "))
	}
}

// login creates a session and returns its token and URI.
func login(t *testing.T, d *demo.Demo, v *testkit.SchemaValidator, sessions string) (token, uri string) {
	t.Helper()
	st, h, body := do(t, http.MethodPost, d.URL()+sessions,
		map[string]string{"UserName": d.User, "Password": d.Pass}, nil)
	if st != http.StatusCreated {
		t.Fatalf("POST %s: status %d, want 201; body %s", sessions, st, body)
	}
	token, uri = h.Get("X-Auth-Token"), h.Get("Location")
	if token == "" || uri == "" {
		t.Fatalf("POST %s: X-Auth-Token %q, Location %q: both required (sushy, gofish)", sessions, token, uri)
	}
	if err := v.Validate(body); err != nil {
		t.Errorf("POST %s: created Session does not validate: %v\n%s", sessions, err, body)
	}
	return token, uri
}

// nodeViewTypes are the resources a node's own view must show (at least).
var nodeViewTypes = map[string]int{
	"ServiceRoot": 1, "ComputerSystemCollection": 1, "ComputerSystem": 1,
	"ManagerCollection": 1, "Manager": 1, "ChassisCollection": 1, "Chassis": 1,
	"SessionService": 1, "SessionCollection": 1, "Session": 1,
	"AccountService": 1, "ManagerAccountCollection": 1, "ManagerAccount": 1,
}

func TestSchemaWalk(t *testing.T) {
	t.Parallel()
	v := validator(t)
	const nodes = 3
	d := startDemo(t, nodes)
	token, sessURI := login(t, d, v, "/redfish/v1/SessionService/Sessions")
	if !strings.HasPrefix(sessURI, "/redfish/v1/SessionService/Sessions/") {
		t.Errorf("session Location %q is not under /redfish/v1/SessionService/Sessions/", sessURI)
	}
	sess := map[string]string{"X-Auth-Token": token}

	t.Run("aggregate", func(t *testing.T) {
		c := walk(t, v, d.URL(), "/redfish/v1", "/redfish/v1", sess)
		requireSeen(t, "aggregate view", c, map[string]int{
			"ServiceRoot": 1, "ComputerSystemCollection": 1, "ComputerSystem": nodes,
			"ManagerCollection": 1, "Manager": 1, "ChassisCollection": 1, "Chassis": 1,
			"SessionService": 1, "SessionCollection": 1, "Session": 1,
			"AccountService": 1, "ManagerAccountCollection": 1, "ManagerAccount": 1,
			"AggregationService": 1, "AggregationSourceCollection": 1, "AggregationSource": nodes,
			"ConnectionMethodCollection": 1, "ConnectionMethod": 3,
		})
		if !slices.Contains(c.byType["Session"], sessURI) {
			t.Errorf("our session %s is not among the Sessions crawled: %v", sessURI, c.byType["Session"])
		}
	})

	t.Run("per-node", func(t *testing.T) {
		const pfx = "/bmc/node02/redfish/v1"
		c := walk(t, v, d.URL(), pfx, pfx, sess)
		requireSeen(t, "per-node view", c, nodeViewTypes)
		for _, kind := range []string{"ComputerSystem", "Manager", "Chassis"} {
			if got := c.byType[kind]; len(got) != 1 || !strings.HasSuffix(got[0], "/node02") {
				t.Errorf("per-node view of node02 shows %s %v, want exactly node02's", kind, got)
			}
		}
	})

	// Issue 16: node03's own address, where /redfish/v1 is its BMC.
	t.Run("node-address", func(t *testing.T) {
		const pfx = "/redfish/v1"
		c := walk(t, v, d.NodeURL("node03"), pfx, pfx, sess)
		requireSeen(t, "node-address view", c, nodeViewTypes)
		for _, kind := range []string{"ComputerSystem", "Manager", "Chassis"} {
			if got := c.byType[kind]; len(got) != 1 || got[0] != pfx+"/"+map[string]string{"ComputerSystem": "Systems", "Manager": "Managers", "Chassis": "Chassis"}[kind]+"/node03" {
				t.Errorf("node03's own address shows %s %v, want exactly node03's", kind, got)
			}
		}
		if got := c.byType["AggregationService"]; len(got) != 0 {
			t.Errorf("node03's own address links the AggregationService: %v", got)
		}
	})

	t.Run("systems-members", func(t *testing.T) {
		for _, view := range []struct{ url, prefix string }{
			{"/redfish/v1/Systems", "/redfish/v1/Systems/"},
			{"/redfish/v1/Systems/", "/redfish/v1/Systems/"},
		} {
			coll := getJSON(t, d, d.URL()+view.url)
			members, _ := coll["Members"].([]any)
			var got []string
			for _, m := range members {
				id, _ := m.(map[string]any)["@odata.id"].(string)
				got = append(got, strings.TrimPrefix(id, view.prefix))
			}
			var want []string
			for _, n := range d.Config.Nodes {
				want = append(want, n.ID)
			}
			sort.Strings(got)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("GET %s lists %v, want exactly the configured nodes %v", view.url, got, want)
			}
			if n, _ := coll["Members@odata.count"].(float64); int(n) != len(want) {
				t.Errorf("GET %s: Members@odata.count %v, want %d", view.url, coll["Members@odata.count"], len(want))
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		m := machine(t, d, "node01")
		before := m.Status().CommandCount
		auth := basic(d)
		badBasic := basic(&demo.Demo{User: d.User, Pass: d.Pass + "x"})
		reset := "/redfish/v1/Systems/node01/Actions/ComputerSystem.Reset"
		cases := []struct {
			name, method, path string
			body               any
			hdr                map[string]string
			status             int
			msg                string // MessageId suffix expected among ExtendedInfo
		}{
			{"unknown system", "GET", "/redfish/v1/Systems/node99", nil, auth, 404, "ResourceNotFound"},
			{"unknown URI", "GET", "/redfish/v1/NoSuchCollection", nil, auth, 404, "ResourceMissingAtURI"},
			{"unknown per-node BMC", "GET", "/bmc/node99/redfish/v1/Systems", nil, auth, 404, ""},
			{"other node via per-node view", "GET", "/bmc/node02/redfish/v1/Systems/node01", nil, auth, 404, "ResourceNotFound"},
			{"reset another node via per-node view", "POST", "/bmc/node02/redfish/v1/Systems/node01/Actions/ComputerSystem.Reset",
				map[string]string{"ResetType": "On"}, auth, 404, "ResourceNotFound"},
			{"patch another node via per-node view", "PATCH", "/bmc/node02/redfish/v1/Systems/node01",
				map[string]any{"Boot": map[string]string{"BootSourceOverrideTarget": "Pxe"}}, auth, 404, "ResourceNotFound"},
			{"no credentials", "GET", "/redfish/v1/Systems", nil, nil, 401, ""},
			{"wrong password", "GET", "/redfish/v1/Systems", nil, badBasic, 401, ""},
			{"unknown token", "GET", "/redfish/v1/Systems", nil, map[string]string{"X-Auth-Token": "not-a-token"}, 401, ""},
			{"login with wrong password", "POST", "/redfish/v1/SessionService/Sessions",
				map[string]string{"UserName": d.User, "Password": "wrong"}, nil, 401, ""},
			{"login without password", "POST", "/redfish/v1/SessionService/Sessions",
				map[string]string{"UserName": d.User}, nil, 400, "PropertyMissing"},
			{"ResetType not allowed", "POST", reset, map[string]string{"ResetType": "Bogus"}, auth, 400, "ActionParameterValueNotInList"},
			{"ResetType missing", "POST", reset, map[string]string{}, auth, 400, "ActionParameterMissing"},
			{"malformed JSON", "PATCH", "/redfish/v1/Systems/node01", `{"Boot":`, auth, 400, "MalformedJSON"},
			{"boot target not allowed", "PATCH", "/redfish/v1/Systems/node01",
				map[string]any{"Boot": map[string]string{"BootSourceOverrideTarget": "Tape"}}, auth, 400, "PropertyValueNotInList"},
			{"method not allowed", "DELETE", "/redfish/v1/Systems", nil, auth, 405, ""},
		}
		for _, tc := range cases {
			st, h, body := do(t, tc.method, d.URL()+tc.path, tc.body, tc.hdr)
			if st != tc.status {
				t.Errorf("%s: %s %s: status %d, want %d; body %s", tc.name, tc.method, tc.path, st, tc.status, body)
				continue
			}
			if err := v.ValidateError(body); err != nil {
				t.Errorf("%s: %s %s: %d error body does not validate: %v\n%s", tc.name, tc.method, tc.path, st, err, body)
				continue
			}
			ids := messageIDs(body)
			if len(ids) == 0 || !strings.HasPrefix(ids[0], "Base.") {
				t.Errorf("%s: MessageIds %v, want Base registry ones", tc.name, ids)
			}
			if tc.msg != "" && !slices.ContainsFunc(ids, func(id string) bool { return strings.HasSuffix(id, "."+tc.msg) }) {
				t.Errorf("%s: MessageIds %v, want Base.*.%s", tc.name, ids, tc.msg)
			}
			if st == 401 && h.Get("WWW-Authenticate") == "" && tc.method == "GET" {
				t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
			}
		}
		if after := m.Status().CommandCount; after != before {
			t.Errorf("refused requests reached node01's BMC: %d commands before, %d after: %+v",
				before, after, m.Status().Commands)
		}
	})

	t.Run("logout", func(t *testing.T) {
		st, _, body := do(t, http.MethodDelete, d.URL()+sessURI, nil, sess)
		if st != http.StatusNoContent && st != http.StatusOK {
			t.Fatalf("DELETE %s: status %d; body %s", sessURI, st, body)
		}
		st, _, body = do(t, http.MethodGet, d.URL()+"/redfish/v1/Systems", nil, sess)
		if st != http.StatusUnauthorized {
			t.Errorf("token still accepted after logout: GET Systems status %d", st)
		} else if err := v.ValidateError(body); err != nil {
			t.Errorf("401 body does not validate: %v\n%s", err, body)
		}
		if st, _, _ := do(t, http.MethodGet, d.URL()+sessURI, nil, basic(d)); st != http.StatusNotFound {
			t.Errorf("GET %s after logout: status %d, want 404", sessURI, st)
		}
	})
}
