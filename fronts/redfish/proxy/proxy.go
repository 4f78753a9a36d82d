// Package proxy is fishgate's transparent pass-through to Redfish BMCs
// (docs/architecture.md#pass-through): everything under a Redfish-backed
// node's System, Manager and Chassis that the gateway does not render itself
// is forwarded to the node's BMC, with the gateway's credentials swapped for
// the BMC's and the BMC's links rewritten to the gateway's URLs.
//
// It is one net/http/httputil.ReverseProxy per BMC, customised by its Rewrite
// and ModifyResponse hooks, not a handler per Redfish resource
// (docs/decisions/0010-pass-through-as-one-reverse-proxy.md).
//
// # Requests
//
// A gateway path [<base>]/redfish/v1/{Systems|Managers|Chassis}/<node>/<rest>,
// <base> being "" (aggregate view) or "/bmc/<node>" (per-node view), goes to
// Target.SystemPath, ManagerPath or ChassisPath + "/" + <rest> on the BMC.
// Anything else (another node, an unknown subtree, an empty <rest>) answers
// 404 ResourceMissingAtURI and is not forwarded.
//
// Every decision is taken on the path the BMC will see: each segment of
// <rest> is decoded once and sent re-encoded in one canonical form, and a
// segment that a web server could read otherwise (empty, "." or "..", a ';'
// path parameter, an encoded '/', '\', '?' or '#', double encoding, a control
// character, a leading or trailing blank, a trailing dot; see ambiguity)
// answers 400 InvalidURI and is not forwarded: "Reset;x=1", "Reset%3Bx",
// "Reset." and "Reset%20" are not "Reset" to the gateway, but are to some
// BMCs. The query string goes verbatim ($expand, $select, $filter, $skip,
// ...).
// Method, body and headers (If-Match, If-None-Match, Content-Type,
// OData-Version, ...) are forwarded, except: the client's Authorization,
// X-Auth-Token and Cookie are dropped and HTTP Basic authentication with the
// BMC's account is sent instead (no BMC session: nothing to log in, leak or
// expire, and no session slot of the BMC is held; the gofish backend keeps
// its own pooled session for power and boot); Accept-Encoding is dropped so
// that the transport negotiates gzip itself and hands us plain bytes; Upgrade
// is refused; X-Forwarded-* and Forwarded are not sent; X-Request-Id is the
// request's id at the gateway (internal/requestid).
//
// Power and boot go through the serializer, never around it
// (docs/architecture.md#one-command-per-node): a write naming a power action
// anywhere in its path (ComputerSystem.Reset, Chassis.Reset,
// PowerSupply.Reset, in any case), or to any action of the System or Chassis
// itself, answers 400 ActionNotSupported, and a write to a path directly
// below the System or Chassis that is none of their known sub-resources (the
// System's pending settings hold its Boot) 405 OperationNotAllowed (see
// decide).
//
// A request body is read whole before anything goes to the BMC: one larger
// than the caller's MaxBodyBytes (max_body_bytes) answers 413
// PayloadTooLarge. A JSON one has gateway links of this node (either base)
// rewritten back to the BMC's paths, so that a client can send back a link
// it read.
//
// # Responses
//
// Location, Content-Location and Link headers, and every string value of a
// JSON body that is a URI under the BMC's SystemPath, ManagerPath or
// ChassisPath (relative, or absolute on the BMC's origin), are rewritten to
// the gateway's URL with the request's <base> (see RewriteLinks). Links
// elsewhere on the BMC (TaskService, UpdateService, SessionService, another
// System of a multi-node BMC, a subtree whose path is unknown) are left as
// they are: the gateway has nothing to map them to, so they are not
// followable through the gateway. @odata.context values are not links under
// those subtrees and stay as sent.
//
// A JSON body is read whole for that, and only up to Target.MaxRewriteBytes
// (1 MiB): a larger one answers 502 GeneralError saying so (passed on
// unrewritten, its links would lead to other gateway resources), and at
// most the Limiter's slots of JSON bodies are held at once in the whole
// process (limits.go), so memory stays bounded however many clients ask.
// Bodies compressed with an encoding the transport did not undo, or not
// JSON (by Content-Type, or by content when the BMC sent none), are passed
// through unchanged and streamed. ETag is kept
// as the BMC sent it, so If-Match sent back by the client matches on the BMC.
// Set-Cookie, WWW-Authenticate, X-Auth-Token and Authentication-Info from
// the BMC are dropped.
//
// A 401 from the BMC (the gateway's BMC credentials are wrong) answers 502
// ResourceAtUriUnauthorized: the client's own credentials were fine. A BMC
// that cannot be reached (no connection, or its name does not resolve)
// answers 503 ServiceTemporarilyUnavailable with Retry-After, one that does
// not answer within Target.Timeout 504 GeneralError, and one whose answer
// cannot be used (connection dropped, not HTTP, TLS refused) 502
// GeneralError; each as a Redfish error body whose message names the problem.
// Headers of the proxied response replace headers of the same name that the
// caller set before ServeHTTP (the router's OData-Version, Cache-Control).
//
// # Audit
//
// Every write (any method but GET, HEAD and OPTIONS), forwarded or refused,
// is logged at INFO as "pass-through write" with its method, path, user,
// the client's address (Caller.Remote, else the socket's) and status.
//
// # Mounting
//
// The router authenticates, keeps its own routes (the node's
// System, Manager and Chassis resources, ComputerSystem.Reset, ...) and sends
// the rest of the three subtrees of Redfish-backed nodes here, in both views:
//
//	for _, coll := range []string{"Systems", "Managers", "Chassis"} {
//		e.Match(methods, "/redfish/v1/"+coll+"/:id/*", passThrough)
//		e.Match(methods, "/bmc/:node/redfish/v1/"+coll+"/:id/*", passThrough)
//	}
//
// where passThrough looks up the *Proxy of c.Param("id") (404 when the node
// is unknown or not Redfish-backed) and calls its ServeHTTP(c.Response(),
// r) with r carrying the authenticated caller (WithCaller: user and the
// privileges of their role); a request without one is refused. Build one
// Proxy per Redfish-backed node and keep it: it holds the node's connection
// pool to the BMC.
//
// # Privileges
//
// Every request needs what the Redfish privilege registry (DSP8011,
// embedded: privilege_registry.json) lists for its entity and method: the
// path is mapped to its resource type by the DMTF schemas' layout
// (entities.go; SubordinateOverrides applied, so an EthernetInterface of the
// Manager needs ConfigureManager to change and one of the System
// ConfigureComponents), and the caller must hold the privileges, or the
// answer is 403 InsufficientPrivilege. A path the gateway cannot map is read
// with Login and changed with ConfigureManager only. ConfigureSelf does not
// carry over: the BMC account is the gateway's, never the caller's own.
package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fishgate/fishgate/internal/requestid"
	"github.com/fishgate/fishgate/schemas"
)

