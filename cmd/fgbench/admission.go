package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	fgconfig "github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/app/gateway"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// `fgbench admission` measures what a Reset admission costs: the one Lua
// script of serializer.Store.Admit against a real redis-server on loopback,
// next to a plain SET at the same concurrency (the baseline), and the same
// admission end to end through the gateway's HTTP API.
//
// Targets, measured in turn in every round after a warm-up:
//
//	redis-set     SET of a 64-byte value on one key per node (the baseline).
//	store-admit   Store.Admit on 1,000 distinct nodes taken round-robin, a
//	              fresh task id each. No worker runs, so each node walks
//	              now (On: started), next (queued), coalesce (the same type
//	              again), then next replaced by another type (queued, the
//	              replaced task ends Cancelled), coalesce, ... Finished tasks
//	              accumulate up to the retention limit, as in production.
//	              The flip-flop guard is off (FlipLimit 0) so that replaced
//	              next slots stay accepted; the rest is DefaultRules. The
//	              first visits (On: started) fall in the first warm-up, so
//	              the measured mix is queued+replaced and coalesced.
//	http-admit    POST .../Actions/ComputerSystem.Reset {"ResetType":"On"}
//	              with HTTP Basic to a gateway whose state lives in a second
//	              real redis-server, in front of simulated Redfish BMCs with
//	              instant transitions, nodes round-robin. Workers run the
//	              tasks meanwhile (their Redis traffic is counted in the
//	              server-side figures); a node already On completes at once.
//
// Round trips per admission are counted on the client with a go-redis hook
// (EVALSHA = 1; a NOSCRIPT fall-back to EVAL would be 2). Server-side, INFO
// gives the commands executed per admission (the script's own calls
// included) and redis-server's CPU time per admission.
//
//	go run ./cmd/fgbench admission -nodes 1000 -duration 10s -rounds 5

// admConfig is the admission benchmark's command line.
type admConfig struct {
	Nodes       int           `json:"nodes"`
	HTTPNodes   int           `json:"http_nodes"`
	Concurrency int           `json:"concurrency"`
	Rounds      int           `json:"rounds"`
	Duration    time.Duration `json:"-"`
	Warmup      time.Duration `json:"-"`
	MaxOps      int64         `json:"max_ops_per_phase"`
	HTTP        bool          `json:"http"`
	HTTPRedis   string        `json:"http_redis"` // "real" or "embedded"
	RedisServer string        `json:"redis_server"`
	Aim         float64       `json:"aim_round_trips"`
	JSON        bool          `json:"-"`
}

func (c admConfig) validate() error {
	switch {
	case c.Nodes < 1 || c.Nodes > 100_000:
		return errors.New("-nodes must be in 1..100000")
	case c.HTTP && (c.HTTPNodes < 1 || c.HTTPNodes > 5000):
		return errors.New("-http-nodes must be in 1..5000")
	case c.Concurrency < 1 || c.Concurrency > 1024:
		return errors.New("-concurrency must be in 1..1024")
	case c.Rounds < 1 || c.Rounds > 100:
		return errors.New("-rounds must be in 1..100")
	case c.Duration <= 0 || c.Duration > time.Hour:
		return errors.New("-duration must be in (0, 1h]")
	case c.Warmup < 0 || c.Warmup > 10*time.Minute:
		return errors.New("-warmup must be in [0, 10m]")
	case c.MaxOps < 1:
		return errors.New("-max-ops must be positive")
	case c.HTTPRedis != "real" && c.HTTPRedis != "embedded":
		return errors.New("-http-redis must be real or embedded")
	}
	return nil
}

const (
	tSet   = "redis-set"
	tAdmit = "store-admit"
	tHTTP  = "http-admit"
)

