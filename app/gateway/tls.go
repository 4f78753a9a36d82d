package gateway

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // the key identifier of RFC 5280 §4.2.1.2, not a security function
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/app/config"
)

// The gateway serves HTTPS unless told not to (issue 10): with the
// configured certificate, or with a self-signed ECDSA P-256 one that it
// makes once and keeps, so that restarts and replicas present the same
// certificate and clients can pin its fingerprint.
//
// The self-signed pair lives in tls.dir as fishgate-selfsigned.pem (key and
// certificate, 0600; fishgate-selfsigned.crt holds the certificate alone,
// for clients to trust) and, with a shared Redis, under selfSignedKey, where
// replicas on other hosts find it. The copy in Redis wins: the first replica
// to publish one sets it for all.

const (
	selfSignedPEM = "fishgate-selfsigned.pem"
	selfSignedCRT = "fishgate-selfsigned.crt"
	selfSignedKey = "fishgate:tls:selfsigned"
	// selfSignedValidity is how long a made certificate is valid (bmcweb
	// makes its own for 10 years too).
	selfSignedValidity = 10 * 365 * 24 * time.Hour
)

// certSource holds the certificate being presented; GetCertificate reads it
// at every handshake, so a reload takes effect without a new listener.
type certSource struct {
	cfg    config.TLS
	listen string
	redis  redis.UniversalClient // nil: embedded Redis, nothing shared
	log    *slog.Logger
	cur    atomic.Pointer[loadedCert]
}

type loadedCert struct {
	cert        *tls.Certificate
	fingerprint string // SHA-256 of the DER, colon-separated upper-case hex
	origin      string // where it came from, for the log
}

func newCertSource(ctx context.Context, cfg config.TLS, listen string, shared redis.UniversalClient, log *slog.Logger) (*certSource, error) {
	s := &certSource{cfg: cfg, listen: listen, redis: shared, log: log}
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// tlsConfig is the listener's configuration: TLS 1.2 or later, HTTP/1.1
// (the connection limits are per connection; HTTP/2 would multiplex
// requests past them).
func (s *certSource) tlsConfig() *tls.Config {
	minV := uint16(tls.VersionTLS12)
	if s.cfg.MinVersion == "1.3" {
		minV = tls.VersionTLS13
	}
	return &tls.Config{
		MinVersion: minV,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cur.Load().cert, nil
		},
	}
}

// Fingerprint is the presented certificate's SHA-256 fingerprint.
func (s *certSource) Fingerprint() string { return s.cur.Load().fingerprint }

// reload reads the certificate again (the configured files, or the kept
// self-signed pair) and presents it from the next handshake on. On error
// the current certificate stays.
func (s *certSource) reload(ctx context.Context) error {
	lc, err := s.prepare(ctx, s.cfg.Cert, s.cfg.Key)
	if err != nil {
		return err
	}
	s.present(lc)
	return nil
}

// prepare reads a certificate without presenting it: files cert and key,
// or the kept self-signed pair when cert is "".
func (s *certSource) prepare(ctx context.Context, cert, key string) (*loadedCert, error) {
	var (
		certPEM, keyPEM []byte
		origin          string
		err             error
	)
	if cert != "" {
		if certPEM, err = os.ReadFile(cert); err == nil {
			keyPEM, err = os.ReadFile(key)
		}
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		origin = cert
	} else if certPEM, keyPEM, origin, err = s.selfSigned(ctx); err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls: %s: %w", origin, err)
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls: %s: %w", origin, err)
		}
	}
	return &loadedCert{cert: &pair, fingerprint: Fingerprint(pair.Certificate[0]), origin: origin}, nil
}

// present makes lc the certificate of the next handshakes.
func (s *certSource) present(lc *loadedCert) {
	old := s.cur.Swap(lc)
	leaf := lc.cert.Leaf
	if old == nil || old.fingerprint != lc.fingerprint {
		s.log.Info("TLS certificate", "sha256", lc.fingerprint, "from", lc.origin,
			"subject", leaf.Subject.String(), "not_after", leaf.NotAfter.Format(time.RFC3339))
	}
	if time.Until(leaf.NotAfter) < 30*24*time.Hour {
		s.log.Warn("TLS certificate expires soon", "not_after", leaf.NotAfter.Format(time.RFC3339), "from", lc.origin)
	}
}

