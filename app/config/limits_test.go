package config

import (
	"strings"
	"testing"
	"time"
)

func TestLimitsDefaults(t *testing.T) {
	c, err := Parse([]byte("accounts: [{user: a, password: b}]"))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Limits
	if time.Duration(l.ReadHeaderTimeout) != 10*time.Second || time.Duration(l.ReadTimeout) != 30*time.Second ||
		time.Duration(l.WriteTimeout) != time.Minute || time.Duration(l.IdleTimeout) != 2*time.Minute ||
		l.MaxHeaderBytes != 16384 || l.UnauthenticatedBodyBytes != 4096 || l.MaxConnections != 1024 || l.MaxConnectionsPerClient != 128 {
		t.Errorf("limits defaults: %+v", l)
	}
	if len(c.TrustedProxies) != 0 {
		t.Errorf("trusted proxies by default: %v", c.TrustedProxies)
	}
	c, err = Parse([]byte("accounts: [{user: a, password: b}]\nlimits: {max_connections: 10, max_connections_per_client: 2, read_timeout: 15s}\ntrusted_proxies: [10.0.0.0/8, 192.0.2.1, '2001:db8::1']"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.MaxConnections != 10 || c.Limits.MaxConnectionsPerClient != 2 ||
		time.Duration(c.Limits.ReadTimeout) != 15*time.Second || c.Limits.MaxHeaderBytes != 16384 {
		t.Errorf("parsed: %+v", c.Limits)
	}
	if p := c.TrustedProxyPrefixes(); len(p) != 3 || p[1].String() != "192.0.2.1/32" || p[2].Bits() != 128 {
		t.Errorf("trusted proxies: %v", p)
	}
}

// TestLimitsBad: every bad value is named by its field.
func TestLimitsBad(t *testing.T) {
	const acct = "accounts: [{user: a, password: b}]\n"
	cases := []struct{ yaml, want string }{
		{"limits: {read_header_timeout: 0s}", "limits.read_header_timeout:"},
		{"limits: {read_timeout: 2s, read_header_timeout: 5s}", "limits.read_timeout:"},
		{"limits: {write_timeout: 2h}", "limits.write_timeout:"},
		{"limits: {idle_timeout: 1ms}", "limits.idle_timeout:"},
		{"limits: {max_header_bytes: 100}", "limits.max_header_bytes:"},
		{"limits: {unauthenticated_body_bytes: 100000}", "limits.unauthenticated_body_bytes:"},
		{"limits: {max_connections: 0}", "limits.max_connections:"},
		{"limits: {max_connections: 10, max_connections_per_client: 11}", "limits.max_connections_per_client:"},
		{"limits: {max_conns: 1}", `limits.max_conns: unknown key; did you mean "max_connections"?`},
		{"trusted_proxies: [10.0.0.0/8, proxy.example]", "trusted_proxies[1]:"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(acct + c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.yaml, err, c.want)
		}
	}
}