// admResult is one measured phase.
type admResult struct {
	Target    string           `json:"target"`
	Ops       int64            `json:"ops"`
	Errors    int64            `json:"errors"`
	FirstErr  string           `json:"first_error,omitempty"`
	Seconds   float64          `json:"seconds"`
	OpsPerSec float64          `json:"ops_per_s"`
	P50us     float64          `json:"p50_us"`
	P90us     float64          `json:"p90_us"`
	P99us     float64          `json:"p99_us"`
	MaxUs     float64          `json:"max_us"`
	Mix       map[string]int64 `json:"mix"`
	// Client side (go-redis hook), per operation; -1 when not measured
	// (the gateway's own client is not reachable from here).
	RoundTrips float64 `json:"round_trips_per_op"`
	ClientCmds float64 `json:"client_commands_per_op"`
	// Server side (INFO), per operation.
	ServerCmds  float64 `json:"server_commands_per_op"`     // every command executed, script bodies included
	ServerCalls float64 `json:"server_top_calls_per_op"`    // EVALSHA+EVAL+SET+others sent by clients (script bodies' calls cannot be told apart except for EVAL*)
	RedisCPUus  float64 `json:"redis_cpu_us_per_op"`        // redis-server CPU per op, -1 unknown
	ProcCPUus   float64 `json:"process_cpu_us_per_op"`      // this process (load + gateway) CPU per op, -1 unknown
	Scripts     float64 `json:"server_script_calls_per_op"` // EVALSHA+EVAL per op
	EvalSha     float64 `json:"client_evalsha_per_op"`      // -1 when not measured
	Eval        float64 `json:"client_eval_per_op"`         // NOSCRIPT fall-backs; -1 when not measured
}

// admReport is the whole run (the -json document).
type admReport struct {
	Config     admConfig              `json:"config"`
	DurationS  float64                `json:"duration_s"`
	WarmupS    float64                `json:"warmup_s"`
	GoVersion  string                 `json:"go_version"`
	NumCPU     int                    `json:"num_cpu"`
	Redis      string                 `json:"redis_version"`
	Rounds     [][]admResult          `json:"rounds"`
	Medians    []admResult            `json:"medians"`
	Figure     float64                `json:"figure"`      // median per-round throughput ratio store-admit/redis-set
	LatencyX   float64                `json:"p50_ratio"`   // median per-round p50 ratio store-admit/redis-set
	HTTPFigure float64                `json:"http_figure"` // median per-round throughput ratio http-admit/redis-set
	Errors     int64                  `json:"errors"`
	FirstError string                 `json:"first_error,omitempty"`
	byTarget   map[string][]admResult // per round
}

func admissionMain(args []string) int {
	fs := flag.NewFlagSet("fgbench admission", flag.ContinueOnError)
	var c admConfig
	fs.IntVar(&c.Nodes, "nodes", 1000, "distinct nodes the Store admissions go to, round-robin")
	fs.IntVar(&c.HTTPNodes, "http-nodes", 0, "simulated nodes behind the gateway for http-admit (default: -nodes, at most 5000)")
	fs.IntVar(&c.Concurrency, "concurrency", 16, "concurrent workers (each target)")
	fs.IntVar(&c.Rounds, "rounds", 5, "rounds; each measures every target once")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured time of each phase")
	fs.DurationVar(&c.Warmup, "warmup", time.Second, "unmeasured warm-up before each phase")
	fs.Int64Var(&c.MaxOps, "max-ops", 50_000_000, "safety bound on operations per phase")
	fs.BoolVar(&c.HTTP, "http", true, "also measure admissions end to end through the gateway's HTTP API")
	fs.StringVar(&c.HTTPRedis, "http-redis", "real", "Redis of the gateway for http-admit: real (a second redis-server) or embedded (miniredis, as fishgate demo)")
	fs.StringVar(&c.RedisServer, "redis-server", "redis-server", "redis-server binary to start (on 127.0.0.1, a free port, no persistence)")
	fs.Float64Var(&c.Aim, "aim", 1, "round trips per admission to aim for (reported, not enforced)")
	fs.BoolVar(&c.JSON, "json", false, "write the results as JSON to stdout (the report goes to stderr)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: fgbench admission [flags]\n\nReset admissions per second (serializer.Store.Admit and HTTP POST Reset) against a real redis-server, with a plain SET as the baseline.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	if c.HTTPNodes == 0 {
		c.HTTPNodes = min(c.Nodes, 5000)
	}
	if err := c.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "fgbench admission:", err)
		return 2
	}
	return runReport("fgbench admission", "OPERATIONS", c.JSON, func(ctx context.Context, out io.Writer) (*admReport, error) {
		return benchAdmission(ctx, c, out)
	})
}

func (rep *admReport) failed() (int64, string) { return rep.Errors, rep.FirstError }

