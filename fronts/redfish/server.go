// Package redfish is fishgate's northbound API: a Redfish service
// (DSP0266) that presents every managed node as a ComputerSystem with its
// Manager and Chassis, in one aggregate service root and, per node, under
// /bmc/<node>/redfish/v1 as if the node were its own BMC
// (docs/architecture.md#per-node-views, #redfish-conformance).
//
// Routing, authentication, rendering and errors live here; node state and
// power actions belong to the serializer, reached through the Nodes interface.
package redfish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/events"
	"github.com/fishgate/fishgate/fronts/redfish/proxy"
	"github.com/fishgate/fishgate/internal/metrics"
	"github.com/fishgate/fishgate/internal/requestid"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
)

const requestTimeout = 30 * time.Second

// Nodes is what the API needs from the serializer.
type Nodes interface {
	IDs() []string
	View(id string) (serializer.View, error)
	Reset(ctx context.Context, id string, r schemas.ResetType, req string) (serializer.Admission, error)
	SetBoot(ctx context.Context, id string, b schemas.BootOverride) error
	CancelTask(ctx context.Context, taskID string) (serializer.CancelResult, error)
	Task(ctx context.Context, id string) (serializer.TaskRecord, error)
	TaskIDs(ctx context.Context, nodes []string, limit int) ([]string, error)
	TaskPage(ctx context.Context, skip, top int) ([]string, int, error)
}

// Options configures a Server.
type Options struct {
	Nodes    Nodes
	Redis    redis.UniversalClient
	Accounts []Account
	// AccountPolicy is the AccountService's password, lockout and session
	// policy (zero values take its defaults).
	AccountPolicy  AccountPolicy
	SessionTimeout time.Duration // idle timeout; default 30 min
	MaxBodyBytes   int64         // default 64 KiB
	// Passthrough returns the pass-through handler (fronts/redfish/proxy) for a node's
	// other resources, or nil when its BMC has none (not Redfish).
	Passthrough func(ctx context.Context, node string) (http.Handler, error)
	// Events serves the EventService (events/); nil: no EventService.
	Events *events.Bus
	// Sources are the AggregationService's sources (sources.go); nil: no
	// AggregationSources or ConnectionMethods.
	Sources Sources
	// SSEKeepAlive is the pause between SSE keep-alive comments (default 15s).
	SSEKeepAlive time.Duration
	// MaxSSEStreams and MaxSSEStreamsPerUser bound the SSE streams open at
	// once on this server, in all and for one account (defaults 256, 16).
	MaxSSEStreams, MaxSSEStreamsPerUser int
	// ServiceID seeds the service root UUID so that it is stable for one
	// deployment (replicas share it).
	ServiceID string
	Logger    *slog.Logger
	// UnauthenticatedBodyBytes bounds the body of a request without
	// credentials, a session login (default 4 KiB).
	UnauthenticatedBodyBytes int64
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client (c.RealIP: logs, audit); none: the socket's address.
	TrustedProxies []netip.Prefix
	// Bulk runs Aggregate.Reset and AggregationService.Reset (nil: they
	// answer 503).
	Bulk BulkPower
	// Metrics counts the requests (nil: none are counted) and, with
	// MetricsRoute, is served at GET /metrics, behind a login when
	// MetricsAuth (metrics.go).
	Metrics                   *metrics.Metrics
	MetricsRoute, MetricsAuth bool
	// NodeAddresses are the nodes' own addresses and host names
	// (nodeaddr.go); nil: every request sees the aggregate service at
	// /redfish/v1.
	NodeAddresses NodeAddresses
}

// Server is the northbound Redfish service.
type Server struct {
	passthrough func(ctx context.Context, node string) (http.Handler, error)
	nodes       Nodes
	sessions    *SessionStore
	accounts    *AccountStore
	redis       redis.UniversalClient
	stop        context.CancelFunc
	allow       map[string]string // route pattern -> Allow header
	maxBody     int64
	uuid        string
	log         *slog.Logger
	echo        *echo.Echo
	// events serves the EventService (events.go); nil when there is none.
	events       *events.Bus
	sources      Sources // nil: no AggregationSources
	sseKeepAlive time.Duration
	sse          *sseLimiter
	following    atomic.Int64 // SSE streams past their first block
	// unauthBody and trusted are Options.UnauthenticatedBodyBytes and
	// Options.TrustedProxies (requests.go).
	unauthBody int64
	trusted    []netip.Prefix
	// bulk is Options.Bulk (bulk.go).
	bulk BulkPower
	// metrics is Options.Metrics (metrics.go, accesslog.go).
	metrics *metrics.Metrics
	// addrs is Options.NodeAddresses (nodeaddr.go).
	addrs NodeAddresses
}

