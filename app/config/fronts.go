package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
)

// Fronts is how nodes are reached as BMCs of their own
// (docs/architecture.md#node-addresses): each node may have an IP address
// of its own (Node.BMCAddress, given or taken from AddressPool) on which
// the Redfish service at /redfish/v1 is that node's alone, and IPMI is
// that node's front; or a host name <node>.<BMCDomain> that selects the
// same view.
type Fronts struct {
	// AddressPool gives every node without a bmc_address one: the nodes
	// of the file, in their order, take its free addresses from the
	// bottom (the network's first address, and an IPv4 broadcast address,
	// are never given); nodes enrolled at runtime take them from the top,
	// and keep what they got in Redis with their record, so adding a node
	// to the file does not move them. Default: none.
	AddressPool netip.Prefix `yaml:"address_pool"`
	// RedfishPort is the TCP port where node addresses answer Redfish
	// (default 443; 0: a free port chosen at start, for tests and the
	// demo). One listener on the wildcard address serves them all
	// and tells the node from the connection's local address; when the
	// API itself listens on the wildcard at this port, it is that one.
	RedfishPort int `yaml:"redfish_port"`
	// IPMIPort is the UDP port where node addresses answer IPMI over LAN
	// (default 623; 0: a free port chosen at start).
	IPMIPort int `yaml:"ipmi_port"`
	// BMCDomain, when set, makes the host name <node id>.<bmc_domain>
	// (HTTP Host, TLS SNI) select that node's view at /redfish/v1, on any
	// of the gateway's Redfish listeners: for where addresses are scarce.
	BMCDomain string `yaml:"bmc_domain"`
}

func defaultFronts() Fronts { return Fronts{RedfishPort: 443, IPMIPort: 623} }

// NodeAddressesEnabled reports whether any node can have an address of its own: a pool,
// or a node of the file with a bmc_address.
func (c *Config) NodeAddressesEnabled() bool {
	if c.Fronts.AddressPool.IsValid() {
		return true
	}
	for _, n := range c.Nodes {
		if n.BMCAddress.IsValid() {
			return true
		}
	}
	return false
}

var domainRe = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// validate checks the block and every node's bmc_address, then gives each
// node without one the next free address of the pool.
func (c *Config) validateFronts(bad func(field, format string, a ...any)) {
	f := c.Fronts
	if p := f.AddressPool; p.IsValid() {
		switch {
		case p != p.Masked():
			bad("fronts.address_pool", "%s has host bits set: write %s", p, p.Masked())
		case p.Addr().IsUnspecified() && p.Bits() == 0, p.Addr().IsMulticast():
			bad("fronts.address_pool", "%s is not a pool of unicast addresses", p)
		}
	}
	if f.RedfishPort < 0 || f.RedfishPort > 65535 {
		bad("fronts.redfish_port", "%d is out of range 0..65535 (0: a free port, chosen at start)", f.RedfishPort)
	}
	if f.IPMIPort < 0 || f.IPMIPort > 65535 {
		bad("fronts.ipmi_port", "%d is out of range 0..65535 (0: a free port, chosen at start)", f.IPMIPort)
	}
	if f.BMCDomain != "" && (len(f.BMCDomain) > 200 || !domainRe.MatchString(f.BMCDomain)) {
		bad("fronts.bmc_domain", "%q is not a DNS domain in lower case (bmc.example.com)", f.BMCDomain)
	}
	var listenIP netip.Addr
	if host, _, err := net.SplitHostPort(c.Listen); err == nil {
		listenIP, _ = netip.ParseAddr(host)
		listenIP = listenIP.Unmap()
	}
	owner := map[netip.Addr]int{}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		a := n.BMCAddress.Unmap()
		n.BMCAddress = a
		if !a.IsValid() {
			continue
		}
		field := fmt.Sprintf("nodes[%d].bmc_address", i)
		if p := AddressProblem(a); p != "" {
			bad(field, "%s", p)
			continue
		}
		if j, dup := owner[a]; dup {
			bad(field, "%s is also nodes[%d]'s (%s)", a, j, c.Nodes[j].ID)
			continue
		}
		if a == listenIP {
			bad(field, "%s is the API's listen address, which serves the aggregate service", a)
		}
		owner[a] = i
	}
	if !f.AddressPool.IsValid() || f.AddressPool != f.AddressPool.Masked() {
		return
	}
	taken := func(a netip.Addr) bool { _, ok := owner[a]; return ok || a == listenIP }
	next := f.AddressPool.Addr()
	need := 0
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if n.BMCAddress.IsValid() {
			continue
		}
		a, ok := f.nextFree(next, taken)
		if !ok {
			need++
			continue
		}
		n.BMCAddress, owner[a] = a, i
		next = a.Next()
	}
	if need > 0 {
		bad("fronts.address_pool", "%s is exhausted: %d more nodes need an address (give a larger pool)", f.AddressPool, need)
	}
}

// AddressProblem is what is wrong with a as a node's BMC address, or "".
func AddressProblem(a netip.Addr) string {
	switch a = a.Unmap(); {
	case !a.IsValid():
		return "not an IP address"
	case a.IsUnspecified(), a.IsMulticast(), a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Sprintf("%s is not a unicast address", a)
	case a.Zone() != "":
		return fmt.Sprintf("%s has a zone; give the address alone", a)
	}
	return ""
}

// usable reports whether the pool may give a: not the network's first
// address, nor an IPv4 network's broadcast address (for prefixes of /30 or
// wider).
func (f Fronts) usable(a netip.Addr) bool {
	p := f.AddressPool
	switch {
	case !p.Contains(a):
		return false
	case a == p.Addr() && p.Bits() < a.BitLen()-1:
		return false
	case a.Is4() && p.Bits() <= 30 && a == lastAddr(p):
		return false
	}
	return true
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := range b {
		switch bits := p.Bits() - 8*i; {
		case bits <= 0:
			b[i] = 0xff
		case bits < 8:
			b[i] |= 0xff >> bits
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// nextFree is the first usable address of the pool from `from` on that
// taken does not hold.
func (f Fronts) nextFree(from netip.Addr, taken func(netip.Addr) bool) (netip.Addr, bool) {
	for a := from; a.IsValid() && f.AddressPool.Contains(a); a = a.Next() {
		if f.usable(a) && !taken(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// FreeFromTop is the pool's highest usable address that taken does not
// hold: where nodes enrolled at runtime take theirs, so that the file's
// nodes, numbered from the bottom, do not move them. ok is false when the
// pool is unset or full.
func (f Fronts) FreeFromTop(taken func(netip.Addr) bool) (netip.Addr, bool) {
	p := f.AddressPool
	if !p.IsValid() {
		return netip.Addr{}, false
	}
	last := lastAddr(p)
	for a := last; a.IsValid() && p.Contains(a); a = a.Prev() {
		if f.usable(a) && !taken(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// NodeHost is the node id a Host header or TLS server name selects with
// bmc_domain: "n1.bmc.example" or "n1.bmc.example:443" gives "n1" (any
// case, a trailing dot allowed); "" when the name is not a node id under
// the domain.
func (f Fronts) NodeHost(host string) string {
	if f.BMCDomain == "" || host == "" {
		return ""
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	id, ok := strings.CutSuffix(host, "."+f.BMCDomain)
	if !ok || !idRe.MatchString(id) {
		return ""
	}
	return id
}