// admTarget is one thing to measure.
type admTarget struct {
	name string
	// op performs operation i (a counter that keeps growing across warm-up
	// and rounds) and names its outcome for the mix.
	op func(ctx context.Context, i int64) (string, error)
	// counter is the target's operation counter.
	counter atomic.Int64
	// trips counts this target's client round trips (nil: not measured).
	trips *tripCounter
	// redis is where the target's server-side figures are read.
	redis    *redis.Client
	redisPID int
}

func benchAdmission(ctx context.Context, c admConfig, out io.Writer) (*admReport, error) {
	srv, err := startRedisServer(ctx, c.RedisServer)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	ver, _ := admin.Info(ctx, "server").Result()
	rep := &admReport{Config: c, DurationS: c.Duration.Seconds(), WarmupS: c.Warmup.Seconds(),
		GoVersion: runtime.Version(), NumCPU: runtime.NumCPU(), Redis: infoField(ver, "redis_version"),
		byTarget: map[string][]admResult{}}

	// The measured clients: one pool as large as the concurrency.
	newClient := func(tc *tripCounter) *redis.Client {
		cl := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: c.Concurrency + 4, MinIdleConns: c.Concurrency})
		cl.AddHook(tc)
		return cl
	}
	setTrips, admTrips := &tripCounter{}, &tripCounter{}
	setClient, admClient := newClient(setTrips), newClient(admTrips)
	defer setClient.Close()
	defer admClient.Close()
	if err := admin.FlushAll(ctx).Err(); err != nil {
		return nil, err
	}

	value := strings.Repeat("v", 64)
	set := &admTarget{name: tSet, trips: setTrips, redis: admin, redisPID: srv.PID,
		op: func(ctx context.Context, i int64) (string, error) {
			return "ok", setClient.Set(ctx, "fg:bench:{"+benchNode(i%int64(c.Nodes))+"}:set", value, 0).Err()
		}}
	store := serializer.NewStore(admClient)
	rules := serializer.DefaultRules()
	rules.FlipLimit = 0
	admit := &admTarget{name: tAdmit, trips: admTrips, redis: admin, redisPID: srv.PID,
		op: func(ctx context.Context, i int64) (string, error) {
			node := benchNode(i % int64(c.Nodes))
			rt := admissionType(i / int64(c.Nodes))
			a, err := store.Admit(ctx, node, rules, rt, fmt.Sprintf("%s.b%x", node, i), time.Now(), "fgbench")
			if err != nil {
				return "", err
			}
			o := string(a.Outcome)
			if a.Outcome == serializer.Refused {
				o += "(" + string(a.Refusal) + ")"
			}
			if len(a.Dropped) > 0 {
				o += "+replaced"
			}
			if a.CancelNow {
				o += "+cancel-now"
			}
			return o, nil
		}}
	targets := []*admTarget{set, admit}

	var gw *httpGateway
	if c.HTTP {
		where := "a second redis-server"
		if c.HTTPRedis == "embedded" {
			where = "embedded miniredis, as fishgate demo"
		}
		fmt.Fprintf(out, "fgbench admission: starting the gateway (%d simulated BMCs, state in %s)...\n", c.HTTPNodes, where)
		t0 := time.Now()
		if gw, err = startHTTPGateway(ctx, c); err != nil {
			return nil, err
		}
		defer gw.close()
		fmt.Fprintf(out, "                   gateway %s up in %s\n", gw.url, time.Since(t0).Round(time.Millisecond))
		targets = append(targets, gw.target(c))
	}

	fmt.Fprintf(out, "fgbench admission: redis-server %s on %s, %d nodes (http: %d), %d workers, %d rounds x %d targets x %s (+%s warm-up)\n",
		rep.Redis, srv.Addr, c.Nodes, c.HTTPNodes, c.Concurrency, c.Rounds, len(targets), c.Duration, c.Warmup)
	fmt.Fprintf(out, "                   %s, %d CPUs, GOMAXPROCS %d; load, clients and gateway in this process, redis-server apart\n",
		runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0))
	for r := 1; r <= c.Rounds; r++ {
		var round []admResult
		for _, t := range targets {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			res, err := measureAdm(ctx, t, c)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
			if t.name == tHTTP {
				gw.settle(ctx)
			}
			round = append(round, res)
			rep.byTarget[t.name] = append(rep.byTarget[t.name], res)
			rep.Errors += res.Errors
			if rep.FirstError == "" && res.FirstErr != "" {
				rep.FirstError = t.name + ": " + res.FirstErr
			}
			fmt.Fprintf(out, "round %d/%d  %s\n", r, c.Rounds, formatAdm(res))
		}
		rep.Rounds = append(rep.Rounds, round)
	}
	rep.summarize(targets)
	rep.print(out)
	return rep, nil
}