// New builds the server and its routes.
func New(o Options) (*Server, error) {
	if o.Nodes == nil || o.Redis == nil {
		return nil, fmt.Errorf("redfish: Nodes and Redis are required")
	}
	if o.SessionTimeout == 0 {
		o.SessionTimeout = 30 * time.Minute
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 64 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = requestid.Logger(o.Logger) // records logged with a request's context name it
	s := &Server{
		nodes:       o.Nodes,
		passthrough: o.Passthrough,
		sessions:    NewSessionStore(o.Redis, o.SessionTimeout),
		redis:       o.Redis,
		maxBody:     o.MaxBodyBytes,
		uuid:        uuidFrom(o.ServiceID),
		log:         o.Logger,
	}
	s.events, s.sseKeepAlive, s.sources = o.Events, o.SSEKeepAlive, o.Sources
	s.sse = newSSELimiter(o.MaxSSEStreams, o.MaxSSEStreamsPerUser)
	s.unauthBody, s.trusted = o.UnauthenticatedBodyBytes, o.TrustedProxies
	s.bulk, s.metrics, s.addrs = o.Bulk, o.Metrics, o.NodeAddresses
	if s.unauthBody <= 0 {
		s.unauthBody = DefaultUnauthenticatedBodyBytes
	}
	if s.sseKeepAlive <= 0 {
		s.sseKeepAlive = sseKeepAlive
	}
	ctx, stop := context.WithCancel(context.Background())
	accts, err := NewAccountStore(ctx, o.Redis, o.Accounts, o.AccountPolicy, o.Logger)
	if err != nil {
		stop()
		return nil, err
	}
	s.accounts, s.stop = accts, stop
	s.sessions.maxPerUser = accts.Policy().MaxSessionsPerUser
	go accts.Watch(ctx, 10*time.Second)
	s.routes()
	if o.MetricsRoute && o.Metrics != nil {
		s.addMetricsRoute(s.echo, o.MetricsAuth)
		s.allow = allowOf(s.echo.Routes())
	}
	return s, nil
}

// SetConfigAccounts replaces the accounts of the configuration file (a
// reload; AccountStore.SetConfig).
func (s *Server) SetConfigAccounts(ctx context.Context, accounts []Account) error {
	return s.accounts.SetConfig(ctx, accounts)
}

// PasswordChecks is how many bcrypt comparisons logins have cost (Basic
// credentials verified recently are not checked again).
func (s *Server) PasswordChecks() int64 { return s.accounts.PasswordChecks() }

// SSEStreams is the number of SSE streams open on this server whose
// position in the event stream is fixed: every event after it reaches
// them.
func (s *Server) SSEStreams() int { return int(s.following.Load()) }

// Close stops the server's background work (the accounts watcher).
func (s *Server) Close() { s.stop() }

// Handler is the HTTP handler of the service.
func (s *Server) Handler() http.Handler { return s.echo }

// uuidFrom derives a stable RFC 4122-shaped UUID from seed.
func uuidFrom(seed string) string {
	h := sha256.Sum256([]byte("fishgate:" + seed))
	h[6] = h[6]&0x0f | 0x50 // version 5 layout
	h[8] = h[8]&0x3f | 0x80
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// newEcho is an echo instance that answers errors in Redfish and finds
// the client's address as the server's configuration says.
func (s *Server) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.writeError
	e.IPExtractor = ipExtractor(s.trusted)
	e.Pre(middleware.RemoveTrailingSlash())
	return e
}

func (s *Server) routes() {
	e := s.newEcho()
	e.Pre(middleware.RemoveTrailingSlash(), s.nodeRootMiddleware)
	e.Use(s.accessLog, s.recoverMiddleware, s.headersMiddleware, s.requestChecks)

	// Routes carry their middleware themselves: echo groups with middleware
	// add catch-all routes that would turn 405 into 404.
	type route struct {
		method, path string
		h            echo.HandlerFunc
	}
	routes := []route{
		{http.MethodGet, "/redfish", s.getVersions},
		{http.MethodGet, "/redfish/v1", s.getServiceRoot},
		{http.MethodGet, "/redfish/v1/odata", s.getOData},
		{http.MethodGet, "/redfish/v1/$metadata", s.getMetadata},

		{http.MethodGet, "/redfish/v1/Systems", s.getSystems},
		{http.MethodGet, "/redfish/v1/Systems/:id", s.getSystem},
		{http.MethodPatch, "/redfish/v1/Systems/:id", s.patchSystem},
		{http.MethodPost, "/redfish/v1/Systems/:id/Actions/ComputerSystem.Reset", s.postReset},
		{http.MethodGet, "/redfish/v1/Managers", s.getManagers},
		{http.MethodGet, "/redfish/v1/Managers/:id", s.getManager},
		{http.MethodGet, "/redfish/v1/Chassis", s.getChassisCollection},
		{http.MethodGet, "/redfish/v1/Chassis/:id", s.getChassis},

		{http.MethodGet, "/redfish/v1/SessionService", s.getSessionService},
		{http.MethodGet, "/redfish/v1/SessionService/Sessions", s.getSessions},
		{http.MethodPost, "/redfish/v1/SessionService/Sessions", s.postSession},
		// DSP0266 §9.5: a POST to a collection's Members creates a member too
		{http.MethodPost, "/redfish/v1/SessionService/Sessions/Members", s.postSession},
		{http.MethodGet, "/redfish/v1/SessionService/Sessions/:id", s.getSession},
		{http.MethodDelete, "/redfish/v1/SessionService/Sessions/:id", s.deleteSession},

		{http.MethodGet, "/redfish/v1/TaskService", s.getTaskService},
		{http.MethodGet, "/redfish/v1/TaskService/Tasks", s.getTasks},
		{http.MethodGet, "/redfish/v1/TaskService/Tasks/:task", s.getTask},
		{http.MethodDelete, "/redfish/v1/TaskService/Tasks/:task", s.deleteTask},
		{http.MethodGet, "/redfish/v1/TaskService/TaskMonitors/:task", s.getTaskMonitor},
		{http.MethodDelete, "/redfish/v1/TaskService/TaskMonitors/:task", s.deleteTask},

		{http.MethodGet, "/redfish/v1/AccountService", s.getAccountService},
		{http.MethodGet, "/redfish/v1/AccountService/Accounts", s.getAccounts},
		{http.MethodGet, "/redfish/v1/AccountService/Accounts/:id", s.getAccount},
		{http.MethodPost, "/redfish/v1/AccountService/Accounts", s.postAccount},
		{http.MethodPatch, "/redfish/v1/AccountService/Accounts/:id", s.patchAccount},
		{http.MethodDelete, "/redfish/v1/AccountService/Accounts/:id", s.deleteAccount},
		{http.MethodGet, "/redfish/v1/Managers/" + GatewayManager, s.getGatewayManager},
		{http.MethodGet, "/redfish/v1/Managers/" + GatewayManager + "/LogServices", s.getGatewayLogServices},
		{http.MethodGet, "/redfish/v1/Managers/" + GatewayManager + "/LogServices/Audit", s.getAuditService},
		{http.MethodGet, "/redfish/v1/Managers/" + GatewayManager + "/LogServices/Audit/Entries", s.getAuditEntries},
		{http.MethodGet, "/redfish/v1/Systems/:id/LogServices", s.getSystemLogServices},
		{http.MethodGet, "/redfish/v1/Systems/:id/LogServices/PowerActions", s.getPowerActionsService},
		{http.MethodGet, "/redfish/v1/Systems/:id/LogServices/PowerActions/Entries", s.getPowerActionEntries},
		{http.MethodGet, "/redfish/v1/Systems/:id/LogServices/PowerActions/Entries/:entry", s.getPowerActionEntry},
		{http.MethodGet, "/redfish/v1/Managers/" + GatewayManager + "/LogServices/Audit/Entries/:entry", s.getAuditEntry},
		{http.MethodGet, "/redfish/v1/AccountService/Roles", s.getRoles},
		{http.MethodGet, "/redfish/v1/AccountService/Roles/:id", s.getRole},

		{http.MethodGet, "/redfish/v1/AggregationService/ConnectionMethods", s.getConnectionMethods},
		{http.MethodGet, "/redfish/v1/AggregationService/ConnectionMethods/:id", s.getConnectionMethod},
		{http.MethodGet, "/redfish/v1/AggregationService/AggregationSources", s.getSources},
		{http.MethodPost, "/redfish/v1/AggregationService/AggregationSources", s.postSource},
		{http.MethodGet, "/redfish/v1/AggregationService/AggregationSources/:id", s.getSource},
		{http.MethodPatch, "/redfish/v1/AggregationService/AggregationSources/:id", s.patchSource},
		{http.MethodDelete, "/redfish/v1/AggregationService/AggregationSources/:id", s.deleteSource},

		{http.MethodGet, "/redfish/v1/EventService", s.getEventService},
		{http.MethodGet, "/redfish/v1/EventService/SSE", s.getSSE},
		{http.MethodGet, "/redfish/v1/EventService/Subscriptions", s.getSubscriptions},
		{http.MethodPost, "/redfish/v1/EventService/Subscriptions", s.postSubscription},
		{http.MethodGet, "/redfish/v1/EventService/Subscriptions/:sub", s.getSubscription},
		{http.MethodDelete, "/redfish/v1/EventService/Subscriptions/:sub", s.deleteSubscription},
	}
	// Everything else under a node's System, Manager or Chassis goes to its
	// BMC through the pass-through proxy (docs/architecture.md#pass-through);
	// power actions and the node's own resources stay with the routes above.
	for _, coll := range []string{"Systems", "Managers", "Chassis"} {
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete} {
			routes = append(routes, route{m, "/redfish/v1/" + coll + "/:id/*", s.passThrough})
		}
	}
	for _, r := range routes {
		e.Add(r.method, r.path, r.h, s.authMiddleware)
		e.Add(r.method, "/bmc/:node"+r.path, r.h, s.nodeScopeMiddleware, s.authMiddleware)
	}
	s.addAggregationRoutes(e)
	s.allow = allowOf(e.Routes())
	s.echo = e
}

