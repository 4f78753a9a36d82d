package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/app/gateway"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/simulator"
)

const user, pass = "admin", "pw"

// startReplicas runs n gateways on one Redis in front of one simulated node.
func startReplicas(t *testing.T, redisAddr string, n int) ([]string, *simulator.Fleet) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fleet := simulator.NewFleet(log)
	t.Cleanup(func() { fleet.Close() })
	sn, err := fleet.Add(simulator.NodeSpec{ID: "node01", User: "bmc", Password: "bmc-pw",
		Machine: simulator.MachineConfig{DelayMin: 20 * time.Millisecond, DelayMax: 60 * time.Millisecond, InitialPower: "Off"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.TLS.Disabled = true
	cfg.RedisURL = "redis://" + redisAddr
	cfg.LeaseTTL = config.Duration(time.Second)
	cfg.Accounts = []config.Account{{User: user, Password: pass}}
	cfg.Nodes = []config.Node{{ID: "node01", Backend: "redfish", Address: sn.URL(), User: "bmc", Password: "bmc-pw"}}
	cfg.Events.AllowDestinations = []string{"127.0.0.1/32"}
	cfg.Events.DeliveryRetryInterval = config.Duration(time.Second)
	var urls []string
	for range n {
		urls = append(urls, serve(t, cfg, log).URL())
	}
	for _, u := range urls {
		deadline := time.Now().Add(15 * time.Second)
		for {
			resp, err := http.Get(u + "/redfish/v1")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("gateway %s did not answer", u)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return urls, fleet
}

// serve runs a gateway configured by cfg until the test ends.
func serve(t *testing.T, cfg config.Config, log *slog.Logger) *gateway.Gateway {
	t.Helper()
	g, _ := runGateway(t, cfg, log)
	return g
}

func request(t *testing.T, method, url, body string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.SetBasicAuth(user, pass)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// sseClient collects one SSE connection's events.
type sseClient struct {
	mu     sync.Mutex
	events []schemas.Event
	ids    []string
	cancel context.CancelFunc
}

func openSSE(t *testing.T, url, lastID string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/redfish/v1/EventService/SSE", nil)
	req.SetBasicAuth(user, pass)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		cancel()
		t.Fatalf("SSE: %v %v", resp, err)
	}
	c := &sseClient{cancel: cancel}
	t.Cleanup(cancel)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		id := ""
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				id = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				var ev schemas.Event
				if json.Unmarshal([]byte(v), &ev) == nil {
					c.mu.Lock()
					c.events, c.ids = append(c.events, ev), append(c.ids, id)
					c.mu.Unlock()
				}
			}
		}
	}()
	return c
}

func (c *sseClient) messageIDs() ([]string, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var m []string
	for _, ev := range c.events {
		m = append(m, ev.Events[0].MessageID)
	}
	return m, append([]string(nil), c.ids...)
}

type pushReceiver struct {
	mu     sync.Mutex
	msgs   []string
	ids    []string
	bodies [][]byte
	ctx    []string
}

func (p *pushReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var ev schemas.Event
	if err := json.Unmarshal(b, &ev); err != nil || len(ev.Events) != 1 {
		http.Error(w, "bad event", 400)
		return
	}
	p.mu.Lock()
	p.msgs = append(p.msgs, ev.Events[0].MessageID)
	p.ids = append(p.ids, ev.Events[0].EventID)
	p.bodies = append(p.bodies, b)
	p.ctx = append(p.ctx, ev.Context)
	p.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (p *pushReceiver) got() ([]string, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.msgs...), append([]string(nil), p.ids...)
}

func waitLen(t *testing.T, what string, n int, f func() int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for f() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d events within 15s", what, f(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEventsWithTwoReplicas: two gateways share one Redis. A push
// subscriber (made on one) and an SSE client (on the other) each get the
// power and task events of a Reset once, in order; an SSE client that
// reconnects with Last-Event-ID gets what it missed, and nothing twice.
func TestEventsWithTwoReplicas(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			v := testkit.Schemas(t)
			rdb := target.New(t)
			urls, fleet := startReplicas(t, rdb.Options().Addr, 2)
			recv := &pushReceiver{}
			dest := httptest.NewServer(recv)
			t.Cleanup(dest.Close)

			resp := request(t, "POST", urls[0]+"/redfish/v1/EventService/Subscriptions",
				`{"Destination":"`+dest.URL+`/events","Protocol":"Redfish","Context":"rack-7"}`)
			resp.Body.Close()
			if resp.StatusCode != 201 {
				t.Fatalf("subscribe: %d", resp.StatusCode)
			}
			loc := resp.Header.Get("Location")
			if r := request(t, "GET", urls[1]+loc, ""); r.StatusCode != 200 {
				t.Fatalf("subscription not visible on the other replica: %d", r.StatusCode)
			} else {
				r.Body.Close()
			}
			sse := openSSE(t, urls[1], "")

			reset := func(url, rt string) {
				r := request(t, "POST", url+"/redfish/v1/Systems/node01/Actions/ComputerSystem.Reset", `{"ResetType":"`+rt+`"}`)
				r.Body.Close()
				if r.StatusCode != 202 {
					t.Fatalf("reset %s: %d", rt, r.StatusCode)
				}
			}
			reset(urls[1], "On")
			first := []string{"TaskEvent.1.0.TaskStarted", "ResourceEvent.1.4.ResourcePoweringOn",
				"ResourceEvent.1.4.ResourcePoweredOn", "TaskEvent.1.0.TaskCompletedOK"}
			waitLen(t, "push", 4, func() int { m, _ := recv.got(); return len(m) })
			waitLen(t, "SSE", 4, func() int { m, _ := sse.messageIDs(); return len(m) })
			time.Sleep(300 * time.Millisecond) // nothing more may come
			pushed, pushedIDs := recv.got()
			streamed, streamedIDs := sse.messageIDs()
			if strings.Join(pushed, " ") != strings.Join(first, " ") || strings.Join(streamed, " ") != strings.Join(first, " ") {
				t.Fatalf("one Reset On:\n push %v\n SSE  %v\nwant %v", pushed, streamed, first)
			}
			if strings.Join(pushedIDs, " ") != strings.Join(streamedIDs, " ") {
				t.Errorf("push ids %v, SSE ids %v", pushedIDs, streamedIDs)
			}
			recv.mu.Lock()
			body, ctx := recv.bodies[2], recv.ctx[2]
			recv.mu.Unlock()
			if err := v.Validate(body); err != nil || ctx != "rack-7" || !strings.Contains(string(body), `"OriginOfCondition":{"@odata.id":"/redfish/v1/Systems/node01"}`) {
				t.Errorf("pushed event (%v): %s", err, body)
			}

			// The SSE client goes away; a ForceOff happens; it comes back
			// (to the other replica) with the last id it saw.
			sse.cancel()
			reset(urls[0], "ForceOff")
			second := []string{"TaskEvent.1.0.TaskStarted", "ResourceEvent.1.4.ResourcePoweringOff",
				"ResourceEvent.1.4.ResourcePoweredOff", "TaskEvent.1.0.TaskCompletedOK"}
			waitLen(t, "push", 8, func() int { m, _ := recv.got(); return len(m) })
			back := openSSE(t, urls[0], streamedIDs[3])
			waitLen(t, "resumed SSE", 4, func() int { m, _ := back.messageIDs(); return len(m) })
			time.Sleep(300 * time.Millisecond)
			resumed, resumedIDs := back.messageIDs()
			pushed, pushedIDs = recv.got()
			if strings.Join(resumed, " ") != strings.Join(second, " ") {
				t.Errorf("resumed SSE %v, want %v", resumed, second)
			}
			if strings.Join(pushed, " ") != strings.Join(append(first, second...), " ") {
				t.Errorf("push after ForceOff %v", pushed)
			}
			if strings.Join(resumedIDs, " ") != strings.Join(pushedIDs[4:], " ") {
				t.Errorf("resumed ids %v, pushed %v", resumedIDs, pushedIDs[4:])
			}
			n, _ := fleet.Node("node01")
			if st := n.Machine().Status(); st.CommandCount != 2 {
				t.Errorf("BMC saw %d commands, want 2", st.CommandCount)
			}
		})
	}
}
