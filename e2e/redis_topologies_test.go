package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/redisproc"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/simulator"
)

// Production Redis (README "Production Redis"): two `fishgate serve`
// replicas on a real Sentinel set-up and on a real Redis Cluster, and a
// failover of the master under a stream of Resets.

// redisTopo is a running Redis topology as a test uses it.
type redisTopo struct {
	name string
	// yaml is the gateway's Redis configuration for it, with
	// min_replicas_ack: ack.
	yaml func(ack int) string
	// killMaster SIGKILLs the master that holds key, waits until a replica
	// was promoted, and starts the killed server again (it comes back as a
	// replica).
	killMaster func(t *testing.T, key string)
	// slotOwners maps each key to the address of the master that holds it
	// (Cluster only: nil otherwise).
	slotOwners func(t *testing.T, keys []string) map[string]string
}

// nodeKey is a Redis key of node id: its slot is the node's.
func nodeKey(id string) string { return "fg:node:{" + id + "}:slots" }

// TestProductionRedis: on Sentinel and on Cluster, two replicas share
// sessions, run Resets on 100 nodes (on a Cluster spread over every
// master), serve their tasks, and deliver the events by SSE and push; the
// invariants hold: at most one command in flight per node, every task
// terminal, every node in the state last asked for.
func TestProductionRedis(t *testing.T) {
	for _, topo := range redisTopologies() {
		t.Run(topo.name, func(t *testing.T) {
			tp := topo.start(t)
			const nodes = 100
			rs := newReplicaSetOn(t, nodes, 20*time.Millisecond, tp.yaml(0)+
				"admission: {flip_limit: 0}\nevents: {allow_destinations: [127.0.0.0/8]}\n")
			a, b := rs.start(freeAddr(t)), rs.start(freeAddr(t))
			ids := make([]string, nodes)
			for i := range ids {
				ids[i] = fmt.Sprintf("n%d", i+1)
			}
			if tp.slotOwners != nil {
				keys := make([]string, len(ids))
				for i, id := range ids {
					keys[i] = nodeKey(id)
				}
				owners := map[string]bool{}
				for _, m := range tp.slotOwners(t, keys) {
					owners[m] = true
				}
				if len(owners) < 3 {
					t.Fatalf("the nodes' keys live on %d masters, want all 3", len(owners))
				}
			}

			// A session made on one replica works on the other.
			token := adminSession(t, a.url)
			sess := map[string]string{"X-Auth-Token": token}
			if st, _, body := do(t, http.MethodGet, b.url+"/redfish/v1/Systems", nil, sess); st != http.StatusOK {
				t.Fatalf("session of replica A on replica B: %d %s", st, body)
			}

			// Events: an SSE stream on B, a push subscription made on A.
			sse := openSSEAt(t, b.url, sess)
			pushed := &eventSink{}
			recv := httptest.NewServer(pushed)
			t.Cleanup(recv.Close)
			if st, _, body := do(t, http.MethodPost, a.url+"/redfish/v1/EventService/Subscriptions",
				map[string]any{"Destination": recv.URL + "/events", "Protocol": "Redfish"}, sess); st != http.StatusCreated {
				t.Fatalf("push subscription: %d %s", st, body)
			}

			// On for every node, alternating the replicas.
			tasks := map[string]string{}
			for i, id := range ids {
				r := a
				if i%2 == 1 {
					r = b
				}
				tasks[id] = r.reset(t, id, "On")
			}
			for id, task := range tasks {
				var tv taskView
				waitFor(t, 60*time.Second, "task "+task, func() (bool, string) {
					tv, _ = b.task(t, task)
					return isTerminalState(tv.TaskState), tv.TaskState
				})
				if tv.TaskState != "Completed" {
					t.Errorf("%s: task %s %s: %+v", id, task, tv.TaskState, tv.Messages)
				}
				if tv2, st := a.task(t, task); st != http.StatusOK || tv2.TaskState != tv.TaskState {
					t.Errorf("task %s on replica A: %d %s", task, st, tv2.TaskState)
				}
			}
			for _, id := range ids {
				sn, _ := rs.fleet.Node(id)
				st := sn.Machine().Status()
				if st.PowerState != simulator.PowerOn || st.MaxInFlight > 1 {
					t.Errorf("%s: power %s, max in flight %d; want On, 1", id, st.PowerState, st.MaxInFlight)
				}
			}
			// Every task's completion reached both event paths.
			for id, task := range tasks {
				origin := "/redfish/v1/TaskService/Tasks/" + task
				waitFor(t, 30*time.Second, "events of "+task, func() (bool, string) {
					return len(sse.find("TaskCompletedOK", origin)) > 0 && pushed.has("TaskCompletedOK", origin),
						fmt.Sprintf("node %s: sse %d, push %v", id, len(sse.find("TaskCompletedOK", origin)), pushed.has("TaskCompletedOK", origin))
				})
			}
		})
	}
}