// recoverMiddleware turns a panic into a 503 Redfish error and logs it: a
// bug must not take the connection down or answer 500.
func (s *Server) recoverMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r) // a streamed pass-through body failed: abort the connection
				}
				s.log.ErrorContext(c.Request().Context(), "panic in handler", "path", c.Request().URL.Path, "panic", r)
				err = unavailable(5, "internal failure")
			}
		}()
		return next(c)
	}
}

func (s *Server) headersMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("OData-Version", "4.0")
		h.Set("Cache-Control", "no-cache")
		if err := odataVersionOK(c); err != nil {
			return err
		}
		if m := c.Request().Method; m == http.MethodGet || m == http.MethodHead {
			if a := s.allow[c.Path()]; a != "" && h.Get("Allow") == "" {
				h.Set("Allow", a)
			}
		}
		return next(c)
	}
}

// scope is the view a request sees: the aggregate service, or one node's
// BMC: under /bmc/<node>, or at the root of the node's own address or host
// name (nodeaddr.go).
type scope struct {
	base string // URL prefix before /redfish: "" or "/bmc/<node>"
	node string // "" for the aggregate view
	// sees reports whether the principal may see a node (per-node
	// authorization: other nodes do not exist for it).
	sees func(id string) bool
}

func scopeOf(c echo.Context) scope {
	// nil unless the account is limited to some nodes: a scope that sees
	// every node is served from the fleet-wide structures (the Tasks
	// index), not node by node.
	var sees func(id string) bool
	if p := principalOf(c); len(p.Nodes) > 0 {
		sees = p.sees
	}
	if n := c.Param("node"); n != "" && strings.HasPrefix(c.Path(), "/bmc/:node") {
		return scope{base: "/bmc/" + n, node: n, sees: sees}
	}
	if n := rootNodeOf(c); n != "" {
		return scope{node: n, sees: sees}
	}
	return scope{sees: sees}
}

