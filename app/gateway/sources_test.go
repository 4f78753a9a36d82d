package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/simulator"
)

// TestEnrolmentRacesRequests: sources are enrolled and removed over and
// over while clients list and read Systems, send Resets and pass-through
// reads to them (run with -race: the node set, proxies and IPMI fronts
// change under concurrent requests). Nothing answers 5xx but a 503 for a
// node not read yet; each enrolled node has its IPMI front while it is
// enrolled and none after.
func TestEnrolmentRacesRequests(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	fleet := simulator.NewFleet(slog.New(slog.DiscardHandler))
	t.Cleanup(func() { fleet.Close() })
	const n = 3
	var urls []string
	for i := range n {
		sn, err := fleet.Add(simulator.NodeSpec{ID: fmt.Sprintf("bmc%d", i), User: "bmc", Password: "bmc-pw",
			Machine: simulator.MachineConfig{InitialPower: "Off"}})
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, sn.URL())
	}
	key := filepath.Join(t.TempDir(), "secrets.key")
	if err := config.WriteSecretsKey(key); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(`
listen: 127.0.0.1:0
redis_url: redis://` + rdb.Options().Addr + `
tls: {disabled: true}
secrets_key_file: ` + key + `
accounts: [{user: ` + user + `, password: ` + pass + `}]
`))
	if err != nil {
		t.Fatal(err)
	}
	g := serve(t, cfg, slog.New(slog.DiscardHandler))
	base := g.URL()
	const sources = "/redfish/v1/AggregationService/AggregationSources"

	// One request first: the clients' credentials are then verified
	// (bcrypt once, cached), not four times at once.
	warm := request(t, "GET", base+"/redfish/v1/Systems", "")
	warm.Body.Close()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var (
		wg       sync.WaitGroup
		requests atomic.Int64
		mu       sync.Mutex
		bad      []string
	)
	check := func(what string, resp *http.Response) {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		requests.Add(1)
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("%s: %d %s", what, resp.StatusCode, body))
			mu.Unlock()
		}
	}
	for c := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("rt%d", i%n)
				switch (c + i) % 4 {
				case 0:
					check("GET Systems", request(t, "GET", base+"/redfish/v1/Systems", ""))
				case 1:
					check("GET "+id, request(t, "GET", base+"/bmc/"+id+"/redfish/v1/Systems/"+id, ""))
				case 2:
					rt := []string{"On", "ForceOff"}[i/4%2] // quick ones: a removal waits for the running action
					check("Reset "+id, request(t, "POST", base+"/redfish/v1/Systems/"+id+"/Actions/ComputerSystem.Reset", `{"ResetType":"`+rt+`"}`))
				case 3:
					check("pass-through "+id, request(t, "GET", base+"/redfish/v1/Systems/"+id+"/Bios", ""))
				}
			}
		})
	}
	const rounds = 6
	enrolments := 0
	for i := range rounds {
		id := fmt.Sprintf("rt%d", i%n)
		body, _ := json.Marshal(map[string]any{
			"HostName": urls[i%n], "UserName": "bmc", "Password": "bmc-pw",
			"Links": map[string]any{"ConnectionMethod": map[string]string{"@odata.id": "/redfish/v1/AggregationService/ConnectionMethods/Redfish"}},
			"Oem":   map[string]any{"Fishgate": map[string]any{"NodeId": id, "IpmiListen": "127.0.0.1:0", "IpmiUser": "ipmi", "IpmiPassword": "ipmi-pw"}},
		})
		resp := request(t, "POST", base+sources, string(body))
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST %s: %d %s", id, resp.StatusCode, b)
		}
		if g.IPMIAddr(id) == "" {
			t.Errorf("%s enrolled with IpmiListen has no IPMI front", id)
		}
		enrolments++
		resp = request(t, "DELETE", base+sources+"/"+id, "")
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE %s: %d %s", id, resp.StatusCode, b)
		}
		if a := g.IPMIAddr(id); a != "" {
			t.Errorf("%s removed still has its IPMI front at %s", id, a)
		}
	}
	stop()
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d of %d requests failed:\n%s", len(bad), requests.Load(), bad)
	}
	t.Logf("%d enrolments and removals under %d concurrent requests", enrolments, requests.Load())
	if requests.Load() < 50 {
		t.Fatalf("too little happened: %d enrolments, %d requests", enrolments, requests.Load())
	}
}
