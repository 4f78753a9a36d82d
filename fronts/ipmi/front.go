// Package ipmi is the gateway's IPMI front (issue 4): for a node with
// ipmi_listen set, the gateway answers IPMI over LAN as if it were that
// node's BMC, so that tools configured for IPMI (Ironic's ipmi hardware
// type, MAAS's IPMI power type, ipmitool) get serialized power actions too.
// It is wire/ipmibmc, the simulator's IPMI front as well, with the
// serializer behind it instead of a simulated machine:
//
//	chassis power on/off/soft/reset/cycle/diag
//	    Chassis Control → an admission in the serializer: On, ForceOff,
//	    GracefulShutdown, ForceRestart, PowerCycle, Nmi; the same coalescing,
//	    tasks and precedence as a Redfish Reset. Admitted (started, queued,
//	    coalesced): completion code 00h, like Redfish's 202. Refused (busy,
//	    flip-flop, queue full) or Redis down: C0h "node busy". A ResetType
//	    the node does not offer: CCh.
//	chassis power status
//	    Get Chassis Status, from the node's view (the power state last read
//	    from its BMC): On, PoweringOff and Paused read "on"; Off and
//	    PoweringOn read "off", so that a client polling for its target sees
//	    it only once the BMC reports it (MAAS reads the transitional states
//	    the same way). Not known yet: D5h.
//	chassis bootdev, bootparam get 5
//	    Set/Get System Boot Options (boot flags) → the node's boot override.
//	mc reset cold/warm
//	    accepted and logged; the gateway has no BMC to restart, and the host
//	    is never touched.
//
// The front has its own account (Config.User, Config.Password), separate
// from the BMC's.
package ipmi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	wire "github.com/fishgate/fishgate/wire/ipmi"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/wire/ipmibmc"
)

// Gateway is what the front needs of the serializer; *serializer.Service
// implements it.
type Gateway interface {
	View(id string) (serializer.View, error)
	Reset(ctx context.Context, id string, r schemas.ResetType, req string) (serializer.Admission, error)
	SetBoot(ctx context.Context, id string, b schemas.BootOverride) error
}

var _ Gateway = (*serializer.Service)(nil)

// Config configures the IPMI front of one node.
type Config struct {
	// Addr is the UDP address to answer on (the node's ipmi_listen),
	// "0.0.0.0:623" or "127.0.0.1:6231"; port 0 picks a free port.
	Addr string
	// Node is the node's id in the gateway.
	Node string
	// User and Password is the account IPMI clients log in with (at most
	// 16 and 20 bytes).
	User, Password string
	// CipherSuites offered (default ipmibmc.DefaultCipherSuites: 3, 17).
	CipherSuites []int
	// AllowV15 accepts IPMI v1.5 sessions ("ipmitool -I lan": MD5 or
	// password authentication, no encryption); off by default.
	AllowV15 bool
	// Logger receives the front's logs; default slog.Default().
	Logger *slog.Logger
}

// Server is a running IPMI front: on a socket of its own (Serve) or at the
// node's address on a shared socket (ServeShared).
type Server struct {
	node   string
	addr   string
	bmc    *ipmibmc.Server // Serve's
	route  *ipmibmc.Route  // ServeShared's
	served chan struct{}
	err    error // Serve's result, set before served is closed
}

// check validates what both kinds of front need and returns the front's
// logger.
func check(cfg *Config, svc Gateway) (*slog.Logger, error) {
	if svc == nil {
		return nil, errors.New("ipmifront: nil Gateway")
	}
	if cfg.Node == "" {
		return nil, errors.New("ipmifront: Config.Node is required")
	}
	if _, err := svc.View(cfg.Node); err != nil {
		return nil, fmt.Errorf("ipmifront: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg.Logger.With("node", cfg.Node, "front", "ipmi"), nil
}

// bmcConfig is the wire server's configuration of the front.
func (cfg Config) bmcConfig(log *slog.Logger) ipmibmc.Config {
	return ipmibmc.Config{
		Addr: cfg.Addr, Name: "fishgate " + cfg.Node,
		User: cfg.User, Password: cfg.Password, CipherSuites: cfg.CipherSuites,
		DisableV15: !cfg.AllowV15,
		Logger:     log,
	}
}

// Serve binds cfg.Addr and answers IPMI for cfg.Node until ctx ends or
// Close is called.
func Serve(ctx context.Context, cfg Config, svc Gateway) (*Server, error) {
	log, err := check(&cfg, svc)
	if err != nil {
		return nil, err
	}
	b, err := ipmibmc.New(cfg.bmcConfig(log), nodeTarget{svc: svc, node: cfg.Node, log: log})
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Node, err)
	}
	s := &Server{node: cfg.Node, addr: b.Addr(), bmc: b, served: make(chan struct{})}
	go func() {
		defer close(s.served)
		s.err = b.Serve(ctx)
	}()
	log.Info("IPMI front listening", "addr", b.Addr())
	return s, nil
}

