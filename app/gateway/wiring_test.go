package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// TestConfigReachesSerializerAndEventBus: the file's lease_ttl is the event
// deliverer's lease TTL (it was left on 6 s), and the serializer and the
// event bus of one process go by one replica id (each made its own), in
// their leases and in the logs.
func TestConfigReachesSerializerAndEventBus(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	logs := &testkit.SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sn := simulatedNode01(t)
	cfg, err := config.Parse([]byte(`
listen: 127.0.0.1:0
redis_url: redis://` + rdb.Options().Addr + `
lease_ttl: 30s
tls: {disabled: true}
accounts: [{user: admin, password: pw}]
nodes: [{id: node01, backend: redfish, address: "` + sn.URL() + `", user: bmc, password: bmc-pw}]
`))
	if err != nil {
		t.Fatal(err)
	}
	g := serve(t, cfg, log)
	ctx := context.Background()
	replica := g.ReplicaID()
	if replica == "" {
		t.Fatal("no replica id")
	}

	// The event deliverer's lease: taken with the configured TTL.
	const deliverer = "fg:{events}:push:lease"
	var holder string
	testkit.WaitFor(t, 15*time.Second, "the event deliverer's lease", func() (bool, string) {
		v, err := rdb.Get(ctx, deliverer).Result()
		holder = v
		return err == nil, fmt.Sprint(err)
	})
	if !strings.HasPrefix(holder, replica+"|") {
		t.Errorf("deliverer lease %q, want held by the replica %s", holder, replica)
	}
	if pttl := rdb.PTTL(ctx, deliverer).Val(); pttl <= 20*time.Second || pttl > 30*time.Second {
		t.Errorf("deliverer lease PTTL %s, want lease_ttl 30s (less what has passed)", pttl)
	}

	// The serializer's node lease: the action's log entries carry its
	// value, which names the same replica.
	req, _ := http.NewRequest(http.MethodPost, g.URL()+"/redfish/v1/Systems/node01/Actions/ComputerSystem.Reset", strings.NewReader(`{"ResetType":"On"}`))
	req.SetBasicAuth("admin", "pw")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("Reset: %s", resp.Status)
	}
	var fence string
	testkit.WaitFor(t, 15*time.Second, "the action's begin in the node log", func() (bool, string) {
		xs, err := serializer.NewStore(rdb).LogEntries(ctx, "node01")
		for _, x := range xs {
			if x.Values["event"] == "begin" {
				fence, _ = x.Values["fence"].(string)
				return true, ""
			}
		}
		return false, fmt.Sprint(len(xs), " entries, ", err)
	})
	if !strings.HasPrefix(fence, replica+"|") {
		t.Errorf("node lease %q, want held by the replica %s", fence, replica)
	}

	// Every log record that names a replica names this one.
	testkit.WaitFor(t, 15*time.Second, "the action's log records", func() (bool, string) {
		return strings.Contains(logs.String(), `"node":"node01"`), ""
	})
	named := 0
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r, ok := rec["replica"]; ok {
			named++
			if r != replica {
				t.Errorf("log record names replica %v, want %s: %s", r, replica, line)
			}
		}
	}
	if named == 0 {
		t.Errorf("no log record names the replica:\n%s", logs.String())
	}
}

// simulatedNode01 is a simulated Redfish BMC, node01 (user bmc, password
// bmc-pw), Off, for the test.
func simulatedNode01(t *testing.T) *simulator.Node {
	t.Helper()
	fleet := simulator.NewFleet(slog.New(slog.DiscardHandler))
	t.Cleanup(func() { fleet.Close() })
	sn, err := fleet.Add(simulator.NodeSpec{ID: "node01", User: "bmc", Password: "bmc-pw",
		Machine: simulator.MachineConfig{InitialPower: "Off"}})
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

// TestMinReplicasAckReachesAdmissions: redis.min_replicas_ack reaches the
// serializer's writes. On a real master with one replica, a Reset with
// min_replicas_ack: 1 is accepted (the replica has the admission when
// the 202 comes); with 2, which no write can get, it is answered 503
// with Retry-After saying the replicas did not acknowledge it.
func TestMinReplicasAckReachesAdmissions(t *testing.T) {
	master := testkit.RealRedis(t)
	replica := testkit.RedisReplica(t, master)
	sn := simulatedNode01(t)
	for _, acks := range []int{1, 2} {
		cfg, err := config.Parse([]byte(fmt.Sprintf(`
listen: 127.0.0.1:0
redis: {addrs: ["%s"], min_replicas_ack: %d, ack_timeout: 200ms}
tls: {disabled: true}
accounts: [{user: admin, password: pw}]
nodes: [{id: node01, backend: redfish, address: "%s", user: bmc, password: bmc-pw}]
`, master.Options().Addr, acks, sn.URL())))
		if err != nil {
			t.Fatal(err)
		}
		g := serve(t, cfg, slog.New(slog.DiscardHandler))
		reset := func() (int, string, string) {
			req, _ := http.NewRequest(http.MethodPost, g.URL()+"/redfish/v1/Systems/node01/Actions/ComputerSystem.Reset", strings.NewReader(`{"ResetType":"On"}`))
			req.SetBasicAuth("admin", "pw")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
		}
		var st int
		var retryAfter, body string
		// the first answers may be 503 because the node's BMC has not been
		// read yet: wait for an answer about the admission itself
		testkit.WaitFor(t, 20*time.Second, "an answer about the admission", func() (bool, string) {
			st, retryAfter, body = reset()
			return !strings.Contains(body, "read its BMC"), body
		})
		switch acks {
		case 1:
			if st != http.StatusAccepted {
				t.Fatalf("min_replicas_ack 1: Reset %d %s", st, body)
			}
			keys, err := replica.Keys(context.Background(), "*node01*").Result()
			if err != nil || len(keys) == 0 {
				t.Errorf("the replica has no key of node01 right after the 202: %v %v", keys, err)
			}
		case 2:
			if st != http.StatusServiceUnavailable || retryAfter == "" || !strings.Contains(body, "replicas") {
				t.Errorf("min_replicas_ack 2 with one replica: Reset %d, Retry-After %q, %s", st, retryAfter, body)
			}
		}
	}
}
