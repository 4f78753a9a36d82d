package gateway_test

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/internal/testkit"
)

// TestNodeAddressesOfTheFile (issue 16): nodes of the file with a
// bmc_address (or one from the pool) are served at it over HTTPS on the one
// node listener; TLS SNI <node>.<bmc_domain> selects a node on the API's
// own address; an address that no node has answers 404 on the node
// listener.
func TestNodeAddressesOfTheFile(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	sn := simulatedNode01(t)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
listen: 127.0.0.1:0
redis_url: redis://%s
tls: {dir: %s}
accounts: [{user: admin, password: pw}]
fronts: {address_pool: 127.0.11.0/24, redfish_port: 0, bmc_domain: bmc.example}
nodes:
  - {id: node01, backend: redfish, address: "%s", user: bmc, password: bmc-pw, bmc_address: 127.0.11.9}
  - {id: node02, backend: redfish, address: "%s", user: bmc, password: bmc-pw}
`, rdb.Options().Addr, t.TempDir(), sn.URL(), sn.URL())))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Nodes[1].BMCAddress.String() != "127.0.11.1" {
		t.Fatalf("node02 took %s from the pool, want 127.0.11.1", cfg.Nodes[1].BMCAddress)
	}
	g := serve(t, cfg, slog.New(slog.DiscardHandler))
	port := strconv.Itoa(g.NodeRedfishPort())
	if port == "0" {
		t.Fatal("no node listener")
	}
	get := func(url, serverName string) (int, []string) {
		t.Helper()
		cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: serverName}}}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.SetBasicAuth("admin", "pw")
		st, ids, err := testkit.Members(cl, req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		return st, ids
	}
	testkit.WaitFor(t, 15*time.Second, "the gateway answers", func() (bool, string) {
		st, _ := get(g.URL()+"/redfish/v1/Systems", "")
		return st == http.StatusOK, strconv.Itoa(st)
	})
	for addr, want := range map[string]string{"127.0.11.9": "node01", "127.0.11.1": "node02"} {
		st, ids := get("https://"+net.JoinHostPort(addr, port)+"/redfish/v1/Systems", "")
		if st != http.StatusOK || len(ids) != 1 || ids[0] != "/redfish/v1/Systems/"+want {
			t.Errorf("%s: %d %v, want %s alone", addr, st, ids, want)
		}
	}
	if st, ids := get(g.URL()+"/redfish/v1/Systems", "node02.bmc.example"); st != http.StatusOK || len(ids) != 1 || ids[0] != "/redfish/v1/Systems/node02" {
		t.Errorf("SNI node02.bmc.example: %d %v", st, ids)
	}
	if st, ids := get(g.URL()+"/redfish/v1/Systems", ""); st != http.StatusOK || len(ids) != 2 {
		t.Errorf("the API's own address: %d %v, want both nodes", st, ids)
	}
	if st, _ := get("https://"+net.JoinHostPort("127.0.11.200", port)+"/redfish/v1/Systems", ""); st != http.StatusNotFound {
		t.Errorf("an address no node has: %d, want 404", st)
	}
}