// ServeShared answers IPMI for cfg.Node at address a on the shared socket
// m (cfg.Addr is not used) until Close: the node's BMC address (issue 16).
// The front is the same as Serve's, behind m's socket.
func ServeShared(m *ipmibmc.Shared, a netip.Addr, cfg Config, svc Gateway) (*Server, error) {
	log, err := check(&cfg, svc)
	if err != nil {
		return nil, err
	}
	r, err := m.Add(a, cfg.bmcConfig(log), nodeTarget{svc: svc, node: cfg.Node, log: log})
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.Node, err)
	}
	s := &Server{node: cfg.Node, addr: r.Addr().String(), route: r}
	log.Info("IPMI front at the node's address", "addr", s.addr)
	return s, nil
}

// Addr is the UDP address the front answers on.
func (s *Server) Addr() string { return s.addr }

// Node is the id of the node the front answers for.
func (s *Server) Node() string { return s.node }

// Close stops the front and waits for its calls in flight.
func (s *Server) Close() error {
	if s.route != nil {
		s.route.Close()
		return nil
	}
	err := s.bmc.Close()
	<-s.served
	return errors.Join(err, s.err)
}

// nodeTarget is one node of the gateway as an ipmibmc.PowerTarget.
type nodeTarget struct {
	svc  Gateway
	node string
	log  *slog.Logger
}

// ipmiPower is how Get Chassis Status reports a node's PowerState (see the
// package comment).
func ipmiPower(p schemas.PowerState) (on bool, known bool) {
	switch p {
	case schemas.PowerOn, schemas.PowerPoweringOff, schemas.PowerPaused:
		return true, true
	case schemas.PowerOff, schemas.PowerPoweringOn:
		return false, true
	}
	return false, false
}

func (t nodeTarget) PowerState(context.Context) (bool, error) {
	v, err := t.svc.View(t.node)
	if err != nil {
		return false, err
	}
	on, known := ipmiPower(v.PowerState)
	if !known {
		return false, fmt.Errorf("node %s: %w: power state not known yet", t.node, wire.ErrNotNow)
	}
	return on, nil
}

func (t nodeTarget) Control(ctx context.Context, cmd wire.ChassisCommand) error {
	rt := schemas.ResetType(cmd.ResetType())
	req, _ := ipmibmc.RequestFrom(ctx)
	a, err := t.svc.Reset(ctx, t.node, rt, req.String()+" action="+string(rt))
	switch {
	case errors.Is(err, serializer.ErrUnsupportedReset):
		return fmt.Errorf("%w: %w", wire.ErrUnsupported, err)
	case errors.Is(err, serializer.ErrUnavailable):
		return fmt.Errorf("%w: %w", wire.ErrBusy, err)
	case err != nil:
		return err
	case a.Outcome == serializer.Refused:
		return fmt.Errorf("node %s: %s refused (%s): %w", t.node, rt, a.Refusal, wire.ErrBusy)
	}
	t.log.Info("IPMI power request admitted", "action", rt, "outcome", a.Outcome, "task", a.Task, "user", req.User, "remote", req.Remote)
	return nil
}

func (t nodeTarget) SetBoot(ctx context.Context, b wire.Boot) error {
	target, enabled, mode := b.Redfish()
	err := t.svc.SetBoot(ctx, t.node, schemas.BootOverride{Target: target, Enabled: enabled, Mode: mode})
	if errors.Is(err, backends.ErrUnsupported) {
		return fmt.Errorf("%w: %w", wire.ErrUnsupported, err)
	}
	return err
}

func (t nodeTarget) Boot(context.Context) (wire.Boot, error) {
	v, err := t.svc.View(t.node)
	if err != nil {
		return wire.Boot{}, err
	}
	return wire.Boot{}.WithRedfish(v.Boot.Target, v.Boot.Enabled, v.Boot.Mode)
}

func (t nodeTarget) BMCReset(ctx context.Context, cold bool) error {
	req, _ := ipmibmc.RequestFrom(ctx)
	t.log.Info("IPMI BMC reset requested: nothing to do", "cold", cold, "user", req.User, "remote", req.Remote)
	return nil
}