// routeRest is the route pattern without the per-node prefix.
func routeRest(c echo.Context) string {
	return strings.TrimPrefix(c.Path(), "/bmc/:node")
}

func (sc scope) url(p string) string { return sc.base + "/redfish/v1" + p }

func (sc scope) nodeIDs(n Nodes) []string {
	if sc.node != "" {
		return []string{sc.node}
	}
	ids := n.IDs()
	if sc.sees == nil {
		return ids
	}
	var out []string
	for _, id := range ids {
		if sc.sees(id) {
			out = append(out, id)
		}
	}
	return out
}

// visible reports whether the request may see node id.
func (sc scope) visible(id string) bool {
	return (sc.node == "" || id == sc.node) && (sc.sees == nil || sc.sees(id))
}

// nodeScopeMiddleware refuses /bmc/<node>/... for an unknown node. The
// public documents (the service root, $metadata) answer the same for any
// node id, so that node ids cannot be enumerated without authentication.
func (s *Server) nodeScopeMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if m := c.Request().Method; publicPath(routeRest(c)) && (m == http.MethodGet || m == http.MethodHead) {
			return next(c)
		}
		if _, err := s.nodes.View(c.Param("node")); err != nil {
			return notFound("Manager", c.Param("node"))
		}
		return next(c)
	}
}

