package events

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeResolver answers from a table; other names do not resolve.
type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range f[host] {
		out = append(out, netip.MustParseAddr(s))
	}
	if len(out) == 0 {
		return nil, errors.New("no such host")
	}
	return out, nil
}

func TestCheckDestination(t *testing.T) {
	res := fakeResolver{
		"hooks.example.net": {"203.0.113.10"},
		"localhost":         {"127.0.0.1", "::1"},
		"mixed.example.net": {"203.0.113.11", "10.0.0.5"},
		"lab.internal":      {"10.20.0.9"},
		"bmc-net.example":   {"192.168.7.7"},
	}
	none, _ := ParseAllowList(nil)
	some, err := ParseAllowList([]string{"127.0.0.1/32", "fe80::/10", "lab.internal", "192.168.7.7"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		dest    string
		allow   AllowList
		kind    InvalidKind // -1: accepted
		because string
	}{
		{"https://hooks.example.net/events", none, -1, ""},
		{"http://203.0.113.10:8080/x", none, -1, ""},
		{"http://127.0.0.1:9000/", none, Refused, "loopback"},
		{"http://127.8.9.10/", none, Refused, "loopback"},
		{"http://[::1]:9000/", none, Refused, "loopback"},
		{"http://[::ffff:127.0.0.1]/", none, Refused, "loopback"},
		{"http://169.254.169.254/latest/meta-data", none, Refused, "link-local"},
		{"http://[fe80::1]/", none, Refused, "link-local"},
		{"http://0.0.0.0/", none, Refused, "unspecified"},
		{"http://[::]/", none, Refused, "unspecified"},
		{"http://224.0.0.1/", none, Refused, "multicast"},
		{"http://10.1.2.3/", none, Refused, "private"},
		{"http://172.16.0.1/", none, Refused, "private"},
		{"http://192.168.1.1/", none, Refused, "private"},
		{"http://[fd00::1]/", none, Refused, "private"},
		{"http://100.64.0.1/", none, Refused, "reserved"},
		{"http://localhost:9000/", none, Refused, "loopback"},
		{"http://mixed.example.net/", none, Refused, "private"},
		{"http://nowhere.example.net/", none, Refused, "cannot resolve"},
		{"http://lab.internal/", none, Refused, "private"},
		{"http://127.0.0.1:9000/", some, -1, ""},
		{"http://127.0.0.2:9000/", some, Refused, "loopback"},
		{"http://[fe80::1]/", some, -1, ""},
		{"http://lab.internal/", some, -1, ""},
		{"http://LAB.internal./", some, -1, ""},
		{"http://bmc-net.example/", some, -1, ""},
		{"ftp://hooks.example.net/", none, Format, "http"},
		{"/relative", none, Format, "absolute"},
		{"hooks.example.net:80", none, Format, "absolute"},
		{"https://user:pw@hooks.example.net/", none, Format, "credentials"},
		{"http://hooks.example.net/#frag", none, Format, "fragment"},
		{"http://bad_host!/", none, Format, ""},
	}
	for _, c := range cases {
		_, err := c.allow.CheckDestination(context.Background(), res, c.dest)
		if c.kind == -1 {
			if err != nil {
				t.Errorf("%s: refused: %v", c.dest, err)
			}
			continue
		}
		var ie *InvalidError
		if !errors.As(err, &ie) {
			t.Errorf("%s: accepted (err %v); want refusal", c.dest, err)
			continue
		}
		if ie.Kind != c.kind || ie.Property != "Destination" || !strings.Contains(ie.Reason, c.because) {
			t.Errorf("%s: kind %d %q; want kind %d mentioning %q", c.dest, ie.Kind, ie.Reason, c.kind, c.because)
		}
	}
}

func TestParseAllowListErrors(t *testing.T) {
	if _, err := ParseAllowList([]string{"10.0.0.0/8", "not a host", "300.1.1.1/8"}); err == nil ||
		!strings.Contains(err.Error(), "[1]") || !strings.Contains(err.Error(), "[2]") {
		t.Errorf("err = %v; want entries [1] and [2] named", err)
	}
}

// TestDialerRefusesAtConnectTime: the address actually dialled is checked,
// whatever the name resolved to when the subscription was made.
func TestDialerRefusesAtConnectTime(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	none, _ := ParseAllowList(nil)
	byName, _ := ParseAllowList([]string{"localhost"})
	for _, c := range []struct {
		name  string
		allow AllowList
		url   string
		ok    bool
	}{
		{"loopback address", none, srv.URL, false},
		{"name resolving to loopback", none, "http://localhost" + port, false},
		{"name on the list", byName, "http://localhost" + port, true},
	} {
		cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: c.allow.Dialer(time.Second)}}
		resp, err := cl.Get(c.url)
		if resp != nil {
			resp.Body.Close()
		}
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "not on events.allow_destinations") {
			t.Errorf("%s: error does not say why: %v", c.name, err)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}
