package config

import (
	"path/filepath"
	"strings"
)

// TLSMinVersions are the accepted tls.min_version values.
var TLSMinVersions = []string{"1.2", "1.3"}

// SelfSigned reports whether the gateway makes (and keeps) its own
// certificate: TLS is on and no certificate is configured.
func (t TLS) SelfSigned() bool { return !t.Disabled && t.Cert == "" }

func (t TLS) validate(bad func(field, format string, a ...any)) {
	if t.Disabled && (t.Cert != "" || t.Key != "") {
		bad("tls.disabled", "true cannot be combined with tls.cert and tls.key")
	}
	if t.MinVersion != "" && !contains(TLSMinVersions, t.MinVersion) {
		bad("tls.min_version", "%q is not one of %s", t.MinVersion, strings.Join(TLSMinVersions, ", "))
	}
	if t.Dir != "" && !filepath.IsAbs(t.Dir) {
		bad("tls.dir", "%q is not an absolute path", t.Dir)
	}
}
