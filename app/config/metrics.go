package config

import (
	"net"
	"strings"
)

// Metrics is where GET /metrics (Prometheus) is served.
//
// By default it is served on the API listener (listen, in TLS when the API
// is) and a scrape must log in as any account (Basic or X-Auth-Token): the
// API listener faces every client of the gateway, and the metrics name its
// version and commit and show the fleet's activity. With listen set it is
// served there instead, in plain HTTP, and not on the API listener; auth
// is then off unless set, as for any exporter on a monitoring network.
type Metrics struct {
	// Listen is a host:port of a listener of its own for /metrics
	// (default none: the API listener).
	Listen string `yaml:"listen"`
	// Auth requires a scrape to log in as any account (default true on the
	// API listener, false on a metrics listener of its own).
	Auth *bool `yaml:"auth"`
}

// RequireAuth reports whether a scrape must log in.
func (m Metrics) RequireAuth() bool {
	if m.Auth != nil {
		return *m.Auth
	}
	return m.Listen == ""
}

// validateMetrics checks metrics.listen: host:port, and not the API's or
// the profiles' address.
func (c *Config) validateMetrics(bad func(field, format string, a ...any)) {
	l := c.Metrics.Listen
	if l == "" {
		return
	}
	if _, _, err := net.SplitHostPort(l); err != nil {
		bad("metrics.listen", "%q is not host:port", l)
		return
	}
	if strings.HasSuffix(l, ":0") {
		return // a port picked at start (tests): never the same as another
	}
	if l == c.Listen {
		bad("metrics.listen", "is the API's listen address; leave metrics.listen out to serve /metrics on the API listener")
	}
	if l == c.DebugListen {
		bad("metrics.listen", "is debug_listen's address; the profiles have a listener of their own")
	}
}
