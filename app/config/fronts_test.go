package config

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// nodesYAML is a nodes: block of the ids given, "id=address" with a
// bmc_address.
func nodesYAML(ids ...string) string {
	var b strings.Builder
	b.WriteString("nodes:\n")
	for _, id := range ids {
		extra := ""
		if i, addr, ok := strings.Cut(id, "="); ok {
			id, extra = i, ", bmc_address: "+addr
		}
		fmt.Fprintf(&b, "  - {id: %s, backend: redfish, address: http://x, user: u, password: p%s}\n", id, extra)
	}
	return b.String()
}

// TestNodeAddressesFromPool: the file's nodes take the pool's free
// addresses in their order, skipping the network address and those given
// explicitly; the same file gives the same addresses (every replica,
// every restart).
func TestNodeAddressesFromPool(t *testing.T) {
	file := accountsLine + "fronts: {address_pool: 10.0.5.0/24, redfish_port: 8443, ipmi_port: 6230, bmc_domain: bmc.example}\n" +
		nodesYAML("a", "b=10.0.5.2", "c", "d=192.0.2.9", "e")
	c, err := Parse([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "10.0.5.1", "b": "10.0.5.2", "c": "10.0.5.3", "d": "192.0.2.9", "e": "10.0.5.4"}
	for _, n := range c.Nodes {
		if n.BMCAddress.String() != want[n.ID] {
			t.Errorf("node %s: address %s, want %s", n.ID, n.BMCAddress, want[n.ID])
		}
	}
	if f := c.Fronts; f.RedfishPort != 8443 || f.IPMIPort != 6230 || f.BMCDomain != "bmc.example" || f.AddressPool.String() != "10.0.5.0/24" {
		t.Errorf("fronts %+v", f)
	}
	again, err := Parse([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes {
		if again.Nodes[i].BMCAddress != c.Nodes[i].BMCAddress {
			t.Errorf("node %s: %s then %s", c.Nodes[i].ID, c.Nodes[i].BMCAddress, again.Nodes[i].BMCAddress)
		}
	}
	// The gateway's own listen address is not given to a node.
	own, err := Parse([]byte(accountsLine + "listen: 10.0.5.1:443\nfronts: {address_pool: 10.0.5.0/24}\n" + nodesYAML("a")))
	if err != nil || own.Nodes[0].BMCAddress.String() != "10.0.5.2" {
		t.Errorf("with listen 10.0.5.1: node a at %v (%v), want 10.0.5.2", own.Nodes, err)
	}
	d := Default()
	if d.Fronts.RedfishPort != 443 || d.Fronts.IPMIPort != 623 || d.NodeAddressesEnabled() {
		t.Errorf("defaults %+v", d.Fronts)
	}
	if !c.NodeAddressesEnabled() {
		t.Error("a pool enables node addresses")
	}
}

// TestNodeAddressProblems: bad prefixes and addresses, duplicates and an
// exhausted pool are reported together with the file's other problems.
func TestNodeAddressProblems(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"bad prefix and address together", accountsLine + "fronts: {address_pool: 10.0.5.0/33}\nlisten: nope\n" + nodesYAML("a=10.0.5", "b"),
			[]string{`line 2: fronts.address_pool: "10.0.5.0/33" is not an address prefix`, `line 3: listen:`, `line 5: nodes[0].bmc_address: "10.0.5" is not an IP address`}},
		{"duplicate", accountsLine + nodesYAML("a=10.0.5.9", "b=10.0.5.9"), []string{`nodes[1].bmc_address: 10.0.5.9 is also nodes[0]'s (a)`}},
		{"exhausted", accountsLine + "fronts: {address_pool: 10.0.5.0/30}\n" + nodesYAML("a", "b", "c", "d"),
			[]string{"fronts.address_pool: 10.0.5.0/30 is exhausted: 2 more nodes"}},
		{"host bits", accountsLine + "fronts: {address_pool: 10.0.5.7/24}\n", []string{"fronts.address_pool: 10.0.5.7/24 has host bits set: write 10.0.5.0/24"}},
		{"unspecified", accountsLine + nodesYAML("a=0.0.0.0"), []string{"nodes[0].bmc_address: 0.0.0.0 is not a unicast address"}},
		{"listen address", accountsLine + "listen: 10.0.5.1:443\n" + nodesYAML("a=10.0.5.1"), []string{"nodes[0].bmc_address: 10.0.5.1 is the API's listen address"}},
		{"ports", accountsLine + "fronts: {redfish_port: -1, ipmi_port: 70000}\n", []string{"fronts.redfish_port: -1 is out of range", "fronts.ipmi_port: 70000 is out of range"}},
		{"domain", accountsLine + "fronts: {bmc_domain: .Bad..}\n", []string{`fronts.bmc_domain: ".Bad.." is not a DNS domain`}},
		{"typo", accountsLine + "fronts: {adress_pool: 10.0.5.0/24}\n", []string{`fronts.adress_pool: unknown key; did you mean "address_pool"?`}},
		{"node typo", accountsLine + nodesYAML("a") + "  - {id: b, backend: redfish, address: http://x, user: u, bmc_adress: 10.0.0.1}\n",
			[]string{`nodes[1].bmc_adress: unknown key; did you mean "bmc_address"?`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %v\nwant one containing %s", err, w)
				}
			}
		})
	}
}

