package proxy

import (
	"errors"
	"net/url"
	"strings"
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
	perNode bool     // the request came under /bmc/<node>
	bmcPath string   // escaped BMC path to request
	segs    []string // decoded segments below the node's resource
	gwPath  string   // the gateway path as the client sent it (escaped)
}

// errNotProxied is why resolve refused a path; it always answers 404.
var errNotProxied = errors.New("not a proxied path")

// resolve maps an escaped gateway path
//
//	[/bmc/<node>]/redfish/v1/{Systems|Managers|Chassis}/<node>/<rest>
//
// onto the BMC's resource path + "/" + <rest>. It is pure: no I/O.
//
// <rest> must be non-empty: the node's System, Manager and Chassis resources
// themselves are rendered by the gateway (redfish/), not passed through.
// Each segment of <rest> is decoded once and refused if it is empty (except
// a trailing slash), "." or ".." (also before a ';' parameter, "..;"), or
// holds '/', '\', '%' (double encoding), or a control character: whatever
// the BMC's web server does with such a path, the request stays inside the
// node's subtree. The escaped segments are forwarded as the client sent them.
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
	seg, rest, _ := strings.Cut(rest, "/")
	if !p.isNode(seg) || rest == "" {
		return nil, errNotProxied
	}
	parts := strings.Split(rest, "/")
	rt.segs = make([]string, 0, len(parts))
	for i, s := range parts {
		if s == "" && i == len(parts)-1 {
			break // one trailing slash is kept and forwarded
		}
		d, err := url.PathUnescape(s)
		if err != nil || !safeSegment(d) {
			return nil, errNotProxied
		}
		rt.segs = append(rt.segs, d)
	}
	rt.bmcPath = st.bmc + "/" + rest
	return rt, nil
}

// isNode reports whether the escaped path segment names this proxy's node.
func (p *Proxy) isNode(seg string) bool {
	d, err := url.PathUnescape(seg)
	return err == nil && d == p.node
}

// safeSegment reports whether a decoded path segment can be forwarded.
func safeSegment(d string) bool {
	name, _, _ := strings.Cut(d, ";")
	if d == "" || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(d); i++ {
		switch c := d[i]; {
		case c == '/', c == '\\', c == '%', c < 0x20, c == 0x7f:
			return false
		}
	}
	return true
}

// powerActions are the actions that change the node's power state. They go
// through the serializer (DESIGN.md §3, §4 invariant 1), never around it.
var powerActions = []string{"ComputerSystem.Reset", "Chassis.Reset"}

// isPowerAction reports whether decoded segments end in a power action.
func isPowerAction(segs []string) bool {
	if len(segs) == 0 {
		return false
	}
	last := segs[len(segs)-1]
	for _, a := range powerActions {
		if strings.EqualFold(last, a) || strings.EqualFold(last, "#"+a) {
			return true
		}
	}
	return false
}
