// Package ipmibmc answers IPMI over LAN for one node: RMCP+ ("ipmitool -I
// lanplus", IPMI v2.0) and, unless disabled, IPMI v1.5 ("-I lan"), on one
// UDP address. It is go-ipmi's reference BMC (pkg/server, pkg/bmc,
// pkg/handlers) with fishgate's own chassis and BMC-reset handlers in front
// of a PowerTarget the caller implements, so that the simulator (target: a
// simulated machine) and the gateway (target: the serializer) are the same
// code with a different power target behind it (issue 4).
//
// # Commands
//
// go-ipmi's handlers answer session setup and discovery: Get Channel
// Authentication Capabilities (v2.0 §22.13), Get Channel Cipher Suites
// (§22.15: ipmitool waits ~10 s per call when it gets no answer), RMCP+ Open
// Session and RAKP 1-4 (§13.17-§13.23), IPMI v1.5 Get Session Challenge and
// Activate Session (§22.16-§22.17), Set Session Privilege Level (§22.18),
// Close Session (§22.19), Get Session Info (§22.20), Get Device ID (§20.1),
// Get Device GUID (§20.8), Get Self Test Results (§20.4), Get Channel Info
// (§22.24), Get Chassis Capabilities (§28.1) and the empty SDR/FRU/SEL
// storage commands. User, LAN and SOL configuration commands are not
// offered: accounts come from Config, and a front has no serial console.
//
// Ours (handlers.go), each calling the PowerTarget:
//
//	Get Chassis Status       §28.2                       PowerState
//	Chassis Control          §28.3, Table 28-4           Control: all six actions
//	                                                     (go-ipmi's own refuses the
//	                                                     diagnostic interrupt)
//	Set System Boot Options  §28.12, Table 28-14 #0,3,4,5 SetBoot (#5, boot flags)
//	Get System Boot Options  §28.13                      Boot
//	Cold Reset, Warm Reset   §20.2, §20.3                BMCReset (go-ipmi's own call
//	                                                     the chassis hard-reset and
//	                                                     soft-off hooks: they reset
//	                                                     the host)
//
// A Chassis Control or BMC reset that arrives again with the same RMCP+
// session sequence number (a client retransmitting an identical packet, as
// go-ipmi's client does on a timeout) is answered from the first answer,
// not executed twice: go-ipmi's sequence window (§6.12.13) accepts a repeat
// of the last number.
//
// # Sessions
//
// Up to Config.MaxSessions RMCP+ sessions (go-ipmi's default is the spec's
// minimum of 4, which a few parallel ipmitool calls exhaust), idle ones
// closed after 60 s (§6.12.15). IPMI v1.5 sessions stay limited to 4: go-ipmi
// v0.9.1 has no option for that store.
//
// go-ipmi handles every packet on a goroutine of its own, so two packets of
// one session sent without waiting for the first answer may be handled in
// either order. Only "ipmitool mc reset cold|warm" does that (it sends the
// reset and Close Session at once): the reset may then find its session
// closed and be dropped. That is harmless (a BMC reset changes nothing
// here); "ipmitool raw 0x06 0x02" waits for the answer.
//
// # Untrusted packets
//
// go-ipmi v0.9.1 panics on some packets (a RAKP Message 1 with a user name
// length of 228 or more, from anyone) in that goroutine, which has no
// recover: the whole process would exit. Every packet is therefore checked
// before go-ipmi reads it and dropped, logged at WARN, when malformed;
// command handlers run under a recover (guard.go). FuzzIPMIPacket feeds
// arbitrary packets through the same path, from every session state.
package ipmibmc

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/bougou/go-ipmi/pkg/bmc"
	"github.com/bougou/go-ipmi/pkg/hal"
	"github.com/bougou/go-ipmi/pkg/handlers"
	"github.com/bougou/go-ipmi/pkg/server"
	"github.com/bougou/go-ipmi/pkg/transport"
	"github.com/bougou/go-ipmi/pkg/types"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultMaxSessions    = 64
	DefaultCommandTimeout = 10 * time.Second
	// maxSessionsLimit keeps go-ipmi's one-byte session handle allocator
	// (which needs a free handle among 1..254) from spinning.
	maxSessionsLimit = 200
	// retransmitMemory is how long an answer is kept for a retransmitted
	// request.
	retransmitMemory = 2 * time.Minute
)

