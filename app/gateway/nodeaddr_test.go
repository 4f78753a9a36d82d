package gateway_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
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

// TestNodeAddressesOfSources (issue 16): a source enrolled at runtime
// without Oem/Fishgate/BmcAddress takes the pool's highest free address,
// the next one the address below it; one asked for that another node has
// is refused, as is a PATCH of the address; a removed source's address is
// given again. A node added to the file by a reload is served at its pool
// address.
func TestNodeAddressesOfSources(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	sn := simulatedNode01(t)
	key := filepath.Join(t.TempDir(), "secrets.key")
	if err := config.WriteSecretsKey(key); err != nil {
		t.Fatal(err)
	}
	head := fmt.Sprintf("listen: 127.0.0.1:0\nredis_url: redis://%s\ntls: {disabled: true}\nsecrets_key_file: %s\naccounts: [{user: %s, password: %s}]\n"+
		"fronts: {address_pool: 127.0.12.0/29, redfish_port: 0}\nnodes:\n  - {id: file1, backend: redfish, address: %q, user: bmc, password: bmc-pw}\n",
		rdb.Options().Addr, key, user, pass, sn.URL())
	cfg, err := config.Parse([]byte(head))
	if err != nil {
		t.Fatal(err)
	}
	g := serve(t, cfg, slog.New(slog.DiscardHandler))
	const sources = "/redfish/v1/AggregationService/AggregationSources"
	enrol := func(id, oem string) (int, string) {
		t.Helper()
		resp := request(t, "POST", g.URL()+sources, fmt.Sprintf(`{"HostName": %q, "UserName": "bmc", "Password": "bmc-pw",
			"Links": {"ConnectionMethod": {"@odata.id": "/redfish/v1/AggregationService/ConnectionMethods/Redfish"}},
			"Oem": {"Fishgate": {"NodeId": %q%s}}}`, sn.URL(), id, oem))
		defer resp.Body.Close()
		var body struct {
			Oem struct{ Fishgate struct{ BmcAddress string } }
		}
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Oem.Fishgate.BmcAddress
	}
	port := strconv.Itoa(g.NodeRedfishPort())
	servedAt := func(addr, id string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+net.JoinHostPort(addr, port)+"/redfish/v1/Systems", nil)
		req.SetBasicAuth(user, pass)
		st, ids, err := testkit.Members(http.DefaultClient, req)
		if err != nil || st != http.StatusOK || len(ids) != 1 || ids[0] != "/redfish/v1/Systems/"+id {
			t.Errorf("%s: %d %v %v, want %s alone", addr, st, ids, err, id)
		}
	}
	// 127.0.12.0/29: .1 is file1's, .7 the broadcast address.
	if st, a := enrol("rt1", ""); st != http.StatusCreated || a != "127.0.12.6" {
		t.Fatalf("rt1: %d %q, want 201 at 127.0.12.6", st, a)
	}
	if st, a := enrol("rt2", ""); st != http.StatusCreated || a != "127.0.12.5" {
		t.Fatalf("rt2: %d %q, want 201 at 127.0.12.5", st, a)
	}
	servedAt("127.0.12.1", "file1")
	servedAt("127.0.12.6", "rt1")
	if st, _ := enrol("rt3", `, "BmcAddress": "127.0.12.1"`); st != http.StatusBadRequest {
		t.Errorf("rt3 at file1's address: %d, want 400", st)
	}
	if st, a := enrol("rt3", `, "BmcAddress": "127.0.12.3"`); st != http.StatusCreated || a != "127.0.12.3" {
		t.Errorf("rt3 at 127.0.12.3: %d %q", st, a)
	}
	resp := request(t, "PATCH", g.URL()+sources+"/rt3", `{"Oem": {"Fishgate": {"BmcAddress": "127.0.12.4"}}}`)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("PATCH of BmcAddress: %d, want 400", resp.StatusCode)
	}
	resp = request(t, "DELETE", g.URL()+sources+"/rt1", "")
	resp.Body.Close()
	testkit.WaitFor(t, 30*time.Second, "rt1 removed", func() (bool, string) {
		r := request(t, "GET", g.URL()+sources+"/rt1", "")
		r.Body.Close()
		return r.StatusCode == http.StatusNotFound, strconv.Itoa(r.StatusCode)
	})
	if st, a := enrol("rt4", ""); st != http.StatusCreated || a != "127.0.12.6" {
		t.Errorf("rt4 after rt1's removal: %d %q, want 127.0.12.6 again", st, a)
	}

	// A reload adds file2: the pool's next free address from the bottom.
	cfg2, err := config.Parse([]byte(head + fmt.Sprintf("  - {id: file2, backend: redfish, address: %q, user: bmc, password: bmc-pw}\n", sn.URL())))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Reload(context.Background(), cfg2); err != nil {
		t.Fatal(err)
	}
	servedAt("127.0.12.2", "file2")
}
