// Package gateway assembles a running fishgate from its configuration:
// Redis, the node backends, the serializer and the Redfish API.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/backends"
	amtbackend "github.com/fishgate/fishgate/backends/amt"
	ipmibackend "github.com/fishgate/fishgate/backends/ipmi"
	rfbackend "github.com/fishgate/fishgate/backends/redfish"
	"github.com/fishgate/fishgate/events"
	ipmifront "github.com/fishgate/fishgate/fronts/ipmi"
	"github.com/fishgate/fishgate/fronts/redfish"
	"github.com/fishgate/fishgate/fronts/ui"
	"github.com/fishgate/fishgate/internal/metrics"
	"github.com/fishgate/fishgate/internal/redisx"
	"github.com/fishgate/fishgate/internal/replicaid"
	"github.com/fishgate/fishgate/internal/requestid"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/wire/ipmibmc"
)

// Gateway is one running replica.
type Gateway struct {
	cfg      config.Config
	log      *slog.Logger
	replica  string // the one replica id of this process: leases and logs
	redis    *redisx.Conn
	nodes    *serializer.Service
	bulk     *serializer.Bulk // bulk power requests (Aggregate.Reset)
	events   *events.Bus
	api      *redfish.Server
	listener net.Listener // the bound socket
	serving  net.Listener // what is served: listener within the connection caps, in TLS
	limiter  *connLimiter // the connection caps
	certs    *certSource  // nil when serving plain HTTP
	proxies  *proxies
	server   *http.Server
	ipmi     *ipmiFronts // one per node with ipmi_listen
	sources  *sources    // the AggregationService's runtime sources (sources.go)
	metrics  *metrics.Metrics
	// metricsServer serves /metrics on a listener of its own (config
	// metrics.listen; nil: on the API listener, metrics.go).
	metricsServer   *http.Server
	metricsListener net.Listener
	// addrs are the nodes' own addresses and host names (nodeaddr.go);
	// nodeServer serves nodeListener, the one listener of the node
	// addresses when the API's does not take them (nil then).
	addrs        *nodeAddrs
	nodeListener net.Listener
	nodeServer   *http.Server

	reloadMu sync.Mutex // one reload at a time (reload.go); guards cfg's reloadable parts
	// background outlives a reload: node removals it started end with
	// Serve (removals counts them).
	background context.Context
	stopBg     context.CancelFunc
	removals   sync.WaitGroup
}

// NewBackend builds the backend a node's config names.
func NewBackend(n config.Node, log *slog.Logger) (backends.Backend, error) {
	switch n.Backend {
	case "redfish":
		return rfbackend.New(rfbackend.Config{
			Endpoint: n.Address, User: n.User, Password: n.Password,
			Insecure: n.Insecure, SystemID: n.SystemID, Logger: log.With("node", n.ID),
		})
	case "amt":
		return amtbackend.New(amtbackend.Config{
			Endpoint: n.Address, User: n.User, Password: n.Password,
			Insecure: n.Insecure, Logger: log.With("node", n.ID),
		})
	case "ipmi":
		host, port, err := ipmibackend.SplitAddress(n.Address)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.ID, err)
		}
		return ipmibackend.New(ipmibackend.Config{
			Host: host, Port: port, User: n.User, Password: n.Password,
			CipherSuite: n.CipherSuite, Interface: n.IPMIInterface, Logger: log.With("node", n.ID),
		})
	}
	return nil, fmt.Errorf("node %s: unknown backend %q", n.ID, n.Backend)
}

// serializerNode is node n, driven by b, as the serializer manages it.
func serializerNode(n config.Node, b backends.Backend, adm config.Admission) serializer.Node {
	sn := serializer.Node{ID: n.ID, Name: n.Name, Backend: b, Kind: n.Backend, Reassert: n.ReassertDesired, SoftOffFallback: n.SoftOffFallback}
	if n.Policy != "" {
		r := adm.Rules()
		r.Policy = serializer.Policy(n.Policy)
		sn.Rules = &r
	}
	return sn
}

