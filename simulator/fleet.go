package simulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// NodeSpec describes one simulated node. Zero fields take the documented
// defaults.
type NodeSpec struct {
	ID             string // required: letters, digits, '.', '_', '-'
	Listen         string // Redfish front address, default "127.0.0.1:0"
	User, Password string // default "admin"/"password"
	AsyncReset     bool   // Reset answers 202 + Location of a Task that ends with the transition; else 204
	SystemID       string // Id of the one ComputerSystem, default "1"
	TLS            bool   // serve HTTPS with a self-signed certificate made in memory
	Machine        MachineConfig
	AMTListen      string // Intel AMT WS-Man front address ("127.0.0.1:0": a free port); empty: no AMT front. HTTPS when TLS
	IPMIListen     string // IPMI LAN front UDP address ("127.0.0.1:0": a free port); empty: no IPMI front (ipmi.go)
}

// validName is what node ids and system ids may look like: they become
// path segments of the control API and of Redfish URIs.
var validName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// withDefaults fills the zero fields of s.
func (s NodeSpec) withDefaults() (NodeSpec, error) {
	if !validName.MatchString(s.ID) {
		return s, fmt.Errorf("node id %q: want letters, digits, '.', '_' or '-'", s.ID)
	}
	if s.Listen == "" {
		s.Listen = "127.0.0.1:0"
	}
	if s.User == "" {
		s.User = "admin"
	}
	if s.Password == "" {
		s.Password = "password"
	}
	if s.SystemID == "" {
		s.SystemID = "1"
	}
	if !validName.MatchString(s.SystemID) {
		return s, fmt.Errorf("node %s: system id %q: want letters, digits, '.', '_' or '-'", s.ID, s.SystemID)
	}
	if s.Machine.InitialPower == "" {
		s.Machine.InitialPower = PowerOff
	}
	if s.Machine.InitialPower != PowerOn && s.Machine.InitialPower != PowerOff {
		return s, fmt.Errorf("node %s: InitialPower %q: want On or Off", s.ID, s.Machine.InitialPower)
	}
	if len(s.Machine.ResetTypes) == 0 {
		s.Machine.ResetTypes = DefaultResetTypes()
	}
	for _, rt := range s.Machine.ResetTypes {
		if !knownResetType(rt) {
			return s, fmt.Errorf("node %s: unknown ResetType %q", s.ID, rt)
		}
	}
	if s.Machine.DelayMin < 0 || s.Machine.DelayMax < 0 {
		return s, fmt.Errorf("node %s: negative transition delay", s.ID)
	}
	if err := s.Machine.Faults.validate(); err != nil {
		return s, fmt.Errorf("node %s: %w", s.ID, err)
	}
	s.Machine.ResetTypes = slices.Clone(s.Machine.ResetTypes)
	return s, nil
}

// Node is one simulated BMC: a Machine behind a Redfish front on its own
// listener.
type Node struct {
	spec    NodeSpec
	machine *Machine
	front   *redfishFront
	server  *http.Server
	url     string
	roots   *x509.CertPool
	served  chan struct{} // closed when the server stopped
	amt     *amtListener  // nil without NodeSpec.AMTListen
	ipmi    *ipmiFront    // nil without NodeSpec.IPMIListen
}

// SetPassword changes the password of the node's Redfish front and ends
// the sessions opened with the old one, as a BMC does when its account's
// password changes (the AMT and IPMI fronts keep theirs).
func (n *Node) SetPassword(pw string) { n.front.setPassword(pw) }

// ID returns the node's id.
func (n *Node) ID() string { return n.spec.ID }

// URL returns the base URL of the node's Redfish service, e.g.
// "http://127.0.0.1:41234".
func (n *Node) URL() string { return n.url }

// SystemPath returns the path of the node's ComputerSystem, e.g.
// "/redfish/v1/Systems/1".
func (n *Node) SystemPath() string { return n.front.systemPath }

// Machine returns the node's machine.
func (n *Node) Machine() *Machine { return n.machine }

// Spec returns the node's spec with defaults filled in and Listen set to the
// address the node actually listens on.
func (n *Node) Spec() NodeSpec {
	s := n.spec
	s.Machine.ResetTypes = slices.Clone(s.Machine.ResetTypes)
	return s
}

// RootCAs returns a pool holding the node's self-signed certificate when it
// serves TLS (for clients that verify it), else nil.
func (n *Node) RootCAs() *x509.CertPool { return n.roots }

