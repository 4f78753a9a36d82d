package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/app/gateway"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/simulator"
)

const resetRoute = "/redfish/v1/Systems/:id/Actions/ComputerSystem.Reset"

// metricsConfig is a gateway on redisAddr for node01 at url: one retry,
// a flip-flop limit of 1, short drain and verification.
func metricsConfig(redisAddr, url string) config.Config {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.TLS.Disabled = true
	cfg.RedisURL = "redis://" + redisAddr
	// Long enough that a late renewal on a busy machine does not lose a
	// lease (a take-over the test did not make); the drain releases it.
	cfg.LeaseTTL = config.Duration(5 * time.Second)
	cfg.ShutdownTimeout = config.Duration(time.Second)
	cfg.SyncInterval = config.Duration(time.Second)
	cfg.Retries = 1
	// A command cut by a take-over is settled by reading for this long
	// before it is sent again.
	cfg.VerifyTimeout = config.Duration(5 * time.Second)
	cfg.Admission.FlipLimit = 1
	cfg.Accounts = []config.Account{{User: user, Password: pass}}
	cfg.Nodes = []config.Node{{ID: "node01", Backend: "redfish", Address: url, User: "bmc", Password: "bmc-pw"}}
	cfg.Events.AllowDestinations = []string{"127.0.0.1/32"}
	cfg.Events.DeliveryRetryInterval = config.Duration(time.Second)
	return cfg
}

// runGateway serves a gateway until stop (or the end of the test); stop
// returns once Serve did.
func runGateway(t *testing.T, cfg config.Config, log *slog.Logger, opts ...gateway.Option) (g *gateway.Gateway, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg, log, opts...)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx) }()
	var stopped atomic.Bool
	stop = func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("a gateway did not stop within 20s")
		}
	}
	t.Cleanup(stop)
	return g, stop
}

// resetOn posts a Reset and returns the status and the task id (the
// answer's Task Id; "" when refused).
func resetOn(t *testing.T, g *gateway.Gateway, rt string) (int, string) {
	t.Helper()
	resp := request(t, http.MethodPost, g.URL()+"/redfish/v1/Systems/node01/Actions/ComputerSystem.Reset", `{"ResetType":"`+rt+`"}`)
	defer resp.Body.Close()
	var task struct{ Id string }
	json.NewDecoder(resp.Body).Decode(&task)
	return resp.StatusCode, task.Id
}

// waitTaskState waits until the task reads state on g.
func waitTaskState(t *testing.T, g *gateway.Gateway, id, state string) {
	t.Helper()
	testkit.WaitFor(t, 30*time.Second, "task "+id+" "+state, func() (bool, string) {
		resp := request(t, http.MethodGet, g.URL()+"/redfish/v1/TaskService/Tasks/"+id, "")
		defer resp.Body.Close()
		var task struct{ TaskState string }
		b, _ := io.ReadAll(resp.Body)
		json.Unmarshal(b, &task)
		return task.TaskState == state, string(b)
	})
}

// waitRead waits until g has read node01's BMC (a Reset is not 503).
func waitRead(t *testing.T, g *gateway.Gateway) {
	t.Helper()
	testkit.WaitFor(t, 20*time.Second, "node01 read", func() (bool, string) {
		resp := request(t, http.MethodGet, g.URL()+"/redfish/v1/Systems/node01", "")
		defer resp.Body.Close()
		var sys struct{ PowerState string }
		b, _ := io.ReadAll(resp.Body)
		json.Unmarshal(b, &sys)
		return sys.PowerState == "On" || sys.PowerState == "Off", string(b)
	})
}

func scrape(t *testing.T, g *gateway.Gateway) testkit.Scrape {
	t.Helper()
	return testkit.ScrapeMetrics(t, g.MetricsURL(), user, pass)
}

// delta checks that family name with labels moved by want between two
// scrapes.
func delta(t *testing.T, before, after testkit.Scrape, want float64, name string, labels ...string) {
	t.Helper()
	if got := after.Value(name, labels...) - before.Value(name, labels...); got != want {
		t.Errorf("%s%v moved by %v, want %v", name, labels, got, want)
	}
}

