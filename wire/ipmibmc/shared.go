package ipmibmc

// Shared: one UDP socket for many nodes' IPMI endpoints (issue 16).
//
// A node with an address of its own (10.0.5.17) answers IPMI there, at one
// port for all nodes (623). Instead of a socket per address, one socket on
// the wildcard address takes every node's packets; the kernel tells each
// packet's destination address (IP_PKTINFO, IPV6_PKTINFO), which selects the
// node's endpoint, and the answer leaves from that same address (the source
// set in the outgoing IP_PKTINFO): ipmitool drops an answer from any other
// address. A packet to an address that is no node's is dropped, counted and
// logged at DEBUG (at most once a second).
//
// Each node keeps a whole Server of its own behind a connection of the
// Shared (sharedConn): its own go-ipmi BMC, session store, account and
// retransmit memory, so that two nodes' RMCP+ sessions never mix, and the
// packet guard in front of it as with a socket of its own. A node's Server
// is built at its first packet and closed after SharedConfig.IdleClose
// without one (past the session inactivity timeout of 60 s no session of
// it is alive): 10,000 node addresses cost map entries until addressed,
// not 10,000 read loops.
//
// IPv4 and IPv6 take a socket each at the same port (golang.org/x/net's
// IPV6_PKTINFO cannot carry an IPv4-mapped source, so one dual-stack socket
// cannot answer IPv4 from the right address).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Defaults of SharedConfig.
const (
	DefaultIdleClose = 5 * time.Minute
	// sharedQueue is how many packets wait for one node's read loop; more
	// are dropped (UDP: the client retries).
	sharedQueue = 32
	// maxPacket bounds a read: IPMI LAN packets are far smaller.
	maxPacket = 4096
)

// SharedConfig configures a Shared socket.
type SharedConfig struct {
	// Port is the UDP port on the wildcard address (0: a free one, see
	// Shared.Port).
	Port int
	// IPv6 also opens [::]:Port (IPv6 only), for IPv6 node addresses.
	IPv6 bool
	// Control is applied to the sockets before they bind (nil: none), e.g.
	// to take packets from the loopback interface only.
	Control func(network, address string, c syscall.RawConn) error
	// IdleClose closes a node's endpoint after this long without a packet
	// (default DefaultIdleClose; at least the 60 s session timeout).
	IdleClose time.Duration
	// Logger receives the drops at DEBUG; default discards.
	Logger *slog.Logger
}

// Shared is one UDP socket (per address family) answering IPMI for every
// node address added to it. Create it with ListenShared, run it with
// Serve, add and remove node addresses at any time.
type Shared struct {
	cfg  SharedConfig
	log  *slog.Logger
	port int
	c4   *ipv4.PacketConn
	c6   *ipv6.PacketConn
	raw  []net.PacketConn

	// send writes one answer from src to dst; tests replace it.
	send func(b []byte, src netip.Addr, dst net.Addr) error

	mu     sync.RWMutex
	routes map[netip.Addr]*Route
	closed bool
	done   chan struct{} // closed by Close

	unrouted, overflow atomic.Int64
	dropLog            rateLog
}

// Route is one node address on a Shared: its endpoint's configuration,
// and the endpoint while open.
type Route struct {
	m      *Shared
	addr   netip.AddrPort
	cfg    Config
	target PowerTarget
	last   atomic.Int64 // unix nanoseconds of the last packet

	mu      sync.Mutex
	ep      *endpoint
	removed bool
}

// endpoint is a node's Server running on its sharedConn.
type endpoint struct {
	srv    *Server
	conn   *sharedConn
	served chan struct{}
}