// DefaultCipherSuites are the RMCP+ cipher suites offered by default: 3
// (HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128; the spec's mandatory suite) and 17
// (HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128; ipmitool's default).
var DefaultCipherSuites = []int{3, 17}

// Config configures one IPMI LAN endpoint.
type Config struct {
	// Addr is the UDP address to listen on, "127.0.0.1:6230"; port 0 picks a
	// free port (see Server.Addr). Required.
	Addr string
	// Name identifies the endpoint in logs and seeds its GUID.
	Name string
	// User and Password are the one account (user id 2, Administrator on
	// the LAN channel). IPMI limits names to 16 bytes and passwords to 20.
	User, Password string
	// CipherSuites are the RMCP+ cipher suite ids offered (default
	// DefaultCipherSuites). go-ipmi implements 0-3, 6-8, 11, 12 and 15-17.
	CipherSuites []int
	// DisableV15 turns IPMI v1.5 ("-I lan", MD5) sessions off.
	DisableV15 bool
	// MaxSessions bounds concurrent RMCP+ sessions (default 64, at most 200).
	MaxSessions int
	// CommandTimeout bounds each PowerTarget call (default 10s).
	CommandTimeout time.Duration
	// Logger receives debug logs of every command; default discards.
	Logger *slog.Logger
}

// Server is one IPMI LAN endpoint. Create it with New, run it with Serve,
// stop it with Close.
type Server struct {
	cfg    Config
	target PowerTarget
	log    *slog.Logger
	conn   packetConn
	bmc    *bmc.BMC
	reg    *handlers.Registry
	srv    *server.Server

	// guard counts what the packet guard dropped and the panics it
	// recovered (guard.go).
	guard guardStats

	// base is the parent of every PowerTarget call's context; Close
	// cancels it.
	base   context.Context
	cancel context.CancelFunc

	// gate counts handlers in flight so that Close can wait for them.
	gateMu sync.Mutex
	closed bool
	calls  sync.WaitGroup

	// retransmits remembers the answers to state-changing requests by
	// session and sequence number.
	retransmits retransmitCache

	// bootParams holds the boot option parameters the target does not
	// model (Table 28-14 #0 set in progress, #3, #4).
	bootMu     sync.Mutex
	setInProg  uint8
	validClear uint8
	bootAck    [2]byte
}

// New validates cfg and binds its UDP address. Nothing is answered until
// Serve.
func New(cfg Config, target PowerTarget) (*Server, error) {
	return build(cfg, target, func(addr string) (packetConn, error) { return listenUDP(addr) })
}

// build is New answering on the conn listen returns for cfg.Addr; tests
// listen on a conn of their own.
func build(cfg Config, target PowerTarget, listen func(addr string) (packetConn, error)) (*Server, error) {
	suites, err := prepare(&cfg, target)
	if err != nil {
		return nil, err
	}

	opts := []bmc.Option{bmc.WithCipherSuites(suites)}
	if cfg.DisableV15 {
		opts = append(opts, bmc.WithV15Disabled())
	}
	b := bmc.New(deviceInfo(), guid(cfg.Name), nullHAL{}, opts...)
	// go-ipmi's session store allows the spec minimum of 4 sessions and has
	// no option on bmc.New: replace it before serving, keeping the hook that
	// deactivates a closed session's payloads.
	b.Sessions = bmc.NewSessionStoreWithOptions(b.Clock(), bmc.WithMaxSessions(cfg.MaxSessions))
	b.Sessions.SetOnRemove(b.SOL.DeactivateBySession)
	if err := addUser(b, cfg.User, cfg.Password); err != nil {
		return nil, fmt.Errorf("ipmibmc %s: %w", cfg.Name, err)
	}

	conn, err := listen(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("ipmibmc %s: %w", cfg.Name, err)
	}
	s := &Server{cfg: cfg, target: target, conn: conn, bmc: b,
		log: cfg.Logger.With("ipmi", conn.LocalAddr().String())}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.retransmits.entries = map[uint32]retransmit{}
	s.reg = s.registry()
	// go-ipmi reads through the guard: it never sees a packet it cannot
	// parse safely (guard.go).
	s.srv = server.NewServer(b, &guardConn{packetConn: conn, s: s}, server.WithHandlerRegistry(s.reg))
	return s, nil
}

