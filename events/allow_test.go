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

// TestEmbeddedIPv4Refused: IPv6 forms that carry an IPv4 address, and IPv4
// written in decimal, octal or hex, are judged by what they reach (issue
// 10, item 7: [::7f00:1] was accepted as 127.0.0.1). Each is refused both
// when subscribing and by the dialler's check of the connected address.
func TestEmbeddedIPv4Refused(t *testing.T) {
	res := fakeResolver{
		// what a C-library resolver makes of the numeric forms
		"2130706433": {"127.0.0.1"}, "0x7f.1": {"127.0.0.1"}, "0177.0.0.1": {"127.0.0.1"}, "127.1": {"127.0.0.1"},
		"0x7f000001": {"127.0.0.1"}, "017700000001": {"127.0.0.1"}, "127.0.0.1.": {"127.0.0.1"}, "10.0.0.1.": {"10.0.0.1"},
		"0xa9.0xfe.0xa9.0xfe": {"169.254.169.254"},
		"host1.example.net":   {"203.0.113.12"},
	}
	none, _ := ParseAllowList(nil)
	loop, _ := ParseAllowList([]string{"127.0.0.1/32"})
	cases := []struct {
		dest    string
		allow   AllowList
		kind    InvalidKind
		because string
	}{
		// IPv4-compatible (::/96)
		{"http://[::7f00:1]/", none, Refused, "embedding 127.0.0.1, a loopback"},
		{"http://[::127.0.0.1]:8080/", none, Refused, "loopback"},
		{"http://[::a00:1]/", none, Refused, "embedding 10.0.0.1, a private"},
		{"http://[::a9fe:a9fe]/", none, Refused, "link-local"},
		{"http://[::cb00:710a]/", none, Refused, "IPv4-compatible"}, // even a public IPv4
		{"http://[::7f00:1]/", loop, Refused, "loopback"},           // 127.0.0.1/32 does not cover it
		// IPv4-mapped (::ffff:0:0/96), in every spelling
		{"http://[::ffff:127.0.0.1]/", none, Refused, "loopback"},
		{"http://[::ffff:7f00:1]/", none, Refused, "loopback"},
		{"http://[0:0:0:0:0:ffff:7f00:0001]/", none, Refused, "loopback"},
		{"http://[::ffff:10.0.0.1]/", none, Refused, "private"},
		{"http://[::ffff:169.254.169.254]/", none, Refused, "link-local"},
		{"http://[::ffff:0.0.0.0]/", none, Refused, "unspecified"},
		{"http://[::ffff:224.0.0.1]/", none, Refused, "multicast"},
		// IPv4-translated (::ffff:0:0:0/96)
		{"http://[::ffff:0:7f00:1]/", none, Refused, "IPv4-translated address embedding 127.0.0.1"},
		// NAT64
		{"http://[64:ff9b::7f00:1]/", none, Refused, "NAT64 address embedding 127.0.0.1, a loopback"},
		{"http://[64:ff9b::10.1.2.3]/", none, Refused, "private"},
		{"http://[64:ff9b::cb00:710a]/", none, Refused, "NAT64"},
		{"http://[64:ff9b:1::a00:1]/", none, Refused, "local-use NAT64"},
		// 6to4 (2002:AABB:CCDD::/48)
		{"http://[2002:7f00:1::1]/", none, Refused, "6to4 address embedding 127.0.0.1, a loopback"},
		{"http://[2002:c0a8:101::1]/", none, Refused, "embedding 192.168.1.1, a private"},
		{"http://[2002:a9fe:a9fe::]/", none, Refused, "link-local"},
		{"http://[2002:cb00:710a::1]/", none, Refused, "6to4"},
		// Teredo (2001::/32; client address inverted in the last 32 bits)
		{"http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", none, Refused, "Teredo address embedding 127.0.0.1, a loopback"},
		{"http://[2001::1]/", none, Refused, "Teredo"},
		{"http://[2001:2::1]/", none, Refused, "reserved"},
		// decimal, octal, hex and short IPv4 forms
		{"http://2130706433/", none, Format, "dotted-decimal"},
		{"http://2130706433/", loop, Format, "dotted-decimal"},
		{"http://0x7f.1/", none, Format, "dotted-decimal"},
		{"http://0x7f000001/", none, Format, "dotted-decimal"},
		{"http://0177.0.0.1/", none, Format, "dotted-decimal"},
		{"http://017700000001/", none, Format, "dotted-decimal"},
		{"http://127.1/", none, Format, "dotted-decimal"},
		{"http://127.0.0.1./", none, Format, "dotted-decimal"},
		{"http://10.0.0.1.:80/", none, Format, "dotted-decimal"},
		{"http://0xa9.0xfe.0xa9.0xfe/", none, Format, "dotted-decimal"},
		{"http://0x/", none, Format, "dotted-decimal"},
		// still accepted: a public address, a name with digits, an allowed one
		{"http://[2606:4700::6810:84e5]/", none, -1, ""},
		{"http://203.0.113.10/", none, -1, ""},
		{"http://127.0.0.1/", loop, -1, ""},
		{"http://host1.example.net/", none, -1, ""},
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
		if ie.Kind != c.kind || !strings.Contains(ie.Reason, c.because) {
			t.Errorf("%s: kind %d %q; want kind %d mentioning %q", c.dest, ie.Kind, ie.Reason, c.kind, c.because)
		}
	}

	// connect time: every embedded form is refused by CheckIP, which the
	// dialler's Control hook applies to the address being connected
	for _, s := range []string{"::7f00:1", "::ffff:127.0.0.1", "::ffff:0:7f00:1", "64:ff9b::7f00:1", "2002:7f00:1::1",
		"2001:0:4136:e378:8000:63bf:80ff:fffe", "::a00:1", "64:ff9b:1::1"} {
		if err := none.CheckIP(netip.MustParseAddr(s)); err == nil || !strings.Contains(err.Error(), "not on events.allow_destinations") {
			t.Errorf("CheckIP(%s) = %v; want a refusal", s, err)
		}
	}
	// 127.0.0.1/32 covers the mapped form (the same socket address), not
	// the IPv4-compatible one
	if err := loop.CheckIP(netip.MustParseAddr("::ffff:127.0.0.1")); err != nil {
		t.Errorf("::ffff:127.0.0.1 with 127.0.0.1/32 allowed: %v", err)
	}
	if err := loop.CheckIP(netip.MustParseAddr("::7f00:1")); err == nil {
		t.Error("::7f00:1 allowed by 127.0.0.1/32")
	}
	d := none.Dialer(time.Second)
	for _, addr := range []string{"2130706433:80", "0x7f.1:80", "0177.0.0.1:80", "127.1:80", "[::7f00:1]:80", "[::ffff:127.0.0.1]:80"} {
		conn, err := d(context.Background(), "tcp", addr)
		if conn != nil {
			conn.Close()
		}
		if err == nil {
			t.Errorf("dialler connected to %s", addr)
		}
	}

	// the allow-list itself takes no numeric host names
	if _, err := ParseAllowList([]string{"0x7f.1"}); err == nil {
		t.Error(`ParseAllowList accepted "0x7f.1" as a host name`)
	}
}