// waitDelta scrapes g until family name with labels moved by want since
// before (counts made just after what the test waited for became visible)
// and returns that scrape.
func waitDelta(t *testing.T, g *gateway.Gateway, before testkit.Scrape, want float64, name string, labels ...string) testkit.Scrape {
	t.Helper()
	var s testkit.Scrape
	testkit.WaitFor(t, 10*time.Second, fmt.Sprintf("%s%v moved by %v", name, labels, want), func() (bool, string) {
		s = scrape(t, g)
		d := s.Value(name, labels...) - before.Value(name, labels...)
		return d == want, fmt.Sprint(d)
	})
	return s
}

// failingOnce answers the first push delivery 500, then 204.
type failingOnce struct{ n atomic.Int32 }

func (f *failingOnce) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	if f.n.Add(1) == 1 {
		http.Error(w, "not yet", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// TestMetricsFollowTheGateway scrapes /metrics of running gateways after
// a power drift, a Reset, a BMC failure, coalesced, queued, replacing and
// refused requests, push deliveries (one failing), an SSE client and a
// take-over by a second replica, and checks that each family moved by
// exactly what happened (at least, where background work such as the
// power sync also moves it). promtool check metrics passes on both
// replicas' output.
func TestMetricsFollowTheGateway(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	discard := slog.New(slog.DiscardHandler)
	fleet := simulator.NewFleet(discard)
	t.Cleanup(func() { fleet.Close() })
	sn, err := fleet.Add(simulator.NodeSpec{ID: "node01", User: "bmc", Password: "bmc-pw",
		Machine: simulator.MachineConfig{InitialPower: "Off"}})
	if err != nil {
		t.Fatal(err)
	}
	machine := sn.Machine()
	cfg := metricsConfig(rdb.Options().Addr, sn.URL())
	a, stopA := runGateway(t, cfg, discard, gateway.WithBuild("v9.9.9-test", "c0ffee"))
	waitRead(t, a)

	m0 := scrape(t, a)
	if got := m0.Value("fishgate_build_info", "version", "v9.9.9-test", "commit", "c0ffee"); got != 1 {
		t.Errorf("fishgate_build_info{version=v9.9.9-test,commit=c0ffee} = %v, want 1", got)
	}
	// The first sweep is timed once its reads ended, just after the view
	// shows them.
	testkit.WaitFor(t, 10*time.Second, "the first power-sync sweep timed", func() (bool, string) {
		v := scrape(t, a).Value("fishgate_power_sync_sweep_duration_seconds")
		return v >= 1, fmt.Sprint(v)
	})
	if m0.Value("fishgate_bmc_calls_total", "backend", "redfish", "op", "power_state", "result", "ok") < 1 {
		t.Error("the first read of node01 was not counted as a BMC call")
	}

	// Push deliveries: the first fails, then they go through.
	recv := &failingOnce{}
	dest := httptest.NewServer(recv)
	t.Cleanup(dest.Close)
	if r := request(t, http.MethodPost, a.URL()+"/redfish/v1/EventService/Subscriptions", `{"Destination":"`+dest.URL+`/events","Protocol":"Redfish"}`); r.StatusCode != 201 {
		t.Fatalf("subscribe: %d", r.StatusCode)
	} else {
		r.Body.Close()
	}
	sse := openSSE(t, a.URL(), "")
	testkit.WaitFor(t, 10*time.Second, "one SSE client", func() (bool, string) {
		v := scrape(t, a).Value("fishgate_sse_clients")
		return v == 1, fmt.Sprint(v)
	})

	// A drift: the machine is switched On behind the gateway's back.
	machine.SetPower("On")
	testkit.WaitFor(t, 20*time.Second, "the drift counted", func() (bool, string) {
		v := scrape(t, a).Value("fishgate_power_drift_total") - m0.Value("fishgate_power_drift_total")
		return v == 1, fmt.Sprint(v)
	})

	// A Reset that completes.
	m1 := scrape(t, a)
	code, task := resetOn(t, a, "ForceOff")
	if code != http.StatusAccepted {
		t.Fatalf("ForceOff: %d", code)
	}
	waitTaskState(t, a, task, "Completed")
	// The worker counts the task once the finish script answered: just
	// after the task reads Completed.
	m2 := waitDelta(t, a, m1, 1, "fishgate_tasks_finished_total", "reset_type", "ForceOff", "backend", "redfish", "state", "Completed")
	if m2.Value("fishgate_redis_command_duration_seconds", "command", "evalsha") < 1 {
		t.Error("no Redis script call timed")
	}
	delta(t, m1, m2, 1, "fishgate_admissions_total", "outcome", "started", "reason", "", "policy", "now-next")
	delta(t, m1, m2, 1, "fishgate_http_requests_total", "route", resetRoute, "method", "POST", "code", "202")
	delta(t, m1, m2, 1, "fishgate_tasks_finished_total", "reset_type", "ForceOff", "backend", "redfish", "state", "Completed")
	delta(t, m1, m2, 1, "fishgate_task_duration_seconds", "reset_type", "ForceOff", "backend", "redfish", "state", "Completed")
	delta(t, m1, m2, 1, "fishgate_bmc_calls_total", "backend", "redfish", "op", "reset", "result", "ok")
	delta(t, m1, m2, 0, "fishgate_bmc_retries_total")
	delta(t, m1, m2, 0, "fishgate_lease_takeovers_total")

	// A BMC failure: the command fails twice, once re-sent (retries: 1),
	// and the task ends Exception.
	machine.SetFaults(simulator.Faults{FailFirst: 2})
	code, task = resetOn(t, a, "On")
	if code != http.StatusAccepted {
		t.Fatalf("On: %d", code)
	}
	waitTaskState(t, a, task, "Exception")
	machine.SetFaults(simulator.Faults{})
	m3 := waitDelta(t, a, m2, 1, "fishgate_tasks_finished_total", "reset_type", "On", "backend", "redfish", "state", "Exception")
	delta(t, m2, m3, 2, "fishgate_bmc_calls_total", "backend", "redfish", "op", "reset", "result", "error")
	delta(t, m2, m3, 0, "fishgate_bmc_calls_total", "backend", "redfish", "op", "reset", "result", "ok")
	delta(t, m2, m3, 1, "fishgate_bmc_retries_total", "backend", "redfish")
	delta(t, m2, m3, 1, "fishgate_tasks_finished_total", "reset_type", "On", "backend", "redfish", "state", "Exception")

	// With the BMC holding commands: started, coalesced, queued,
	// replaced, refused (flip-flop).
	release := machine.Hold()
	steps := []struct {
		rt   string
		code int
	}{{"On", 202}, {"On", 202}, {"ForceRestart", 202}, {"PowerCycle", 202}, {"ForceRestart", 429}}
	var tasks []string
	for _, s := range steps {
		code, task := resetOn(t, a, s.rt)
		if code != s.code {
			t.Fatalf("%s: %d, want %d", s.rt, code, s.code)
		}
		tasks = append(tasks, task)
	}
	if tasks[1] != tasks[0] {
		t.Errorf("the second On got task %s, want the first's %s", tasks[1], tasks[0])
	}
	testkit.WaitFor(t, 10*time.Second, "one action running, one waiting", func() (bool, string) {
		s := scrape(t, a)
		r, w := s.Value("fishgate_actions_running"), s.Value("fishgate_actions_waiting")
		return r == 1 && w == 1, fmt.Sprintf("running %v, waiting %v", r, w)
	})
	m4 := scrape(t, a)
	for _, c := range []struct {
		outcome, reason string
	}{{"started", ""}, {"coalesced", ""}, {"queued", ""}, {"replaced", ""}, {"refused", "flip-flop"}} {
		delta(t, m3, m4, 1, "fishgate_admissions_total", "outcome", c.outcome, "reason", c.reason, "policy", "now-next")
	}
	delta(t, m3, m4, 4, "fishgate_http_requests_total", "route", resetRoute, "method", "POST", "code", "202")
	delta(t, m3, m4, 1, "fishgate_http_requests_total", "route", resetRoute, "method", "POST", "code", "429")
	release()
	waitTaskState(t, a, tasks[3], "Completed")
	testkit.WaitFor(t, 10*time.Second, "the fleet idle", func() (bool, string) {
		s := scrape(t, a)
		r, w := s.Value("fishgate_actions_running"), s.Value("fishgate_actions_waiting")
		return r == 0 && w == 0, fmt.Sprintf("running %v, waiting %v", r, w)
	})

	// Events: every task's events went into the stream, and reached the
	// subscriber after one failed attempt.
	testkit.WaitFor(t, 20*time.Second, "push deliveries", func() (bool, string) {
		s := scrape(t, a)
		d := s.Value("fishgate_events_delivered_total")
		return d >= 4 && s.Value("fishgate_event_delivery_lag_seconds") == d, fmt.Sprintf("delivered %v", d)
	})
	m5 := scrape(t, a)
	delta(t, m0, m5, 1, "fishgate_event_failures_total", "stage", "delivery")
	delta(t, m0, m5, 0, "fishgate_event_failures_total", "stage", "emit")
	if n := m5.Value("fishgate_event_stream_length"); n < m5.Value("fishgate_events_delivered_total") {
		t.Errorf("event stream length %v, less than the %v events delivered", n, m5.Value("fishgate_events_delivered_total"))
	}
	sse.cancel()
	testkit.WaitFor(t, 10*time.Second, "no SSE client", func() (bool, string) {
		v := scrape(t, a).Value("fishgate_sse_clients")
		return v == 0, fmt.Sprint(v)
	})

	// A take-over: A begins a ForceOff the BMC holds, B starts, A stops;
	// B resumes the action.
	release = machine.Hold()
	code, task = resetOn(t, a, "ForceOff")
	if code != http.StatusAccepted {
		t.Fatalf("ForceOff: %d", code)
	}
	waitTaskState(t, a, task, "Running")
	b, _ := runGateway(t, cfg, discard)
	waitRead(t, b)
	mA := scrape(t, a)
	testkit.PromtoolCheck(t, mA.Raw)
	stopA()
	release()
	waitTaskState(t, b, task, "Completed")
	mB := waitDelta(t, b, testkit.Scrape{}, 1, "fishgate_tasks_finished_total", "reset_type", "ForceOff", "state", "Completed")
	delta(t, testkit.Scrape{}, mA, 0, "fishgate_lease_takeovers_total")
	delta(t, testkit.Scrape{}, mB, 1, "fishgate_lease_takeovers_total")
	delta(t, testkit.Scrape{}, mB, 1, "fishgate_tasks_finished_total", "reset_type", "ForceOff", "state", "Completed")
	delta(t, testkit.Scrape{}, mA, 0, "fishgate_fencing_rejections_total")
	delta(t, testkit.Scrape{}, mB, 0, "fishgate_fencing_rejections_total")
	testkit.PromtoolCheck(t, mB.Raw)
	t.Run("dashboard", func(t *testing.T) { checkDashboard(t, mA) })

	// No family carries a node or task id.
	for _, s := range []testkit.Scrape{mA, mB} {
		if strings.Contains(string(s.Raw), "node01") {
			t.Errorf("a series names the node:\n%s", grepLines(string(s.Raw), "node01"))
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestMetricsListenAndAuth: /metrics is on the API listener behind a login
// by default; metrics.auth: false opens it; metrics.listen moves it to a
// listener of its own (the API's answers 404), open unless metrics.auth.
func TestMetricsListenAndAuth(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	yes, no := true, false
	for _, c := range []struct {
		name   string
		m      config.Metrics
		onAPI  bool
		status int // without credentials
	}{
		{"default", config.Metrics{}, true, http.StatusUnauthorized},
		{"auth false", config.Metrics{Auth: &no}, true, http.StatusOK},
		{"own listener", config.Metrics{Listen: "127.0.0.1:0"}, false, http.StatusOK},
		{"own listener with auth", config.Metrics{Listen: "127.0.0.1:0", Auth: &yes}, false, http.StatusUnauthorized},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Listen = "127.0.0.1:0"
			cfg.TLS.Disabled = true
			cfg.RedisURL = "redis://" + rdb.Options().Addr
			cfg.Accounts = []config.Account{{User: user, Password: pass}}
			cfg.Metrics = c.m
			g := serve(t, cfg, slog.New(slog.DiscardHandler))
			if on := strings.HasPrefix(g.MetricsURL(), g.URL()+"/"); on != c.onAPI {
				t.Fatalf("MetricsURL %s on the API listener %s: %v, want %v", g.MetricsURL(), g.URL(), on, c.onAPI)
			}
			resp, err := http.Get(g.MetricsURL())
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Errorf("GET %s without credentials: %d, want %d", g.MetricsURL(), resp.StatusCode, c.status)
			}
			s := testkit.ScrapeMetrics(t, g.MetricsURL(), user, pass) // with them: always 200
			if s.Value("fishgate_build_info") != 1 {
				t.Errorf("no fishgate_build_info in:\n%s", s.Raw)
			}
			if !c.onAPI {
				r := request(t, http.MethodGet, g.URL()+"/metrics", "")
				r.Body.Close()
				if r.StatusCode != http.StatusNotFound {
					t.Errorf("GET /metrics on the API listener with metrics.listen set: %d, want 404", r.StatusCode)
				}
			}
			// Probes are not counted; a path no route has is "(no route)".
			for _, p := range []string{"/healthz", "/no/such/path"} {
				r := request(t, http.MethodGet, g.URL()+p, "")
				r.Body.Close()
			}
			s = testkit.ScrapeMetrics(t, g.MetricsURL(), user, pass)
			if routes := s.LabelValues("fishgate_http_requests_total", "route"); slices.Contains(routes, "/healthz") {
				t.Errorf("a probe was counted: routes %v", routes)
			}
			want := 1.0 // /no/such/path
			if !c.onAPI {
				want++ // /metrics on the API listener
			}
			if got := s.Value("fishgate_http_requests_total", "route", "(no route)", "method", "GET", "code", "404"); got != want {
				t.Errorf("requests of no route answered 404: %v, want %v", got, want)
			}
		})
	}
}

// TestMetricsAuthWarnedOffLoopback: metrics.auth on a metrics listener that
// is not loopback is logged: scrapers' passwords would cross in clear.
func TestMetricsAuthWarnedOffLoopback(t *testing.T) {
	yes := true
	for _, listen := range []string{"127.0.0.1:0", "0.0.0.0:0"} {
		var logs testkit.SyncBuffer
		cfg := config.Default()
		cfg.Listen = "127.0.0.1:0"
		cfg.TLS.Disabled = true
		cfg.Accounts = []config.Account{{User: user, Password: pass}}
		cfg.Metrics = config.Metrics{Listen: listen, Auth: &yes}
		g, err := gateway.New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "metrics.listen serves plain HTTP")
		if warned != (listen != "127.0.0.1:0") {
			t.Errorf("metrics.listen %s: warned %v:\n%s", listen, warned, logs.String())
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		g.Serve(ctx)
	}
}

// dashboard is the Grafana dashboard shipped for these metrics.
const dashboard = "../../deploy/grafana/fishgate.json"

// promMetric matches the metric names a PromQL expression of the
// dashboard may use: the gateway's, and Go's and the process's.
var promMetric = regexp.MustCompile(`\b(?:fishgate|go|process)_[a-zA-Z0-9_]+`)

// byLabels matches the label lists of "by (...)" clauses.
var byLabels = regexp.MustCompile(`\bby \(([^)]*)\)`)

// checkDashboard loads the Grafana dashboard: every metric its PromQL
// names is a family the gateway exported in s (a histogram's _bucket,
// _sum and _count are its family's), every label it groups by is one of
// those families' labels, every panel's expression names a metric, and
// every fishgate_ family in s is on a panel.
func checkDashboard(t *testing.T, s testkit.Scrape) {
	raw, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string
		Type    string
		Panels  []json.RawMessage
		Targets []struct{ Expr string }
	}
	var d struct {
		Title  string
		Panels []panel
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	used := map[string]bool{}
	exprs := 0
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs++
			names := promMetric.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: %q names no metric of the gateway", p.Title, tg.Expr)
			}
			var fams []string
			for _, n := range names {
				fam := n
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(n, suffix); ok && s.Families[base].GetType() == dto.MetricType_HISTOGRAM {
						fam = base
					}
				}
				if s.Families[fam] == nil {
					t.Errorf("panel %q: %s is not a metric the gateway exports", p.Title, n)
					continue
				}
				used[fam] = true
				fams = append(fams, fam)
			}
			for _, m := range byLabels.FindAllStringSubmatch(tg.Expr, -1) {
				for _, l := range strings.Split(m[1], ",") {
					l = strings.TrimSpace(l)
					if l == "le" || l == "" {
						continue
					}
					found := false
					for _, f := range fams {
						found = found || len(s.LabelValues(f, l)) > 0
					}
					if !found {
						t.Errorf("panel %q: %q groups by %s, a label of none of %v", p.Title, tg.Expr, l, fams)
					}
				}
			}
		}
	}
	if exprs < 10 {
		t.Fatalf("%s: %d queries; the dashboard did not load as expected", dashboard, exprs)
	}
	for _, n := range s.Names() {
		if strings.HasPrefix(n, "fishgate_") && !used[n] {
			t.Errorf("%s is exported but on no panel of %s", n, dashboard)
		}
	}
}