const (
	// DefaultTimeout bounds one proxied exchange, response body included,
	// when Target.Timeout is zero.
	DefaultTimeout = 2 * time.Minute
	// dialTimeout bounds connecting (TCP and TLS) to the BMC.
	dialTimeout = 10 * time.Second
)

// Target is one Redfish BMC behind one gateway node.
type Target struct {
	// Node is the gateway node id, e.g. "n17".
	Node string
	// Endpoint is the BMC's base URL, "https://10.0.0.5" or
	// "http://127.0.0.1:41234", without path, query or user info.
	Endpoint string
	// User and Password are the BMC account, sent as HTTP Basic auth on
	// every request.
	User, Password string
	// Insecure skips TLS certificate verification of the BMC.
	Insecure bool
	// SystemPath, ManagerPath and ChassisPath are the BMC's own resource
	// paths ("/redfish/v1/Systems/1", "/redfish/v1/Managers/BMC",
	// "/redfish/v1/Chassis/1") in escaped form. An empty one means unknown:
	// that subtree answers 404 and its links are not rewritten.
	SystemPath, ManagerPath, ChassisPath string
	// Timeout bounds one exchange with the BMC, from the request to the last
	// byte of the response; 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxRewriteBytes is the largest JSON response passed on (its links
	// rewritten); a larger one is a 502. 0 means DefaultMaxRewriteBytes.
	MaxRewriteBytes int64
	// Limiter bounds the JSON responses held at once for rewriting; nil
	// means DefaultLimiter, shared by the whole process.
	Limiter *Limiter
}

// Proxy forwards one node's pass-through requests to its BMC. It is safe for
// concurrent use and immutable after New.
type Proxy struct {
	node     string // decoded node id
	endpoint url.URL
	user     string
	password string
	timeout  time.Duration

	maxRewrite  int64 // Target.MaxRewriteBytes
	limiter     *Limiter
	rewriteWait time.Duration // rewriteWait; shorter in tests

	subtrees [len(collections)]subtree
	// out rewrites BMC links in responses: [0] for the aggregate view,
	// [1] for the per-node view. in rewrites gateway links (both views) in
	// request bodies back to the BMC's.
	out [2]Links
	in  Links

	transport *http.Transport
	rp        *httputil.ReverseProxy
	log       *slog.Logger
}

