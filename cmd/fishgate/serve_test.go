package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
)

var servingRe = regexp.MustCompile(`fishgate serving (\S+?),? (?:TLS certificate SHA-256 fingerprint (\S+)|\(plain HTTP\))`)

// served is a running `fishgate serve`.
type served struct {
	url, fingerprint string
	stop             func() int // stops it and returns its exit code
	logs             *testkit.SyncBuffer
}

// startServe runs `fishgate serve args...` in this process until the test
// ends or stop is called, once it has printed where it serves.
func startServe(t *testing.T, args ...string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &testkit.SyncBuffer{}, &testkit.SyncBuffer{}
	code := make(chan int, 1)
	go func() { code <- run(ctx, append([]string{"serve"}, args...), out, errb) }()
	s := &served{logs: errb}
	var once sync.Once
	exit := -1
	s.stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case exit = <-code:
			case <-time.After(15 * time.Second):
				t.Error("serve did not stop within 15 s")
			}
		})
		return exit
	}
	t.Cleanup(func() { s.stop() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		if m := servingRe.FindStringSubmatch(out.String()); m != nil {
			s.url, s.fingerprint = m[1], m[2]
			return s
		}
		select {
		case c := <-code:
			t.Fatalf("serve exited %d: %s%s", c, out.String(), errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not say where it serves: %s%s", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// presented is the SHA-256 fingerprint of the certificate at url's host,
// as openssl writes it.
func presented(t *testing.T, rawURL string) string {
	t.Helper()
	u, _ := url.Parse(rawURL)
	c, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test compares fingerprints
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", u.Host, err)
	}
	defer c.Close()
	sum := sha256.Sum256(c.ConnectionState().PeerCertificates[0].Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

func writeConfig(t *testing.T, dir, yaml string) string {
	t.Helper()
	p := filepath.Join(dir, "fishgate.yaml")
	if err := os.WriteFile(p, []byte("listen: 127.0.0.1:0\naccounts: [{user: admin, password: pw}]\n"+yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func insecureClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // fingerprints are compared instead
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func getStatus(t *testing.T, hc *http.Client, u string) int {
	t.Helper()
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestServeTLSByDefault (issue 10 item 7): serve without tls: in its
// config serves HTTPS with a self-signed certificate whose fingerprint it
// prints, kept next to the config, so that a restart presents the same.
func TestServeTLSByDefault(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "")
	var fps []string
	for range 2 {
		s := startServe(t, "--config", cfg)
		if !strings.HasPrefix(s.url, "https://") || s.fingerprint == "" {
			t.Fatalf("serves %s, fingerprint %q", s.url, s.fingerprint)
		}
		if got := presented(t, s.url); got != s.fingerprint {
			t.Errorf("presents %s, printed %s", got, s.fingerprint)
		}
		if !strings.Contains(s.logs.String(), "tls_sha256="+s.fingerprint) {
			t.Errorf("the log does not name the fingerprint:\n%s", s.logs.String())
		}
		if st := getStatus(t, insecureClient(), s.url+"/redfish/v1"); st != http.StatusOK {
			t.Errorf("GET service root: %d", st)
		}
		fps = append(fps, s.fingerprint)
		if code := s.stop(); code != 0 {
			t.Errorf("exit code %d", code)
		}
	}
	if fps[0] != fps[1] {
		t.Errorf("a restart presents another certificate: %s, then %s", fps[0], fps[1])
	}
	if _, err := os.Stat(filepath.Join(dir, "fishgate-selfsigned.pem")); err != nil {
		t.Errorf("the self-signed pair is not kept next to the config: %v", err)
	}
}

// TestServeInsecureHTTPOnlyWhenAsked: --insecure-http (or tls.disabled)
// serves plain HTTP.
func TestServeInsecureHTTPOnlyWhenAsked(t *testing.T) {
	for _, c := range []struct{ yaml, flag string }{{"", "--insecure-http"}, {"tls: {disabled: true}\n", ""}} {
		args := []string{"--config", writeConfig(t, t.TempDir(), c.yaml)}
		if c.flag != "" {
			args = append(args, c.flag)
		}
		s := startServe(t, args...)
		if !strings.HasPrefix(s.url, "http://") || s.fingerprint != "" {
			t.Errorf("%v: serves %s, fingerprint %q", args, s.url, s.fingerprint)
		}
		if st := getStatus(t, http.DefaultClient, s.url+"/redfish/v1"); st != http.StatusOK {
			t.Errorf("GET service root: %d", st)
		}
	}
}

// writeCert writes a new self-signed certificate and key (PEM) and returns
// the certificate's fingerprint.
func writeCert(t *testing.T, cert, key string) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour * 24 * 365), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(k)
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// TestServeSIGHUPReloadsCertificate (issue 10 item 7): SIGHUP does not end
// serve (its default action would); it presents the changed certificate
// files from the next handshake on, keeping the listener and open
// connections.
func TestServeSIGHUPReloadsCertificate(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := writeCert(t, cert, key)
	s := startServe(t, "--config", writeConfig(t, dir, fmt.Sprintf("tls: {cert: %s, key: %s}\n", cert, key)))
	if s.fingerprint != first || presented(t, s.url) != first {
		t.Fatalf("printed %s, presents %s, want %s", s.fingerprint, presented(t, s.url), first)
	}
	hc := insecureClient()
	getStatus(t, hc, s.url+"/redfish/v1") // a keep-alive connection opened before the reload

	second := writeCert(t, cert, key)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for presented(t, s.url) != second {
		if time.Now().After(deadline) {
			t.Fatalf("still presenting the old certificate 10 s after SIGHUP:\n%s", s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := getStatus(t, hc, s.url+"/redfish/v1"); st != http.StatusOK {
		t.Errorf("GET after the reload: %d", st)
	}
	if !strings.Contains(s.logs.String(), "reload: TLS certificate reloaded") {
		t.Errorf("the reload is not logged:\n%s", s.logs.String())
	}
	if code := s.stop(); code != 0 {
		t.Errorf("exit code %d after SIGHUP, want 0 (stopped normally):\n%s", code, s.logs.String())
	}
}