// Option changes what New builds.
type Option func(*options)

type options struct{ build metrics.Build }

// WithBuild names the binary's version and commit in the metrics
// (fishgate_build_info).
func WithBuild(version, commit string) Option {
	return func(o *options) { o.build = metrics.Build{Version: version, Commit: commit} }
}

// New connects to Redis, builds every node's backend and the API, and binds
// the listen address (and metrics.listen's). Nothing is served until Serve.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (*Gateway, error) {
	return newGateway(ctx, cfg, log, NewBackend, opts...)
}

// newGateway is New with each node's backend built by newBackend.
func newGateway(ctx context.Context, cfg config.Config, log *slog.Logger, newBackend func(config.Node, *slog.Logger) (backends.Backend, error), opts ...Option) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, f := range opts {
		f(&o)
	}
	log = requestid.Logger(log) // records logged with a request's context name the request
	g := &Gateway{cfg: cfg, log: log, replica: replicaid.New(), ipmi: newIPMIFronts(log), metrics: metrics.New(o.build)}
	g.background, g.stopBg = context.WithCancel(context.Background())
	var err error
	if g.redis, err = redisx.Open(ctx, cfg.RedisOptions()); err != nil {
		return nil, err
	}
	g.redis.Client.AddHook(g.metrics.RedisHook())
	var nodes []serializer.Node
	backendsByID := map[string]backends.Backend{}
	for _, n := range cfg.Nodes {
		b, err := newBackend(n, log)
		if err != nil {
			g.redis.Close()
			return nil, err
		}
		backendsByID[n.ID] = b
		nodes = append(nodes, serializerNode(n, b, cfg.Admission))
	}
	if g.events, err = newEvents(cfg, g.redis, g.replica, log, g.metrics); err != nil {
		g.redis.Close()
		return nil, err
	}
	so := cfg.SerializerOptions()
	so.Redis, so.Writes, so.ReplicaID, so.Events, so.Logger = g.redis.Client, g.redis.Writes(), g.replica, g.events, log
	so.Metrics = g.metrics
	g.nodes, err = serializer.New(nodes, so)
	if err != nil {
		g.redis.Close()
		return nil, err
	}
	// The file is authoritative for its nodes: one removed earlier (by a
	// reload, on this replica or another) and back in the file is managed
	// again, not refused as removed.
	if ids := g.nodes.IDs(); len(ids) > 0 {
		if err := g.nodes.Reinstate(ctx, ids...); err != nil {
			log.Warn("nodes of the file not reinstated; one removed by an earlier reload may refuse work", "err", err)
		}
	}
	g.bulk = serializer.NewBulk(g.nodes)
	g.proxies = newProxies(backendsByID, log)
	g.addrs = newNodeAddrs(cfg.Fronts)
	for _, n := range cfg.Nodes {
		g.addrs.set(n.ID, n.BMCAddress)
	}
	if cfg.NodeAddressesEnabled() { // before the runtime sources, which start their fronts
		if err := g.ipmi.openShared(cfg); err != nil {
			g.nodes.Close()
			g.redis.Close()
			return nil, err
		}
	}
	if g.sources, err = newSources(ctx, g, newBackend); err != nil {
		g.closeIPMI()
		g.nodes.Close()
		g.redis.Close()
		return nil, err
	}
	var nodeAddresses redfish.NodeAddresses
	if cfg.NodeAddressesEnabled() || cfg.Fronts.BMCDomain != "" {
		nodeAddresses = g.addrs
	}
	var accounts []redfish.Account
	for _, a := range cfg.Accounts {
		accounts = append(accounts, redfish.Account{User: a.User, Password: a.Password, Role: a.Role, Nodes: a.Nodes})
	}
	g.api, err = redfish.New(redfish.Options{
		Nodes: g.nodes, Redis: g.redis.Client, Accounts: accounts,
		SessionTimeout: time.Duration(cfg.SessionTimeout), MaxBodyBytes: cfg.MaxBodyBytes,
		Passthrough: g.proxies.handler, Bulk: g.bulk, Sources: g.sources,
		Events: g.events, SSEKeepAlive: time.Duration(cfg.Events.SSEKeepAlive),
		MaxSSEStreams: cfg.Events.MaxSSEStreams, MaxSSEStreamsPerUser: cfg.Events.MaxSSEStreamsPerUser,
		ServiceID: cfg.RedisID() + "|" + cfg.Listen, Logger: log,
		UnauthenticatedBodyBytes: cfg.Limits.UnauthenticatedBodyBytes, TrustedProxies: cfg.TrustedProxyPrefixes(),
		NodeAddresses: nodeAddresses,
		AccountPolicy: redfish.AccountPolicy{
			MinPasswordLength:  cfg.AccountService.MinPasswordLength,
			LockoutThreshold:   lockoutThreshold(cfg.AccountService.LockoutThreshold),
			LockoutDuration:    time.Duration(cfg.AccountService.LockoutDuration),
			LockoutResetAfter:  time.Duration(cfg.AccountService.LockoutResetAfter),
			MaxSessionsPerUser: cfg.AccountService.MaxSessionsPerUser,
		},
		Metrics: g.metrics, MetricsRoute: cfg.Metrics.Listen == "", MetricsAuth: cfg.Metrics.RequireAuth(),
	})
	if err != nil {
		g.redis.Close()
		return nil, err
	}
	for _, n := range cfg.Nodes { // runtime sources start theirs as they are applied
		if err := g.ipmi.start(n, g.nodes); err != nil {
			g.closeIPMI()
			g.redis.Close()
			return nil, err
		}
	}
	if !cfg.TLS.Disabled {
		var shared redis.UniversalClient
		if g.redis.Embedded == nil {
			shared = g.redis.Client
		}
		if g.certs, err = newCertSource(ctx, cfg.TLS, cfg.Listen, shared, log); err != nil {
			g.closeIPMI()
			g.redis.Close()
			return nil, err
		}
	}
	g.registerGauges()
	if g.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		g.closeIPMI()
		g.redis.Close()
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	if err := g.listenMetrics(); err != nil {
		g.listener.Close()
		g.closeIPMI()
		g.redis.Close()
		return nil, err
	}
	lim := cfg.Limits
	g.limiter = newConnLimiter(g.listener, lim, cfg.TrustedProxyPrefixes(), log)
	g.serving = g.limiter
	if g.certs != nil {
		g.serving = tls.NewListener(g.limiter, g.certs.tlsConfig())
	} else if !isLoopback(g.listener.Addr()) {
		log.Warn("SERVING PLAIN HTTP ON A NON-LOOPBACK ADDRESS: passwords and session tokens cross the network in clear text; "+
			"remove tls.disabled (a self-signed certificate is made) or configure tls.cert and tls.key", "listen", g.listener.Addr().String())
	}
	g.server = g.httpServer(g.limiter)
	if addr := nodeListenAddr(cfg); addr != "" {
		l, err := listenNodes(ctx, addr, loopbackOnly(cfg))
		if err != nil {
			if g.metricsListener != nil {
				g.metricsListener.Close()
			}
			g.listener.Close()
			g.closeIPMI()
			g.redis.Close()
			return nil, fmt.Errorf("fronts.redfish_port: listen %s: %w", addr, err)
		}
		nl := newConnLimiter(l, lim, cfg.TrustedProxyPrefixes(), log)
		g.nodeListener = nl
		if g.certs != nil {
			g.nodeListener = tls.NewListener(nl, g.certs.tlsConfig())
		}
		g.nodeServer = g.httpServer(nl)
		g.nodeServer.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, nodeListenerKey{}, true)
		}
	}
	return g, nil
}