// New checks t and builds its proxy. It does no I/O. A nil logger means
// slog.Default().
func New(t Target, logger *slog.Logger) (*Proxy, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if t.Node == "" || t.Node == "." || t.Node == ".." || strings.ContainsAny(t.Node, "/\\") {
		return nil, fmt.Errorf("proxy: invalid node id %q", t.Node)
	}
	u, err := url.Parse(t.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("proxy: node %s: endpoint %q: want http(s)://host[:port]", t.Node, t.Endpoint)
	}
	if t.Timeout <= 0 {
		t.Timeout = DefaultTimeout
	}
	if t.MaxRewriteBytes <= 0 {
		t.MaxRewriteBytes = DefaultMaxRewriteBytes
	}
	if t.Limiter == nil {
		t.Limiter = DefaultLimiter
	}
	p := &Proxy{
		node:     t.Node,
		endpoint: url.URL{Scheme: u.Scheme, Host: u.Host},
		user:     t.User,
		password: t.Password,
		timeout:  t.Timeout,
		log:      logger.With("node", t.Node, "component", "proxy"),

		maxRewrite:  t.MaxRewriteBytes,
		limiter:     t.Limiter,
		rewriteWait: rewriteWait,
	}
	for i, path := range []string{t.SystemPath, t.ManagerPath, t.ChassisPath} {
		path = strings.TrimSuffix(path, "/")
		if path != "" && !validResourcePath(path) {
			return nil, fmt.Errorf("proxy: node %s: %s path %q: want an absolute path like /redfish/v1/%s/1", t.Node, collections[i], path, collections[i])
		}
		p.subtrees[i] = subtree{collection: collections[i], bmc: path}
	}

	origin := p.endpoint.String()
	bases := [2]string{"", "/bmc/" + url.PathEscape(t.Node)}
	for v, base := range bases {
		p.out[v].Origin = origin
		for _, st := range p.subtrees {
			if st.bmc == "" {
				continue
			}
			gw := base + "/redfish/v1/" + st.collection + "/" + url.PathEscape(t.Node)
			p.out[v].Rules = append(p.out[v].Rules, Rule{From: st.bmc, To: gw})
			p.in.Rules = append(p.in.Rules, Rule{From: gw, To: st.bmc})
		}
	}

	p.transport = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       time.Minute,
		TLSHandshakeTimeout:   dialTimeout,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig: &tls.Config{
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: t.Insecure, //nolint:gosec // operator's choice, per BMC
		},
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewriteRequest,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.handleError,
		Transport:      p.transport,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	return p, nil
}

// validResourcePath reports whether a BMC resource path is absolute and
// clean: no empty, "." or ".." segment, no query or fragment.
func validResourcePath(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#\\") {
		return false
	}
	for _, seg := range strings.Split(p[1:], "/") {
		d, err := url.PathUnescape(seg)
		if err != nil || d == "" || d == "." || d == ".." {
			return false
		}
	}
	return true
}

// Close releases the idle connections to the BMC. The Proxy still works
// afterwards (it would open new ones).
func (p *Proxy) Close() { p.transport.CloseIdleConnections() }

// routeKey carries the *route of a request from ServeHTTP to the hooks.
type routeKey struct{}

func routeOf(r *http.Request) *route { return r.Context().Value(routeKey{}).(*route) }

// allowedMethods are forwarded; others answer 405.
var allowedMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete, http.MethodOptions}

