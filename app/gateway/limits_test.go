package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/backends"
)

const testUser, testPass = "admin", "pw"

// startTestGateway serves a gateway without nodes on an embedded Redis,
// configured by config.Default(), plain HTTP on loopback, then mod, until
// the test ends.
func startTestGateway(t *testing.T, mod func(*config.Config)) *Gateway {
	t.Helper()
	g, stop := runTestGateway(t, mod)
	t.Cleanup(stop)
	return g
}

// runTestGateway is startTestGateway that the caller stops.
func runTestGateway(t *testing.T, mod func(*config.Config)) (*Gateway, func()) {
	t.Helper()
	return runTestGatewayWith(t, mod, NewBackend)
}

// runTestGatewayWith is runTestGateway with the nodes' backends built by
// newBackend.
func runTestGatewayWith(t *testing.T, mod func(*config.Config), newBackend func(config.Node, *slog.Logger) (backends.Backend, error)) (*Gateway, func()) {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.TLS.Disabled = true
	cfg.Accounts = []config.Account{{User: testUser, Password: testPass}}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := newGateway(ctx, cfg, slog.New(slog.DiscardHandler), newBackend)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx) }()
	return g, func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("the gateway did not stop within 15 s")
		}
	}
}

// testClient trusts any certificate (the tests compare fingerprints).
func testClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // tests pin fingerprints
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get GETs path with Basic credentials and returns the status.
func get(t *testing.T, hc *http.Client, g *Gateway, path string) int {
	t.Helper()
	st, _ := getBody(t, hc, g, path)
	return st
}

// getBody GETs path with Basic credentials and returns the status and body.
func getBody(t *testing.T, hc *http.Client, g *Gateway, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.URL()+path, nil)
	req.SetBasicAuth(testUser, testPass)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// dialFrom connects to the gateway from a loopback source address: every
// 127.x address is a different client.
func dialFrom(t *testing.T, g *Gateway, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", g.listener.Addr().String())
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedWithin reports whether the server closes c (or answers and
// closes) within d, and how long it took.
func closedWithin(c net.Conn, d time.Duration) (bool, time.Duration) {
	start := time.Now()
	c.SetReadDeadline(start.Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false, time.Since(start)
	}
	return true, time.Since(start)
}

// TestTricklingClientsAreCutOff (issue 10 item 3): a client that sends its
// headers, or a login body, a byte at a time is disconnected once
// read_header_timeout or read_timeout has passed, not held for a minute;
// a normal client is served meanwhile.
func TestTricklingClientsAreCutOff(t *testing.T) {
	g := startTestGateway(t, func(c *config.Config) {
		c.Limits.ReadHeaderTimeout = config.Duration(500 * time.Millisecond)
		c.Limits.ReadTimeout = config.Duration(time.Second)
	})
	trickle := func(c net.Conn, start string, stop <-chan struct{}) {
		io.WriteString(c, start)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := io.WriteString(c, "a"); err != nil {
					return
				}
			}
		}
	}
	cases := []struct{ name, start string }{
		{"headers", "GET /redfish/v1 HTTP/1.1\r\nHost: x\r\nX-Slow: "},
		{"login body", "POST /redfish/v1/SessionService/Sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{\"UserName\":\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialFrom(t, g, "127.0.0.1")
			stop := make(chan struct{})
			defer close(stop)
			go trickle(c, tc.start, stop)
			if st := get(t, testClient(), g, "/redfish/v1"); st != http.StatusOK {
				t.Errorf("a normal client meanwhile: %d", st)
			}
			closed, took := closedWithin(c, 5*time.Second)
			if !closed || took > 3*time.Second {
				t.Errorf("trickling %s: closed %v after %s; want closed within the read timeouts", tc.name, closed, took)
			}
		})
	}
}