// prepare checks cfg and target and fills in cfg's defaults; it returns
// the cipher suites to offer.
func prepare(cfg *Config, target PowerTarget) ([]types.CipherSuiteID, error) {
	if target == nil {
		return nil, errors.New("ipmibmc: nil PowerTarget")
	}
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	suites := make([]types.CipherSuiteID, 0, len(cfg.CipherSuites))
	for _, id := range cfg.CipherSuites {
		cs := types.CipherSuiteID(id)
		if id < 0 || id > 255 || !bmc.SupportedCipherSuite(cs) {
			return nil, fmt.Errorf("ipmibmc %s: cipher suite %d is not implemented by go-ipmi's server", cfg.Name, id)
		}
		suites = append(suites, cs)
	}
	return suites, nil
}

func (cfg *Config) defaults() error {
	if cfg.Addr == "" {
		return errors.New("ipmibmc: Config.Addr is required")
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Addr
	}
	switch {
	case cfg.User == "" || len(cfg.User) > bmc.MaxUserNameLen:
		return fmt.Errorf("ipmibmc %s: user name %q: want 1 to %d bytes", cfg.Name, cfg.User, bmc.MaxUserNameLen)
	case cfg.Password == "" || len(cfg.Password) > bmc.MaxPasswordLen:
		return fmt.Errorf("ipmibmc %s: password: want 1 to %d bytes", cfg.Name, bmc.MaxPasswordLen)
	}
	if len(cfg.CipherSuites) == 0 {
		cfg.CipherSuites = DefaultCipherSuites
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	cfg.MaxSessions = min(cfg.MaxSessions, maxSessionsLimit)
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// deviceInfo is what Get Device ID (v2.0 §20.1, Table 20-2) reports.
func deviceInfo() bmc.DeviceInfo {
	return bmc.DeviceInfo{
		DeviceID:       0x20,
		DeviceRevision: 1,
		FirmwareMajor:  1,
		FirmwareMinor:  0x00,
		IPMIVersion:    0x02, // BCD, low nibble major: 2.0
		ManufacturerID: 0,    // unspecified
		ProductID:      0x4647,
		// Chassis device (bit 7): it answers Chassis commands.
		AdditionalDeviceSupport: 0x80,
	}
}

// guid derives a stable GUID (Get Device GUID, §20.8; used in RAKP) from
// the endpoint's name.
func guid(name string) [16]byte {
	sum := sha1.Sum([]byte("fishgate ipmi " + name))
	var g [16]byte
	copy(g[:], sum[:16])
	return g
}

// addUser installs the one account as user 2 with Administrator privilege
// on the LAN channel (1), and disables the anonymous user 1.
func addUser(b *bmc.BMC, user, password string) error {
	const lanChannel = 1
	if err := b.Users.Update(1, func(u *bmc.User) error { u.Enabled = false; return nil }); err != nil {
		return err
	}
	return b.Users.Upsert(2, func(u *bmc.User) error {
		u.Name = user
		u.SetPassword([]byte(password))
		u.Enabled = true
		u.ChannelAccess[lanChannel] = bmc.UserChannelAccess{MaxPrivilege: bmc.PrivilegeLevelAdministrator, Enabled: true}
		return nil
	})
}

// Addr is the UDP address the server listens on, "127.0.0.1:40123".
func (s *Server) Addr() string { return s.conn.LocalAddr().String() }

// Serve answers packets until ctx ends or Close is called, then closes the
// server. It returns nil after Close.
//
// A panic in go-ipmi's read loop (none is known: the guard keeps malformed
// packets from it) is logged and the loop started again.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	defer stop()
	for {
		panicked, err := s.serveOnce(ctx)
		if panicked && !s.isClosed() && ctx.Err() == nil {
			continue
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			err = nil
		}
		return err
	}
}

// serveOnce runs go-ipmi's read loop, recovering a panic.
func (s *Server) serveOnce(ctx context.Context) (panicked bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.recovered(v, nil, "read loop")
			panicked, err = true, nil
		}
	}()
	return false, s.srv.Serve(ctx)
}