// benchNode names Store benchmark node n.
func benchNode(n int64) string { return fmt.Sprintf("bench%05d", n) }

// admissionType is the ResetType of a node's visit v: On first (it becomes
// now and, with no worker, stays), then pairs of one type (next, then
// coalesced into next), alternating GracefulRestart and ForceRestart so
// that each pair replaces the previous next.
func admissionType(v int64) schemas.ResetType {
	if v == 0 {
		return schemas.ResetOn
	}
	if ((v-1)/2)%2 == 0 {
		return schemas.ResetGracefulRestart
	}
	return schemas.ResetForceRestart
}

func infoField(info, key string) string {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+":"); ok {
			return v
		}
	}
	return "?"
}

// admWorker is one load worker's tally.
type admWorker struct {
	h        hist
	n, errs  int64
	firstErr string
	mix      map[string]int64
}

// runAdm drives conc workers on t for d (or maxOps operations).
func runAdm(ctx context.Context, t *admTarget, conc int, d time.Duration, maxOps int64) ([]*admWorker, time.Duration) {
	var stop atomic.Bool
	var started atomic.Int64
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	ws := make([]*admWorker, conc)
	var wg sync.WaitGroup
	begin := time.Now()
	for k := range ws {
		w := &admWorker{mix: map[string]int64{}}
		ws[k] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && ctx.Err() == nil && started.Add(1) <= maxOps {
				i := t.counter.Add(1) - 1
				t0 := time.Now()
				o, err := t.op(ctx, i)
				lat := time.Since(t0)
				w.n++
				if err != nil {
					if ctx.Err() != nil {
						w.n--
						return
					}
					w.errs++
					if w.firstErr == "" {
						w.firstErr = err.Error()
					}
					continue
				}
				w.h.record(lat)
				w.mix[o]++
			}
		}()
	}
	wg.Wait()
	return ws, time.Since(begin)
}

// measureAdm runs a warm-up and a measured phase of t.
func measureAdm(ctx context.Context, t *admTarget, c admConfig) (admResult, error) {
	if c.Warmup > 0 {
		runAdm(ctx, t, c.Concurrency, c.Warmup, c.MaxOps)
	}
	var trips0 tripSnapshot
	if t.trips != nil {
		trips0 = t.trips.snapshot()
	}
	var rs0, rs1 redisStats
	var err error
	if t.redis != nil {
		if rs0, err = sampleRedis(ctx, t.redis, t.redisPID); err != nil {
			return admResult{}, err
		}
	}
	pc0 := procCPU(os.Getpid())
	ws, elapsed := runAdm(ctx, t, c.Concurrency, c.Duration, c.MaxOps)
	pc1 := procCPU(os.Getpid())
	if t.redis != nil {
		if rs1, err = sampleRedis(ctx, t.redis, t.redisPID); err != nil {
			return admResult{}, err
		}
	}
	var trips tripSnapshot
	if t.trips != nil {
		trips = t.trips.snapshot().sub(trips0)
	}

	r := admResult{Target: t.name, Seconds: elapsed.Seconds(), Mix: map[string]int64{},
		RoundTrips: -1, ClientCmds: -1, RedisCPUus: -1, ProcCPUus: -1, EvalSha: -1, Eval: -1}
	var h hist
	for _, w := range ws {
		h.merge(&w.h)
		r.Ops += w.n
		r.Errors += w.errs
		if r.FirstErr == "" {
			r.FirstErr = w.firstErr
		}
		for k, v := range w.mix {
			r.Mix[k] += v
		}
	}
	if r.Ops == 0 {
		return r, nil
	}
	n := float64(r.Ops)
	r.OpsPerSec = n / elapsed.Seconds()
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	r.P50us, r.P90us, r.P99us, r.MaxUs = us(h.quantile(0.50)), us(h.quantile(0.90)), us(h.quantile(0.99)), us(time.Duration(h.max))
	if t.trips != nil {
		r.RoundTrips = float64(trips.trips) / n
		r.ClientCmds = float64(trips.cmds) / n
		r.EvalSha = float64(trips.evalsha) / n
		r.Eval = float64(trips.eval) / n
	}
	if t.redis == nil {
		r.ServerCmds, r.ServerCalls, r.Scripts = -1, -1, -1
		if pc0 >= 0 && pc1 >= 0 {
			r.ProcCPUus = us(pc1-pc0) / n
		}
		return r, nil
	}
	d := rs0.delta(rs1)
	r.ServerCmds = float64(d.commands) / n
	var top, scripts int64
	for k, v := range d.calls {
		switch k {
		case "evalsha", "eval":
			scripts += v
			top += v
		case "set", "ping":
			top += v
		}
	}
	r.Scripts = float64(scripts) / n
	r.ServerCalls = float64(top) / n
	if d.cpu >= 0 {
		r.RedisCPUus = us(d.cpu) / n
	}
	if pc0 >= 0 && pc1 >= 0 {
		r.ProcCPUus = us(pc1-pc0) / n
	}
	return r, nil
}