// ServeHTTP forwards r, whose path is one of
//
//	<base>/redfish/v1/Systems/<node>/<rest>
//	<base>/redfish/v1/Managers/<node>/<rest>
//	<base>/redfish/v1/Chassis/<node>/<rest>
//
// with <base> "" or "/bmc/<node>", to the BMC, and answers with the BMC's
// response, links rewritten. See the package documentation for the rules.
// The router has authenticated the client and named it (WithCaller).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	caller, _ := callerOf(r)
	if !reads(r.Method) {
		sw := &statusWriter{ResponseWriter: w}
		w = sw
		defer p.audit(r, caller, sw, time.Now())
	}
	if !slices.Contains(allowedMethods, r.Method) {
		w.Header().Set("Allow", strings.Join(allowedMethods, ", "))
		writeError(w, r, http.StatusMethodNotAllowed, "", schemas.Base(schemas.MsgOperationNotAllowed))
		return
	}
	rt, err := p.resolve(r.URL.EscapedPath())
	var ambiguous *ambiguousPathError
	switch {
	case errors.As(err, &ambiguous):
		p.log.Debug("ambiguous path refused", "method", r.Method, "path", r.URL.EscapedPath(), "why", ambiguous.Error())
		writeError(w, r, http.StatusBadRequest,
			fmt.Sprintf("The URI %s is refused: its %s; it is not passed through to the BMC.", r.URL.EscapedPath(), ambiguous),
			schemas.Base(schemas.MsgInvalidURI, r.URL.EscapedPath()))
		return
	case err != nil:
		p.log.Debug("path not proxied", "method", r.Method, "path", r.URL.EscapedPath())
		writeError(w, r, http.StatusNotFound, "", schemas.Base(schemas.MsgResourceMissingAtURI, r.URL.EscapedPath()))
		return
	}
	if v := decide(rt, r.Method, caller.Privileges); !v.forward() {
		if v.allow != "" {
			w.Header().Set("Allow", v.allow)
		}
		writeError(w, r, v.status, v.detail, v.msg)
		return
	}
	if r.Header.Get("Upgrade") != "" {
		writeError(w, r, http.StatusBadRequest, "Protocol upgrades are not passed through to the BMC.", schemas.Base(schemas.MsgGeneralError))
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
	defer cancel()
	out := r.WithContext(context.WithValue(ctx, routeKey{}, rt))
	limit := caller.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	if err := p.readRequestBody(out, limit); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, r, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("The request body is larger than %s, the most the gateway accepts; it is not passed through to the BMC.", byteCount(limit)),
				schemas.Base(schemas.MsgPayloadTooLarge))
			return
		}
		p.log.Debug("reading request body", "path", rt.gwPath, "err", err)
		writeError(w, r, http.StatusBadRequest, "The request body could not be read.", schemas.Base(schemas.MsgGeneralError))
		return
	}
	// The whole exchange, the client's reading of the answer included, ends
	// by the deadline: a client that does not read does not hold a rewrite
	// slot (or the BMC connection) longer. The next request on the
	// connection starts without it.
	rc := http.NewResponseController(w)
	if d, ok := ctx.Deadline(); ok {
		_ = rc.SetWriteDeadline(d) // not every writer can; nothing to do then
		defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	}
	p.rp.ServeHTTP(&overrideWriter{ResponseWriter: w, h: http.Header{}}, out)
}

// audit logs a write at INFO, whatever became of it (DSP0266 §13: changes
// are accountable): method, path as the client sent it, user, the client's
// address (Caller.Remote, else the socket's; never a header the client
// set), status, how long it took.
func (p *Proxy) audit(r *http.Request, c Caller, sw *statusWriter, start time.Time) {
	remote := c.Remote
	if remote == "" {
		remote = r.RemoteAddr
		if host, _, err := net.SplitHostPort(remote); err == nil {
			remote = host
		}
	}
	status := sw.status
	if status == 0 {
		status = http.StatusOK // nothing written: net/http answers 200
	}
	p.log.Info("pass-through write", "method", r.Method, "path", r.URL.EscapedPath(), "user", c.User,
		"remote", remote, "status", status, "duration", time.Since(start).Round(time.Millisecond))
}

// statusWriter records the status of the response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && (code < 100 || code > 199) {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// overrideWriter makes the proxied response's headers replace, rather than
// add to, headers the caller set before ServeHTTP (the router's OData-Version
// and Cache-Control would otherwise appear twice). Headers set only by the
// caller are kept.
type overrideWriter struct {
	http.ResponseWriter
	h     http.Header // what ReverseProxy sets
	wrote bool
}

func (o *overrideWriter) Header() http.Header { return o.h }

func (o *overrideWriter) WriteHeader(code int) {
	if o.wrote {
		return
	}
	dst := o.ResponseWriter.Header()
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An informational response: its headers must not stay for the
		// final one (ReverseProxy clears o.h itself afterwards).
		saved := dst.Clone()
		maps.Copy(dst, o.h)
		o.ResponseWriter.WriteHeader(code)
		clear(dst)
		maps.Copy(dst, saved)
		return
	}
	maps.Copy(dst, o.h)
	o.wrote = true
	o.ResponseWriter.WriteHeader(code)
}