// ListenShared binds the shared socket(s). Nothing is answered until Serve.
func ListenShared(cfg SharedConfig) (*Shared, error) {
	if cfg.IdleClose <= 0 {
		cfg.IdleClose = DefaultIdleClose
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Shared{cfg: cfg, log: cfg.Logger, routes: map[netip.Addr]*Route{}, done: make(chan struct{})}
	m.send = m.write
	lc := net.ListenConfig{Control: cfg.Control}
	c4, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", cfg.Port))
	if err != nil {
		return nil, fmt.Errorf("ipmi shared socket: %w", err)
	}
	m.raw = append(m.raw, c4)
	m.port = c4.LocalAddr().(*net.UDPAddr).Port
	m.c4 = ipv4.NewPacketConn(c4)
	if err := m.c4.SetControlMessage(ipv4.FlagDst, true); err != nil {
		m.closeSockets()
		return nil, fmt.Errorf("ipmi shared socket: IP_PKTINFO: %w", err)
	}
	if cfg.IPv6 {
		c6, err := lc.ListenPacket(context.Background(), "udp6", fmt.Sprintf("[::]:%d", m.port))
		if err != nil {
			m.closeSockets()
			return nil, fmt.Errorf("ipmi shared socket: %w", err)
		}
		m.raw = append(m.raw, c6)
		m.c6 = ipv6.NewPacketConn(c6)
		if err := m.c6.SetControlMessage(ipv6.FlagDst, true); err != nil {
			m.closeSockets()
			return nil, fmt.Errorf("ipmi shared socket: IPV6_PKTINFO: %w", err)
		}
	}
	return m, nil
}

// Port is the UDP port every node address answers on.
func (m *Shared) Port() int { return m.port }

// Add answers IPMI at address a with a Server of cfg in front of target
// (cfg.Addr is ignored) until the Route is closed. The Server is built at
// a's first packet.
func (m *Shared) Add(a netip.Addr, cfg Config, target PowerTarget) (*Route, error) {
	a = a.Unmap()
	if !a.IsValid() {
		return nil, errors.New("ipmi shared socket: no address")
	}
	if a.Is6() && m.c6 == nil {
		return nil, fmt.Errorf("ipmi shared socket: %s: IPv6 address without the IPv6 socket", a)
	}
	r := &Route{m: m, addr: netip.AddrPortFrom(a, uint16(m.port)), target: target}
	cfg.Addr = r.addr.String()
	if _, err := prepare(&cfg, target); err != nil {
		return nil, err
	}
	r.cfg = cfg
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return nil, net.ErrClosed
	case m.routes[a] != nil:
		return nil, fmt.Errorf("ipmi shared socket: %s is already a node's address", a)
	}
	m.routes[a] = r
	return r, nil
}

// Addr is the UDP address r answers at, "10.0.5.17:623".
func (r *Route) Addr() netip.AddrPort { return r.addr }

// Close stops answering at r's address, closing its endpoint (waiting for
// its calls in flight).
func (r *Route) Close() {
	m := r.m
	m.mu.Lock()
	if m.routes[r.addr.Addr()] == r {
		delete(m.routes, r.addr.Addr())
	}
	m.mu.Unlock()
	r.close(true)
}

// Has reports whether a is a node address of m.
func (m *Shared) Has(a netip.Addr) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.routes[a.Unmap()] != nil
}

// SharedStats are a Shared's counters.
type SharedStats struct {
	Addresses int   // node addresses added
	Open      int   // of which with a running endpoint
	Unrouted  int64 // packets to an address that is no node's, dropped
	Overflow  int64 // packets dropped because a node's queue was full
}

// Stats reports the counters.
func (m *Shared) Stats() SharedStats {
	m.mu.RLock()
	rs := make([]*Route, 0, len(m.routes))
	for _, r := range m.routes {
		rs = append(rs, r)
	}
	m.mu.RUnlock()
	st := SharedStats{Addresses: len(rs), Unrouted: m.unrouted.Load(), Overflow: m.overflow.Load()}
	for _, r := range rs {
		r.mu.Lock()
		if r.ep != nil {
			st.Open++
		}
		r.mu.Unlock()
	}
	return st
}

// Serve reads packets until ctx ends or Close is called, then closes m.
func (m *Shared) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = m.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Go(m.reap)
	if m.c6 != nil {
		wg.Go(func() { m.readLoop(m.read6) })
	}
	m.readLoop(m.read4)
	_ = m.Close()
	wg.Wait()
	return nil
}

// readFunc reads one packet and its destination address.
type readFunc func(buf []byte) (n int, dst net.IP, src net.Addr, err error)

func (m *Shared) read4(buf []byte) (int, net.IP, net.Addr, error) {
	n, cm, src, err := m.c4.ReadFrom(buf)
	if cm == nil {
		return n, nil, src, err
	}
	return n, cm.Dst, src, err
}

func (m *Shared) read6(buf []byte) (int, net.IP, net.Addr, error) {
	n, cm, src, err := m.c6.ReadFrom(buf)
	if cm == nil {
		return n, nil, src, err
	}
	return n, cm.Dst, src, err
}