func formatAdm(r admResult) string {
	s := fmt.Sprintf("%-12s %8.0f ops/s  p50 %6.0fµs  p99 %6.0fµs  trips/op %5s  redis cmds/op %5.2f  redis CPU %5.1fµs/op  errors %d  mix %s",
		r.Target, r.OpsPerSec, r.P50us, r.P99us, perOp(r.RoundTrips), r.ServerCmds, r.RedisCPUus, r.Errors, formatMix(r.Mix, r.Ops))
	if r.FirstErr != "" {
		s += "  (first error: " + r.FirstErr + ")"
	}
	return s
}

func perOp(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", v)
}

// formatMix lists outcomes by share, largest first.
func formatMix(m map[string]int64, total int64) string {
	type kv struct {
		k string
		v int64
	}
	var xs []kv
	for k, v := range m {
		xs = append(xs, kv{k, v})
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].v > xs[j].v || (xs[i].v == xs[j].v && xs[i].k < xs[j].k) })
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%s %.1f%%", x.k, 100*float64(x.v)/float64(max(total, 1))))
	}
	return strings.Join(parts, ", ")
}

func (rep *admReport) summarize(targets []*admTarget) {
	for _, t := range targets {
		rs := rep.byTarget[t.name]
		m := admResult{Target: t.name, Mix: map[string]int64{}}
		for _, r := range rs {
			m.Ops += r.Ops
			m.Errors += r.Errors
			m.Seconds += r.Seconds
			if m.FirstErr == "" {
				m.FirstErr = r.FirstErr
			}
			for k, v := range r.Mix {
				m.Mix[k] += v
			}
		}
		f := func(g func(admResult) float64) float64 {
			var xs []float64
			for _, r := range rs {
				xs = append(xs, g(r))
			}
			return median(xs)
		}
		m.OpsPerSec = f(func(r admResult) float64 { return r.OpsPerSec })
		m.P50us = f(func(r admResult) float64 { return r.P50us })
		m.P90us = f(func(r admResult) float64 { return r.P90us })
		m.P99us = f(func(r admResult) float64 { return r.P99us })
		m.MaxUs = f(func(r admResult) float64 { return r.MaxUs })
		m.RoundTrips = f(func(r admResult) float64 { return r.RoundTrips })
		m.ClientCmds = f(func(r admResult) float64 { return r.ClientCmds })
		m.ServerCmds = f(func(r admResult) float64 { return r.ServerCmds })
		m.ServerCalls = f(func(r admResult) float64 { return r.ServerCalls })
		m.Scripts = f(func(r admResult) float64 { return r.Scripts })
		m.EvalSha = f(func(r admResult) float64 { return r.EvalSha })
		m.Eval = f(func(r admResult) float64 { return r.Eval })
		m.RedisCPUus = f(func(r admResult) float64 { return r.RedisCPUus })
		m.ProcCPUus = f(func(r admResult) float64 { return r.ProcCPUus })
		rep.Medians = append(rep.Medians, m)
	}
	ratio := func(a, b string, g func(admResult) float64) float64 {
		var xs []float64
		for i, r := range rep.byTarget[a] {
			if i < len(rep.byTarget[b]) {
				xs = append(xs, div(g(r), g(rep.byTarget[b][i])))
			}
		}
		return median(xs)
	}
	ops := func(r admResult) float64 { return r.OpsPerSec }
	rep.Figure = ratio(tAdmit, tSet, ops)
	rep.LatencyX = ratio(tAdmit, tSet, func(r admResult) float64 { return r.P50us })
	if len(rep.byTarget[tHTTP]) > 0 {
		rep.HTTPFigure = ratio(tHTTP, tSet, ops)
	}
}

