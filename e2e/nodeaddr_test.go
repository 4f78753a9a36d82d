package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"

	"github.com/fishgate/fishgate/app/demo"
	"github.com/fishgate/fishgate/internal/testkit"
)

// noPrefix reports the @odata.id values of a body that carry a prefix
// before /redfish (a per-node view's /bmc/<node>).
func noPrefix(t *testing.T, url string, body []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	var ids []string
	odataIDs(v, &ids)
	for _, id := range ids {
		if !strings.HasPrefix(id, "/redfish/v1") {
			t.Errorf("%s links %s: not under /redfish/v1", url, id)
		}
	}
}

// TestNodeAddress (issue 16): every demo node has an address of its own
// on the loopback (127.0.10.1, ...), where /redfish/v1 is that node's BMC:
// Systems holds that node alone, links carry no prefix, the aggregate
// service is not there; the gateway's own address stays the aggregate.
func TestNodeAddress(t *testing.T) {
	t.Parallel()
	d := startDemo(t, 3)
	for i, id := range []string{"node01", "node02", "node03"} {
		base := d.NodeURL(id)
		if want := "http://127.0.10." + string(rune('1'+i)) + ":"; !strings.HasPrefix(base, want) {
			t.Fatalf("%s: node URL %s, want %s...", id, base, want)
		}
		coll := getJSON(t, d, base+"/redfish/v1/Systems")
		if m, _ := coll["Members"].([]any); len(m) != 1 || m[0].(map[string]any)["@odata.id"] != "/redfish/v1/Systems/"+id {
			t.Errorf("%s Systems at its own address: %v", id, coll["Members"])
		}
		for _, p := range []string{"/redfish/v1", "/redfish/v1/Systems/" + id, "/redfish/v1/Managers/" + id, "/redfish/v1/Chassis", "/redfish/v1/SessionService"} {
			st, _, b := do(t, http.MethodGet, base+p, nil, basic(d))
			if st != http.StatusOK {
				t.Errorf("GET %s%s: %d %s", base, p, st, b)
				continue
			}
			noPrefix(t, base+p, b)
		}
		for _, p := range []string{"/redfish/v1/Systems/" + id, "/redfish/v1/Managers/" + id} {
			oem, _ := getJSON(t, d, base+p)["Oem"].(map[string]any)
			fg, _ := oem["Fishgate"].(map[string]any)
			if want := strings.TrimPrefix(strings.Split(base, ":")[1], "//"); fg["BmcAddress"] != want {
				t.Errorf("%s Oem.Fishgate.BmcAddress %v, want %s", p, fg["BmcAddress"], want)
			}
		}
		other := "node02"
		if id == other {
			other = "node01"
		}
		for _, p := range []string{"/redfish/v1/Systems/" + other, "/redfish/v1/AggregationService", "/bmc/" + id + "/redfish/v1/Systems"} {
			if st, _, b := do(t, http.MethodGet, base+p, nil, basic(d)); st != http.StatusNotFound {
				t.Errorf("GET %s%s at %s's own address: %d, want 404: %s", base, p, id, st, b)
			}
		}
	}
	if m, _ := getJSON(t, d, d.URL()+"/redfish/v1/Systems")["Members"].([]any); len(m) != 3 {
		t.Errorf("the gateway's own address: %d systems, want 3", len(m))
	}
	// The source shows the address it was given.
	src := getJSON(t, d, d.URL()+"/redfish/v1/AggregationService/AggregationSources/node02")
	if fg, _ := src["Oem"].(map[string]any)["Fishgate"].(map[string]any); fg["BmcAddress"] != "127.0.10.2" {
		t.Errorf("source node02 Oem.Fishgate %v", fg)
	}

	// gofish: the node's address is the endpoint, with no system name.
	t.Run("gofish", func(t *testing.T) {
		t.Parallel()
		c, err := gofish.Connect(gofish.ClientConfig{Endpoint: d.NodeURL("node02"), Username: d.User, Password: d.Pass})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Logout()
		if s, err := c.GetSession(); err != nil || !strings.HasPrefix(s.ID, "/redfish/v1/SessionService/Sessions/") {
			t.Errorf("gofish session %+v, %v", s, err)
		}
		systems, err := c.Service.Systems()
		if err != nil || len(systems) != 1 || systems[0].ID != "node02" || systems[0].ODataID != "/redfish/v1/Systems/node02" {
			t.Fatalf("gofish systems at node02's address: %v %v", systems, err)
		}
		if _, err := systems[0].Reset(schemas.OnResetType); err != nil {
			t.Fatal(err)
		}
		waitMachine(t, d, "node02", "On")
		waitFor(t, powerTimeout, "gofish reads On", func() (bool, string) {
			s, err := schemas.GetComputerSystem(c, "/redfish/v1/Systems/node02")
			if err != nil {
				return false, err.Error()
			}
			return s.PowerState == schemas.OnPowerState, string(s.PowerState)
		})
	})

	// sushy (Ironic's library), without redfish_system_id: it takes the
	// one member of the node's Systems.
	t.Run("sushy", func(t *testing.T) {
		t.Parallel()
		needSushy(t)
		r := runSushy(t, d, d.NodeURL("node03"), "session", "")
		if want := []string{"/redfish/v1/Systems/node03"}; !slices.Equal(r.Members, want) {
			t.Errorf("sushy members %v, want %v", r.Members, want)
		}
		if r.RootPrefix != "/redfish/v1/" {
			t.Errorf("sushy root prefix %q", r.RootPrefix)
		}
		checkSushyRun(t, d, "node03", "/redfish/v1", r)
		checkSessionLogin(t, d, "/redfish/v1", r)
	})

	// redfishtool: -r <node address> lists one System.
	t.Run("redfishtool", func(t *testing.T) {
		t.Parallel()
		needRedfishtool(t)
		host := strings.TrimPrefix(d.NodeURL("node01"), "http://")
		out, stderr, err := run(t, 60*time.Second, redfishtoolPath, "-r", host, "-S", "Never", "-T", "10", "-u", d.User, "-p", d.Pass, "Systems", "list")
		if err != nil {
			t.Fatalf("redfishtool: %v\n%s\n%s", err, out, stderr)
		}
		list := decodeObject(t, "Systems list", out)
		m, _ := list["Members"].([]any)
		if len(m) != 1 || m[0].(map[string]any)["@odata.id"] != "/redfish/v1/Systems/node01" {
			t.Errorf("redfishtool Systems list at node01's address: %s", out)
		}
		out, stderr, err = run(t, 60*time.Second, redfishtoolPath, "-r", host, "-S", "Never", "-T", "10", "-u", d.User, "-p", d.Pass, "-F", "Systems", "get")
		if err != nil {
			t.Fatalf("redfishtool Systems get (first): %v\n%s\n%s", err, out, stderr)
		}
		if sys := decodeObject(t, "Systems get", out); sys["Id"] != "node01" {
			t.Errorf("redfishtool -F Systems get: %s", out)
		}
	})
}

// TestNodeHostName (issue 16): with fronts.bmc_domain, the Host header
// <node>.<domain> selects the node's view at /redfish/v1 on the gateway's
// own address.
func TestNodeHostName(t *testing.T) {
	t.Parallel()
	d := startDemoWith(t, 2, func(o *demo.Options) { o.BMCDomain = "bmc.example" })
	systems := func(host string) (int, []string) {
		req, _ := http.NewRequest(http.MethodGet, d.URL()+"/redfish/v1/Systems", nil)
		req.Host = host
		req.SetBasicAuth(d.User, d.Pass)
		st, ids, err := testkit.Members(httpClient, req)
		if err != nil {
			t.Fatal(err)
		}
		return st, ids
	}
	if st, ids := systems("Node02.bmc.example"); st != http.StatusOK || !slices.Equal(ids, []string{"/redfish/v1/Systems/node02"}) {
		t.Errorf("Host Node02.bmc.example: %d %v", st, ids)
	}
	if st, ids := systems("other.example"); st != http.StatusOK || len(ids) != 2 {
		t.Errorf("another Host: %d %v", st, ids)
	}
}
