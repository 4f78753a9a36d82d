package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/simulator"
)

func TestJudge(t *testing.T) {
	base := nodeFacts{ID: "n1", SimPower: "On", ViewOK: true, Desired: "On",
		HasLast: true, LastType: "PowerCycle", LastTask: "n1.a", LastState: "Completed"}
	cases := []struct {
		name  string
		edit  func(f *nodeFacts)
		wants []string // substrings of the problems; none = converged
	}{
		{"converged", func(f *nodeFacts) {}, nil},
		{"completed but wrong power", func(f *nodeFacts) { f.SimPower, f.Desired = "Off", "Off" },
			[]string{"Completed, but simulated power is Off (want On)"}},
		{"power differs from desired", func(f *nodeFacts) { f.Desired = "Off" },
			[]string{"simulated power On != DesiredPowerState Off"}},
		{"cancelled: desired decides", func(f *nodeFacts) {
			f.LastType, f.LastState, f.SimPower, f.Desired = "ForceOff", "Cancelled", "On", "On"
		}, nil},
		{"cancelled and desired stale", func(f *nodeFacts) {
			f.LastType, f.LastState, f.Desired = "ForceOff", "Cancelled", "Off"
		}, []string{"!= DesiredPowerState Off"}},
		{"exception: desired decides", func(f *nodeFacts) { f.LastState, f.SimPower, f.Desired = "Exception", "Off", "Off" }, nil},
		{"not terminal", func(f *nodeFacts) { f.LastState = "Running"; f.Busy = true },
			[]string{"still lists a running", "not terminal (Running)"}},
		{"lost", func(f *nodeFacts) { f.LastState = "" }, []string{"unreadable (lost)"}},
		{"ambiguous later request: either target", func(f *nodeFacts) {
			f.LastType, f.Pending, f.SimPower, f.Desired = "ForceOff", "On", "On", "On"
		}, nil},
		{"ambiguous but neither target", func(f *nodeFacts) {
			f.LastType, f.Pending, f.SimPower, f.Desired = "ForceOff", "GracefulShutdown", "On", "On"
		}, []string{"(want Off)", "unanswered GracefulShutdown"}},
		{"moving power", func(f *nodeFacts) { f.SimPower, f.SimInFlight = "PoweringOn", 1 },
			[]string{"not steady", "in flight"}},
		{"never touched", func(f *nodeFacts) { f.HasLast, f.Desired, f.LastState = false, "", "" }, nil},
		{"accepted but no desired", func(f *nodeFacts) { f.Desired = "" }, []string{"DesiredPowerState is null"}},
		{"view unreadable", func(f *nodeFacts) { f.ViewOK = false }, []string{"could not be read"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := base
			c.edit(&f)
			got := judge(f)
			if len(c.wants) == 0 && len(got) > 0 {
				t.Fatalf("judge = %q, want no problem", got)
			}
			all := strings.Join(got, "; ")
			for _, w := range c.wants {
				if !strings.Contains(all, w) {
					t.Errorf("judge = %q, want a problem containing %q", got, w)
				}
			}
		})
	}
}

func TestPickAndTargets(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]int{}
	for i := 0; i < 10000; i++ {
		seen[pick(rng)]++
	}
	for _, r := range resetMix {
		if seen[r.typ] == 0 {
			t.Errorf("%s never drawn", r.typ)
		}
		if r.target != "On" && r.target != "Off" {
			t.Errorf("%s: target %q", r.typ, r.target)
		}
	}
	if seen["DELETE"] == 0 {
		t.Error("DELETE never drawn")
	}
	for typ, want := range map[string]string{"On": "On", "ForceOff": "Off", "GracefulShutdown": "Off",
		"GracefulRestart": "On", "ForceRestart": "On", "PowerCycle": "On", "Nmi": ""} {
		if got := targetOf(typ); got != want {
			t.Errorf("targetOf(%s) = %q, want %q", typ, got, want)
		}
	}
}

