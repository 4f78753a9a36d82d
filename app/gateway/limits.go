package gateway

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/fishgate/fishgate/app/config"
)

// connLimiter is the Redfish listener with caps on open connections, in
// all and per client address (issue 10: thousands of trickling connections
// held the gateway's file descriptors). A connection over a cap makes room
// by closing an idle keep-alive connection (of that client for its cap,
// of anyone for the total), like a server's idle reaping; without one to
// close, the new connection is closed at once, before any TLS handshake.
// Clients are told apart by the socket's address (IPv6: its /64); a
// trusted proxy counts only towards the total.
type connLimiter struct {
	net.Listener
	max, perClient int
	trusted        []netip.Prefix
	log            *slog.Logger

	mu       sync.Mutex
	total    int
	byClient map[string][]*limitedConn
	lastWarn time.Time
	refused  int // since the last warning
}

func newConnLimiter(l net.Listener, lim config.Limits, trusted []netip.Prefix, log *slog.Logger) *connLimiter {
	return &connLimiter{Listener: l, max: lim.MaxConnections, perClient: lim.MaxConnectionsPerClient,
		trusted: trusted, log: log, byClient: map[string][]*limitedConn{}}
}

type limitedConn struct {
	net.Conn
	l       *connLimiter
	client  string
	capped  bool // counts towards the per-client cap
	counted bool // guarded by l.mu
	idle    bool // guarded by l.mu: between requests of a keep-alive connection
}

func (c *limitedConn) Close() error {
	c.l.release(c)
	return c.Conn.Close()
}

// Accept returns the next connection within the caps.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c := l.admit(raw); c != nil {
			return c, nil
		}
		raw.Close()
	}
}

func (l *connLimiter) admit(raw net.Conn) *limitedConn {
	client, capped := l.clientOf(raw.RemoteAddr())
	c := &limitedConn{Conn: raw, l: l, client: client, capped: capped}
	var victims []*limitedConn
	l.mu.Lock()
	if capped && len(l.byClient[client]) >= l.perClient {
		if v := l.idleOf(l.byClient[client]); v != nil {
			victims = append(victims, v)
			l.forget(v)
		} else {
			l.refuse(client, "max_connections_per_client")
			l.mu.Unlock()
			return nil
		}
	}
	if l.total >= l.max {
		var v *limitedConn
		for _, cs := range l.byClient {
			if v = l.idleOf(cs); v != nil {
				break
			}
		}
		if v == nil {
			l.refuse(client, "max_connections")
			l.mu.Unlock()
			for _, v := range victims { // nothing was freed for it after all
				v.Conn.Close()
			}
			return nil
		}
		victims = append(victims, v)
		l.forget(v)
	}
	c.counted = true
	l.total++
	l.byClient[client] = append(l.byClient[client], c)
	l.mu.Unlock()
	for _, v := range victims {
		v.Conn.Close() // the server's read fails and it lets go of the connection
	}
	return c
}

// idleOf is an idle connection among cs, or nil. l.mu is held.
func (l *connLimiter) idleOf(cs []*limitedConn) *limitedConn {
	for _, c := range cs {
		if c.idle {
			return c
		}
	}
	return nil
}

// forget stops counting c. l.mu is held.
func (l *connLimiter) forget(c *limitedConn) {
	if !c.counted {
		return
	}
	c.counted = false
	l.total--
	cs := l.byClient[c.client]
	for i, x := range cs {
		if x == c {
			cs = append(cs[:i], cs[i+1:]...)
			break
		}
	}
	if len(cs) == 0 {
		delete(l.byClient, c.client)
	} else {
		l.byClient[c.client] = cs
	}
}

func (l *connLimiter) release(c *limitedConn) {
	l.mu.Lock()
	l.forget(c)
	l.mu.Unlock()
}

// refuse counts a refused connection and warns at most every 10 s. l.mu is held.
func (l *connLimiter) refuse(client, limit string) {
	l.refused++
	if time.Since(l.lastWarn) < 10*time.Second {
		return
	}
	l.log.Warn("connections refused: limit reached", "limit", limit, "client", client, "refused", l.refused,
		"open", l.total, "max_connections", l.max, "max_connections_per_client", l.perClient)
	l.lastWarn, l.refused = time.Now(), 0
}

// clientOf is the client key of a peer address and whether the per-client
// cap applies to it.
func (l *connLimiter) clientOf(a net.Addr) (string, bool) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String(), true
	}
	ip := ap.Addr().Unmap()
	for _, p := range l.trusted {
		if p.Contains(ip) {
			return ip.String(), false
		}
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String(), true
	}
	return ip.String(), true
}

// connState is the http.Server's ConnState hook: it marks connections idle
// between requests, the ones that may be closed to make room.
func (l *connLimiter) connState(nc net.Conn, st http.ConnState) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, ok := nc.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	c.idle = st == http.StateIdle
	l.mu.Unlock()
}

// Open is the number of connections counted (for tests).
func (l *connLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// withWriteDeadline gives every write of a response d to complete: a
// client that stops reading is dropped after d, while a response that
// keeps flowing (an SSE stream, a large pass-through answer) is never cut
// for its length, as a server-wide WriteTimeout would.
func withWriteDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: d}
		defer dw.arm() // the server's final flush of the response
		h.ServeHTTP(dw, r)
	})
}

type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *deadlineWriter) arm() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.d)) }

func (w *deadlineWriter) Write(b []byte) (int, error) {
	w.arm()
	return w.ResponseWriter.Write(b)
}

func (w *deadlineWriter) Flush() {
	w.arm()
	_ = w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
