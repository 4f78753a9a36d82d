package gateway

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/fronts/redfish"
)

// Node addresses (docs/architecture.md#node-addresses): a node with an
// address of its own is served there as a BMC by itself. Few sockets serve
// them all: one TCP listener on the wildcard address at
// fronts.redfish_port (or the API's own listener, when it listens on the
// wildcard at that port) takes every node's connections, and the
// connection's local address tells which node was addressed. A host name
// <node>.<bmc_domain> (Host header, else TLS SNI) selects a node the same
// way on any listener. 10,000 node addresses cost no socket more than one.

// nodeAddrs maps addresses and host names to nodes: the file's nodes and
// runtime sources with an address.
type nodeAddrs struct {
	fronts config.Fronts
	mu     sync.RWMutex
	byAddr map[netip.Addr]string
	byID   map[string]netip.Addr
	lower  map[string]string // lower-cased id -> id, for host names
}

func newNodeAddrs(f config.Fronts) *nodeAddrs {
	return &nodeAddrs{fronts: f, byAddr: map[netip.Addr]string{}, byID: map[string]netip.Addr{}, lower: map[string]string{}}
}

// set gives node id the address a (zero: none; the node is still known by
// host name).
func (m *nodeAddrs) set(id string, a netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removeLocked(id)
	m.lower[strings.ToLower(id)] = id
	if a.IsValid() {
		m.byID[id] = a
		m.byAddr[a] = id
	}
}

func (m *nodeAddrs) remove(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removeLocked(id)
}

func (m *nodeAddrs) removeLocked(id string) {
	if a, ok := m.byID[id]; ok && m.byAddr[a] == id {
		delete(m.byAddr, a)
	}
	delete(m.byID, id)
	delete(m.lower, strings.ToLower(id))
}

// taken reports whether a node has address a.
func (m *nodeAddrs) taken(a netip.Addr) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.byAddr[a]
	return ok
}

// nodeListenerKey marks the connections of the node-address listener.
type nodeListenerKey struct{}

// RootNode implements redfish.NodeAddresses: the node whose address the
// connection reached, else the node a host name under bmc_domain names.
func (m *nodeAddrs) RootNode(r *http.Request) (string, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ta, ok := la.(*net.TCPAddr); ok {
			if id, ok := m.byAddr[ta.AddrPort().Addr().Unmap()]; ok {
				return id, true
			}
		}
	}
	if id, ok := m.lower[m.fronts.NodeHost(r.Host)]; ok {
		return id, true
	}
	if r.TLS != nil {
		if id, ok := m.lower[m.fronts.NodeHost(r.TLS.ServerName)]; ok {
			return id, true
		}
	}
	onNodeListener, _ := r.Context().Value(nodeListenerKey{}).(bool)
	return "", !onNodeListener
}

// Address implements redfish.NodeAddresses.
func (m *nodeAddrs) Address(id string) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if a, ok := m.byID[id]; ok {
		return a.String()
	}
	return ""
}

// nodeListenAddr is where the node-address listener binds, "" when the
// API's listener serves the node addresses itself (it listens on the
// wildcard address at fronts.redfish_port) or there are none.
func nodeListenAddr(cfg config.Config) string {
	if !cfg.NodeAddressesEnabled() {
		return ""
	}
	port := cfg.Fronts.RedfishPort
	if host, p, err := net.SplitHostPort(cfg.Listen); err == nil && port != 0 && p == strconv.Itoa(port) {
		if host == "" || host == "0.0.0.0" || host == "::" {
			return ""
		}
	}
	return net.JoinHostPort("", strconv.Itoa(port))
}

// loopbackOnly reports whether every node address the configuration can
// give is a loopback address: the node listener then takes connections
// from the loopback interface only (bindToLoopback).
func loopbackOnly(cfg config.Config) bool {
	if p := cfg.Fronts.AddressPool; p.IsValid() && !p.Addr().IsLoopback() {
		return false
	}
	for _, n := range cfg.Nodes {
		if n.BMCAddress.IsValid() && !n.BMCAddress.IsLoopback() {
			return false
		}
	}
	return true
}