// TestFailoverLosesNothing: with min_replicas_ack: 1, the Redis master is
// SIGKILLed in the middle of a stream of Resets from two replicas. Every
// request that got a 202 has a terminal task after the promotion, no node
// saw two commands at once, every node ends in the state last accepted for
// it, and the requests answered during the switch got 503 with
// Retry-After (never a 500), each within a bounded time.
func TestFailoverLosesNothing(t *testing.T) {
	for _, topo := range redisTopologies() {
		t.Run(topo.name, func(t *testing.T) {
			tp := topo.start(t)
			const nodes = 20
			rs := newReplicaSetOn(t, nodes, 30*time.Millisecond, tp.yaml(1)+"admission: {flip_limit: 0}\n")
			reps := []*replica{rs.start(freeAddr(t)), rs.start(freeAddr(t))}

			var (
				mu       sync.Mutex
				results  = map[string][]resetResult{} // per node, in order
				accepted atomic.Int64
				stop     atomic.Bool
			)
			var wg sync.WaitGroup
			for i := range nodes {
				id := fmt.Sprintf("n%d", i+1)
				wg.Go(func() {
					for k := 0; !stop.Load(); k++ {
						rt := []string{"On", "ForceOff"}[k%2]
						res := sendReset(reps[(i+k)%2].url, id, rt)
						mu.Lock()
						results[id] = append(results[id], res)
						mu.Unlock()
						if res.status == http.StatusAccepted {
							accepted.Add(1)
						}
					}
				})
			}
			waitFor(t, 60*time.Second, "a first wave of accepted Resets", func() (bool, string) {
				return accepted.Load() >= 3*nodes, fmt.Sprint(accepted.Load())
			})
			killedAt := accepted.Load()
			tp.killMaster(t, nodeKey("n1"))
			// The stream goes on until writes are acknowledged again.
			waitFor(t, 120*time.Second, "Resets accepted again after the failover", func() (bool, string) {
				return accepted.Load() >= killedAt+3*nodes, fmt.Sprint(accepted.Load() - killedAt)
			})
			stop.Store(true)
			wg.Wait()

			// Each node's last word: one more Reset, accepted.
			last := map[string]resetResult{}
			for i := range nodes {
				id := fmt.Sprintf("n%d", i+1)
				var res resetResult
				waitFor(t, 30*time.Second, "a final Reset of "+id, func() (bool, string) {
					res = sendReset(reps[0].url, id, []string{"On", "ForceOff"}[i%2])
					return res.status == http.StatusAccepted, fmt.Sprint(res.status, " ", res.body)
				})
				results[id] = append(results[id], res)
				last[id] = res
			}

			var n202, n503, slowest int
			var worst time.Duration
			for id, rr := range results {
				for _, r := range rr {
					worst = max(worst, r.took)
					switch r.status {
					case http.StatusAccepted:
						n202++
					case http.StatusServiceUnavailable:
						n503++
						if r.retryAfter == "" {
							t.Errorf("%s: 503 without Retry-After: %s", id, r.body)
						}
					default:
						t.Errorf("%s: %s answered %d: %s", id, r.resetType, r.status, r.body)
					}
					if r.took > 35*time.Second {
						slowest++
					}
				}
			}
			t.Logf("%s: %d accepted, %d refused with 503 during the switch; slowest answer %s", tp.name, n202, n503, worst.Round(time.Millisecond))
			if n503 == 0 {
				t.Errorf("no request was refused during the failover: the switch was not exercised")
			}
			if slowest > 0 {
				t.Errorf("%d answers took longer than 35 s (slowest %s)", slowest, worst)
			}

			// Every 202 has a terminal task; the nodes end as last asked.
			for id, rr := range results {
				for _, r := range rr {
					if r.status != http.StatusAccepted {
						continue
					}
					var tv taskView
					var st int
					waitFor(t, 60*time.Second, "task "+r.task+" terminal", func() (bool, string) {
						tv, st = reps[1].task(t, r.task)
						return st == http.StatusOK && isTerminalState(tv.TaskState), fmt.Sprint(st, " ", tv.TaskState)
					})
					if tv.TaskState == "" {
						t.Errorf("%s: task %s unreadable", id, r.task)
					}
				}
			}
			for id, r := range last {
				sn, _ := rs.fleet.Node(id)
				want := map[string]string{"On": simulator.PowerOn, "ForceOff": simulator.PowerOff}[r.resetType]
				waitFor(t, 30*time.Second, id+" in its last accepted state", func() (bool, string) {
					st := sn.Machine().Status()
					return st.PowerState == want && st.InFlight == 0, st.PowerState
				})
				if st := sn.Machine().Status(); st.MaxInFlight > 1 {
					t.Errorf("%s: %d commands in flight at once", id, st.MaxInFlight)
				}
				tv, _ := reps[0].task(t, r.task)
				if tv.TaskState != "Completed" {
					t.Errorf("%s: last task %s %s: %+v", id, r.task, tv.TaskState, tv.Messages)
				}
			}
		})
	}
}