// fakeGateway answers Resets with new or joined tasks, refuses
// GracefulShutdown with 429, and drops the connection without an answer
// for PowerCycle (as a replica SIGKILLed mid-request would).
type fakeGateway struct {
	mu    sync.Mutex
	next  int
	last  map[string]string // node -> last task type, for coalescing
	tasks map[string]string // node -> last task id
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != gwUser || p != gwPassword {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodDelete {
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, `{"error":{"@Message.ExtendedInfo":[{"MessageId":"Base.1.22.ResourceCannotBeDeleted"}]}}`)
		return
	}
	var body struct{ ResetType string }
	json.NewDecoder(r.Body).Decode(&body)
	node := strings.Split(r.URL.Path, "/")[4]
	switch body.ResetType {
	case "PowerCycle":
		hj := w.(http.Hijacker)
		c, _, _ := hj.Hijack()
		c.Close()
		return
	case "GracefulShutdown":
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	g.mu.Lock()
	id := g.tasks[node]
	if g.last[node] != body.ResetType {
		g.next++
		id = fmt.Sprintf("%s.t%d", node, g.next)
		g.last[node], g.tasks[node] = body.ResetType, id
	}
	g.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"Id":%q,"TaskState":"New"}`, id)
}

func TestLastAccepted(t *testing.T) {
	g := &fakeGateway{last: map[string]string{}, tasks: map[string]string{}}
	srv := httptest.NewServer(g)
	defer srv.Close()
	l := &loader{http: newHTTPClient(), replicas: []string{srv.URL, srv.URL}, c: &counters{},
		retryPause: time.Millisecond, debugf: func(string, ...any) {}}
	h := newHistory("n1")
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	step := func(op, wantResult, wantLast, wantPending string) {
		t.Helper()
		l.send(ctx, rng, h, op)
		e := h.events[len(h.events)-1]
		if e.Result != wantResult {
			t.Fatalf("%s: result %q, want %q (%s)", op, e.Result, wantResult, e)
		}
		last, ok := h.lastAccepted()
		if got := last.Op; !ok && wantLast != "" || ok && got != wantLast {
			t.Fatalf("%s: last accepted %q, want %q", op, got, wantLast)
		}
		if h.pending != wantPending {
			t.Fatalf("%s: pending %q, want %q", op, h.pending, wantPending)
		}
	}
	step("On", "new", "On", "")
	step("On", "coalesced", "On", "")
	step("GracefulShutdown", "refused", "On", "")        // definite refusal: changes nothing
	step("PowerCycle", "unanswered", "On", "PowerCycle") // may have been admitted
	step("DELETE", "finished", "On", "PowerCycle")       // a DELETE does not resolve it
	step("ForceOff", "new", "ForceOff", "")              // a later accepted request does
	if len(h.tasks) != 2 {
		t.Errorf("tasks %v, want 2 distinct", h.tasks)
	}
	if got := l.c.attempts.Load(); got < 6+5 {
		t.Errorf("attempts %d: the unanswered request should have been re-sent", got)
	}
}

func TestFlags(t *testing.T) {
	o, err := parseFlags([]string{"-nodes", "10", "-seed", "7"}, io.Discard)
	if err != nil || o.nodes != 10 || o.seed != 7 || o.requests != 5000 || o.replicas != 3 {
		t.Fatalf("parseFlags = %+v, %v", o, err)
	}
	for _, bad := range [][]string{{"-nodes", "0"}, {"-redis-signal", "HUP"}, {"-delay-min", "2s", "-delay-max", "1s"}, {"-kill-every", "1ms"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%v): no error", bad)
		}
	}
}

// TestSmoke runs a small chaos check end to end (builds fishgate, starts
// redis-server and two replicas). It is slow and depends on the gateway's
// correctness, so it runs only with FGCHAOS_SMOKE=1.
func TestSmoke(t *testing.T) {
	if os.Getenv("FGCHAOS_SMOKE") == "" {
		t.Skip("set FGCHAOS_SMOKE=1 to run a small chaos check end to end")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	o, err := parseFlags([]string{"-nodes", "20", "-requests", "400", "-replicas", "2", "-kill-every", "1s", "-timeout", "3m", "-settle", "60s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	code := run(context.Background(), o, &out, &errb)
	t.Logf("%s%s", out.String(), errb.String())
	if code != 0 || !strings.HasPrefix(out.String(), "chaos: nodes=20 requests=400 ") {
		t.Fatalf("exit %d", code)
	}
}

func TestGatewayConfig(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	fleet := simulator.NewFleet(nil)
	defer fleet.Close()
	n, err := fleet.Add(simulator.NodeSpec{ID: "n000", User: "bmc", Password: "bmcpass"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := gatewayConfig(o, "127.0.0.1:1234", "redis://127.0.0.1:6379/0", nil, []*simNode{{id: "n000", node: n}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if time.Duration(cfg.LeaseTTL) != 2*time.Second || cfg.Retries != 3 || cfg.Admission.FlipLimit != 0 ||
		len(cfg.Nodes) != 1 || cfg.Nodes[0].Address != n.URL() || cfg.RedisURL != "redis://127.0.0.1:6379/0" {
		t.Errorf("config = %+v", cfg)
	}
}
