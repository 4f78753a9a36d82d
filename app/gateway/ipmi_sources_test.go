package gateway_test

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/internal/testkit"
)

// TestIPMIAtNodeAddressesOfSources (issue 16): a node enrolled at runtime
// with an IPMI account answers IPMI at the address it was given, on the
// running shared socket, and stops when its source is deleted.
func TestIPMIAtNodeAddressesOfSources(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	sn := simulatedNode01(t)
	key := filepath.Join(t.TempDir(), "secrets.key")
	if err := config.WriteSecretsKey(key); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf("listen: 127.0.0.1:0\nredis_url: redis://%s\ntls: {disabled: true}\nsecrets_key_file: %s\n"+
		"accounts: [{user: %s, password: %s}]\nfronts: {address_pool: 127.0.13.0/29, redfish_port: 0, ipmi_port: 0}\n",
		rdb.Options().Addr, key, user, pass)))
	if err != nil {
		t.Fatal(err)
	}
	g := serve(t, cfg, slog.New(slog.DiscardHandler))
	const sources = "/redfish/v1/AggregationService/AggregationSources"
	resp := request(t, "POST", g.URL()+sources, fmt.Sprintf(`{"HostName": %q, "UserName": "bmc", "Password": "bmc-pw",
		"Links": {"ConnectionMethod": {"@odata.id": "/redfish/v1/AggregationService/ConnectionMethods/Redfish"}},
		"Oem": {"Fishgate": {"NodeId": "rt1", "IpmiUser": "ironic", "IpmiPassword": "front"}}}`, sn.URL()))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("enrol rt1: %d", resp.StatusCode)
	}
	a := netip.MustParseAddr("127.0.13.6") // the pool's highest free address
	to := testkit.IPMITarget{Addr: net.JoinHostPort(a.String(), strconv.Itoa(g.NodeIPMIPort())), User: "ironic", Password: "front"}
	testkit.WaitFor(t, 30*time.Second, "ipmitool at rt1's address", func() (bool, string) {
		r := testkit.Ipmitool(t, to, "power", "status")
		return r.Err == nil && strings.HasPrefix(r.Output, "Chassis Power is "), fmt.Sprintf("%q (%v)", r.Output, r.Err)
	})
	if got := g.IPMIAddr("rt1"); got != to.Addr {
		t.Errorf("IPMIAddr(rt1) %q, want %q", got, to.Addr)
	}
	resp = request(t, "DELETE", g.URL()+sources+"/rt1", "")
	resp.Body.Close()
	testkit.WaitFor(t, 30*time.Second, "rt1's IPMI front closed", func() (bool, string) {
		return g.IPMIAddr("rt1") == "", g.IPMIAddr("rt1")
	})
	if r := testkit.Ipmitool(t, to, "power", "status"); r.Err == nil {
		t.Errorf("rt1's address answers IPMI after its source was deleted: %q", r.Output)
	}
}
