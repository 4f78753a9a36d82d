// This file starts a real redis-server that serves TLS only, with a
// certificate authority made for the test.

package testkit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisTLS is a redis-server serving TLS only (no plain port) and the PEM
// files a client needs.
type RedisTLS struct {
	Addr string // 127.0.0.1:port; the certificate is for 127.0.0.1
	// CA is the certificate authority that signed the server's and the
	// client's certificates.
	CA string
	// ClientCert and ClientKey are a client certificate the server takes.
	ClientCert, ClientKey string
}

// StartRedisTLS starts redis-server serving TLS only on a free loopback
// port (Debian's redis-server is built with TLS). With requireClientCert
// it refuses clients without a certificate of the CA (tls-auth-clients).
func StartRedisTLS(t testing.TB, requireClientCert bool) RedisTLS {
	t.Helper()
	dir := t.TempDir()
	ca := newTestCA(t)
	r := RedisTLS{CA: filepath.Join(dir, "ca.pem"), ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem")}
	serverCert, serverKey := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	writePEM(t, r.CA, "CERTIFICATE", ca.der)
	ca.issue(t, serverCert, serverKey, x509.ExtKeyUsageServerAuth)
	ca.issue(t, r.ClientCert, r.ClientKey, x509.ExtKeyUsageClientAuth)

	auth := "no"
	if requireClientCert {
		auth = "yes"
	}
	pair, err := tls.LoadX509KeyPair(r.ClientCert, r.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	r.Addr = startRedisServer(t, func(port int) []string {
		return []string{"--port", "0", "--tls-port", fmt.Sprint(port),
			"--tls-cert-file", serverCert, "--tls-key-file", serverKey, "--tls-ca-cert-file", r.CA, "--tls-auth-clients", auth}
	}, func(ctx context.Context, addr string) error {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second,
			TLSConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}})
		defer c.Close()
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(20 * time.Millisecond) {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			err = c.Ping(pctx).Err()
			cancel()
			if err == nil {
				return nil
			}
		}
		return fmt.Errorf("no TLS answer: %v", err)
	})
	return r
}

// testCA is a certificate authority for one test.
type testCA struct {
	cert *x509.Certificate
	der  []byte
	key  *ecdsa.PrivateKey
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fishgate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, der: der, key: key}
}

// issue writes a certificate for 127.0.0.1 signed by the CA, and its key.
func (ca *testCA) issue(t testing.TB, certFile, keyFile string, usage x509.ExtKeyUsage) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
}

func writePEM(t testing.TB, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
