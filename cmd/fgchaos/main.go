// Command fgchaos is the chaos check behind `make chaos` (issue 6, item 6):
// it runs several `fishgate serve` replicas and a real redis-server (AOF on)
// in front of a simulated BMC fleet with faults, fires a random stream of
// conflicting Reset and DELETE requests at many nodes, SIGKILLs and restarts
// replicas every few seconds and restarts Redis once, then waits for the
// gateway to settle and checks the invariants of
// docs/architecture.md#invariants:
//
//  1. never two BMC commands in flight for one node (the simulator's
//     MaxInFlight stays at most 1 on every node);
//  2. every node's simulated power is the target of its last accepted
//     request, or, when that request's task ended Cancelled or Exception,
//     the node's DesiredPowerState; and simulated power equals
//     DesiredPowerState on every node;
//  3. every task any request was answered with is terminal and readable.
//
// It prints one summary line and exits 1 when overlaps, unconverged nodes
// or lost tasks are found, or a replica died by itself, or the gateway gave
// an answer no request should get (a 500, a 404 for a known task): the
// offending nodes' requests, task states, simulator command logs and the
// gateway's node log go to stderr. Nodes that settled only long after the
// load (stalled) are reported and explained but do not fail the check. It
// exits 2 on bad usage and 3 when the set-up failed (no redis-server, build
// error, a replica that would not start) or the run was interrupted.
//
//	go run ./cmd/fgchaos [-nodes 200] [-requests 5000] [-replicas 3] [-duration 2m] [-seed N]
//
// Everything listens on 127.0.0.1; every loop is bounded in count and time,
// and -timeout bounds the whole run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/internal/redisproc"
	"github.com/fishgate/fishgate/internal/retry"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
)

const (
	gwUser     = "chaos"
	gwPassword = "chaos-pass"
)