func (rep *admReport) median(name string) admResult {
	for _, m := range rep.Medians {
		if m.Target == name {
			return m
		}
	}
	return admResult{}
}

func (rep *admReport) print(w io.Writer) {
	c := rep.Config
	fmt.Fprintf(w, "\nmedians over %d rounds (%d workers, %s per phase):\n", c.Rounds, c.Concurrency, c.Duration)
	fmt.Fprintf(w, "  %-12s %10s %8s %8s %8s %9s %10s %10s %11s %12s %8s\n",
		"target", "ops/s", "p50 µs", "p90 µs", "p99 µs", "trips/op", "cmds/op", "redis cmds", "redis CPU", "process CPU", "errors")
	fmt.Fprintf(w, "  %-12s %10s %8s %8s %8s %9s %10s %10s %11s %12s %8s\n",
		"", "", "", "", "", "(client)", "(client)", "/op (srv)", "µs/op", "µs/op", "")
	for _, m := range rep.Medians {
		fmt.Fprintf(w, "  %-12s %10.0f %8.0f %8.0f %8.0f %9s %10s %10.2f %11.1f %12.1f %8d\n",
			m.Target, m.OpsPerSec, m.P50us, m.P90us, m.P99us, perOp(m.RoundTrips), perOp(m.ClientCmds), m.ServerCmds, m.RedisCPUus, m.ProcCPUus, m.Errors)
	}
	fmt.Fprintf(w, "\nmix over all rounds:\n")
	for _, m := range rep.Medians {
		fmt.Fprintf(w, "  %-12s %s\n", m.Target, formatMix(m.Mix, m.Ops))
	}
	a, s := rep.median(tAdmit), rep.median(tSet)
	fmt.Fprintf(w, "\nstore-admit: %.3f round trips per admission on the client (EVALSHA %s, EVAL %s); in redis-server %.2f script calls and %.2f commands executed per admission, %.1f µs CPU (SET: %.1f µs)\n",
		a.RoundTrips, perOp(a.EvalSha), perOp(a.Eval), a.Scripts, a.ServerCmds, a.RedisCPUus, s.RedisCPUus)
	if h := rep.median(tHTTP); h.Ops > 0 && h.ServerCmds >= 0 {
		fmt.Fprintf(w, "http-admit:  gateway in this process on a real redis-server; per admission redis runs %.2f scripts (the admission, then the worker's lease and steps) and executes %.1f commands in all, %.1f µs CPU\n",
			h.Scripts, h.ServerCmds, h.RedisCPUus)
	} else if h.Ops > 0 {
		fmt.Fprintf(w, "http-admit:  gateway in this process on embedded miniredis (fishgate demo); Redis figures not available\n")
	}
	verdict := "met"
	if a.RoundTrips > c.Aim {
		verdict = "NOT MET"
	}
	fmt.Fprintf(w, "\nFIGURE  admission/SET: throughput %.2f, p50 latency %.2fx  (store-admit %.0f/s vs SET %.0f/s; round trips per admission %.3f, aim <= %.0f: %s)\n",
		rep.Figure, rep.LatencyX, a.OpsPerSec, s.OpsPerSec, a.RoundTrips, c.Aim, verdict)
	if h := rep.median(tHTTP); h.Ops > 0 {
		fmt.Fprintf(w, "        http-admit/SET: throughput %.2f  (http-admit %.0f/s, p50 %.0f µs, p99 %.0f µs)\n", rep.HTTPFigure, h.OpsPerSec, h.P50us, h.P99us)
	}
}

// httpGateway is a gateway over a second redis-server, in front of
// simulated Redfish BMCs with instant transitions.
type httpGateway struct {
	redis  *redisServer
	admin  *redis.Client
	fleet  *simulator.Fleet
	url    string
	user   string
	pass   string
	nodes  []string
	cancel context.CancelFunc
	done   chan error
	tr     *http.Transport
}