// httpServer is the HTTP server of the API on a listener with caps lim.
func (g *Gateway) httpServer(lim *connLimiter) *http.Server {
	l := g.cfg.Limits
	return &http.Server{
		Handler:           withWriteDeadline(requestid.Middleware(g.withHealth(g.api.Handler())), time.Duration(l.WriteTimeout)),
		ReadHeaderTimeout: time.Duration(l.ReadHeaderTimeout),
		// ReadTimeout covers the request, body included; net/http lifts
		// the read deadline once the body is read, so long answers and
		// SSE streams are not cut by it. Writes have their own deadline
		// each (withWriteDeadline): no server-wide WriteTimeout.
		ReadTimeout:    time.Duration(l.ReadTimeout),
		IdleTimeout:    time.Duration(l.IdleTimeout),
		MaxHeaderBytes: l.MaxHeaderBytes,
		ConnState:      lim.connState,
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
}

// NodeRedfishPort is the TCP port where node addresses answer Redfish (0
// without node addresses).
func (g *Gateway) NodeRedfishPort() int {
	l := g.nodeListener
	if l == nil {
		if !g.cfg.NodeAddressesEnabled() {
			return 0
		}
		l = g.listener
	}
	return l.Addr().(*net.TCPAddr).Port
}

// isLoopback reports whether a listen address is loopback only.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// TLSFingerprint is the SHA-256 fingerprint of the certificate presented
// ("" when serving plain HTTP).
func (g *Gateway) TLSFingerprint() string {
	if g.certs == nil {
		return ""
	}
	return g.certs.Fingerprint()
}

// ReloadTLS reads the certificate again (SIGHUP): the configured files, or
// the kept self-signed pair. New handshakes present it; open connections
// and the listener stay. On error the current certificate stays.
func (g *Gateway) ReloadTLS(ctx context.Context) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	if g.certs == nil {
		return nil
	}
	return g.certs.reload(ctx)
}