// resetResult is one Reset request of the failover stream.
type resetResult struct {
	resetType, task, retryAfter, body string
	status                            int
	took                              time.Duration
}

// failoverClient bounds a request well above the gateway's own bounds:
// a longer wait is reported by the test, not cut by the client.
var failoverClient = &http.Client{Timeout: 60 * time.Second}

func sendReset(base, node, rt string) resetResult {
	r := resetResult{resetType: rt}
	req, _ := http.NewRequest(http.MethodPost, base+"/redfish/v1/Systems/"+node+"/Actions/ComputerSystem.Reset",
		strings.NewReader(`{"ResetType":"`+rt+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", adminHdr["Authorization"])
	start := time.Now()
	resp, err := failoverClient.Do(req)
	r.took = time.Since(start)
	if err != nil {
		r.body = err.Error()
		return r
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r.status, r.body, r.retryAfter = resp.StatusCode, string(b), resp.Header.Get("Retry-After")
	if r.status == http.StatusAccepted {
		var task struct{ Id string }
		json.Unmarshal(b, &task)
		r.task = task.Id
	}
	return r
}

// adminSession makes a Redfish session as admin and returns its token.
func adminSession(t *testing.T, base string) string {
	t.Helper()
	st, h, body := do(t, http.MethodPost, base+"/redfish/v1/SessionService/Sessions",
		map[string]string{"UserName": "admin", "Password": "pw"}, nil)
	if st != http.StatusCreated || h.Get("X-Auth-Token") == "" {
		t.Fatalf("login: %d %s", st, body)
	}
	return h.Get("X-Auth-Token")
}

// openSSEAt opens the SSE stream of the gateway at base for the rest of
// the test.
func openSSEAt(t *testing.T, base string, auth map[string]string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/redfish/v1/EventService/SSE", nil)
	for k, v := range auth {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("SSE: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("SSE: status %d", resp.StatusCode)
	}
	s := &sseStream{}
	go s.read(resp.Body)
	return s
}

// read collects the events of an SSE body until it ends.
func (s *sseStream) read(body io.ReadCloser) {
	defer body.Close()
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		var ev schemas.Event
		if json.Unmarshal([]byte(strings.TrimSpace(data)), &ev) == nil {
			s.mu.Lock()
			s.events = append(s.events, ev.Events...)
			s.mu.Unlock()
		}
	}
}

// eventSink is a push destination that keeps what it is sent.
type eventSink struct {
	mu     sync.Mutex
	events []schemas.EventRecord
}

func (s *eventSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev schemas.Event
	if err := json.NewDecoder(r.Body).Decode(&ev); err == nil {
		s.mu.Lock()
		s.events = append(s.events, ev.Events...)
		s.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}

// has reports whether an event whose MessageId ends in "."+key about
// origin arrived.
func (s *eventSink) has(key, origin string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.events, func(e schemas.EventRecord) bool {
		return strings.HasSuffix(e.MessageID, "."+key) && e.OriginOfCondition != nil && e.OriginOfCondition.ODataID == origin
	})
}

// redisTopologies are the Redis set-ups of the production tests, each
// started for its test.
func redisTopologies() []topoStarter {
	return []topoStarter{{"sentinel", sentinelTopo}, {"cluster", clusterTopo}}
}

type topoStarter struct {
	name  string
	start func(t *testing.T) redisTopo
}

// sentinelTopo is a master with a replica and three sentinels.
func sentinelTopo(t *testing.T) redisTopo { return topoOf(t, "sentinel") }

// clusterTopo is three masters with a replica each.
func clusterTopo(t *testing.T) redisTopo { return topoOf(t, "cluster") }

func topoOf(t *testing.T, mode string) redisTopo {
	topo := testkit.StartRedisTopology(t, mode)
	addrs := topo.Addrs()
	if mode == "sentinel" {
		addrs = topo.SentinelAddrs()
	}
	tp := redisTopo{
		name: mode,
		yaml: func(ack int) string {
			y := fmt.Sprintf("redis:\n  mode: %s\n  addrs: [%s]\n  min_replicas_ack: %d\n  ack_timeout: 1s\n", mode, strings.Join(addrs, ", "), ack)
			if mode == "sentinel" {
				y += "  master_name: " + redisproc.MasterName + "\n"
			}
			return y
		},
		killMaster: func(t *testing.T, key string) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := topo.StopMaster(ctx, key); err != nil {
				t.Fatalf("failover: %v", err)
			}
		},
	}
	if mode == "cluster" {
		tp.slotOwners = func(t *testing.T, keys []string) map[string]string {
			out := map[string]string{}
			for _, k := range keys {
				m, err := topo.Master(context.Background(), k)
				if err != nil {
					t.Fatal(err)
				}
				out[k] = m
			}
			return out
		}
	}
	return tp
}