func (o *overrideWriter) Write(b []byte) (int, error) {
	if !o.wrote {
		o.WriteHeader(http.StatusOK)
	}
	return o.ResponseWriter.Write(b)
}

// Flush sends the header if not yet sent, then flushes.
func (o *overrideWriter) Flush() {
	if !o.wrote {
		o.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(o.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer (Flush).
func (o *overrideWriter) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// readRequestBody reads the body of r whole, before anything is sent to the
// BMC, and rewrites the gateway's links in a JSON one back to the BMC's. A
// body larger than limit is an *http.MaxBytesError, and nothing is sent.
func (p *Proxy) readRequestBody(r *http.Request, limit int64) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	if r.ContentLength > limit {
		return &http.MaxBytesError{Limit: limit}
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return err
	}
	if int64(len(buf)) > limit {
		return &http.MaxBytesError{Limit: limit}
	}
	if maybeJSON(r.Header) {
		if nb, err := RewriteLinks(buf, p.in); err == nil {
			buf = nb
		} // else not JSON: the BMC says what it thinks of it
	}
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.ContentLength, r.TransferEncoding = int64(len(buf)), nil
	return nil
}

// rewriteRequest is the ReverseProxy Rewrite hook: target URL and
// credentials. Hop-by-hop headers and X-Forwarded-* are already gone.
func (p *Proxy) rewriteRequest(pr *httputil.ProxyRequest) {
	rt := routeOf(pr.In)
	u := p.endpoint
	u.RawPath = rt.bmcPath
	u.Path, _ = url.PathUnescape(rt.bmcPath) // resolve checked every segment
	u.RawQuery = pr.In.URL.RawQuery          // verbatim: the gateway does not interpret it
	pr.Out.URL = &u
	pr.Out.Host = ""
	h := pr.Out.Header
	for _, k := range []string{"Authorization", "X-Auth-Token", "Cookie", "Accept-Encoding", "Connection", "Upgrade"} {
		h.Del(k)
	}
	pr.Out.SetBasicAuth(p.user, p.password)
	if id := requestid.From(pr.In.Context()); id != "" {
		h.Set(requestid.Header, id) // the gateway's id for the request, given or made
	}
}

// bmcAuthError is a 401 from the BMC: the gateway's BMC account is wrong.
type bmcAuthError struct{ status string }

func (e *bmcAuthError) Error() string { return "BMC refused the credentials: " + e.status }

// modifyResponse is the ReverseProxy ModifyResponse hook: headers and links.
func (p *Proxy) modifyResponse(res *http.Response) error {
	rt := routeOf(res.Request)
	if res.StatusCode == http.StatusUnauthorized {
		return &bmcAuthError{status: res.Status}
	}
	links := p.out[0]
	if rt.perNode {
		links = p.out[1]
	}
	h := res.Header
	for _, k := range []string{"Set-Cookie", "WWW-Authenticate", "X-Auth-Token", "Authentication-Info"} {
		h.Del(k)
	}
	for _, k := range []string{"Location", "Content-Location"} {
		if v := h.Get(k); v != "" {
			if nv, ok := RewriteURI(v, links); ok {
				h.Set(k, nv)
			}
		}
	}
	if vs := h.Values("Link"); len(vs) > 0 {
		h.Del("Link")
		for _, v := range vs {
			h.Add("Link", rewriteLinkHeader(v, links))
		}
	}
	p.log.Debug("proxied", "method", res.Request.Method, "path", rt.gwPath, "status", res.StatusCode)

	if !maybeJSON(h) || (h.Get("Content-Encoding") != "" && !strings.EqualFold(h.Get("Content-Encoding"), "identity")) {
		return nil
	}
	if res.Request.Method == http.MethodHead {
		h.Del("Content-Length") // the rewritten GET body would not have this length
		return nil
	}
	if res.Body == nil || res.Body == http.NoBody || res.ContentLength == 0 ||
		res.StatusCode == http.StatusNoContent || res.StatusCode == http.StatusNotModified {
		return nil
	}
	if res.ContentLength > p.maxRewrite {
		return &tooLargeError{limit: p.maxRewrite, size: res.ContentLength}
	}
	// A slot of the limiter is held from the first byte read until the
	// client has the last (releasingBody), unless the body is small.
	release := func() {}
	if res.ContentLength < 0 || res.ContentLength > smallBody {
		var err error
		if release, err = p.limiter.acquire(res.Request.Context(), p.rewriteWait); err != nil {
			return err
		}
	}
	buf, err := io.ReadAll(io.LimitReader(res.Body, p.maxRewrite+1))
	res.Body.Close()
	if err != nil {
		release()
		return fmt.Errorf("node %s: reading the BMC's response: %w", p.node, err)
	}
	if int64(len(buf)) > p.maxRewrite {
		release()
		return &tooLargeError{limit: p.maxRewrite, size: -1}
	}
	nb, err := RewriteLinks(buf, links)
	if err != nil {
		nb = buf // not JSON after all: pass it as it is
	}
	res.Body = &releasingBody{Reader: bytes.NewReader(nb), release: release}
	res.ContentLength, res.TransferEncoding = int64(len(nb)), nil
	h.Set("Content-Length", strconv.Itoa(len(nb)))
	return nil
}

// maybeJSON reports whether a message with header h may carry JSON: a JSON
// media type (application/json, application/*+json), or none at all
// (RewriteLinks then checks the content).
func maybeJSON(h http.Header) bool {
	ct := h.Get("Content-Type")
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// rewriteLinkHeader rewrites the URI references of one Link header value
// (RFC 8288: `<uri>; rel=...`, comma separated).
func rewriteLinkHeader(v string, l Links) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			break
		}
		b.WriteString(v[:i+1])
		uri, _ := RewriteURI(v[i+1:i+j], l)
		b.WriteString(uri)
		b.WriteByte('>')
		v = v[i+j+1:]
	}
	b.WriteString(v)
	return b.String()
}