// readLoop delivers the packets read until the socket closes.
func (m *Shared) readLoop(read readFunc) {
	buf := make([]byte, maxPacket)
	for {
		n, dstIP, src, err := read(buf)
		if err != nil {
			if m.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		dst, _ := netip.AddrFromSlice(dstIP) // none without the control message: no node's
		m.deliver(dst, buf[:n], src)
	}
}

// deliver hands pkt, sent by src to dst, to dst's endpoint, opening it.
func (m *Shared) deliver(dst netip.Addr, pkt []byte, src net.Addr) {
	dst = dst.Unmap()
	m.mu.RLock()
	r := m.routes[dst]
	m.mu.RUnlock()
	if r == nil {
		m.unrouted.Add(1)
		if m.dropLog.allow(time.Now()) {
			m.log.Debug("IPMI packet to no node's address dropped", "dst", dst.String(), "remote", addrString(src),
				"bytes", len(pkt), "dropped_total", m.unrouted.Load())
		}
		return
	}
	r.last.Store(time.Now().UnixNano())
	conn := r.open(m)
	if conn == nil {
		return
	}
	p := inPacket{b: append([]byte(nil), pkt...), from: src}
	select {
	case conn.in <- p:
	default:
		m.overflow.Add(1)
	}
}

// open returns r's connection, building and serving its endpoint first
// when it has none; nil once r was removed.
func (r *Route) open(m *Shared) *sharedConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removed {
		return nil
	}
	if r.ep != nil {
		return r.ep.conn
	}
	conn := &sharedConn{m: m, local: r.addr, in: make(chan inPacket, sharedQueue), done: make(chan struct{})}
	srv, err := build(r.cfg, r.target, func(string) (packetConn, error) { return conn, nil })
	if err != nil { // prepare accepted cfg in Add: only go-ipmi's user store could refuse
		m.log.Warn("IPMI endpoint not built", "addr", r.addr.String(), "err", err)
		return nil
	}
	ep := &endpoint{srv: srv, conn: conn, served: make(chan struct{})}
	go func() {
		defer close(ep.served)
		_ = srv.Serve(context.Background())
	}()
	r.ep = ep
	return conn
}

// close stops r's endpoint; removed also keeps it from opening again.
func (r *Route) close(removed bool) {
	r.mu.Lock()
	ep := r.ep
	r.ep = nil
	r.removed = r.removed || removed
	r.mu.Unlock()
	if ep != nil {
		_ = ep.srv.Close()
		<-ep.served
	}
}

// closeIdle closes r's endpoint when no packet came since before.
func (r *Route) closeIdle(before time.Time) {
	r.mu.Lock()
	ep := r.ep
	if ep == nil || r.last.Load() >= before.UnixNano() {
		r.mu.Unlock()
		return
	}
	r.ep = nil
	r.mu.Unlock()
	_ = ep.srv.Close()
	<-ep.served
}

// reap closes the endpoints idle for IdleClose.
func (m *Shared) reap() {
	t := time.NewTicker(m.cfg.IdleClose / 2)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
		}
		m.reapIdle(time.Now().Add(-m.cfg.IdleClose))
	}
}

// reapIdle closes the endpoints without a packet since before.
func (m *Shared) reapIdle(before time.Time) {
	m.mu.RLock()
	rs := make([]*Route, 0, len(m.routes))
	for _, r := range m.routes {
		rs = append(rs, r)
	}
	m.mu.RUnlock()
	for _, r := range rs {
		r.closeIdle(before)
	}
}

func (m *Shared) isClosed() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.closed
}

// Close closes the sockets and every endpoint.
func (m *Shared) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.done)
	rs := m.routes
	m.routes = map[netip.Addr]*Route{}
	m.mu.Unlock()
	err := m.closeSockets()
	for _, r := range rs {
		r.close(true)
	}
	return err
}

func (m *Shared) closeSockets() error {
	var errs []error
	for _, c := range m.raw {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// write sends b to dst from src: the node address the request was sent to.
func (m *Shared) write(b []byte, src netip.Addr, dst net.Addr) error {
	var err error
	if src.Is4() {
		_, err = m.c4.WriteTo(b, &ipv4.ControlMessage{Src: src.AsSlice()}, dst)
	} else {
		_, err = m.c6.WriteTo(b, &ipv6.ControlMessage{Src: src.AsSlice()}, dst)
	}
	return err
}

// inPacket is one packet for a node's endpoint.
type inPacket struct {
	b    []byte
	from net.Addr
}

// sharedConn is a node's endpoint's transport: packets the Shared read for
// its address in, answers out through the Shared from its address.
type sharedConn struct {
	m     *Shared
	local netip.AddrPort
	in    chan inPacket
	once  sync.Once
	done  chan struct{}
}

func (c *sharedConn) ReadFrom(buf []byte) (int, net.Addr, error) {
	select {
	case p := <-c.in:
		return copy(buf, p.b), p.from, nil
	case <-c.done:
		return 0, nil, net.ErrClosed
	}
}

func (c *sharedConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-c.done:
		return 0, net.ErrClosed
	default:
	}
	if err := c.m.send(b, c.local.Addr(), addr); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *sharedConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

func (c *sharedConn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.local) }

// rateLog allows one log line a second.
type rateLog struct {
	mu   sync.Mutex
	last time.Time
}

func (l *rateLog) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.last) < warnEvery {
		return false
	}
	l.last = now
	return true
}
