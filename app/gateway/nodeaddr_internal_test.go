package gateway

import (
	"net/netip"
	"testing"

	"github.com/fishgate/fishgate/app/config"
)

// TestNodeListenAddr: the API's own listener serves node addresses when it
// listens on the wildcard address at fronts.redfish_port; otherwise one
// more listener binds the wildcard at that port; none without addresses.
func TestNodeListenAddr(t *testing.T) {
	withPool := func(listen string, port int) config.Config {
		c := config.Default()
		c.Listen, c.Fronts.RedfishPort = listen, port
		c.Fronts.AddressPool = netip.MustParsePrefix("10.0.5.0/24")
		return c
	}
	for _, tc := range []struct {
		cfg  config.Config
		want string
	}{
		{config.Default(), ""},
		{withPool("0.0.0.0:443", 443), ""},
		{withPool("[::]:443", 443), ""},
		{withPool(":443", 443), ""},
		{withPool("0.0.0.0:8000", 443), ":443"},
		{withPool("10.0.0.2:443", 443), ":443"},
		{withPool("0.0.0.0:0", 0), ":0"},
	} {
		if got := nodeListenAddr(tc.cfg); got != tc.want {
			t.Errorf("listen %s, redfish_port %d: node listener %q, want %q", tc.cfg.Listen, tc.cfg.Fronts.RedfishPort, got, tc.want)
		}
	}
	lo := withPool("127.0.0.1:0", 0)
	lo.Fronts.AddressPool = netip.MustParsePrefix("127.0.10.0/24")
	if !loopbackOnly(lo) || loopbackOnly(withPool("127.0.0.1:0", 0)) {
		t.Error("loopbackOnly: a 127/8 pool is, 10.0.5.0/24 is not")
	}
	lo.Nodes = []config.Node{{ID: "n", BMCAddress: netip.MustParseAddr("192.0.2.1")}}
	if loopbackOnly(lo) {
		t.Error("loopbackOnly with a node at 192.0.2.1")
	}
}
