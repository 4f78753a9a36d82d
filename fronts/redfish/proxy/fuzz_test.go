package proxy

import (
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// FuzzRewriteLinks: RewriteLinks never panics, refuses exactly the invalid
// JSON, produces valid JSON, and agrees with the decode-walk-encode reference
// (referenceRewrite), whatever the body and the rule.
func FuzzRewriteLinks(f *testing.F) {
	for _, s := range rewriteSeeds {
		f.Add([]byte(s), "/redfish/v1/Systems/1", "/bmc/n17/redfish/v1/Systems/n17")
	}
	f.Add([]byte(`{"a":"/x/y"}`), "/x", "\"\\\n<&>\u2028\xff")
	f.Add([]byte(`["/x",{"/x":"/x#"}]`), "/x", "")
	f.Add([]byte(`"/"`), "", "/y")
	f.Fuzz(func(t *testing.T, body []byte, from, to string) {
		l := Links{Origin: testLinks.Origin, Rules: append([]Rule{{From: from, To: to}}, testLinks.Rules...)}
		out, err := RewriteLinks(body, l)
		if !json.Valid(body) {
			if err == nil {
				t.Fatalf("invalid JSON accepted: %q", body)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid JSON refused: %q: %v", body, err)
		}
		if !json.Valid(out) {
			t.Fatalf("output is not valid JSON:\n in %q\nout %q", body, out)
		}
		if want := referenceRewrite(t, body, l); !reflect.DeepEqual(decodeNumbers(t, out), want) {
			t.Fatalf("differs from the reference:\n in %q\nout %q\nwant %#v", body, out, want)
		}
	})
}

// FuzzResolve: whatever the path, resolve does not panic; what it accepts
// is what the BMC will see: every forwarded segment decodes once to the
// segment the gateway decided on and holds nothing a web server could read
// otherwise; and decide never lets a write naming a power action through.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{
		"/redfish/v1/Systems/n17/Actions/ComputerSystem.Reset;x=1",
		"/redfish/v1/Systems/n17/Actions/ComputerSystem%2EReset",
		"/bmc/n17/redfish/v1/Managers/n17/NetworkProtocol/",
		"/redfish/v1/Chassis/n17/Echo%C3%A9%20x",
		"/redfish/v1/Systems/n17/Bios%2f..",
	} {
		f.Add(s)
	}
	p, err := New(Target{Node: "n17", Endpoint: "http://127.0.0.1:1", SystemPath: "/redfish/v1/Systems/1",
		ManagerPath: "/redfish/v1/Managers/1", ChassisPath: "/redfish/v1/Chassis/1"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, err := p.resolve(path)
		if err != nil {
			return
		}
		bmcSegs := strings.Split(strings.TrimSuffix(rt.bmcPath, "/"), "/")[5:] // after /redfish/v1/<coll>/1
		if len(bmcSegs) != len(rt.segs) {
			t.Fatalf("%q: BMC path %q has %d segments, the gateway decided on %d", path, rt.bmcPath, len(bmcSegs), len(rt.segs))
		}
		for i, s := range bmcSegs {
			d, err := url.PathUnescape(s)
			if err != nil || d != rt.segs[i] {
				t.Fatalf("%q: BMC segment %q is not %q", path, s, rt.segs[i])
			}
			if why := ambiguity(d); why != "" || strings.ContainsAny(s, ";?#") {
				t.Fatalf("%q: forwarded segment %q %s", path, s, why)
			}
		}
		for _, m := range []string{"POST", "PATCH", "PUT", "DELETE"} {
			v := decide(rt, m, RolePrivileges("Administrator"))
			if v.forward() && powerAction(rt.segs) != "" {
				t.Fatalf("%s %q: a power action forwarded", m, path)
			}
		}
	})
}
