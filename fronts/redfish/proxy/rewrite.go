package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// Rule maps one subtree of URIs onto another: a URI equal to From, or
// starting with From followed by '/', '?' or '#', has From replaced by To.
// Both are URI paths in their escaped form, as found in @odata.id values
// (DSP0266 §6.1 "Resource URIs"), without a trailing slash.
type Rule struct {
	From string // e.g. "/redfish/v1/Systems/1" (the BMC's)
	To   string // e.g. "/bmc/n17/redfish/v1/Systems/n17" (the gateway's)
}

// Links says which URIs RewriteURI and RewriteLinks rewrite.
type Links struct {
	// Origin, when set ("https://10.0.0.5"), also makes absolute URIs on
	// that origin eligible: a matching one is rewritten to a relative
	// gateway path, the origin dropped. Absolute URIs on any other origin
	// are never rewritten.
	Origin string
	// Rules are tried all; the longest matching From wins.
	Rules []Rule
}

// ErrNotJSON is returned by RewriteLinks for a body that is not valid JSON.
var ErrNotJSON = errors.New("proxy: body is not valid JSON")

// RewriteURI rewrites one URI (a relative path, or an absolute URI on
// l.Origin) by the longest rule of l whose From is a path prefix of it at a
// segment boundary. It reports whether a rule matched; when none did, uri is
// returned unchanged.
func RewriteURI(uri string, l Links) (string, bool) {
	p := uri
	if o := strings.TrimSuffix(l.Origin, "/"); o != "" && len(p) > len(o) && p[len(o)] == '/' && strings.EqualFold(p[:len(o)], o) {
		p = p[len(o):]
	}
	if p == "" || p[0] != '/' {
		return uri, false
	}
	best := -1
	for i, r := range l.Rules {
		if r.From == "" || !strings.HasPrefix(p, r.From) {
			continue
		}
		if len(p) > len(r.From) && !strings.ContainsRune("/?#", rune(p[len(r.From)])) {
			continue // "/redfish/v1/Systems/10" is not under "/redfish/v1/Systems/1"
		}
		if best < 0 || len(r.From) > len(l.Rules[best].From) {
			best = i
		}
	}
	if best < 0 {
		return uri, false
	}
	r := l.Rules[best]
	return r.To + p[len(r.From):], true
}

// RewriteLinks rewrites, in a JSON document, every string value (at any
// depth, whatever its key: "@odata.id", "target", "Members@odata.nextLink",
// "@Redfish.ActionInfo", OEM link properties, ...) that as a whole is a URI
// RewriteURI rewrites. Object keys, and URIs embedded in longer strings
// (message texts), are left alone.
//
// It works on the bytes rather than decoding to any and re-encoding: key
// order, number literals, whitespace and every untouched string are kept
// byte for byte, and a body with nothing to rewrite is returned as is (the
// same slice). It returns ErrNotJSON when body is not valid JSON; on success
// the result is valid JSON.
func RewriteLinks(body []byte, l Links) ([]byte, error) {
	if !json.Valid(body) {
		return nil, ErrNotJSON
	}
	var (
		out  []byte // nil until the first change
		last int    // body[:last] is already in out
		enc  stringEncoder
	)
	for i := 0; i < len(body); i++ {
		if body[i] != '"' {
			continue
		}
		// In valid JSON every '"' outside a string opens one; find its end.
		start, escaped := i, false
		for i++; body[i] != '"'; i++ {
			if body[i] == '\\' {
				i++
				escaped = true
			}
		}
		end := i + 1 // just past the closing quote
		if isKey(body, end) {
			continue
		}
		raw := body[start+1 : end-1]
		// Cheap filter: a URI starts with '/' or "http"; an escaped first
		// character ("\/redfish", "\u002f") starts with '\'.
		if len(raw) == 0 || (raw[0] != '/' && raw[0] != '\\' && raw[0] != 'h' && raw[0] != 'H') {
			continue
		}
		var s string
		if escaped {
			if err := json.Unmarshal(body[start:end], &s); err != nil {
				return nil, err // unreachable for valid JSON
			}
		} else {
			s = string(raw)
		}
		ns, ok := RewriteURI(s, l)
		if !ok {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(body)+len(body)/8)
		}
		out = append(out, body[last:start]...)
		out = enc.append(out, ns)
		last = end
	}
	if out == nil {
		return body, nil
	}
	return append(out, body[last:]...), nil
}

// isKey reports whether the string that ended just before body[end] is an
// object key, i.e. the next non-blank byte is ':'.
func isKey(body []byte, end int) bool {
	for ; end < len(body); end++ {
		switch body[end] {
		case ' ', '\t', '\n', '\r':
			continue
		case ':':
			return true
		}
		return false
	}
	return false
}

// stringEncoder encodes strings as JSON literals without HTML escaping,
// reusing one buffer.
type stringEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

func (e *stringEncoder) append(dst []byte, s string) []byte {
	if e.enc == nil {
		e.enc = json.NewEncoder(&e.buf)
		e.enc.SetEscapeHTML(false)
	}
	e.buf.Reset()
	_ = e.enc.Encode(s) // a string always encodes
	return append(dst, bytes.TrimSuffix(e.buf.Bytes(), []byte{'\n'})...)
}