func (s *Server) isClosed() bool {
	s.gateMu.Lock()
	defer s.gateMu.Unlock()
	return s.closed
}

// Close stops answering, cancels the PowerTarget calls in flight and waits
// for them to return.
func (s *Server) Close() error {
	s.gateMu.Lock()
	already := s.closed
	s.closed = true
	s.gateMu.Unlock()
	if already {
		return nil
	}
	s.cancel()
	err := s.srv.Close()
	s.calls.Wait()
	return err
}

// enter admits one handler call; false once the server is closing.
func (s *Server) enter() bool {
	s.gateMu.Lock()
	defer s.gateMu.Unlock()
	if s.closed {
		return false
	}
	s.calls.Add(1)
	return true
}

// registry is go-ipmi's handler set for discovery and sessions, with our
// chassis and BMC reset handlers.
func (s *Server) registry() *handlers.Registry {
	r := handlers.NewRegistry()
	// First, so that it wraps every handler registered below.
	r.Use(s.recoverHandler)
	handlers.RegisterAppHandlers(r)
	handlers.RegisterSessionHandlers(r)
	handlers.RegisterChassisHandlers(r)
	handlers.RegisterStorageHandlers(r)
	r.RegisterFunc(types.CommandGetChassisStatus, s.handle(s.getChassisStatus))
	r.RegisterFunc(types.CommandChassisControl, s.handle(s.retransmitSafe(s.chassisControl)))
	r.RegisterFunc(types.CommandSetSystemBootOptions, s.handle(s.setBootOptions))
	r.RegisterFunc(types.CommandGetSystemBootOptions, s.handle(s.getBootOptions))
	r.RegisterFunc(types.CommandColdReset, s.handle(s.retransmitSafe(s.bmcReset(true))))
	r.RegisterFunc(types.CommandWarmReset, s.handle(s.retransmitSafe(s.bmcReset(false))))
	return r
}

// nullHAL is a HAL with no hardware: every power-related command is
// answered by our handlers from the PowerTarget.
type nullHAL struct{}

func (nullHAL) Chassis() hal.ChassisHAL { return nil }
func (nullHAL) Sensors() hal.SensorHAL  { return nil }
func (nullHAL) Storage() hal.StorageHAL { return nil }
func (nullHAL) Network() hal.NetworkHAL { return nil }
func (nullHAL) GPIO() hal.GPIOHAL       { return nil }
func (nullHAL) I2C() hal.I2CHAL         { return nil }
func (nullHAL) Console() hal.ConsoleHAL { return nil }
func (nullHAL) Close() error            { return nil }

// packetConn is go-ipmi's transport.PacketConn with its local address.
type packetConn interface {
	transport.PacketConn
	LocalAddr() net.Addr
}

// udpConn is go-ipmi's transport.PacketConn over a UDP socket, exposing
// LocalAddr (go-ipmi's own udp.Conn does not, and sets 30 s read
// deadlines we do not need: Close unblocks the read).
type udpConn struct{ *net.UDPConn }

func listenUDP(addr string) (*udpConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", addr, err)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("listen udp %q: %w", addr, err)
	}
	return &udpConn{c}, nil
}

func (c *udpConn) ReadFrom(buf []byte) (int, net.Addr, error) { return c.UDPConn.ReadFrom(buf) }
func (c *udpConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	return c.UDPConn.WriteTo(b, addr)
}
