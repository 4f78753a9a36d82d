package proxy

import (
	"encoding/json"
	"reflect"
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
