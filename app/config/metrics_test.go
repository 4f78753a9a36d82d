package config

import (
	"strings"
	"testing"
)

// TestMetricsSettings: metrics.listen and metrics.auth parse, auth defaults
// to on for the API listener and off for a listener of its own, and a
// listen address that is not host:port, or is the API's or the profiles',
// is refused.
func TestMetricsSettings(t *testing.T) {
	for _, c := range []struct {
		yaml     string
		wantErr  string
		wantAuth bool
	}{
		{"", "", true},
		{"metrics: {auth: false}", "", false},
		{"metrics: {listen: '127.0.0.1:9100'}", "", false},
		{"metrics: {listen: '127.0.0.1:9100', auth: true}", "", true},
		{"metrics: {listen: '9100'}", `metrics.listen: "9100" is not host:port`, false},
		{"metrics: {listen: '127.0.0.1:9000'}", "metrics.listen: is the API's listen address", false},
		{"debug_listen: '127.0.0.1:6060'\nmetrics: {listen: '127.0.0.1:6060'}", "metrics.listen: is debug_listen's address", false},
		{"metrics: {listn: x}", `metrics.listn: unknown key; did you mean "listen"?`, false},
	} {
		cfg, err := Parse([]byte(accountsLine + "listen: 127.0.0.1:9000\n" + c.yaml))
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: %v, want %q", c.yaml, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.yaml, err)
			continue
		}
		if got := cfg.Metrics.RequireAuth(); got != c.wantAuth {
			t.Errorf("%q: RequireAuth %v, want %v", c.yaml, got, c.wantAuth)
		}
	}
}