// TestConnectionCaps (issue 10 item 3): connections beyond
// max_connections_per_client from one address, or beyond max_connections
// in all, are closed at once while other clients are served; an idle
// keep-alive connection is closed to make room for a new one.
func TestConnectionCaps(t *testing.T) {
	g := startTestGateway(t, func(c *config.Config) {
		c.Limits.MaxConnections = 5
		c.Limits.MaxConnectionsPerClient = 2
		c.Limits.ReadHeaderTimeout = config.Duration(20 * time.Second) // the silent ones stay open
		c.Limits.ReadTimeout = config.Duration(20 * time.Second)
	})
	// Two silent connections from 127.0.0.2 are taken; a third is closed.
	dialFrom(t, g, "127.0.0.2")
	dialFrom(t, g, "127.0.0.2")
	waitOpen(t, g, 2)
	if closed, took := closedWithin(dialFrom(t, g, "127.0.0.2"), 2*time.Second); !closed {
		t.Errorf("third connection of 127.0.0.2: still open after %s", took)
	}
	hc := testClient()
	if st := get(t, hc, g, "/redfish/v1"); st != http.StatusOK { // from 127.0.0.1, kept alive (idle)
		t.Errorf("another client: %d", st)
	}
	// Fill the total: 2 + 1 idle + 2 = 5. A sixth takes the idle one's place.
	dialFrom(t, g, "127.0.0.3")
	dialFrom(t, g, "127.0.0.3")
	waitOpen(t, g, 5)
	waitIdle(t, g, 1) // the server marks a keep-alive connection idle once it has answered
	sixth := dialFrom(t, g, "127.0.0.4")
	if closed, _ := closedWithin(sixth, 300*time.Millisecond); closed {
		t.Error("a new connection was refused although an idle one could make room")
	}
	waitOpen(t, g, 5)
	// Now nothing is idle: the next is closed at once.
	if closed, took := closedWithin(dialFrom(t, g, "127.0.0.5"), 2*time.Second); !closed {
		t.Errorf("connection over max_connections: still open after %s", took)
	}
	// When the silent ones go, clients are served again.
	sixth.Close()
	waitOpen(t, g, 4)
	if st := get(t, hc, g, "/redfish/v1"); st != http.StatusOK {
		t.Errorf("after a slot freed: %d", st)
	}
}

// TestIdleConnectionMakesRoomPerClient: a client at its cap with idle
// keep-alive connections (a connection pool) still gets a new one.
func TestIdleConnectionMakesRoomPerClient(t *testing.T) {
	g := startTestGateway(t, func(c *config.Config) { c.Limits.MaxConnectionsPerClient = 2 })
	var conns []net.Conn
	for range 2 {
		c := dialFrom(t, g, "127.0.0.6")
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("keep-alive request: %v %v", resp, err)
		}
		resp.Body.Close()
		conns = append(conns, c)
	}
	waitIdle(t, g, 2)
	c := dialFrom(t, g, "127.0.0.6")
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("third connection of a client whose two are idle: %v %v", resp, err)
	}
	evicted := 0
	for _, c := range conns {
		if closed, _ := closedWithin(c, 300*time.Millisecond); closed {
			evicted++
		}
	}
	if evicted != 1 {
		t.Errorf("%d idle connections closed to make room, want 1", evicted)
	}
}

// waitIdle waits until n connections are idle keep-alive connections.
func waitIdle(t *testing.T, g *Gateway, n int) {
	t.Helper()
	idle := func() int {
		l := g.limiter
		l.mu.Lock()
		defer l.mu.Unlock()
		k := 0
		for _, cs := range l.byClient {
			for _, c := range cs {
				if c.idle {
					k++
				}
			}
		}
		return k
	}
	deadline := time.Now().Add(5 * time.Second)
	for idle() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle connections, want %d", idle(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitOpen(t *testing.T, g *Gateway, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for g.limiter.Open() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections counted, want %d", g.limiter.Open(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSSEOutlivesReadAndWriteTimeouts: read_timeout covers reading the
// request only, and write_timeout each write: an SSE stream lives on.
func TestSSEOutlivesReadAndWriteTimeouts(t *testing.T) {
	g := startTestGateway(t, func(c *config.Config) {
		c.Limits.ReadHeaderTimeout = config.Duration(300 * time.Millisecond)
		c.Limits.ReadTimeout = config.Duration(300 * time.Millisecond)
		c.Limits.WriteTimeout = config.Duration(300 * time.Millisecond)
		c.Limits.IdleTimeout = config.Duration(300 * time.Millisecond)
		c.Events.SSEKeepAlive = config.Duration(time.Second)
	})
	req, _ := http.NewRequest(http.MethodGet, g.URL()+"/redfish/v1/EventService/SSE", nil)
	req.SetBasicAuth(testUser, testPass)
	hc := testClient()
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE: %d", resp.StatusCode)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	keepAlives := 0
	timeout := time.After(6 * time.Second)
	for keepAlives < 3 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the SSE stream ended after %d keep-alives", keepAlives)
			}
			if strings.HasPrefix(l, ":") {
				keepAlives++
			}
		case <-timeout:
			t.Fatalf("%d keep-alives in 6 s", keepAlives)
		}
	}
}