type options struct {
	nodes, requests, replicas, clients    int
	duration, timeout                     time.Duration
	killEvery, killDown, redisDown        time.Duration
	delayMin, delayMax                    time.Duration
	settleWait, stallAfter                time.Duration
	leaseTTL, syncInterval, verifyTimeout time.Duration
	retries, flipLimit                    int
	failFrac, asyncFrac                   float64
	redisSignal, redisMode                string
	seed                                  uint64
	fishgate                              string
	keep, verbose                         bool
	explainMax                            int
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("fgchaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.nodes, "nodes", 200, "simulated nodes")
	fs.IntVar(&o.requests, "requests", 5000, "requests to send (Reset and DELETE)")
	fs.IntVar(&o.replicas, "replicas", 3, "fishgate replicas sharing one Redis")
	fs.IntVar(&o.clients, "clients", 24, "concurrent clients; each owns a shard of the nodes")
	fs.DurationVar(&o.duration, "duration", 2*time.Minute, "upper bound of the load phase (it ends earlier when -requests are sent)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "upper bound of the whole run")
	fs.DurationVar(&o.killEvery, "kill-every", 3*time.Second, "mean pause between two replica SIGKILLs")
	fs.DurationVar(&o.killDown, "kill-down", 700*time.Millisecond, "how long a killed replica stays down")
	fs.DurationVar(&o.redisDown, "redis-down", time.Second, "how long Redis stays down when restarted")
	fs.StringVar(&o.redisSignal, "redis-signal", "KILL", "signal that stops Redis mid-run: KILL or TERM")
	fs.StringVar(&o.redisMode, "redis", "standalone", "Redis topology: standalone (restarted mid-run), sentinel (master, replica, 3 sentinels) or cluster (3 masters with a replica each); with sentinel and cluster the master is stopped mid-run and a replica promoted, and the gateway runs with min_replicas_ack: 1")
	fs.DurationVar(&o.delayMin, "delay-min", 50*time.Millisecond, "shortest simulated power transition")
	fs.DurationVar(&o.delayMax, "delay-max", 300*time.Millisecond, "longest simulated power transition")
	fs.DurationVar(&o.settleWait, "settle", 90*time.Second, "upper bound of the wait for quiescence after the load")
	fs.DurationVar(&o.stallAfter, "stall", 15*time.Second, "a node still busy this long after the load stopped is reported as stalled (not a failure)")
	fs.DurationVar(&o.leaseTTL, "lease-ttl", 2*time.Second, "gateway lease_ttl")
	fs.DurationVar(&o.verifyTimeout, "verify-timeout", 15*time.Second, "gateway verify_timeout (the simulated BMCs settle in well under a second)")
	fs.DurationVar(&o.syncInterval, "sync-interval", 3*time.Second, "gateway sync_interval")
	fs.IntVar(&o.retries, "retries", 3, "gateway retries")
	fs.IntVar(&o.flipLimit, "flip-limit", 0, "gateway admission.flip_limit (0: guard off, so the stream is not mostly refused)")
	fs.Float64Var(&o.failFrac, "fail-fraction", 0.25, "fraction of nodes whose first command(s) fail (FailFirst, refreshed)")
	fs.Float64Var(&o.asyncFrac, "async-fraction", 0.3, "fraction of simulated BMCs that answer Reset with a 202 Task")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed (0: from the clock; printed)")
	fs.StringVar(&o.fishgate, "fishgate", "", "use this fishgate binary instead of building ./cmd/fishgate")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, AOF) even when the check passes")
	fs.BoolVar(&o.verbose, "v", false, "progress on stderr")
	fs.IntVar(&o.explainMax, "explain", 5, "offending nodes to explain in full")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case o.nodes < 1 || o.nodes > 5000:
		return nil, errors.New("-nodes: 1..5000")
	case o.requests < 1 || o.requests > 1_000_000:
		return nil, errors.New("-requests: 1..1000000")
	case o.replicas < 1 || o.replicas > 16:
		return nil, errors.New("-replicas: 1..16")
	case o.clients < 1 || o.clients > 1000:
		return nil, errors.New("-clients: 1..1000")
	case o.duration <= 0 || o.timeout <= 0 || o.settleWait <= 0:
		return nil, errors.New("-duration, -timeout and -settle must be positive")
	case o.killEvery < 100*time.Millisecond:
		return nil, errors.New("-kill-every: at least 100ms")
	case o.delayMin < 0 || o.delayMax < o.delayMin:
		return nil, errors.New("-delay-min/-delay-max: 0 <= min <= max")
	case o.failFrac < 0 || o.failFrac > 0.8 || o.asyncFrac < 0 || o.asyncFrac > 1:
		return nil, errors.New("-fail-fraction: 0..0.8, -async-fraction: 0..1")
	case o.redisSignal != "KILL" && o.redisSignal != "TERM":
		return nil, errors.New("-redis-signal: KILL or TERM")
	case o.redisMode != "standalone" && o.redisMode != "sentinel" && o.redisMode != "cluster":
		return nil, errors.New("-redis: standalone, sentinel or cluster")
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "fgchaos:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, o, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole chaos check. It returns the exit code.
func run(parent context.Context, o *options, stdout, stderr io.Writer) int {
	started := time.Now()
	ctx, cancel := context.WithTimeout(parent, o.timeout)
	defer cancel()
	logger := log.New(stderr, "fgchaos: ", log.Ltime|log.Lmicroseconds)
	progress := func(format string, a ...any) {
		if o.verbose {
			logger.Printf(format, a...)
		}
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		logger.Print("redis-server not found in PATH: the chaos check needs a real Redis (Debian: apt-get install redis-server)")
		return 3
	}
	dir, err := os.MkdirTemp("", "fgchaos-")
	if err != nil {
		logger.Print(err)
		return 3
	}
	e := &env{o: o, dir: dir, log: logger, progress: progress}
	code, keep := e.run(ctx, started, stdout, stderr)
	e.shutdown()
	if code == 0 && !keep && !o.keep {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintf(stderr, "fgchaos: logs, config and AOF kept in %s\n", dir)
	}
	return code
}

// env is one chaos run's processes and state.
type env struct {
	o        *options
	dir      string
	log      *log.Logger
	progress func(string, ...any)

	redis    *redisproc.Topology
	replicas []*redisproc.Proc
	urls     []string
	sim      []*simNode
	closeSim func()

	kills, redisRestarts atomic.Int64
	faultRefreshes       atomic.Int64
}

func (e *env) shutdown() {
	var wg sync.WaitGroup
	for _, p := range e.replicas {
		wg.Go(func() { p.Stop(syscall.SIGTERM, 10*time.Second) })
	}
	wg.Wait()
	if e.redis != nil {
		e.redis.Stop()
	}
	if e.closeSim != nil {
		e.closeSim()
	}
}

// run returns the exit code, and whether the work directory is worth
// keeping although the check passed (stalled nodes).
func (e *env) run(ctx context.Context, started time.Time, stdout, stderr io.Writer) (int, bool) {
	o := e.o
	if err := e.setup(ctx); err != nil {
		e.log.Printf("set-up failed: %v", err)
		return 3, false
	}
	e.progress("set-up done in %v: redis %s, replicas %s", time.Since(started).Round(time.Millisecond), e.redis.Describe(), strings.Join(e.urls, " "))

	// The load, the chaos (kills, one Redis restart) and the fault refresher
	// run together; the chaos and the refresher stop when the load does.
	hist := make([]*history, len(e.sim))
	for i, sn := range e.sim {
		hist[i] = newHistory(sn.id)
	}
	c := &counters{}
	ld := &loader{o: o, http: newHTTPClient(), replicas: e.urls, hist: hist, c: c,
		deadline: time.Now().Add(o.duration), retryPause: 100 * time.Millisecond, debugf: e.progress}
	ld.budget.Store(int64(o.requests))

	chaosCtx, stopChaos := context.WithCancel(ctx)
	chaosDone := make(chan error, 1)
	go func() { chaosDone <- e.chaos(chaosCtx, ld) }()
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		refreshFaults(chaosCtx, e.sim, 8*time.Second, o.seed, &e.faultRefreshes)
	}()
	loadStart := time.Now()
	ld.run(ctx, o.seed)
	loadTime := time.Since(loadStart)
	stopChaos()
	chaosErr := <-chaosDone
	<-faultsDone
	e.progress("load done in %v: %d requests sent (%d HTTP attempts)", loadTime.Round(time.Millisecond), c.sent.Load(), c.attempts.Load())
	if ctx.Err() != nil {
		e.log.Printf("stopped during the load: %v", context.Cause(ctx))
		return 3, false
	}
	if chaosErr != nil {
		e.log.Printf("chaos failed: %v", chaosErr)
		return 3, false
	}

	// Bring every replica back (a kill may have been under way) and Redis.
	if err := e.ensureUp(ctx); err != nil {
		e.log.Printf("%v", err)
		return 3, false
	}

	// Settle, then judge.
	ck := &checker{http: newHTTPClient(), replicas: e.urls, nodes: e.sim, hist: hist}
	settleStart := time.Now()
	vs, tasks, settled, stalled := ck.settle(ctx, o.settleWait, o.stallAfter, e.progress)
	settleTime := time.Since(settleStart)
	rep := ck.judgeAll(vs, tasks, settled)
	rep.stalled = stalled

	crashes := 0
	for _, p := range e.replicas {
		for _, c := range p.Crashes() {
			crashes++
			fmt.Fprintf(stderr, "fgchaos: %s exited unexpectedly: %s\n", p.Name, c)
		}
	}
	if rc := e.redis.Crashes(); len(rc) > 0 {
		crashes += len(rc)
		fmt.Fprintf(stderr, "fgchaos: Redis exited unexpectedly: %v\n", rc)
	}

	// The invariants (overlaps, unconverged, lost), plus what can only be a
	// gateway bug: a replica that died by itself, or an answer no client
	// should get (a 500, a 404 for a task it was given).
	failed := len(rep.overlaps) > 0 || len(rep.unconverged) > 0 || len(rep.lost) > 0 || crashes > 0 || c.errors.Load() > 0
	if failed || len(rep.stalled) > 0 {
		e.explain(stderr, ck, rep, vs, tasks)
	}
	if !settled {
		// Something is stuck: a goroutine dump of every replica (SIGQUIT
		// makes a Go program print all stacks and exit) shows where.
		for _, p := range e.replicas {
			p.Stop(syscall.SIGQUIT, 10*time.Second)
		}
		fmt.Fprintf(stderr, "fgchaos: the gateway did not settle within %v; goroutine dumps (SIGQUIT) are at the end of the replica logs\n", o.settleWait)
	}
	fmt.Fprintf(stdout, "chaos: redis=%s nodes=%d requests=%d accepted=%d coalesced=%d refused=%d deletes=%d (cancel=%d finished=%d) unanswered=%d errors=%d "+
		"tasks=%d completed=%d exception=%d cancelled=%d lost=%d overlaps=%d unconverged=%d stalled=%d kills=%d redis_restarts=%d crashes=%d load=%.1fs settle=%.1fs duration=%.1fs seed=%d\n",
		o.redisMode, o.nodes, c.sent.Load(), c.accepted.Load(), c.coalesced.Load(), c.refused.Load(), c.deletes.Load(), c.deleteOK.Load(), c.deleteDone.Load(),
		c.unanswered.Load(), c.errors.Load(),
		len(tasks), rep.tasksByState[schemas.TaskStateCompleted], rep.tasksByState[schemas.TaskStateException], rep.tasksByState[schemas.TaskStateCancelled],
		len(rep.lost), len(rep.overlaps), len(rep.unconverged), len(rep.stalled), e.kills.Load(), e.redisRestarts.Load(), crashes,
		loadTime.Seconds(), settleTime.Seconds(), time.Since(started).Seconds(), o.seed)
	if o.verbose {
		e.log.Printf("refusals: 409=%d 429=%d 503=%d; fault refreshes %d", c.refused409.Load(), c.refused429.Load(), c.refused503.Load(), e.faultRefreshes.Load())
	}
	if ctx.Err() != nil && !failed {
		e.log.Printf("stopped before the end: %v", context.Cause(ctx))
		return 3, false
	}
	if failed {
		return 1, true
	}
	return 0, len(rep.stalled) > 0
}

// explain prints the offending nodes (the first few in full).
func (e *env) explain(w io.Writer, ck *checker, rep report, vs []*sysView, tasks map[string]taskView) {
	if len(rep.overlaps) > 0 {
		fmt.Fprintf(w, "fgchaos: OVERLAP (MaxInFlight > 1) on %d node(s): %s\n", len(rep.overlaps), strings.Join(rep.overlaps, ","))
	}
	if len(rep.unconverged) > 0 {
		fmt.Fprintf(w, "fgchaos: UNCONVERGED %d node(s): %s\n", len(rep.unconverged), joinSorted(rep.unconverged))
		ids := make([]string, 0, len(rep.unconverged))
		for id := range rep.unconverged {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			fmt.Fprintf(w, "  %s: %s\n", id, strings.Join(rep.unconverged[id], "; "))
		}
	}
	if len(rep.stalled) > 0 {
		fmt.Fprintf(w, "fgchaos: STALLED (still busy %v or more after the load stopped; not an invariant, but a node's queue was blocked):", e.o.stallAfter)
		for _, id := range strings.Split(joinSorted(rep.stalled), ",") {
			fmt.Fprintf(w, " %s(%.0fs)", id, rep.stalled[id].Seconds())
		}
		fmt.Fprintln(w)
	}
	if len(rep.lost) > 0 {
		fmt.Fprintf(w, "fgchaos: LOST %d task(s):", len(rep.lost))
		for i, id := range rep.lost {
			if i == 20 {
				fmt.Fprintf(w, " ...")
				break
			}
			fmt.Fprintf(w, " %s=%s", id, tasks[id])
		}
		fmt.Fprintln(w)
	}
	// Nodes to explain: overlaps first, then unconverged, then nodes of lost tasks.
	var pick []int
	seen := map[int]bool{}
	add := func(id string) {
		for i, sn := range e.sim {
			if sn.id == id && !seen[i] && len(pick) < e.o.explainMax {
				seen[i] = true
				pick = append(pick, i)
			}
		}
	}
	for _, id := range rep.overlaps {
		add(id)
	}
	for _, id := range strings.Split(joinSorted(rep.unconverged), ",") {
		add(id)
	}
	for _, t := range rep.lost {
		if n, ok := serializer.TaskNode(t); ok {
			add(n)
		}
	}
	for _, id := range strings.Split(joinSorted(rep.stalled), ",") {
		add(id)
	}
	shown := 0
	for _, h := range ck.hist {
		for _, ev := range h.events {
			if ev.Result == "error" && shown < 20 {
				shown++
				fmt.Fprintf(w, "fgchaos: UNEXPECTED ANSWER node %s: %s\n", h.id, ev)
				add(h.id)
			}
		}
	}
	rdb := e.redis.Client()
	defer rdb.Close()
	store := serializer.NewStore(rdb)
	redisLog := func(node string) []string {
		lctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		entries, err := store.Log(lctx, node, 80)
		if err != nil {
			return []string{"(unreadable: " + err.Error() + ")"}
		}
		var out []string
		for _, m := range entries {
			keys := make([]string, 0, len(m))
			for k := range m {
				if k != "id" {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			var b strings.Builder
			fmt.Fprintf(&b, "%v", m["id"])
			for _, k := range keys {
				fmt.Fprintf(&b, " %s=%v", k, m[k])
			}
			out = append(out, b.String())
		}
		return out
	}
	for _, i := range pick {
		ck.explain(w, i, vs[i], tasks, redisLog)
	}
}

// setup builds fishgate, starts Redis, the fleet and the replicas.
func (e *env) setup(ctx context.Context) error {
	o := e.o
	rng := rand.New(rand.NewPCG(o.seed, 0x5eed))

	sig := syscall.SIGKILL
	if o.redisSignal == "TERM" {
		sig = syscall.SIGTERM
	}
	var err error
	if e.redis, err = redisproc.New(redisproc.Options{Mode: o.redisMode, Dir: e.dir, Down: o.redisDown, Signal: sig, Logf: e.progress}); err != nil {
		return err
	}
	bin := o.fishgate
	if bin == "" {
		bin = filepath.Join(e.dir, "fishgate")
		if err := buildFishgate(ctx, bin); err != nil {
			return err
		}
	}
	if err := e.redis.Start(ctx); err != nil {
		return err
	}

	fleet, nodes, err := startFleet(o, rng)
	if err != nil {
		return fmt.Errorf("simulator: %w", err)
	}
	e.sim = nodes
	e.closeSim = func() { fleet.Close() }

	ports := make([]int, o.replicas)
	for i := range ports {
		if ports[i], err = redisproc.FreePort(); err != nil {
			return err
		}
	}
	redisURL, redisCfg := gatewayRedis(e.redis)
	b, err := gatewayConfig(o, "127.0.0.1:"+fmt.Sprint(ports[0]), redisURL, redisCfg, nodes)
	if err != nil {
		return err
	}
	if _, err := config.Parse(b); err != nil {
		return fmt.Errorf("generated config: %w", err)
	}
	cfgPath := filepath.Join(e.dir, "fishgate.yaml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return err
	}
	for i, port := range ports {
		listen := fmt.Sprintf("127.0.0.1:%d", port)
		e.replicas = append(e.replicas, &redisproc.Proc{
			Name:    fmt.Sprintf("replica-%d", i),
			Bin:     bin,
			Args:    []string{"serve", "--config", cfgPath, "--listen", listen, "--log-level", "info"},
			LogPath: filepath.Join(e.dir, fmt.Sprintf("replica-%d.log", i)),
		})
		e.urls = append(e.urls, "http://"+listen)
	}
	for _, p := range e.replicas {
		if err := p.Start(); err != nil {
			return err
		}
	}
	for i, p := range e.replicas {
		if err := waitReady(ctx, p, e.urls[i], 60*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// gatewayConfig writes the YAML config every replica reads (each gets its
// own --listen). Only the keys the check sets are written: the rest keeps
// fishgate's documented defaults, and a binary given with -fishgate that is
// older or newer than this tree's config struct still reads it.
func gatewayConfig(o *options, listen, redisURL string, redisCfg *redisBlock, nodes []*simNode) ([]byte, error) {
	type node struct {
		ID       string `yaml:"id"`
		Backend  string `yaml:"backend"`
		Address  string `yaml:"address"`
		User     string `yaml:"user"`
		Password string `yaml:"password"`
	}
	type account struct {
		User     string `yaml:"user"`
		Password string `yaml:"password"`
		Role     string `yaml:"role"`
	}
	cfg := struct {
		Listen string `yaml:"listen"`
		// plain HTTP on loopback: the load talks HTTP
		TLS struct {
			Disabled bool `yaml:"disabled"`
		} `yaml:"tls"`
		RedisURL      string      `yaml:"redis_url,omitempty"`
		Redis         *redisBlock `yaml:"redis,omitempty"`
		LeaseTTL      string      `yaml:"lease_ttl"`
		Retries       int         `yaml:"retries"`
		VerifyTimeout string      `yaml:"verify_timeout"`
		// the simulated machines soft off within a second, and their
		// restarts are often too quick to be seen going through Off: short
		// evidence windows (a native GracefulRestart's is soft_off_timeout)
		SoftOffTimeout  string `yaml:"soft_off_timeout"`
		RestartEvidence string `yaml:"restart_evidence"`
		SyncInterval    string `yaml:"sync_interval"`
		Admission       struct {
			Policy    string `yaml:"policy"`
			FlipLimit int    `yaml:"flip_limit"`
		} `yaml:"admission"`
		Accounts []account `yaml:"accounts"`
		Nodes    []node    `yaml:"nodes"`
	}{
		Listen: listen, RedisURL: redisURL, Redis: redisCfg, LeaseTTL: o.leaseTTL.String(), Retries: o.retries,
		VerifyTimeout:   o.verifyTimeout.String(),
		SoftOffTimeout:  "5s",
		RestartEvidence: "1s",
		SyncInterval:    o.syncInterval.String(),
		Accounts:        []account{{User: gwUser, Password: gwPassword, Role: "Administrator"}},
	}
	cfg.TLS.Disabled = true
	cfg.Admission.Policy = "now-next"
	cfg.Admission.FlipLimit = o.flipLimit
	for _, sn := range nodes {
		cfg.Nodes = append(cfg.Nodes, node{ID: sn.id, Backend: "redfish", Address: sn.node.URL(), User: "bmc", Password: "bmcpass"})
	}
	return yaml.Marshal(cfg)
}

// buildFishgate runs `go build -o bin ./cmd/fishgate` in the module root.
func buildFishgate(ctx context.Context, bin string) error {
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	root, err := exec.CommandContext(ctx, goBin, "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(root))
	if mod == "" || mod == os.DevNull {
		return errors.New("not inside the fishgate module: run fgchaos from the repository")
	}
	bctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(bctx, goBin, "build", "-o", bin, "./cmd/fishgate")
	cmd.Dir = filepath.Dir(mod)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build ./cmd/fishgate: %w\n%s", err, out)
	}
	return nil
}

// chaos kills a random replica with SIGKILL about every killEvery and
// restarts it, and restarts Redis once when half the requests are sent. It
// returns when ctx ends (the load is over).
func (e *env) chaos(ctx context.Context, ld *loader) error {
	o := e.o
	rng := rand.New(rand.NewPCG(o.seed, 0xc4a05))
	half := int64(o.requests / 2)
	for {
		// jitter: 0.5x .. 1.5x
		pause := o.killEvery/2 + time.Duration(rng.Int64N(int64(o.killEvery)+1))
		if !sleepCtx(ctx, pause) {
			return nil
		}
		if e.redisRestarts.Load() == 0 && ld.c.sent.Load() >= half {
			if err := e.restartRedis(ctx); err != nil {
				return err
			}
			continue
		}
		i := rng.IntN(len(e.replicas))
		p := e.replicas[i]
		e.progress("SIGKILL %s", p.Name)
		p.Stop(syscall.SIGKILL, 5*time.Second)
		e.kills.Add(1)
		sleepCtx(ctx, o.killDown)
		if err := e.startReplica(context.WithoutCancel(ctx), i); err != nil {
			return err
		}
	}
}

// startReplica starts replica i again and waits until it is ready. A
// replica that cannot start (e.g. Redis away) is retried a few times.
func (e *env) startReplica(ctx context.Context, i int) error {
	p := e.replicas[i]
	err := retry.Policy{Base: 500 * time.Millisecond, Cap: 2 * time.Second, Attempts: 5}.Do(ctx, func(int) error {
		if !p.Running() {
			if err := p.Start(); err != nil {
				return retry.Stop(err)
			}
		}
		err := waitReady(ctx, p, e.urls[i], 60*time.Second)
		if err != nil {
			e.progress("%s not ready: %v", p.Name, err)
			p.Stop(syscall.SIGKILL, 5*time.Second)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%s would not start: %w", p.Name, err)
	}
	return nil
}

// restartRedis stops the Redis master with -redis-signal: a restart of a
// standalone server, a failover with Sentinel or Cluster (the master of
// the first node's slot).
func (e *env) restartRedis(ctx context.Context) error {
	e.redisRestarts.Add(1)
	return e.redis.StopMaster(ctx, serializerKeyOf(e.sim[0].id))
}

// serializerKeyOf is a Redis key of node id (its slot is the node's).
func serializerKeyOf(id string) string { return "fg:node:{" + id + "}:slots" }

// ensureUp restarts whatever is down after the chaos stopped.
func (e *env) ensureUp(ctx context.Context) error {
	if err := e.redis.EnsureUp(ctx); err != nil {
		return err
	}
	for i, p := range e.replicas {
		if !p.Running() {
			if err := e.startReplica(ctx, i); err != nil {
				return err
			}
		}
	}
	return nil
}