// Fingerprint is the SHA-256 of a DER certificate as openssl prints it
// (AB:CD:...).
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// selfSigned finds the kept self-signed pair (Redis, then tls.dir), or
// makes one and keeps it. Concurrent starts agree: the file is created
// exclusively and the Redis key set only if absent; a loser takes the
// winner's pair.
func (s *certSource) selfSigned(ctx context.Context) (certPEM, keyPEM []byte, origin string, err error) {
	if s.redis != nil {
		if certPEM, keyPEM, err = s.fromRedis(ctx); err != nil {
			return nil, nil, "", err
		}
		if certPEM != nil {
			s.keepFile(certPEM, keyPEM, false)
			return certPEM, keyPEM, "self-signed, shared in Redis", nil
		}
	}
	file := ""
	if s.cfg.Dir != "" {
		file = filepath.Join(s.cfg.Dir, selfSignedPEM)
		b, err := os.ReadFile(file)
		switch {
		case err == nil:
			if certPEM, keyPEM, err = splitPEM(b); err != nil {
				return nil, nil, "", fmt.Errorf("tls: %s: %w", file, err)
			}
		case !errors.Is(err, os.ErrNotExist):
			return nil, nil, "", fmt.Errorf("tls: %w", err)
		}
	}
	origin = "self-signed, kept in " + file
	if certPEM == nil {
		if certPEM, keyPEM, err = makeSelfSigned(s.listen); err != nil {
			return nil, nil, "", fmt.Errorf("tls: making a self-signed certificate: %w", err)
		}
		switch {
		case file != "":
			if certPEM, keyPEM, err = s.keepFile(certPEM, keyPEM, s.redis == nil); err != nil {
				return nil, nil, "", err
			}
		case s.redis == nil:
			origin = "self-signed, not kept (no tls.dir): a restart presents a new one"
			s.log.Warn("TLS: the self-signed certificate is not kept: set tls.dir, or configure tls.cert and tls.key")
		}
	}
	if s.redis != nil {
		// Publish ours unless another replica was first; then take theirs.
		ok, err := s.redis.SetNX(ctx, selfSignedKey, string(certPEM)+string(keyPEM), 0).Result()
		if err != nil {
			return nil, nil, "", fmt.Errorf("tls: keeping the self-signed certificate in Redis: %w", err)
		}
		if !ok {
			c, k, err := s.fromRedis(ctx)
			if err != nil || c == nil {
				return nil, nil, "", fmt.Errorf("tls: reading the self-signed certificate from Redis: %v", err)
			}
			certPEM, keyPEM = c, k
			s.keepFile(certPEM, keyPEM, false)
		}
		origin = "self-signed, shared in Redis"
	}
	return certPEM, keyPEM, origin, nil
}

func (s *certSource) fromRedis(ctx context.Context) (certPEM, keyPEM []byte, err error) {
	v, err := s.redis.Get(ctx, selfSignedKey).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("tls: reading the self-signed certificate from Redis: %w", err)
	}
	return splitPEM(v)
}

// keepFile writes the pair to tls.dir unless a pair is there already, in
// which case that one is returned (another process made it first). With
// must false a failure is only logged (Redis keeps the pair).
func (s *certSource) keepFile(certPEM, keyPEM []byte, must bool) ([]byte, []byte, error) {
	if s.cfg.Dir == "" {
		return certPEM, keyPEM, nil
	}
	file := filepath.Join(s.cfg.Dir, selfSignedPEM)
	fail := func(err error) ([]byte, []byte, error) {
		err = fmt.Errorf("tls: keeping the self-signed certificate in %s: %w (set tls.dir to a writable directory, configure tls.cert and tls.key, or set tls.disabled)", s.cfg.Dir, err)
		if must {
			return nil, nil, err
		}
		s.log.Warn(err.Error())
		return certPEM, keyPEM, nil
	}
	if b, err := os.ReadFile(file); err == nil {
		if c, k, err := splitPEM(b); err == nil && bytes.Equal(c, certPEM) && bytes.Equal(k, keyPEM) {
			return certPEM, keyPEM, nil
		}
		if !must { // Redis's pair is the one in use: the file follows it
			if err := os.Remove(file); err != nil {
				return fail(err)
			}
		}
	}
	tmp, err := os.CreateTemp(s.cfg.Dir, ".fishgate-selfsigned-*")
	if err != nil {
		return fail(err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(append([]byte{}, keyPEM...), certPEM...))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	// Link fails if the file exists: exactly one concurrent maker wins.
	if err := os.Link(tmp.Name(), file); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return fail(err)
		}
		b, rerr := os.ReadFile(file)
		if rerr != nil {
			return fail(rerr)
		}
		if certPEM, keyPEM, err = splitPEM(b); err != nil {
			return fail(fmt.Errorf("%s: %w", file, err))
		}
	}
	if err := os.WriteFile(filepath.Join(s.cfg.Dir, selfSignedCRT), certPEM, 0o644); err != nil {
		s.log.Warn("TLS: writing the certificate for clients", "err", err)
	}
	return certPEM, keyPEM, nil
}

// splitPEM separates a certificate block from a private key block.
func splitPEM(b []byte) (certPEM, keyPEM []byte, err error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch {
		case blk.Type == "CERTIFICATE" && certPEM == nil:
			certPEM = pem.EncodeToMemory(blk)
		case strings.HasSuffix(blk.Type, "PRIVATE KEY") && keyPEM == nil:
			keyPEM = pem.EncodeToMemory(blk)
		}
	}
	if certPEM == nil || keyPEM == nil {
		return nil, nil, errors.New("not a PEM certificate and private key")
	}
	return certPEM, keyPEM, nil
}

// makeSelfSigned makes an ECDSA P-256 certificate for this host, loopback
// and the listen address.
func makeSelfSigned(listen string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	ski := sha1.Sum(pub) //nolint:gosec // key identifier only
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "fishgate", Organization: []string{"fishgate self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		SubjectKeyId:          ski[:],
		AuthorityKeyId:        ski[:],
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	if host, _, err := net.SplitHostPort(listen); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if ip == nil && host != "" && host != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), nil
}
