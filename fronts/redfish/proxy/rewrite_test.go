package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

var testLinks = Links{
	Origin: "https://10.0.0.5",
	Rules: []Rule{
		{From: "/redfish/v1/Systems/1", To: "/bmc/n17/redfish/v1/Systems/n17"},
		{From: "/redfish/v1/Managers/BMC", To: "/bmc/n17/redfish/v1/Managers/n17"},
		{From: "/redfish/v1/Systems/1/Sub", To: "/elsewhere"}, // longest prefix wins
	},
}

func TestRewriteURI(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"/redfish/v1/Systems/1", "/bmc/n17/redfish/v1/Systems/n17", true},
		{"/redfish/v1/Systems/1/", "/bmc/n17/redfish/v1/Systems/n17/", true},
		{"/redfish/v1/Systems/1/Bios", "/bmc/n17/redfish/v1/Systems/n17/Bios", true},
		{"/redfish/v1/Systems/1?$expand=*", "/bmc/n17/redfish/v1/Systems/n17?$expand=*", true},
		{"/redfish/v1/Systems/1#/Oem", "/bmc/n17/redfish/v1/Systems/n17#/Oem", true},
		{"/redfish/v1/Systems/1/Sub/x", "/elsewhere/x", true},
		{"/redfish/v1/Systems/1/Subway", "/bmc/n17/redfish/v1/Systems/n17/Subway", true},
		{"https://10.0.0.5/redfish/v1/Managers/BMC/Jobs/1", "/bmc/n17/redfish/v1/Managers/n17/Jobs/1", true},
		{"HTTPS://10.0.0.5/redfish/v1/Managers/BMC", "/bmc/n17/redfish/v1/Managers/n17", true},
		// Not rewritten.
		{"/redfish/v1/Systems/10", "/redfish/v1/Systems/10", false},
		{"/redfish/v1/Systems/1x/Bios", "/redfish/v1/Systems/1x/Bios", false},
		{"/redfish/v1/Systems", "/redfish/v1/Systems", false},
		{"/redfish/v1/TaskService/Tasks/1", "/redfish/v1/TaskService/Tasks/1", false},
		{"https://10.0.0.6/redfish/v1/Systems/1", "https://10.0.0.6/redfish/v1/Systems/1", false},
		{"https://10.0.0.5/redfish/v1/UpdateService", "https://10.0.0.5/redfish/v1/UpdateService", false},
		{"https://10.0.0.5", "https://10.0.0.5", false},
		{"redfish/v1/Systems/1", "redfish/v1/Systems/1", false},
		{"", "", false},
	} {
		got, ok := RewriteURI(c.in, testLinks)
		if got != c.want || ok != c.ok {
			t.Errorf("RewriteURI(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestRewriteLinks(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, in, want string }{
		{"value at any key",
			`{"@odata.id":"/redfish/v1/Systems/1","target":"/redfish/v1/Systems/1/Actions/X","Uri":"/redfish/v1/Managers/BMC"}`,
			`{"@odata.id":"/bmc/n17/redfish/v1/Systems/n17","target":"/bmc/n17/redfish/v1/Systems/n17/Actions/X","Uri":"/bmc/n17/redfish/v1/Managers/n17"}`},
		{"keys untouched",
			`{"/redfish/v1/Systems/1": "/redfish/v1/Systems/1" }`,
			`{"/redfish/v1/Systems/1": "/bmc/n17/redfish/v1/Systems/n17" }`},
		{"arrays and layout",
			"[ \"/redfish/v1/Systems/1\" ,\n\t\"/redfish/v1/Systems/10\", 1e400, -0.0, true, null ]",
			"[ \"/bmc/n17/redfish/v1/Systems/n17\" ,\n\t\"/redfish/v1/Systems/10\", 1e400, -0.0, true, null ]"},
		{"escaped input",
			`{"a":"\/redfish\/v1\/Systems\/1\/Bios","b":"\u002fredfish/v1/Managers/BMC","c":"\"/redfish/v1/Systems/1\""}`,
			`{"a":"/bmc/n17/redfish/v1/Systems/n17/Bios","b":"/bmc/n17/redfish/v1/Managers/n17","c":"\"/redfish/v1/Systems/1\""}`},
		{"no HTML escaping, escapes kept in the rest",
			`{"a":"/redfish/v1/Systems/1/<x>&y","b":"\u00e9\n"}`,
			`{"a":"/bmc/n17/redfish/v1/Systems/n17/<x>&y","b":"\u00e9\n"}`},
		{"absolute on the BMC's origin",
			`{"a":"https://10.0.0.5/redfish/v1/Systems/1","b":"https://10.0.0.9/redfish/v1/Systems/1"}`,
			`{"a":"/bmc/n17/redfish/v1/Systems/n17","b":"https://10.0.0.9/redfish/v1/Systems/1"}`},
		{"top-level string", `"/redfish/v1/Systems/1"`, `"/bmc/n17/redfish/v1/Systems/n17"`},
		{"embedded in text", `{"Message":"see /redfish/v1/Systems/1"}`, `{"Message":"see /redfish/v1/Systems/1"}`},
	} {
		got, err := RewriteLinks([]byte(c.in), testLinks)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

func TestRewriteLinksUnchangedBodyIsTheSameSlice(t *testing.T) {
	t.Parallel()
	in := []byte(`{"@odata.id":"/redfish/v1/UpdateService","n":[1,2,3]}`)
	got, err := RewriteLinks(in, testLinks)
	if err != nil || &got[0] != &in[0] || len(got) != len(in) {
		t.Errorf("RewriteLinks copied or changed a body with nothing to rewrite: %s, %v", got, err)
	}
}

func TestRewriteLinksRefusesInvalidJSON(t *testing.T) {
	t.Parallel()
	for _, in := range []string{``, `{`, `{"a":"/redfish/v1/Systems/1"`, `"unterminated`, `{"a":1}{"b":2}`, "\xff"} {
		if _, err := RewriteLinks([]byte(in), testLinks); !errors.Is(err, ErrNotJSON) {
			t.Errorf("RewriteLinks(%q): err %v, want ErrNotJSON", in, err)
		}
	}
}

func TestRewriteLinkHeader(t *testing.T) {
	t.Parallel()
	in := `</redfish/v1/Systems/1/Bios>; rel=describedby, <https://10.0.0.5/redfish/v1/Managers/BMC>;rel=x, <bad`
	want := `</bmc/n17/redfish/v1/Systems/n17/Bios>; rel=describedby, </bmc/n17/redfish/v1/Managers/n17>;rel=x, <bad`
	if got := rewriteLinkHeader(in, testLinks); got != want {
		t.Errorf("rewriteLinkHeader:\n got %s\nwant %s", got, want)
	}
}

// referenceRewrite is the slow, obviously right version of RewriteLinks:
// decode to any, rewrite every string value, re-encode, decode again (so
// that strings are compared after the same UTF-8 sanitising as the output).
func referenceRewrite(t *testing.T, body []byte, l Links) any {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("reference decode: %v", err)
	}
	var walk func(any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case string:
			s, _ := RewriteURI(v, l)
			return s
		case []any:
			for i := range v {
				v[i] = walk(v[i])
			}
		case map[string]any:
			for k := range v {
				v[k] = walk(v[k])
			}
		}
		return v
	}
	enc, err := json.Marshal(walk(v))
	if err != nil {
		t.Fatalf("reference encode: %v", err)
	}
	return decodeNumbers(t, enc)
}

func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

func TestRewriteLinksMatchesReference(t *testing.T) {
	t.Parallel()
	for _, in := range rewriteSeeds {
		got, err := RewriteLinks([]byte(in), testLinks)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if want := referenceRewrite(t, []byte(in), testLinks); !reflect.DeepEqual(decodeNumbers(t, got), want) {
			t.Errorf("%s:\n got %s\nwant %v", in, got, want)
		}
	}
}

var rewriteSeeds = []string{
	`{"@odata.id":"/redfish/v1/Systems/1/Bios","Actions":{"#Bios.ResetBios":{"target":"/redfish/v1/Systems/1/Bios/Actions/Bios.ResetBios"}}}`,
	`{"Members":[{"@odata.id":"/redfish/v1/Systems/1/EthernetInterfaces/1"}],"Members@odata.count":1,"Members@odata.nextLink":"/redfish/v1/Systems/1/EthernetInterfaces?$skip=1"}`,
	`{"a":"\/redfish\/v1\/Systems\/1","b":["https://10.0.0.5/redfish/v1/Managers/BMC#/x",{"c":"\u002fredfish/v1/Systems/1"}],"n":12345678901234567890}`,
	`{"dup":"/redfish/v1/Systems/1","dup":"/redfish/v1/Managers/BMC"}`,
	"{\"s\":\"/redfish/v1/Systems/1/\xff\xfe\",\"t\":\"\u2028\"}",
	`[]`, `"x"`, `0`, `{"":""}`,
}
