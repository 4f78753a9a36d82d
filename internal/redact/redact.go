// Package redact takes out of an error text what must not reach a client:
// URLs, host:port and IP addresses, socket paths and password-like values
// (issue 10: error bodies revealed the Redis address and BMC URLs). The
// full text belongs in the log.
package redact

import "regexp"

// redactions replace what names a place or a secret in an error text.
var redactions = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?i)\b(password|passwd|pass|pw|secret|token)(\s*[=:]\s*)("[^"]*"|\S+)`), "$1$2<hidden>"},
	{regexp.MustCompile(`\b[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`), "<url>"},
	{regexp.MustCompile(`\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.%\w]*\](:\d{1,5})?`), "<address>"},
	{regexp.MustCompile(`\b(\d{1,3}\.){3}\d{1,3}(:\d{1,5})?\b`), "<address>"},
	{regexp.MustCompile(`(^|[^\w:])[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){1,6}:[0-9A-Fa-f]{1,4}(%\w+)?\b`), "$1<address>"},
	{regexp.MustCompile(`\b[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*:\d{1,5}\b`), "<address>"},
	{regexp.MustCompile(`\b(lookup|dial unix|unix) [^\s:]+`), "$1 <address>"},
}

// Text replaces URLs, host:port and IP addresses, socket paths and
// password-like values in s.
func Text(s string) string {
	for _, r := range redactions {
		s = r.re.ReplaceAllString(s, r.with)
	}
	return s
}