// TestPoolEdges: the network's first address and an IPv4 broadcast
// address are never given; runtime enrolment takes from the top.
func TestPoolEdges(t *testing.T) {
	f := Fronts{AddressPool: netip.MustParsePrefix("10.0.5.0/30")}
	none := func(netip.Addr) bool { return false }
	if a, ok := f.nextFree(f.AddressPool.Addr(), none); !ok || a.String() != "10.0.5.1" {
		t.Errorf("first %s %v", a, ok)
	}
	if a, ok := f.FreeFromTop(none); !ok || a.String() != "10.0.5.2" {
		t.Errorf("top %s %v", a, ok)
	}
	taken := func(a netip.Addr) bool { return a.String() != "10.0.5.0" && a.String() != "10.0.5.3" }
	if a, ok := f.FreeFromTop(taken); ok {
		t.Errorf("full pool gave %s", a)
	}
	f6 := Fronts{AddressPool: netip.MustParsePrefix("fd00:5::/120")}
	if a, ok := f6.FreeFromTop(none); !ok || a.String() != "fd00:5::ff" {
		t.Errorf("v6 top %s %v", a, ok)
	}
	if _, ok := (Fronts{}).FreeFromTop(none); ok {
		t.Error("no pool gave an address")
	}
}

func TestNodeHost(t *testing.T) {
	f := Fronts{BMCDomain: "bmc.example"}
	for host, want := range map[string]string{"n1.bmc.example": "n1", "N1.BMC.example.:443": "n1", "rack.n2.bmc.example": "rack.n2",
		"bmc.example": "", "n1.other": "", "": "", "n1.xbmc.example": ""} {
		if got := f.NodeHost(host); got != want {
			t.Errorf("NodeHost(%q) = %q, want %q", host, got, want)
		}
	}
	if (Fronts{}).NodeHost("n1.bmc.example") != "" {
		t.Error("no domain, no host routing")
	}
}

// FuzzNodeHost: any Host header or server name gives a node id only when
// it is under the domain, and never panics.
func FuzzNodeHost(f *testing.F) {
	for _, s := range []string{"n1.bmc.example", "N1.BMC.EXAMPLE.:443", "[::1]:80", ".bmc.example", "bmc.example", "a.b.bmc.example:", "\x00.bmc.example", ""} {
		f.Add(s)
	}
	fr := Fronts{BMCDomain: "bmc.example"}
	f.Fuzz(func(t *testing.T, host string) {
		id := fr.NodeHost(host)
		if id == "" {
			return
		}
		if !strings.Contains(strings.ToLower(host), id+".bmc.example") || !idRe.MatchString(id) {
			t.Errorf("NodeHost(%q) = %q, not a name under bmc.example", host, id)
		}
	})
}
