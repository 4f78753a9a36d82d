package redfish

import (
	"mime"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/schemas"
)

// Checks every request gets before authentication (issue 10): query
// parameters the service does not implement, request bodies that are not
// JSON, and the body size of a request without credentials.

// DefaultUnauthenticatedBodyBytes bounds the body of a request without
// credentials (a session login) unless Options say otherwise.
const DefaultUnauthenticatedBodyBytes = 4 << 10

// supportedQuery lists, per route pattern (without the /bmc/:node
// prefix), the query parameters its handler implements. Any other
// parameter that starts with "$", and "only" and "excerpt", answer 501
// (DSP0266 §7.3 "Query parameters"); other unknown parameters are ignored.
// A handler that implements one must be listed here.
var supportedQuery = map[string][]string{
	"/redfish/v1/EventService/SSE": {"$filter"},
	// The log entry collections are paged by nextLink (audit.go).
	"/redfish/v1/Managers/" + GatewayManager + "/LogServices/Audit/Entries": {"$skiptoken"},
	"/redfish/v1/Systems/:id/LogServices/PowerActions/Entries":              {"$skiptoken"},
	// A bulk task's sub-tasks, by position (bulk.go).
	"/redfish/v1/TaskService/Tasks/:task/SubTasks": {"$skiptoken"},
	// The large collections are paged by $top and $skip (paging.go);
	// Systems' members can be expanded (systems.go).
	"/redfish/v1/Systems":           {"$top", "$skip", "$expand"},
	"/redfish/v1/TaskService/Tasks": {"$top", "$skip"},
}

// requestChecks refuses what no handler should see.
func (s *Server) requestChecks(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := checkQuery(c); err != nil {
			return err
		}
		if err := checkMediaType(c); err != nil {
			return err
		}
		if err := s.capUnauthenticatedBody(c); err != nil {
			return err
		}
		return next(c)
	}
}

// passThroughRoute reports whether the route is a pass-through to a BMC,
// whose query string the BMC interprets.
func passThroughRoute(c echo.Context) bool { return strings.HasSuffix(c.Path(), "/*") }

// checkQuery answers 501 for an unsupported query parameter.
func checkQuery(c echo.Context) error {
	r := c.Request()
	if r.URL.RawQuery == "" || passThroughRoute(c) {
		return nil
	}
	ok := supportedQuery[routeRest(c)]
	var unsupported []string
	for k := range r.URL.Query() {
		if (strings.HasPrefix(k, "$") || k == "only" || k == "excerpt") && !slices.Contains(ok, k) {
			unsupported = append(unsupported, k)
		}
	}
	if len(unsupported) == 0 {
		return nil
	}
	slices.Sort(unsupported)
	msgs := []schemas.Message{schemas.Base(schemas.MsgQueryNotSupported)}
	for _, k := range unsupported {
		msgs = append(msgs, schemas.Base(schemas.MsgQueryParameterUnsupported, k))
	}
	return newError(http.StatusNotImplemented, msgs...).
		withDetail("query parameter " + strings.Join(unsupported, ", ") + " is not supported here")
}

// hasBody reports whether the request carries a body.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// checkMediaType refuses a POST, PATCH or PUT body that is not
// application/json (any parameters, e.g. charset, are accepted): a browser
// holding Basic credentials can send text/plain, form and multipart bodies,
// or one without a Content-Type, to another origin without asking first
// (CSRF); it cannot send application/json that way. Every Redfish client
// (sushy, gofish, redfishtool, MAAS) sends application/json.
func checkMediaType(c echo.Context) error {
	r := c.Request()
	switch r.Method {
	case http.MethodPost, http.MethodPatch, http.MethodPut:
	default:
		return nil
	}
	if !hasBody(r) {
		return nil // a body-less POST (an action without parameters) needs no type
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/json" {
		return nil
	}
	if ct == "" {
		ct = "none"
	}
	return newError(http.StatusUnsupportedMediaType, schemas.Base(schemas.MsgHeaderInvalid, "Content-Type")).
		withDetail("a request body must be application/json; Content-Type is " + strconv.Quote(ct))
}

// loginRoute reports whether the route creates a session (its body
// carries the credentials).
func loginRoute(c echo.Context) bool {
	if c.Request().Method != http.MethodPost {
		return false
	}
	switch routeRest(c) {
	case "/redfish/v1/SessionService/Sessions", "/redfish/v1/SessionService/Sessions/Members":
		return true
	}
	return false
}

// capUnauthenticatedBody bounds the body of a login, and of any request
// without credentials (which is refused before its body is read), to the
// unauthenticated limit: larger bodies are 413 (bmcweb: 4 KiB as well).
func (s *Server) capUnauthenticatedBody(c echo.Context) error {
	r := c.Request()
	if !hasBody(r) {
		return nil
	}
	if !loginRoute(c) && (r.Header.Get("Authorization") != "" || r.Header.Get("X-Auth-Token") != "") {
		return nil // authenticated before its body is read: max_body_bytes applies
	}
	limit := s.unauthBody
	if r.ContentLength > limit {
		return newError(http.StatusRequestEntityTooLarge, schemas.Base(schemas.MsgPayloadTooLarge)).
			withDetail("a request without credentials may carry at most " + strconv.FormatInt(limit, 10) + " bytes")
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, limit) // readBody answers 413 past it
	return nil
}

// ipExtractor is how c.RealIP() finds the client: the socket's address,
// unless the peer is a trusted proxy, whose X-Forwarded-For is followed
// back to the first address that is not a trusted proxy. (echo's default
// believes X-Forwarded-For from anyone, and its trust options believe
// every loopback and private address unless turned off.)
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		_, n, err := net.ParseCIDR(p.Masked().String())
		if err == nil {
			opts = append(opts, echo.TrustIPRange(n))
		}
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