// UnreachableRetryAfter is the Retry-After, in seconds, of the 503 answered
// while a node's BMC cannot be reached.
const UnreachableRetryAfter = 10

// handleError is the ReverseProxy ErrorHandler: the BMC could not be reached,
// did not answer in time, refused our credentials, or its response could not
// be read. r is the outbound request. Every answer names the problem.
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, err error) {
	rt := routeOf(r)
	var (
		authErr *bmcAuthError
		netErr  net.Error
	)
	var tooLarge *tooLargeError
	switch {
	case errors.As(err, &tooLarge):
		p.log.Warn("BMC answer too large to pass on", "path", rt.gwPath, "err", err)
		writeError(w, r, http.StatusBadGateway,
			fmt.Sprintf("The BMC of node %s answered, but %s; ask for less ($top and $skip, $select).", p.node, tooLarge),
			schemas.Base(schemas.MsgGeneralError))
	case errors.Is(err, errRewriteBusy):
		p.log.Warn("no rewrite slot", "path", rt.gwPath, "waited", p.rewriteWait)
		writeUnavailable(w, r, busyRetryAfter, fmt.Sprintf("The gateway is passing on too many large answers at once (node %s).", p.node))
	case errors.As(err, &authErr):
		p.log.Warn("BMC refused the gateway's credentials", "path", rt.gwPath, "status", authErr.status)
		writeError(w, r, http.StatusBadGateway,
			fmt.Sprintf("The BMC of node %s refused the gateway's credentials.", p.node),
			schemas.Base(schemas.MsgResourceAtUriUnauthorized, rt.gwPath, authErr.status))
	case Unreachable(err):
		p.log.Warn("BMC unreachable", "path", rt.gwPath, "err", err)
		writeUnavailable(w, r, UnreachableRetryAfter, fmt.Sprintf("The BMC of node %s cannot be reached: %v.", p.node, err))
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		p.log.Warn("BMC did not answer in time", "path", rt.gwPath, "timeout", p.timeout, "err", err)
		writeError(w, r, http.StatusGatewayTimeout,
			fmt.Sprintf("The BMC of node %s did not answer within %s.", p.node, p.timeout),
			schemas.Base(schemas.MsgGeneralError))
	default:
		if errors.Is(err, context.Canceled) {
			p.log.Debug("client went away", "path", rt.gwPath)
		} else {
			p.log.Warn("BMC answered badly", "path", rt.gwPath, "err", err)
		}
		writeError(w, r, http.StatusBadGateway,
			fmt.Sprintf("The BMC of node %s did not give a usable answer: %v.", p.node, err),
			schemas.Base(schemas.MsgGeneralError))
	}
}

// Unreachable reports whether err means that a BMC could not be reached at
// all: no connection could be made (refused, no route, dial timeout) or its
// name did not resolve. Nothing was sent, so trying again later is right.
func Unreachable(err error) bool {
	var (
		op  *net.OpError
		dns *net.DNSError
	)
	return (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &dns)
}
