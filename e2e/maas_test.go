package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/demo"
	"github.com/fishgate/fishgate/simulator"
)

// maasClient sends requests the way MAAS's redfish power driver does
// (docs/clients.md#maas): User-Agent MAAS, Accept and Content-Type
// application/json on every request (GETs too), HTTP Basic, one connection
// per request. Its address keeps a path prefix and is joined with
// "redfish/v1/...".
type maasClient struct {
	user, pass string // power_user, power_pass
	address    string // power_address: http://gw/bmc/<node>/
	http       *http.Client
}

func newMAASClient(d *demo.Demo, node string) *maasClient {
	return newMAASClientAt(d.URL(), d.User, d.Pass, node)
}

// newMAASClientAt is a MAAS client of node behind the gateway at base.
func newMAASClientAt(base, user, pass, node string) *maasClient {
	return &maasClient{user: user, pass: pass, address: base + "/bmc/" + node + "/",
		http: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
}

func (m *maasClient) do(t *testing.T, method, path string, body any, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, m.address+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "MAAS")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(m.user, m.pass)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := m.http.Do(req)
	if err != nil {
		t.Fatalf("MAAS %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("MAAS %s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, b
}

// object GETs path, requires 200 and a JSON object.
func (m *maasClient) object(t *testing.T, path string) (map[string]any, http.Header) {
	t.Helper()
	st, h, b := m.do(t, http.MethodGet, path, nil, nil)
	if st != http.StatusOK {
		t.Fatalf("MAAS GET %s: status %d, body %s", path, st, b)
	}
	var o map[string]any
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatalf("MAAS GET %s: not JSON: %v\n%s", path, err, b)
	}
	return o, h
}

// ok2xx requires a 2xx whose body, if any, is JSON (MAAS parses it).
func (m *maasClient) ok2xx(t *testing.T, what string, st int, b []byte) {
	t.Helper()
	if st < 200 || st > 299 {
		t.Fatalf("MAAS %s: status %d, want 2xx; body %s", what, st, b)
	}
	if len(bytes.TrimSpace(b)) > 0 && !json.Valid(b) {
		t.Errorf("MAAS %s: %d with a body that is not JSON: %q", what, st, b)
	}
}

// etag is what MAAS uses for If-Match: @odata.etag, else the ETag header.
func etag(o map[string]any, h http.Header) string {
	if e, _ := o["@odata.etag"].(string); e != "" {
		return e
	}
	return h.Get("ETag")
}

// powerIsOn is MAAS's reading of PowerState (case-insensitive): Off and
// PoweringOn are off, On, Paused and PoweringOff are on; anything else is
// not an answer yet.
func powerIsOn(ps string) (on, known bool) {
	switch strings.ToLower(ps) {
	case "off", "poweringon":
		return false, true
	case "on", "paused", "poweringoff":
		return true, true
	}
	return false, false
}

// waitPower polls the system as MAAS does until it reads as want.
func (m *maasClient) waitPower(t *testing.T, sysPath string, want bool) {
	t.Helper()
	waitFor(t, powerTimeout, "MAAS power query", func() (bool, string) {
		o, _ := m.object(t, sysPath)
		ps, _ := o["PowerState"].(string)
		on, known := powerIsOn(ps)
		return known && on == want, ps
	})
}

func TestMAASPerNode(t *testing.T) {
	t.Parallel()
	v := validator(t)
	d := startDemo(t, 3)
	m := newMAASClient(d, "node03")
	mach := machine(t, d, "node03")
	pxe := map[string]any{"Boot": map[string]string{"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe"}}

	// No node_id: take Members[0] of Systems, last path segment.
	coll, _ := m.object(t, "redfish/v1/Systems")
	members, _ := coll["Members"].([]any)
	if len(members) != 1 {
		t.Fatalf("per-node Systems has %d members, want exactly 1: %v", len(members), coll)
	}
	first, _ := members[0].(map[string]any)["@odata.id"].(string)
	first = strings.TrimSuffix(first, "/")
	nodeID := first[strings.LastIndex(first, "/")+1:]
	if nodeID != "node03" || first != "/bmc/node03/redfish/v1/Systems/node03" {
		t.Fatalf("Members[0] is %q (system id %q), want /bmc/node03/redfish/v1/Systems/node03", first, nodeID)
	}
	// MAAS retries a 404 with a trailing slash; the slash form must work too.
	if o, _ := m.object(t, "redfish/v1/Systems/"); o["Members@odata.count"] != 1.0 {
		t.Errorf("Systems/ (trailing slash) differs: %v", o)
	}
	sysPath := "redfish/v1/Systems/" + nodeID

	// Query, as before every action.
	sys, h := m.object(t, sysPath)
	if ps, _ := sys["PowerState"].(string); ps != "Off" {
		t.Fatalf("initial PowerState %q, want Off", ps)
	}
	if _, ok := sys["@Redfish.Settings"]; ok {
		t.Errorf("system has @Redfish.Settings; MAAS would PATCH the settings object instead")
	}
	tag1 := etag(sys, h)
	if tag1 == "" {
		t.Fatalf("GET %s: no ETag (MAAS sends If-Match only when it sees one; the gateway promises ETags)", sysPath)
	}

	t.Run("patch-if-match", func(t *testing.T) {
		st, _, b := m.do(t, http.MethodPatch, sysPath, pxe, map[string]string{"If-Match": tag1})
		m.ok2xx(t, "PATCH Pxe/Once with If-Match", st, b)
		if b := mach.Boot(); b.Target != "Pxe" || b.Enabled != "Once" {
			t.Errorf("machine boot override %+v after PATCH, want Pxe/Once", b)
		}
		o, h := m.object(t, sysPath)
		boot, _ := o["Boot"].(map[string]any)
		if boot["BootSourceOverrideTarget"] != "Pxe" || boot["BootSourceOverrideEnabled"] != "Once" {
			t.Errorf("gateway shows Boot %v after PATCH, want Pxe/Once", boot)
		}
		if etag(o, h) == tag1 {
			t.Errorf("ETag %s unchanged after the Boot changed", tag1)
		}
	})

	t.Run("patch-stale-if-match", func(t *testing.T) {
		before := mach.Status().CommandCount
		hdd := map[string]any{"Boot": map[string]string{"BootSourceOverrideEnabled": "Continuous", "BootSourceOverrideTarget": "Hdd"}}
		st, _, b := m.do(t, http.MethodPatch, sysPath, hdd, map[string]string{"If-Match": tag1})
		if st != http.StatusPreconditionFailed {
			t.Fatalf("PATCH with stale If-Match %s: status %d, want 412; body %s", tag1, st, b)
		}
		if err := v.ValidateError(b); err != nil {
			t.Errorf("412 body does not validate: %v\n%s", err, b)
		}
		if ids := messageIDs(b); len(ids) == 0 || !strings.HasSuffix(ids[0], ".PreconditionFailed") {
			t.Errorf("412 MessageIds %v, want Base.*.PreconditionFailed", ids)
		}
		if bt := mach.Boot(); bt.Target != "Pxe" || bt.Enabled != "Once" || mach.Status().CommandCount != before {
			t.Errorf("refused PATCH reached the BMC: boot %+v, commands %d -> %d", bt, before, mach.Status().CommandCount)
		}
	})

	t.Run("patch-without-if-match", func(t *testing.T) {
		// Clear the override behind the gateway's back so that this PATCH
		// has to reach the BMC to be seen there.
		if err := mach.SetBoot("test", simulator.Boot{Target: "None", Enabled: "Disabled"}); err != nil {
			t.Fatal(err)
		}
		st, _, b := m.do(t, http.MethodPatch, sysPath, pxe, nil)
		m.ok2xx(t, "PATCH Pxe/Once without If-Match", st, b)
		if bt := mach.Boot(); bt.Target != "Pxe" || bt.Enabled != "Once" {
			t.Errorf("machine boot override %+v after PATCH without If-Match, want Pxe/Once", bt)
		}
	})

	reset := sysPath + "/Actions/ComputerSystem.Reset"
	t.Run("power-on", func(t *testing.T) {
		// MAAS "on": query (off), PXE, On, wait.
		o, h := m.object(t, sysPath)
		st, _, b := m.do(t, http.MethodPatch, sysPath, pxe, map[string]string{"If-Match": etag(o, h)})
		m.ok2xx(t, "PATCH Pxe/Once before On", st, b)
		st, _, b = m.do(t, http.MethodPost, reset, map[string]string{"ResetType": "On"}, nil)
		m.ok2xx(t, "Reset On", st, b)
		m.waitPower(t, sysPath, true)
		waitMachine(t, d, "node03", "On")
	})

	t.Run("power-off", func(t *testing.T) {
		// MAAS "off": query (on), ForceOff, wait, PXE.
		st, _, b := m.do(t, http.MethodPost, reset, map[string]string{"ResetType": "ForceOff"}, nil)
		m.ok2xx(t, "Reset ForceOff", st, b)
		m.waitPower(t, sysPath, false)
		waitMachine(t, d, "node03", "Off")
		o, h := m.object(t, sysPath)
		if ps := o["PowerState"]; ps != "Off" {
			t.Errorf("PowerState %v once the machine is off, want Off", ps)
		}
		st, _, b = m.do(t, http.MethodPatch, sysPath, pxe, map[string]string{"If-Match": etag(o, h)})
		m.ok2xx(t, "PATCH Pxe/Once after ForceOff", st, b)
	})

	st := mach.Status()
	if st.PowerOnCount != 1 || st.PowerOffCount != 1 || accepted(st, "On") != 1 || accepted(st, "ForceOff") != 1 {
		t.Errorf("node03 machine: %d power-ons, %d power-offs, commands %+v; want one On, one ForceOff",
			st.PowerOnCount, st.PowerOffCount, st.Commands)
	}
	for _, other := range []string{"node01", "node02"} {
		if n := machine(t, d, other).Status().CommandCount; n != 0 {
			t.Errorf("%s's BMC got %d commands from node03's per-node view", other, n)
		}
	}
}