// ReplicaID names this process in leases and logs: its serializer and its
// event bus share it.
func (g *Gateway) ReplicaID() string { return g.replica }

// URL is the base URL clients use.
func (g *Gateway) URL() string {
	scheme := "http"
	if g.certs != nil {
		scheme = "https"
	}
	return scheme + "://" + g.listener.Addr().String()
}

// SSEStreams is the number of SSE streams this replica is serving.
func (g *Gateway) SSEStreams() int { return g.api.SSEStreams() }

// Handler is the Redfish API handler (for in-process tests and benchmarks).
func (g *Gateway) Handler() http.Handler { return g.api.Handler() }

// Serve reads every node once, then serves until ctx ends, then drains
// (drain) and shuts down.
func (g *Gateway) Serve(ctx context.Context) error {
	g.events.Start(ctx) // SSE streams end with ctx, so Shutdown does not wait for them; delivery is handed over
	// The actions outlive ctx: the drain lets them finish first.
	run, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	g.nodes.Start(run)
	g.bulk.Start(run)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		g.sources.watch(ctx)
	}()
	errc := make(chan error, 1)
	go func() {
		errc <- g.server.Serve(g.serving)
	}()
	g.serveMetrics()
	if g.nodeServer != nil {
		go func() {
			if err := g.nodeServer.Serve(g.nodeListener); !errors.Is(err, http.ErrServerClosed) {
				g.log.Error("node-address listener failed", "err", err)
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
		err = g.drain()
	case err = <-errc:
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if g.nodeServer != nil {
		g.nodeServer.Close() // when the API's server failed, without a drain
	}
	stopRun()
	g.closeMetrics()
	<-watched
	g.stopBg()
	g.removals.Wait()
	g.proxies.close()
	g.api.Close()
	nerr := g.nodes.Close()
	g.bulk.Wait() // its drivers stop with the service's context
	return errors.Join(err, g.closeIPMI(), nerr, g.events.Close(), g.redis.Close())
}

// drain stops accepting (SIGTERM, SIGINT): the listener and the IPMI
// fronts close at once, so a load balancer's next connection goes to
// another replica; open requests may finish; bulk requests are handed
// over at once; running actions finish here, and those still running
// after shutdown_timeout are handed over (serializer.Drain). It logs what
// was finished and what was handed over.
func (g *Gateway) drain() error {
	timeout := time.Duration(g.cfg.ShutdownTimeout)
	start := time.Now()
	g.log.Info("draining: not accepting connections; running actions may finish, then are handed over to another replica", "shutdown_timeout", timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- g.server.Shutdown(ctx) }()
	nodeShut := make(chan error, 1)
	go func() {
		if g.nodeServer == nil {
			nodeShut <- nil
			return
		}
		nodeShut <- g.nodeServer.Shutdown(ctx)
	}()
	g.closeIPMI()
	bulks := g.bulk.Drain()
	rep := g.nodes.Drain(ctx)
	err, nerr := <-shut, <-nodeShut
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(nerr, context.DeadlineExceeded) {
		g.log.Warn("requests still open at shutdown_timeout were cut", "shutdown_timeout", timeout)
		err = g.server.Close()
		if g.nodeServer != nil {
			g.nodeServer.Close()
		}
	}
	g.log.Info("drained", "took", time.Since(start).Round(time.Millisecond),
		"finished", len(rep.Finished), "handed_over", len(rep.HandedOver),
		"finished_tasks", strings.Join(rep.Finished, ","), "handed_over_tasks", strings.Join(rep.HandedOver, ","),
		"handed_over_bulk", strings.Join(bulks, ","))
	return err
}

// lockoutThreshold maps the configuration's 0 (never) to the AccountPolicy's.
func lockoutThreshold(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// closeIPMI stops the nodes' IPMI fronts.
func (g *Gateway) closeIPMI() error { return g.ipmi.closeAll() }

// IPMIAddr is the UDP address of a node's IPMI front, "" without one.
func (g *Gateway) IPMIAddr(node string) string { return g.ipmi.addr(node) }

// NodeIPMIPort is the UDP port where node addresses answer IPMI (the
// shared socket at fronts.ipmi_port), 0 without node addresses.
func (g *Gateway) NodeIPMIPort() int { return g.ipmi.sharedPort() }

// ipmiFronts are the nodes' IPMI fronts, by node id: those of the
// configuration at start, those of runtime sources as they come and go.
// A node has one on a socket of its own (ipmi_listen), one at its node
// address on the shared socket (bmc_address or the pool, with ipmi_user
// and ipmi_password), or both.
type ipmiFronts struct {
	log    *slog.Logger
	mu     sync.Mutex
	m      map[string]*ipmifront.Server // ipmi_listen
	at     map[string]*ipmifront.Server // at the node's address
	shared *ipmibmc.Shared              // nil without node addresses
	served chan struct{}                // closed when shared's Serve returned
}

func newIPMIFronts(log *slog.Logger) *ipmiFronts {
	return &ipmiFronts{log: log, m: map[string]*ipmifront.Server{}, at: map[string]*ipmifront.Server{}}
}

// openShared binds the one UDP socket of the node addresses (one per
// address family): the wildcard address at fronts.ipmi_port, taking
// packets from the loopback interface only when every node address is a
// loopback one.
func (f *ipmiFronts) openShared(cfg config.Config) error {
	sc := ipmibmc.SharedConfig{Port: cfg.Fronts.IPMIPort, IPv6: wantsIPv6(cfg), Logger: f.log.With("front", "ipmi")}
	if loopbackOnly(cfg) {
		sc.Control = bindToLoopback
	}
	m, err := ipmibmc.ListenShared(sc)
	if err != nil {
		return fmt.Errorf("fronts.ipmi_port: %w", err)
	}
	f.shared, f.served = m, make(chan struct{})
	go func() {
		defer close(f.served)
		_ = m.Serve(context.Background())
	}()
	f.log.Info("IPMI at node addresses", "port", m.Port(), "ipv6", sc.IPv6)
	return nil
}

// wantsIPv6 reports whether a node address can be an IPv6 one.
func wantsIPv6(cfg config.Config) bool {
	if p := cfg.Fronts.AddressPool; p.IsValid() && p.Addr().Is6() {
		return true
	}
	for _, n := range cfg.Nodes {
		if n.BMCAddress.Is6() {
			return true
		}
	}
	return false
}

func (f *ipmiFronts) sharedPort() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.shared == nil {
		return 0
	}
	return f.shared.Port()
}

// start serves node n's IPMI fronts (replacing those it had): on its own
// socket when it has ipmi_listen, at its node address when it has one and
// an IPMI account.
func (f *ipmiFronts) start(n config.Node, nodes ipmifront.Gateway) error {
	f.stop(n.ID)
	fc := ipmifront.Config{Addr: n.IPMIListen, Node: n.ID, User: n.IPMIUser, Password: n.IPMIPassword, AllowV15: n.IPMIAllowV15, Logger: f.log}
	if n.IPMIListen != "" {
		srv, err := ipmifront.Serve(context.Background(), fc, nodes)
		if err != nil {
			return fmt.Errorf("node %s: %w", n.ID, err)
		}
		f.mu.Lock()
		f.m[n.ID] = srv
		f.mu.Unlock()
	}
	f.mu.Lock()
	shared := f.shared
	f.mu.Unlock()
	if shared == nil || !n.BMCAddress.IsValid() {
		return nil
	}
	if n.IPMIUser == "" || n.IPMIPassword == "" {
		f.log.Info("no IPMI at the node's address: it has no ipmi_user and ipmi_password", "node", n.ID, "bmc_address", n.BMCAddress)
		return nil
	}
	srv, err := ipmifront.ServeShared(shared, n.BMCAddress, fc, nodes)
	if err != nil {
		return fmt.Errorf("node %s: IPMI at %s: %w", n.ID, n.BMCAddress, err)
	}
	f.mu.Lock()
	f.at[n.ID] = srv
	f.mu.Unlock()
	return nil
}

// stop closes node id's fronts, if any.
func (f *ipmiFronts) stop(id string) {
	f.mu.Lock()
	own, at := f.m[id], f.at[id]
	delete(f.m, id)
	delete(f.at, id)
	f.mu.Unlock()
	if own != nil {
		own.Close()
	}
	if at != nil {
		at.Close()
	}
}

// addr is the UDP address of node id's IPMI front: its own socket's, else
// its node address's; "" without either.
func (f *ipmiFronts) addr(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if srv := f.m[id]; srv != nil {
		return srv.Addr()
	}
	if srv := f.at[id]; srv != nil {
		return srv.Addr()
	}
	return ""
}

func (f *ipmiFronts) closeAll() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for _, m := range []map[string]*ipmifront.Server{f.m, f.at} {
		for id, srv := range m {
			errs = append(errs, srv.Close())
			delete(m, id)
		}
	}
	if f.shared != nil {
		errs = append(errs, f.shared.Close())
		<-f.served
		f.shared = nil
	}
	return errors.Join(errs...)
}

// withHealth serves the liveness (/healthz: the process answers) and
// readiness (/readyz: Redis answers) probes and the operator page (/ui/) in
// front of the API.
func (g *Gateway) withHealth(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain")
		if err := g.redis.Client.Ping(ctx).Err(); err != nil {
			// The probe is unauthenticated: the Redis address and error go
			// to the log only.
			g.log.Warn("readiness: Redis does not answer", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("redis: unavailable\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	// The operator page (fronts/ui): public static files; its data comes
	// from the API with the user's session.
	page := ui.Handler()
	mux.Handle(ui.Prefix, page)
	mux.Handle(strings.TrimSuffix(ui.Prefix, "/"), page)
	mux.Handle("/", api)
	return mux
}
