package gateway

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/fishgate/fishgate/app/config"
)

// peerFingerprint handshakes with the gateway and returns the SHA-256
// fingerprint of the certificate it presents.
func peerFingerprint(t *testing.T, g *Gateway) (string, *tls.ConnectionState) {
	t.Helper()
	c, err := tls.Dial("tcp", g.listener.Addr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // pinned below
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer c.Close()
	st := c.ConnectionState()
	return Fingerprint(st.PeerCertificates[0].Raw), &st
}

// TestSelfSignedByDefaultKeptAcrossRestarts (issue 10 item 7): without a
// certificate the gateway serves HTTPS with a self-signed ECDSA P-256
// certificate whose fingerprint it reports, kept in tls.dir so that a
// restart presents the same one.
func TestSelfSignedByDefaultKeptAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	var fps []string
	for range 2 {
		g, stop := runTestGateway(t, func(c *config.Config) { c.TLS = config.TLS{Dir: dir, MinVersion: "1.2"} })
		if !strings.HasPrefix(g.URL(), "https://") {
			t.Errorf("URL %s is not https", g.URL())
		}
		fp, st := peerFingerprint(t, g)
		if fp != g.TLSFingerprint() || len(fp) != 95 {
			t.Errorf("presented %s, reported %s", fp, g.TLSFingerprint())
		}
		if k, ok := st.PeerCertificates[0].PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
			t.Errorf("key %T, want ECDSA P-256", st.PeerCertificates[0].PublicKey)
		}
		if st := get(t, testClient(), g, "/redfish/v1/Systems"); st != http.StatusOK {
			t.Errorf("GET over TLS: %d", st)
		}
		fps = append(fps, fp)
		stop()
	}
	if fps[0] != fps[1] {
		t.Errorf("restart presents another certificate: %s, then %s", fps[0], fps[1])
	}
	fi, err := os.Stat(filepath.Join(dir, selfSignedPEM))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("kept key file: %v %v", fi, err)
	}
	if crt, err := os.ReadFile(filepath.Join(dir, selfSignedCRT)); err != nil || bytes.Contains(crt, []byte("PRIVATE KEY")) {
		t.Errorf("certificate file for clients: %v (must not hold the key)", err)
	}
}

// TestSelfSignedSharedByReplicas: replicas on one Redis that keep their
// files in different places (other hosts) present the same certificate.
func TestSelfSignedSharedByReplicas(t *testing.T) {
	m := miniredis.RunT(t)
	var fps []string
	for range 3 {
		g := startTestGateway(t, func(c *config.Config) {
			c.RedisURL = "redis://" + m.Addr()
			c.TLS = config.TLS{Dir: t.TempDir(), MinVersion: "1.2"}
		})
		fp, _ := peerFingerprint(t, g)
		fps = append(fps, fp)
	}
	if fps[0] != fps[1] || fps[1] != fps[2] {
		t.Errorf("replicas present different certificates: %v", fps)
	}
}

// writePair writes a new self-signed pair to cert and key.
func writePair(t *testing.T, cert, key string) {
	t.Helper()
	c, k, err := makeSelfSigned("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cert, c, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, k, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReloadTLSKeepsListenerAndConnections: a reload (SIGHUP) presents the
// changed certificate files on new handshakes; the listener and open
// connections stay; a broken file leaves the current certificate.
func TestReloadTLSKeepsListenerAndConnections(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writePair(t, cert, key)
	g := startTestGateway(t, func(c *config.Config) { c.TLS = config.TLS{Cert: cert, Key: key, MinVersion: "1.2"} })
	before, _ := peerFingerprint(t, g)
	addr := g.listener.Addr().String()

	var mu sync.Mutex
	var reused []bool
	hc := testClient()
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { mu.Lock(); reused = append(reused, i.Reused); mu.Unlock() }}
	getTraced := func() int {
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, g.URL()+"/redfish/v1", nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	getTraced()

	writePair(t, cert, key)
	if err := g.ReloadTLS(context.Background()); err != nil {
		t.Fatal(err)
	}
	after, _ := peerFingerprint(t, g)
	if after == before || after != g.TLSFingerprint() {
		t.Errorf("after reload: presented %s (before %s), reported %s", after, before, g.TLSFingerprint())
	}
	if st := getTraced(); st != http.StatusOK {
		t.Errorf("GET on the open connection after reload: %d", st)
	}
	mu.Lock()
	if len(reused) != 2 || !reused[1] {
		t.Errorf("the open connection was not kept across the reload: reused %v", reused)
	}
	mu.Unlock()
	if g.listener.Addr().String() != addr {
		t.Errorf("listener changed: %s, was %s", g.listener.Addr(), addr)
	}

	os.WriteFile(key, []byte("not a key"), 0o600)
	if err := g.ReloadTLS(context.Background()); err == nil {
		t.Error("reload of a broken key succeeded")
	}
	if fp, _ := peerFingerprint(t, g); fp != after {
		t.Errorf("a failed reload changed the certificate: %s, want %s", fp, after)
	}
}

// TestTLSVersions: TLS 1.1 and older are refused (1.2 is the least by
// default; min_version 1.3 refuses 1.2 as well).
func TestTLSVersions(t *testing.T) {
	for _, minV := range []string{"1.2", "1.3"} {
		g := startTestGateway(t, func(c *config.Config) { c.TLS = config.TLS{Dir: t.TempDir(), MinVersion: minV} })
		for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13} {
			c, err := tls.Dial("tcp", g.listener.Addr().String(), &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v}) //nolint:gosec // version probe
			ok := err == nil
			if ok {
				c.Close()
			}
			want := v >= tls.VersionTLS12 && (minV == "1.2" || v >= tls.VersionTLS13)
			if ok != want {
				t.Errorf("min_version %s: handshake with %s: ok %v, want %v (%v)", minV, tls.VersionName(v), ok, want, err)
			}
		}
	}
}

// TestPlainHTTPWarnedOffLoopback: plain HTTP only when asked, and loudly
// when not on loopback.
func TestPlainHTTPWarnedOffLoopback(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "0.0.0.0:0"} {
		var logs bytes.Buffer
		cfg := config.Default()
		cfg.Listen = listen
		cfg.TLS.Disabled = true
		cfg.Accounts = []config.Account{{User: testUser, Password: testPass}}
		g, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "PLAIN HTTP")
		if warned != (listen != "127.0.0.1:0") || !strings.HasPrefix(g.URL(), "http://") || g.TLSFingerprint() != "" {
			t.Errorf("listen %s: warned %v, URL %s:\n%s", listen, warned, g.URL(), logs.String())
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		g.Serve(ctx)
	}
}