// view returns the node named by the :id parameter, within scope.
func (s *Server) view(c echo.Context, kind string) (serializer.View, error) {
	id := c.Param("id")
	if !scopeOf(c).visible(id) {
		return serializer.View{}, notFound(kind, id)
	}
	v, err := s.nodes.View(id)
	if err != nil {
		return serializer.View{}, notFound(kind, id)
	}
	return v, nil
}

// send renders v as JSON with an ETag (DSP0266 §7.10); If-None-Match with a
// matching ETag answers 304.
func send(c echo.Context, status int, v any) error {
	return sendTagged(c, status, v, "")
}

// sendTagged is send with the resource's own ETag (computed from the body
// when tag is empty).
func sendTagged(c echo.Context, status int, v any, tag string) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if tag == "" {
		tag = etagOf(b)
	}
	h := c.Response().Header()
	h.Set("ETag", tag)
	if t, ok := v.(interface{ RedfishType() string }); ok {
		if l := describedBy(t.RedfishType()); l != "" {
			h.Set("Link", l)
		}
	}
	if status == http.StatusOK && c.Request().Header.Get("If-None-Match") == tag {
		return c.NoContent(http.StatusNotModified)
	}
	return c.JSONBlob(status, b)
}

func etagOf(b []byte) string {
	return fmt.Sprintf(`W/"%016x"`, xxhash.Sum64(b))
}

// ifMatch honours If-Match (DSP0266 §7.10) when the client sent one; it is
// never required (MAAS sends it only when it saw an ETag).
func ifMatch(c echo.Context, current string) error {
	im := c.Request().Header.Get("If-Match")
	if im == "" {
		return nil
	}
	for _, t := range strings.Split(im, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || t == current || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(current, "W/") {
			return nil
		}
	}
	return newError(http.StatusPreconditionFailed, schemas.Base(schemas.MsgPreconditionFailed))
}

// passThrough hands a request for a node's other resources to its BMC,
// with the caller: the proxy applies the Redfish privilege registry to
// what the caller's role may read and change there (the BMC account behind
// may do anything).
func (s *Server) passThrough(c echo.Context) error {
	id := c.Param("id")
	if !scopeOf(c).visible(id) {
		return newError(http.StatusNotFound, schemas.Base(schemas.MsgResourceMissingAtURI, c.Request().URL.Path))
	}
	if _, err := s.nodes.View(id); err != nil || s.passthrough == nil {
		return newError(http.StatusNotFound, schemas.Base(schemas.MsgResourceMissingAtURI, c.Request().URL.Path))
	}
	h, err := s.passthrough(c.Request().Context(), id)
	if err != nil {
		return passThroughError(id, err)
	}
	if h == nil {
		return newError(http.StatusNotFound, schemas.Base(schemas.MsgResourceMissingAtURI, c.Request().URL.Path))
	}
	p, req := principalOf(c), c.Request()
	caller := proxy.Caller{User: p.User, Privileges: proxy.RolePrivileges(p.Role), MaxBodyBytes: s.maxBody, Remote: c.RealIP()}
	h.ServeHTTP(c.Response(), req.WithContext(proxy.WithCaller(req.Context(), caller)))
	if m := req.Method; m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions {
		// a write to a BMC: in the audit log with what came of it
		s.audit(req.Context(), auditOf(c, "passthrough-write", req.Method+" "+req.URL.Path, strconv.Itoa(c.Response().Status)))
	}
	return nil
}

// passThroughError answers a pass-through whose BMC could not be prepared
// (its resource paths are read once, on first use): a BMC that cannot be
// reached is a 503 with Retry-After naming the problem, one that answered
// badly (refused the login, sent nonsense) a 502 with its error text.
func passThroughError(id string, err error) *apiError {
	if proxy.Unreachable(err) {
		return unavailableBecause(proxy.UnreachableRetryAfter, "node "+id+": its BMC cannot be reached: "+err.Error())
	}
	return newError(http.StatusBadGateway, schemas.Base(schemas.MsgGeneralError)).withDetail("node " + id + ": " + err.Error())
}
