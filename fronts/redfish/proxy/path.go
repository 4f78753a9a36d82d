package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The gateway collections whose node members are backed by the BMC's own
// resources, in the order of Proxy.subtrees.
var collections = [...]string{"Systems", "Managers", "Chassis"}

// subtree is one of the node's three resources and its path on the BMC.
type subtree struct {
	collection string // "Systems", "Managers" or "Chassis"
	bmc        string // the BMC's resource path; "" when unknown
}

// route is where one gateway request goes; resolve computes it.
type route struct {
	perNode    bool     // the request came under /bmc/<node>
	collection string   // "Systems", "Managers" or "Chassis"
	bmcPath    string   // escaped BMC path to request, in canonical form
	segs       []string // decoded segments below the node's resource
	gwPath     string   // the gateway path as the client sent it (escaped)
}

// errNotProxied is why resolve refused a path outside the node's three
// subtrees; it answers 404.
var errNotProxied = errors.New("not a proxied path")

// ambiguousPathError is a path below the node's resource that a BMC's web
// server could read otherwise than the gateway does; it answers 400.
type ambiguousPathError struct {
	segment string // as the client sent it (escaped)
	why     string
}

func (e *ambiguousPathError) Error() string {
	return fmt.Sprintf("path segment %q %s", e.segment, e.why)
}

// resolve maps an escaped gateway path
//
//	[/bmc/<node>]/redfish/v1/{Systems|Managers|Chassis}/<node>/<rest>
//
// onto the BMC's resource path + "/" + <rest>. It is pure: no I/O.
//
// A path outside the node's three subtrees (another node, another
// collection, an empty <rest>: the node's System, Manager and Chassis are
// rendered by the gateway) is errNotProxied.
//
// Every decision about the request (power actions, privileges) is taken on
// the decoded segments of <rest>, so they must be what the BMC will see:
// resolve decodes each segment once, refuses with *ambiguousPathError any
// segment that a web server could split, strip, re-decode or climb with
// (see ambiguity), and re-encodes the decoded segments in one canonical form
// for the BMC (canonicalSegment), so that "%2E", "%41" and the like reach it
// as the characters the gateway decided on. One trailing slash is kept.
func (p *Proxy) resolve(escaped string) (*route, error) {
	rt := &route{gwPath: escaped}
	rest := escaped
	if after, ok := strings.CutPrefix(rest, "/bmc/"); ok {
		seg, tail, _ := strings.Cut(after, "/")
		if !p.isNode(seg) {
			return nil, errNotProxied
		}
		rt.perNode = true
		rest = "/" + tail
	}
	rest, ok := strings.CutPrefix(rest, "/redfish/v1/")
	if !ok {
		return nil, errNotProxied
	}
	coll, rest, _ := strings.Cut(rest, "/")
	var st *subtree
	for i := range p.subtrees {
		if p.subtrees[i].collection == coll {
			st = &p.subtrees[i]
		}
	}
	if st == nil || st.bmc == "" {
		return nil, errNotProxied
	}
	rt.collection = st.collection
	seg, rest, _ := strings.Cut(rest, "/")
	if !p.isNode(seg) || rest == "" {
		return nil, errNotProxied
	}
	parts := strings.Split(rest, "/")
	rt.segs = make([]string, 0, len(parts))
	var b strings.Builder
	b.WriteString(st.bmc)
	for i, s := range parts {
		if s == "" && i == len(parts)-1 {
			b.WriteByte('/') // one trailing slash is kept and forwarded
			break
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			return nil, &ambiguousPathError{segment: s, why: "is not valid percent-encoding"}
		}
		if why := ambiguity(d); why != "" {
			return nil, &ambiguousPathError{segment: s, why: why}
		}
		rt.segs = append(rt.segs, d)
		b.WriteByte('/')
		b.WriteString(canonicalSegment(d))
	}
	rt.bmcPath = b.String()
	return rt, nil
}

// isNode reports whether the escaped path segment names this proxy's node.
func (p *Proxy) isNode(seg string) bool {
	d, err := url.PathUnescape(seg)
	return err == nil && d == p.node
}

// ambiguity says why a path segment, decoded once, could mean something
// else to the BMC's web server than to the gateway, or "" when it cannot:
//
//   - empty (a "//"), "." or "..": normalised away or climbing, by some
//     servers and not others;
//   - ';' (sent or encoded): a path parameter, which Java servlet
//     containers, Spring and others strip ("Reset;x=1" is "Reset" there);
//   - '/' or '\' once decoded ("%2F", "%5C"): a separator to servers that
//     decode before splitting, or that take '\' for '/';
//   - '?' or '#' once decoded ("%3F", "%23"): the end of the path to
//     servers that decode before parsing;
//   - '%' once decoded ("%252e"): decoded again by some servers;
//   - a control character (NUL included), or invalid UTF-8: truncated,
//     dropped or refused differently along the way;
//   - a leading or trailing blank (space, tab, no-break space, zero-width and
//     other format characters) or a trailing dot: stripped by servers that
//     follow file-system name rules ("Reset." and "Reset " are "Reset").
func ambiguity(d string) string {
	switch {
	case d == "":
		return "is empty"
	case d == "." || d == "..":
		return "is a dot segment"
	case strings.ContainsRune(d, ';'):
		return "has a ';' (a path parameter)"
	case strings.ContainsAny(d, `/\`):
		return "has an encoded '/' or '\\'"
	case strings.ContainsAny(d, "?#"):
		return "has an encoded '?' or '#'"
	case strings.ContainsRune(d, '%'):
		return "is encoded twice"
	case !utf8.ValidString(d):
		return "is not UTF-8"
	}
	for _, r := range d {
		if unicode.IsControl(r) {
			return "has a control character"
		}
	}
	first, _ := utf8.DecodeRuneInString(d)
	last, _ := utf8.DecodeLastRuneInString(d)
	if blank(first) || blank(last) {
		return "begins or ends with a blank"
	}
	if last == '.' {
		return "ends with a dot"
	}
	return ""
}

// blank reports whether r is white space or an invisible format character
// (zero-width space, byte-order mark, ...).
func blank(r rune) bool {
	return unicode.IsSpace(r) || unicode.Is(unicode.Cf, r)
}

// canonicalSegment encodes a decoded path segment in the one form the BMC
// gets: the characters RFC 3986 §3.3 allows in a segment (unreserved,
// sub-delims, ':' and '@') as they are, everything else percent-encoded.
func canonicalSegment(d string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(d); i++ {
		c := d[i]
		if c < 0x80 && pchar[c] {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// pchar marks the ASCII characters a path segment holds unencoded
// (RFC 3986 §3.3), ';' excepted (a segment never has one, see ambiguity).
var pchar = func() (t [128]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~!$&'()*+,=:@" {
		t[c] = true
	}
	return t
}()