// listenNodes binds the node-address listener: the wildcard address at
// addr's port, restricted to the loopback interface when every node
// address is a loopback one.
func listenNodes(ctx context.Context, addr string, loopback bool) (net.Listener, error) {
	lc := net.ListenConfig{}
	if loopback {
		lc.Control = bindToLoopback
	}
	return lc.Listen(ctx, "tcp", addr)
}

// Runtime sources' addresses: given (Oem/Fishgate/BmcAddress) or, with a
// pool, the highest free address of it (the file's nodes take theirs from
// the bottom, so a node added to the file does not move a runtime one).
// The address is claimed in Redis (sourcesAddrsKey) before the record is
// stored, so two replicas enrolling at once cannot give one address twice,
// and kept in the record: the same after every restart.

// releaseScript deletes an address claim of node ARGV[1].
var releaseScript = redis.NewScript(`
for _, a in ipairs(redis.call('HKEYS', KEYS[1])) do
  if redis.call('HGET', KEYS[1], a) == ARGV[1] then redis.call('HDEL', KEYS[1], a) end
end
return 1
`)

// claimAddress gives runtime node id its address: the one asked for, or
// one of the pool; zero without either.
func (s *sources) claimAddress(ctx context.Context, id string, asked *string) (netip.Addr, error) {
	const prop = "Oem/Fishgate/BmcAddress"
	claim := func(a netip.Addr) (bool, error) {
		ok, err := s.rdb.HSetNX(ctx, sourcesAddrsKey, a.String(), id).Result()
		if err != nil || ok {
			return ok, err
		}
		owner, err := s.rdb.HGet(ctx, sourcesAddrsKey, a.String()).Result()
		return owner == id, err
	}
	if asked != nil && *asked != "" {
		a, err := netip.ParseAddr(*asked)
		problem := ""
		switch {
		case err != nil:
			problem = "not an IP address"
		case config.AddressProblem(a) != "":
			problem = config.AddressProblem(a)
		case s.addrs.taken(a.Unmap()):
			problem = a.Unmap().String() + " is another node's address"
		}
		if problem != "" {
			return netip.Addr{}, &redfish.SourcePropertyError{Property: prop, Value: *asked, Problem: problem}
		}
		a = a.Unmap()
		if ok, err := claim(a); err != nil {
			return netip.Addr{}, err
		} else if !ok {
			return netip.Addr{}, &redfish.SourcePropertyError{Property: prop, Value: *asked, Problem: a.String() + " is another node's address"}
		}
		return a, nil
	}
	if !s.fronts.AddressPool.IsValid() {
		return netip.Addr{}, nil
	}
	refused := map[netip.Addr]bool{}
	for {
		a, ok := s.fronts.FreeFromTop(func(a netip.Addr) bool { return refused[a] || s.addrs.taken(a) })
		if !ok {
			return netip.Addr{}, &redfish.SourcePropertyError{Property: prop, Problem: "the address pool " + s.fronts.AddressPool.String() + " is exhausted"}
		}
		got, err := claim(a)
		if err != nil {
			return netip.Addr{}, err
		}
		if got {
			return a, nil
		}
		refused[a] = true // claimed by an enrolment on another replica
	}
}

// releaseAddress drops node id's address claim.
func (s *sources) releaseAddress(ctx context.Context, id string) {
	if err := releaseScript.Run(ctx, s.rdb, []string{sourcesAddrsKey}, id).Err(); err != nil {
		s.log.Warn("address claim of a removed node not released", "node", id, "err", err)
	}
}

// setAddress serves runtime node n at its address; one that a node of the
// file has meanwhile taken stays the file's (logged).
func (s *sources) setAddress(n config.Node) {
	if a := n.BMCAddress; a.IsValid() && s.addrs.taken(a) && s.addrs.Address(n.ID) != a.String() {
		s.log.Error("runtime node's address is another node's: served by name and path only", "node", n.ID, "bmc_address", a)
		s.addrs.set(n.ID, netip.Addr{})
		return
	}
	s.addrs.set(n.ID, n.BMCAddress)
}

// addrString is a as text, "" for none.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