// close stops the listeners, then the machine (which ends pending commands,
// those still waiting out their CommandLatency too), then the IPMI front
// (which waits for its calls in flight), then waits for the fronts' task
// followers.
func (n *Node) close() error {
	err := n.server.Close()
	<-n.served
	err = errors.Join(err, n.amt.close())
	n.machine.Close()
	err = errors.Join(err, n.ipmi.close())
	n.front.wait()
	n.amt.wait()
	if err != nil {
		return fmt.Errorf("node %s: %w", n.spec.ID, err)
	}
	return nil
}

// Fleet runs many nodes in one process. It is safe for concurrent use.
type Fleet struct {
	log *slog.Logger

	mu     sync.Mutex
	nodes  map[string]*Node
	closed bool
}

// NewFleet returns an empty fleet. A nil logger discards logs.
func NewFleet(logger *slog.Logger) *Fleet {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Fleet{log: logger, nodes: map[string]*Node{}}
}

// Add starts a node: its machine and its Redfish front listener. It fails on
// a duplicate or malformed id, a bad spec, or a listen error.
func (f *Fleet) Add(spec NodeSpec) (*Node, error) {
	spec, err := spec.withDefaults()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, errors.New("fleet closed")
	}
	if _, dup := f.nodes[spec.ID]; dup {
		return nil, fmt.Errorf("node %s already exists", spec.ID)
	}

	ln, err := net.Listen("tcp", spec.Listen)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", spec.ID, err)
	}
	spec.Listen = ln.Addr().String()
	log := f.log.With("node", spec.ID)
	n := &Node{spec: spec, served: make(chan struct{})}
	scheme := "http"
	if spec.TLS {
		cert, roots, err := selfSignedCert(ln.Addr())
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("node %s: %w", spec.ID, err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		n.roots = roots
		scheme = "https"
	}
	n.url = scheme + "://" + dialAddr(ln.Addr())
	n.machine = NewMachine(spec.ID, spec.Machine)
	n.front = newRedfishFront(spec, n.machine, log)
	if spec.AMTListen != "" {
		if n.amt, err = startAMT(spec, n.machine, log, n.roots); err != nil {
			_ = ln.Close()
			n.machine.Close()
			return nil, fmt.Errorf("node %s: %w", spec.ID, err)
		}
		n.spec.AMTListen = n.amt.addr
	}
	if spec.IPMIListen != "" {
		if n.ipmi, err = startIPMIFront(spec, n.machine, log); err != nil {
			_ = ln.Close()
			_ = n.amt.close()
			n.machine.Close()
			n.amt.wait()
			return nil, fmt.Errorf("node %s: %w", spec.ID, err)
		}
		n.spec.IPMIListen = n.ipmi.srv.Addr()
	}
	n.server = &http.Server{
		Handler:           n.front,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(n.served)
		if err := n.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("Redfish front stopped", "err", err)
		}
	}()
	f.nodes[spec.ID] = n
	log.Info("node started", "url", n.url, "system", n.SystemPath(), "async", spec.AsyncReset)
	return n, nil
}

// dialAddr is addr as a client would dial it: an unspecified host (0.0.0.0,
// ::) becomes loopback.
func dialAddr(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// Node returns the node with id.
func (f *Fleet) Node(id string) (*Node, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nodes[id]
	return n, ok
}

// Nodes returns the nodes sorted by id.
func (f *Fleet) Nodes() []*Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	ns := make([]*Node, 0, len(f.nodes))
	for _, n := range f.nodes {
		ns = append(ns, n)
	}
	slices.SortFunc(ns, func(a, b *Node) int { return strings.Compare(a.spec.ID, b.spec.ID) })
	return ns
}

// Close stops every node's listener and machine. Later Adds fail.
func (f *Fleet) Close() error {
	f.mu.Lock()
	f.closed = true
	nodes := f.nodes
	f.nodes = map[string]*Node{}
	f.mu.Unlock()

	var wg sync.WaitGroup
	errs := make([]error, 0, len(nodes))
	var mu sync.Mutex
	for _, n := range nodes {
		wg.Go(func() {
			if err := n.close(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// selfSignedCert makes an in-memory ECDSA certificate for localhost, the
// loopback addresses and the listener's own IP, and a pool that trusts it.
func selfSignedCert(addr net.Addr) (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if host, _, err := net.SplitHostPort(addr.String()); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			ips = append(ips, ip)
		}
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "bmcsim", Organization: []string{"fishgate bmcsim"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots, nil
}
