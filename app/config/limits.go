package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Limits bound what one client, or all of them together, can hold of the
// Redfish listener (issue 10: slow bodies and connection floods). bmcweb
// has the same kinds of limits.
type Limits struct {
	// ReadHeaderTimeout bounds the arrival of the request line and headers
	// (default 10s); it also bounds the TLS handshake.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading the whole request, body included (default
	// 30s). It ends once the body is read: an SSE stream or a long answer
	// is not cut by it.
	ReadTimeout Duration `yaml:"read_timeout"`
	// WriteTimeout is how long one write of a response may block (the
	// client not reading) before the connection is closed (default 60s).
	// It is per write, so an SSE stream lives as long as its client reads.
	WriteTimeout Duration `yaml:"write_timeout"`
	// IdleTimeout closes a keep-alive connection idle this long (default 120s).
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds the request line and headers (default 16384):
	// larger ones get 431.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// UnauthenticatedBodyBytes bounds the body of a request without
	// credentials, which is only ever a session login (default 4096):
	// larger ones get 413. Authenticated requests have max_body_bytes.
	UnauthenticatedBodyBytes int64 `yaml:"unauthenticated_body_bytes"`
	// MaxConnections bounds the open connections in all (default 1024).
	// Beyond it an idle keep-alive connection is closed to make room, or
	// the new connection is closed at once.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerClient bounds the open connections of one client
	// address (an IPv6 client: its /64) the same way (default 128).
	// Trusted proxies count only towards max_connections.
	MaxConnectionsPerClient int `yaml:"max_connections_per_client"`
}

func defaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout:        Duration(10 * time.Second),
		ReadTimeout:              Duration(30 * time.Second),
		WriteTimeout:             Duration(60 * time.Second),
		IdleTimeout:              Duration(120 * time.Second),
		MaxHeaderBytes:           16 << 10,
		UnauthenticatedBodyBytes: 4 << 10,
		MaxConnections:           1024,
		MaxConnectionsPerClient:  128,
	}
}

func (l Limits) validate(maxBody int64, bad func(field, format string, a ...any)) {
	between := func(field string, d Duration, lo, hi time.Duration) {
		if time.Duration(d) < lo || time.Duration(d) > hi {
			bad(field, "%s is out of range %s..%s", time.Duration(d), shortDur(lo), shortDur(hi))
		}
	}
	between("limits.read_header_timeout", l.ReadHeaderTimeout, 100*time.Millisecond, 5*time.Minute)
	between("limits.read_timeout", l.ReadTimeout, 100*time.Millisecond, time.Hour)
	if l.ReadTimeout < l.ReadHeaderTimeout {
		bad("limits.read_timeout", "%s is shorter than limits.read_header_timeout (%s)", time.Duration(l.ReadTimeout), time.Duration(l.ReadHeaderTimeout))
	}
	between("limits.write_timeout", l.WriteTimeout, 100*time.Millisecond, time.Hour)
	between("limits.idle_timeout", l.IdleTimeout, 100*time.Millisecond, time.Hour)
	if l.MaxHeaderBytes < 4096 || l.MaxHeaderBytes > 1<<20 {
		bad("limits.max_header_bytes", "%d is out of range 4096..1048576", l.MaxHeaderBytes)
	}
	if l.UnauthenticatedBodyBytes < 512 || l.UnauthenticatedBodyBytes > maxBody {
		bad("limits.unauthenticated_body_bytes", "%d is out of range 512..max_body_bytes (%d)", l.UnauthenticatedBodyBytes, maxBody)
	}
	if l.MaxConnections < 1 || l.MaxConnections > 1000000 {
		bad("limits.max_connections", "%d is out of range 1..1000000", l.MaxConnections)
	}
	if l.MaxConnectionsPerClient < 1 || l.MaxConnectionsPerClient > max(l.MaxConnections, 1) {
		bad("limits.max_connections_per_client", "%d is out of range 1..max_connections (%d)", l.MaxConnectionsPerClient, l.MaxConnections)
	}
}

// shortDur writes 5m rather than 5m0s.
func shortDur(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	if s == "" {
		return "0s"
	}
	return s
}

// TrustedProxyPrefixes parses trusted_proxies (validated) into prefixes.
func (c *Config) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parsePrefix takes a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR or an IP address", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func validateTrustedProxies(list []string, bad func(field, format string, a ...any)) {
	for i, s := range list {
		if _, err := parsePrefix(s); err != nil {
			bad(fmt.Sprintf("trusted_proxies[%d]", i), "%v", err)
		}
	}
}