func startHTTPGateway(ctx context.Context, c admConfig) (g *httpGateway, err error) {
	g = &httpGateway{user: "bench", pass: "fgbench-secret", done: make(chan error, 1)}
	cfg := fgconfig.Default()
	if c.HTTPRedis == "real" {
		if g.redis, err = startRedisServer(ctx, c.RedisServer); err != nil {
			return nil, err
		}
		cfg.RedisURL = "redis://" + g.redis.Addr + "/0"
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	g.fleet = simulator.NewFleet(log)
	defer func() {
		if err != nil {
			g.fleet.Close()
			if g.redis != nil {
				g.redis.Stop()
			}
		}
	}()
	cfg.Listen = "127.0.0.1:0"
	cfg.TLS.Disabled = true
	// One load client with up to 1024 workers: no connection cap below that.
	cfg.Limits.MaxConnections, cfg.Limits.MaxConnectionsPerClient = 4096, 4096
	cfg.SyncInterval = fgconfig.Duration(time.Hour) // no periodic power sweep during the phases
	cfg.Accounts = []fgconfig.Account{{User: g.user, Password: g.pass, Role: "Administrator"}}
	for i := 1; i <= c.HTTPNodes; i++ {
		id := fmt.Sprintf("node%05d", i)
		n, err := g.fleet.Add(simulator.NodeSpec{ID: id, User: "bmc", Password: "bmc-secret",
			Machine: simulator.MachineConfig{InitialPower: simulator.PowerOff}})
		if err != nil {
			return nil, err
		}
		cfg.Nodes = append(cfg.Nodes, fgconfig.Node{ID: id, Backend: "redfish", Address: n.URL(), User: "bmc", Password: "bmc-secret"})
		g.nodes = append(g.nodes, id)
	}
	gctx, cancel := context.WithCancel(context.Background())
	gw, err := gateway.New(gctx, cfg, log)
	if err != nil {
		cancel()
		return nil, err
	}
	g.cancel = cancel
	g.url = gw.URL()
	go func() { g.done <- gw.Serve(gctx) }()
	if g.redis != nil {
		g.admin = redis.NewClient(&redis.Options{Addr: g.redis.Addr})
	}
	g.tr = newTransport(c.Concurrency)
	// Serve reads every node before it serves: wait (bounded) until it does.
	cl := &http.Client{Transport: g.tr, Timeout: 5 * time.Second}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.url+"/redfish/v1/Systems/"+g.nodes[0], nil)
		req.SetBasicAuth(g.user, g.pass)
		resp, rerr := cl.Do(req)
		if rerr == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g, nil
			}
			rerr = errors.New(resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			g.close()
			return nil, fmt.Errorf("gateway %s did not answer within 5 min: %v", g.url, rerr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *httpGateway) close() error {
	g.cancel()
	var err error
	select {
	case err = <-g.done:
	case <-time.After(30 * time.Second):
		err = errors.New("gateway did not stop within 30s")
	}
	g.tr.CloseIdleConnections()
	err = errors.Join(err, g.fleet.Close())
	if g.redis != nil {
		g.admin.Close()
		err = errors.Join(err, g.redis.Stop())
	}
	return err
}

// settle gives the workers time to finish the tasks the phase started
// (instant BMCs: each task ends within about a second) before the next
// phase is measured.
func (g *httpGateway) settle(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(1500 * time.Millisecond):
	}
}

// target is the http-admit target: POST Reset On, nodes round-robin; the
// outcome is "new-task" or "joined" (the Location named the task the
// node's previous request got).
func (g *httpGateway) target(c admConfig) *admTarget {
	body := []byte(`{"ResetType":"On"}`)
	last := make([]atomic.Pointer[string], len(g.nodes))
	t := &admTarget{name: tHTTP}
	if g.redis != nil {
		t.redis, t.redisPID = g.admin, g.redis.PID
	}
	t.op = func(ctx context.Context, i int64) (string, error) {
		k := int(i % int64(len(g.nodes)))
		req, err := http.NewRequestWithContext(ctx, http.MethodPost,
			g.url+"/redfish/v1/Systems/"+g.nodes[k]+"/Actions/ComputerSystem.Reset", bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(g.user, g.pass)
		resp, err := g.tr.RoundTrip(req)
		if err != nil {
			return "", err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusAccepted || loc == "" {
			return "", fmt.Errorf("POST Reset %s: %s, Location %q (want 202 + task monitor)", g.nodes[k], resp.Status, loc)
		}
		if prev := last[k].Swap(&loc); prev != nil && *prev == loc {
			return "joined", nil
		}
		return "new-task", nil
	}
	return t
}
