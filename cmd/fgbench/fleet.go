package main

// `fgbench fleet`: the gateway at fleet scale (docs/architecture.md#power-sync,
// issue 13). bmcsim serves N Redfish BMCs in one process and `fishgate
// serve` runs in another, both on loopback; this process drives them and
// reads their CPU time and RSS from /proc. Each round starts a gateway
// with the embedded Redis and measures the time to its first answer, its
// idle CPU over one sync interval and RSS, a fleet-wide power cycle (N On
// requests, then N ForceOff: admission and completion times, commands per
// node and overlaps as bmcsim counts them) and the latency of Tasks and
// Systems pages. Then, once, a gateway on a real redis-server: Redis bytes
// (INFO memory) per idle node, per node after one action each, and per
// further retained task, and the Tasks page latency with -tasks tasks
// retained. The report gives medians over rounds, next to bmcsim's own
// figures (the same fleet without the gateway) as the baseline.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// fleetConfig is `fgbench fleet`'s command line.
type fleetConfig struct {
	Nodes       int           `json:"nodes"`
	Rounds      int           `json:"rounds"`
	Concurrency int           `json:"concurrency"`
	IdleWindow  time.Duration `json:"-"`
	Tasks       int           `json:"tasks"`
	Faulty      int           `json:"faulty"`
	Bin         string        `json:"-"`
	RedisServer string        `json:"-"`
	NoRedis     bool          `json:"no_redis"`
	Pprof       string        `json:"-"`
	Timeout     time.Duration `json:"-"`
	JSON        bool          `json:"-"`
	// Extra is more YAML for the gateways' configuration (fgbench addresses).
	Extra string `json:"-"`
}

func (c fleetConfig) validate() error {
	switch {
	case c.Nodes < 1 || c.Nodes > 30000:
		return errors.New("-nodes must be in 1..30000")
	case c.Rounds < 1 || c.Rounds > 20:
		return errors.New("-rounds must be in 1..20")
	case c.Concurrency < 1 || c.Concurrency > 1024:
		return errors.New("-concurrency must be in 1..1024")
	case c.IdleWindow < time.Second:
		return errors.New("-idle-window must be at least 1s")
	case c.Tasks < 0:
		return errors.New("-tasks must not be negative")
	case c.Faulty < 0 || c.Faulty > 1000:
		return errors.New("-faulty must be in 0..1000")
	case c.Timeout < time.Minute:
		return errors.New("-timeout must be at least 1m")
	}
	return nil
}

func fleetMain(args []string) int {
	fs := flag.NewFlagSet("fgbench fleet", flag.ContinueOnError)
	var c fleetConfig
	fs.IntVar(&c.Nodes, "nodes", 10000, "simulated BMCs (bmcsim) behind one gateway")
	fs.IntVar(&c.Rounds, "rounds", 3, "rounds, each with a fresh gateway (embedded Redis)")
	fs.IntVar(&c.Concurrency, "concurrency", 64, "client connections sending the power requests and polls")
	fs.DurationVar(&c.IdleWindow, "idle-window", 30*time.Second, "how long idle CPU is measured (the default sync interval)")
	fs.IntVar(&c.Tasks, "tasks", 100000, "tasks retained when the Tasks page latency is measured on redis-server (reached by further power cycles)")
	fs.IntVar(&c.Faulty, "faulty", 100, "further nodes in the gateway's config whose BMC is down (half: connection refused) or slow (half: accepts, never answers); they must not delay the start")
	fs.StringVar(&c.Bin, "bin", "", "directory holding fishgate and bmcsim (default: built from this module into a temporary directory)")
	fs.StringVar(&c.RedisServer, "redis-server", "redis-server", "redis-server binary for the Redis figures")
	fs.BoolVar(&c.NoRedis, "no-redis", false, "skip the redis-server part")
	fs.StringVar(&c.Pprof, "pprof", "", "loopback address the gateways serve net/http/pprof on (fishgate serve --pprof), for profiling a run")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Minute, "bound on each phase (a power cycle, the wait for start)")
	fs.BoolVar(&c.JSON, "json", false, "write the results as JSON to stdout (the report goes to stderr)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	if err := c.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "fgbench fleet:", err)
		return 2
	}
	return runReport("fgbench fleet", "OPERATIONS", c.JSON, func(ctx context.Context, out io.Writer) (*fleetReport, error) {
		return benchFleet(ctx, c, out)
	})
}

// fleetRound is what one round measured.
type fleetRound struct {
	FirstAnswerS float64 `json:"first_answer_s"` // process start to the first 200 of a System
	AllReadS     float64 `json:"all_read_s"`     // process start until sampled nodes all show a PowerState
	IdleCPUPct   float64 `json:"idle_cpu_pct"`   // % of one core over the idle window
	RSSIdleMiB   float64 `json:"rss_idle_mib"`
	On           cycle   `json:"on"`
	Off          cycle   `json:"off"`
	RSSCycleMiB  float64 `json:"rss_after_cycle_mib"` // after N On and N ForceOff requests
	AggCreateS   float64 `json:"aggregate_create_s"`  // POST of the Aggregate of every node to its 201
	AggOn        cycle   `json:"aggregate_reset_on"`
	AggOff       cycle   `json:"aggregate_reset_forceoff"`
	RSSAggMiB    float64 `json:"rss_after_aggregate_cycle_mib"` // after the two Aggregate.Resets as well
	Tasks        pages   `json:"tasks_pages"`
	Systems      pages   `json:"systems_pages"`
	RootMs       float64 `json:"root_ms"` // median GET of the service root: the baseline request
	SimIdleCPU   float64 `json:"bmcsim_idle_cpu_pct"`
	SimRSSMiB    float64 `json:"bmcsim_rss_mib"`
}

// cycle is one fleet-wide power request: N Resets of one type sent one by
// one, or one Aggregate.Reset of N nodes (then Completed and Other count
// its sub-tasks).
type cycle struct {
	AdmittedS  float64 `json:"admitted_s"`  // first request sent to the last 202
	CompletedS float64 `json:"completed_s"` // first request sent to the last task seen terminal
	Completed  int     `json:"completed"`
	Other      int     `json:"not_completed"`
	Commands   int     `json:"nodes_with_one_command"` // nodes whose BMC got exactly one command
	Overlaps   int     `json:"overlaps"`               // nodes that ever had two commands in flight
	Errors     int64   `json:"errors"`
}

// pages are the median latencies of a paged collection's pages at their
// default size: the first, one half-way ($skip), the last.
type pages struct {
	FirstMs float64 `json:"first_ms"`
	DeepMs  float64 `json:"deep_ms"`
	LastMs  float64 `json:"last_ms"`
	Total   int     `json:"members"`
	Size    int     `json:"page_size"`
}

// worst is the slowest of the three pages.
func (p pages) worst() float64 { return max(p.FirstMs, p.DeepMs, p.LastMs) }

// redisFigures are measured on a real redis-server.
type redisFigures struct {
	IdlePerNode   float64 `json:"bytes_per_idle_node"`
	ActionPerNode float64 `json:"bytes_per_node_after_one_action"`
	PerTask       float64 `json:"bytes_per_retained_task"`     // the second action's tasks, over the first's
	PerTaskAll    float64 `json:"bytes_per_retained_task_all"` // over the idle fleet, with every task retained
	// ActionByKind splits the memory after one action by kind of key
	// (keyKind), per node: where the bytes go.
	ActionByKind map[string]float64 `json:"bytes_per_node_after_one_action_by_key"`
	Tasks        pages              `json:"tasks_pages"` // with Tasks.Total tasks retained
	Systems      pages              `json:"systems_pages"`
	RootMs       float64            `json:"root_ms"`
}

type fleetReport struct {
	Config     fleetConfig   `json:"config"`
	Rounds     []fleetRound  `json:"rounds"`
	Median     fleetRound    `json:"median"`
	Redis      *redisFigures `json:"redis,omitempty"`
	Verdicts   []verdict     `json:"verdicts"`
	Errors     int64         `json:"errors"`
	FirstError string        `json:"first_error,omitempty"`
}

func (r *fleetReport) failed() (int64, string) { return r.Errors, r.FirstError }

func (r *fleetReport) fail(err error) {
	r.Errors++
	if r.FirstError == "" {
		r.FirstError = err.Error()
	}
}

func benchFleet(ctx context.Context, c fleetConfig, out io.Writer) (*fleetReport, error) {
	bin, cleanup, err := buildBins(ctx, c.Bin, "fgbench fleet", out)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	rep := &fleetReport{Config: c}
	sim, err := startSim(ctx, filepath.Join(bin, "bmcsim"), c.Nodes)
	if err != nil {
		return nil, err
	}
	defer sim.stop()
	fmt.Fprintf(out, "fgbench fleet: %d BMCs (bmcsim pid %d) up in %.1fs, %.0f MiB\n", c.Nodes, sim.cmd.Process.Pid, sim.startS, rssMiB(sim.cmd.Process.Pid))
	cl := newFleetClient(c.Concurrency)
	for r := 1; r <= c.Rounds; r++ {
		round, err := fleetRoundRun(ctx, c, bin, sim, cl, rep, "", out)
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", r, err)
		}
		rep.Rounds = append(rep.Rounds, round)
		fmt.Fprintf(out, "round %d/%d  %s\n", r, c.Rounds, round)
	}
	rep.Median = medianRound(rep.Rounds)
	if !c.NoRedis {
		rf, err := redisRun(ctx, c, bin, sim, cl, rep, out)
		if err != nil {
			return nil, fmt.Errorf("redis-server part: %w", err)
		}
		rep.Redis = rf
	}
	rep.Verdicts = rep.verdicts()
	rep.print(out)
	return rep, nil
}

// buildBins is dir, or (dir empty) a temporary directory where fishgate
// and bmcsim are built from this module; cleanup removes what it made.
func buildBins(ctx context.Context, dir, name string, out io.Writer) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "fgbench-bin-")
	if err != nil {
		return "", nil, err
	}
	fmt.Fprintln(out, name+": building fishgate and bmcsim")
	build := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/fishgate", "./cmd/bmcsim")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build fishgate and bmcsim (run from the module root, or pass -bin): %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

func (r fleetRound) String() string {
	return fmt.Sprintf("first answer %.2fs (all read %.1fs)  idle CPU %.1f%%  RSS idle %.0f MiB, after cycle %.0f MiB, after Aggregate.Resets %.0f MiB  On admitted %.1fs completed %.1fs  ForceOff admitted %.1fs completed %.1fs  Aggregate.Reset On admitted %.2fs completed %.1fs, ForceOff admitted %.2fs completed %.1fs  Tasks pages (%d) %.1f/%.1f/%.1fms  Systems pages %.1f/%.1f/%.1fms  root %.2fms",
		r.FirstAnswerS, r.AllReadS, r.IdleCPUPct, r.RSSIdleMiB, r.RSSCycleMiB, r.RSSAggMiB, r.On.AdmittedS, r.On.CompletedS, r.Off.AdmittedS, r.Off.CompletedS,
		r.AggOn.AdmittedS, r.AggOn.CompletedS, r.AggOff.AdmittedS, r.AggOff.CompletedS,
		r.Tasks.Total, r.Tasks.FirstMs, r.Tasks.DeepMs, r.Tasks.LastMs, r.Systems.FirstMs, r.Systems.DeepMs, r.Systems.LastMs, r.RootMs)
}

// fleetRoundRun runs one gateway through the round's measures. redisURL
// empty means the embedded Redis.
func fleetRoundRun(ctx context.Context, c fleetConfig, bin string, sim *simProc, cl *fleetClient, rep *fleetReport, redisURL string, out io.Writer) (fleetRound, error) {
	var r fleetRound
	gw, err := startGateway(ctx, c, bin, sim, redisURL, c.Faulty, cl)
	if err != nil {
		return r, err
	}
	defer gw.stop()
	r.FirstAnswerS = gw.firstAnswer.Seconds()
	if r.AllReadS, err = waitAllRead(ctx, c, gw, cl); err != nil {
		return r, err
	}
	// Idle: the gateway alone, over one sync interval.
	g0, s0 := procCPU(gw.pid()), procCPU(sim.cmd.Process.Pid)
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return r, ctx.Err()
	case <-time.After(c.IdleWindow):
	}
	el := time.Since(t0)
	r.IdleCPUPct = 100 * float64(procCPU(gw.pid())-g0) / float64(el)
	r.SimIdleCPU = 100 * float64(procCPU(sim.cmd.Process.Pid)-s0) / float64(el)
	r.RSSIdleMiB, r.SimRSSMiB = rssMiB(gw.pid()), rssMiB(sim.cmd.Process.Pid)
	if r.On, err = powerAll(ctx, c, gw, sim, cl, "On", rep); err != nil {
		return r, err
	}
	if r.Off, err = powerAll(ctx, c, gw, sim, cl, "ForceOff", rep); err != nil {
		return r, err
	}
	r.RSSCycleMiB = rssMiB(gw.pid())
	agg, s, err := createAggregate(ctx, gw, sim, cl)
	if err != nil {
		return r, err
	}
	r.AggCreateS = s
	if r.AggOn, err = aggregateReset(ctx, c, gw, sim, cl, agg, "On", rep); err != nil {
		return r, err
	}
	if r.AggOff, err = aggregateReset(ctx, c, gw, sim, cl, agg, "ForceOff", rep); err != nil {
		return r, err
	}
	r.RSSAggMiB = rssMiB(gw.pid())
	r.Tasks = pageLatency(ctx, cl, gw, "/redfish/v1/TaskService/Tasks", rep)
	r.Systems = pageLatency(ctx, cl, gw, "/redfish/v1/Systems", rep)
	r.RootMs = medianLatency(ctx, cl, gw, []string{"/redfish/v1"}, 21, rep)
	return r, nil
}

// redisRun measures the Redis figures on a fresh redis-server, then
// retains c.Tasks tasks (by Aggregate.Resets: one request each for the
// whole fleet) and measures the pages.
func redisRun(ctx context.Context, c fleetConfig, bin string, sim *simProc, cl *fleetClient, rep *fleetReport, out io.Writer) (*redisFigures, error) {
	rs, err := startRedisServer(ctx, c.RedisServer)
	if err != nil {
		return nil, err
	}
	defer rs.Stop()
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer rdb.Close()
	used := func() float64 {
		s, err := rdb.Info(ctx, "memory").Result()
		if err != nil {
			rep.fail(fmt.Errorf("INFO memory: %w", err))
			return 0
		}
		n, _ := strconv.ParseFloat(infoField(s, "used_memory"), 64)
		return n
	}
	base := used()
	// No faulty nodes here: the bytes are per node of the fleet.
	gw, err := startGateway(ctx, c, bin, sim, "redis://"+rs.Addr, 0, cl)
	if err != nil {
		return nil, err
	}
	defer gw.stop()
	if _, err := waitAllRead(ctx, c, gw, cl); err != nil {
		return nil, err
	}
	f := &redisFigures{}
	n := float64(c.Nodes)
	idle := used()
	f.IdlePerNode = (idle - base) / n
	if _, err := powerAll(ctx, c, gw, sim, cl, "On", rep); err != nil {
		return nil, err
	}
	one := used()
	f.ActionPerNode = (one - base) / n
	byKind, err := bytesByKind(ctx, rdb)
	if err != nil {
		rep.fail(fmt.Errorf("MEMORY USAGE by key: %w", err))
	}
	f.ActionByKind = map[string]float64{}
	for k, b := range byKind {
		f.ActionByKind[k] = float64(b) / n
	}
	if _, err := powerAll(ctx, c, gw, sim, cl, "ForceOff", rep); err != nil {
		return nil, err
	}
	f.PerTask = (used() - one) / n
	fmt.Fprintf(out, "redis-server: %.0f B per idle node, %.0f B per node after one action, %.0f B per further retained task\n", f.IdlePerNode, f.ActionPerNode, f.PerTask)
	agg, _, err := createAggregate(ctx, gw, sim, cl)
	if err != nil {
		return nil, err
	}
	made := 2 * c.Nodes
	for rt := "On"; made < c.Tasks && ctx.Err() == nil; made += c.Nodes {
		cy, err := aggregateReset(ctx, c, gw, sim, cl, agg, rt, rep)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "redis-server: Aggregate.Reset %s admitted in %.2fs, completed in %.1fs; %d tasks made\n", rt, cy.AdmittedS, cy.CompletedS, made+c.Nodes)
		if rt == "On" {
			rt = "ForceOff"
		} else {
			rt = "On"
		}
	}
	f.Tasks = pageLatency(ctx, cl, gw, "/redfish/v1/TaskService/Tasks", rep)
	f.PerTaskAll = (used() - idle) / float64(max(1, f.Tasks.Total))
	f.Systems = pageLatency(ctx, cl, gw, "/redfish/v1/Systems", rep)
	f.RootMs = medianLatency(ctx, cl, gw, []string{"/redfish/v1"}, 21, rep)
	return f, nil
}

// keyKind names the kind of a Redis key: a hash tag that names one node
// or one bulk request (not one of the fleet-wide tags) and a trailing
// number become "*", so that "fg:node:{node00042}:log" is
// "fg:node:{*}:log".
func keyKind(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i:], '}'); j > 0 && !fleetTags[key[i+1:i+j]] {
			key = key[:i+1] + "*" + key[i+j:]
		}
	}
	if i := strings.LastIndexByte(key, ':'); i >= 0 && i+1 < len(key) {
		if _, err := strconv.Atoi(key[i+1:]); err == nil {
			key = key[:i+1] + "*"
		}
	}
	return key
}

// fleetTags are the hash tags of the gateway's fleet-wide keys.
var fleetTags = map[string]bool{"events": true, "tasks": true, "audit": true, "aggregates": true, "sources": true}

// bytesByKind sums MEMORY USAGE (every element counted: SAMPLES 0) over
// every key, by keyKind.
func bytesByKind(ctx context.Context, rdb *redis.Client) (map[string]int64, error) {
	out := map[string]int64{}
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			return out, err
		}
		cmds := make([]*redis.IntCmd, len(keys))
		if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.MemoryUsage(ctx, k, 0)
			}
			return nil
		}); err != nil && !errors.Is(err, redis.Nil) {
			return out, err
		}
		for i, k := range keys {
			if b, err := cmds[i].Result(); err == nil {
				out[keyKind(k)] += b
			}
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}

// simProc is a running bmcsim.
type simProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	nodes   []simNode
	control string
	startS  float64
}

type simNode struct{ id, url string }

func startSim(ctx context.Context, path string, n int) (*simProc, error) {
	cmd := exec.Command(path, "--nodes", strconv.Itoa(n), "--control", "127.0.0.1:0", "--delay-min", "0", "--delay-max", "0", "--log-level", "warn")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bmcsim: %w", err)
	}
	s := &simProc{cmd: cmd}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		f := strings.Split(lines.Text(), "\t")
		if len(f) < 2 {
			continue
		}
		if f[0] == "control" {
			s.control = strings.TrimSuffix(f[1], "/nodes")
			break
		}
		u, _, _ := strings.Cut(f[1], "/redfish/")
		s.nodes = append(s.nodes, simNode{id: f[0], url: u})
	}
	go io.Copy(io.Discard, stdout)
	if s.control == "" || len(s.nodes) != n {
		s.stop()
		return nil, fmt.Errorf("bmcsim listed %d nodes and control %q, want %d nodes", len(s.nodes), s.control, n)
	}
	s.startS = time.Since(t0).Seconds()
	return s, nil
}

func (s *simProc) stop() { stopProcess(s.cmd, 20*time.Second) }

// stopProcess interrupts a child and waits for it, killing it after grace.
func stopProcess(cmd *exec.Cmd, grace time.Duration) {
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
}

// simCounts reads every node's command count and largest number of
// commands in flight from bmcsim's control API.
func (s *simProc) counts(ctx context.Context) (map[string][2]int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.control+"/nodes", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var nodes []struct {
		ID           string `json:"Id"`
		CommandCount int    `json:"CommandCount"`
		MaxInFlight  int    `json:"MaxInFlight"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&nodes); err != nil {
		return nil, fmt.Errorf("bmcsim /nodes: %w", err)
	}
	m := make(map[string][2]int, len(nodes))
	for _, n := range nodes {
		m[n.ID] = [2]int{n.CommandCount, n.MaxInFlight}
	}
	return m, nil
}

// gwProc is a running `fishgate serve`.
type gwProc struct {
	cmd         *exec.Cmd
	url         string
	dir         string
	firstAnswer time.Duration
	faulty      *faultyBMCs
	nodePort    int // where node addresses answer Redfish (fgbench addresses)
}

func (g *gwProc) pid() int { return g.cmd.Process.Pid }

const (
	benchUser = "bench"
	benchPass = "fgbench-fleet-password"
)

// startGateway starts `fishgate serve` for sim's nodes and faulty more
// whose BMCs are down or slow, and waits for its first answer.
func startGateway(ctx context.Context, c fleetConfig, bin string, sim *simProc, redisURL string, faulty int, cl *fleetClient) (*gwProc, error) {
	fb, err := newFaultyBMCs(faulty)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "fgbench-gw-")
	if err != nil {
		fb.close()
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "listen: 127.0.0.1:0\ntls: {disabled: true}\nlimits: {max_connections: 4096, max_connections_per_client: 4096}\n")
	if redisURL != "" {
		fmt.Fprintf(&b, "redis_url: %s\n", redisURL)
	}
	b.WriteString(c.Extra)
	fmt.Fprintf(&b, "accounts:\n  - {user: %s, password: %s}\nnodes:\n", benchUser, benchPass)
	for _, n := range sim.nodes {
		fmt.Fprintf(&b, "  - {id: %s, backend: redfish, address: %q, user: admin, password: password, system_id: /redfish/v1/Systems/1}\n", n.id, n.url)
	}
	for i, u := range fb.urls {
		fmt.Fprintf(&b, "  - {id: faulty%04d, backend: redfish, address: %q, user: admin, password: password, system_id: /redfish/v1/Systems/1}\n", i+1, u)
	}
	cfg := filepath.Join(dir, "fishgate.yaml")
	if err := os.WriteFile(cfg, b.Bytes(), 0o600); err != nil {
		os.RemoveAll(dir)
		fb.close()
		return nil, err
	}
	args := []string{"serve", "-c", cfg, "--log-level", "error"}
	if c.Pprof != "" {
		args = append(args, "--pprof", c.Pprof)
	}
	cmd := exec.Command(filepath.Join(bin, "fishgate"), args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		fb.close()
		return nil, err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		fb.close()
		return nil, fmt.Errorf("start fishgate: %w", err)
	}
	g := &gwProc{cmd: cmd, dir: dir, faulty: fb}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, rest, ok := strings.Cut(sc.Text(), "fishgate serving "); ok {
				u, _, _ := strings.Cut(rest, " ")
				if _, p, ok := strings.Cut(rest, "node addresses at port "); ok {
					g.nodePort, _ = strconv.Atoi(strings.TrimSpace(p))
				}
				urlc <- strings.TrimSuffix(u, ",")
				break
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case g.url = <-urlc:
	case <-time.After(c.Timeout):
		g.stop()
		return nil, errors.New("fishgate did not print its URL")
	case <-ctx.Done():
		g.stop()
		return nil, ctx.Err()
	}
	// The first answer: a System read, as a client would.
	path := "/redfish/v1/Systems/" + sim.nodes[0].id
	for {
		if code, _, err := cl.get(ctx, g.url+path); err == nil && code == http.StatusOK {
			break
		}
		if time.Since(t0) > c.Timeout || ctx.Err() != nil {
			g.stop()
			return nil, fmt.Errorf("fishgate did not answer GET %s within %s", path, c.Timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	g.firstAnswer = time.Since(t0)
	return g, nil
}

func (g *gwProc) stop() {
	stopProcess(g.cmd, 30*time.Second)
	os.RemoveAll(g.dir)
	g.faulty.close()
}

// faultyBMCs are BMC addresses that fail: the first half refuse
// connections (a port bound, then closed: a BMC that is down), the rest
// accept and never answer (a BMC that hangs).
type faultyBMCs struct {
	urls  []string
	lns   []net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newFaultyBMCs(n int) (*faultyBMCs, error) {
	fb := &faultyBMCs{}
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fb.close()
			return nil, err
		}
		fb.urls = append(fb.urls, "http://"+ln.Addr().String())
		if i < n/2 {
			ln.Close()
			continue
		}
		fb.lns = append(fb.lns, ln)
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				fb.mu.Lock()
				fb.conns = append(fb.conns, conn)
				fb.mu.Unlock()
			}
		}()
	}
	return fb, nil
}

func (fb *faultyBMCs) close() {
	for _, ln := range fb.lns {
		ln.Close()
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	for _, c := range fb.conns {
		c.Close()
	}
	fb.conns = nil
}

// waitAllRead waits until 200 sampled nodes all show a PowerState: the
// gateway's first read of the fleet is over. It returns the seconds since
// the gateway started.
func waitAllRead(ctx context.Context, c fleetConfig, g *gwProc, cl *fleetClient) (float64, error) {
	start := time.Now().Add(-g.firstAnswer)
	var sample []string
	step := max(1, c.Nodes/200)
	for i := c.Nodes - 1; i >= 0; i -= step {
		sample = append(sample, fmt.Sprintf("%s/redfish/v1/Systems/%s", g.url, simNodeID(i+1, c.Nodes)))
	}
	for len(sample) > 0 {
		_, body, err := cl.get(ctx, sample[0])
		var sys struct{ PowerState *string }
		if err == nil && json.Unmarshal(body, &sys) == nil && sys.PowerState != nil {
			sample = sample[1:]
			continue
		}
		if time.Since(start) > c.Timeout || ctx.Err() != nil {
			return 0, fmt.Errorf("nodes not read within %s (%s)", c.Timeout, sample[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start).Seconds(), nil
}

// simNodeID is bmcsim's name for node i of n (cmd/bmcsim nodeID).
func simNodeID(i, n int) string {
	return fmt.Sprintf("node%0*d", max(2, len(strconv.Itoa(n))), i)
}

// powerAll sends ResetType rt to every node (c.Concurrency at once), then
// polls every task until it is terminal, and checks with bmcsim that each
// node received one command and never two at once.
func powerAll(ctx context.Context, c fleetConfig, g *gwProc, sim *simProc, cl *fleetClient, rt string, rep *fleetReport) (cycle, error) {
	var cy cycle
	before, err := sim.counts(ctx)
	if err != nil {
		return cy, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	tasks := make([]string, len(sim.nodes))
	body := []byte(`{"ResetType":"` + rt + `"}`)
	var errs atomic.Int64
	t0 := time.Now()
	each(c.Concurrency, len(sim.nodes), func(i int) {
		u := g.url + "/redfish/v1/Systems/" + sim.nodes[i].id + "/Actions/ComputerSystem.Reset"
		code, loc, err := cl.post(ctx, u, body)
		if err != nil || code != http.StatusAccepted || loc == "" {
			errs.Add(1)
			rep.fail(fmt.Errorf("POST %s %s: %d %v", u, rt, code, err))
			return
		}
		tasks[i] = strings.Replace(loc, "/TaskMonitors/", "/Tasks/", 1)
	})
	cy.AdmittedS = time.Since(t0).Seconds()
	var last atomic.Int64
	var completed, other atomic.Int64
	each(c.Concurrency, len(tasks), func(i int) {
		if tasks[i] == "" {
			return
		}
		for ctx.Err() == nil {
			_, b, err := cl.get(ctx, g.url+tasks[i])
			var t struct{ TaskState string }
			if err == nil && json.Unmarshal(b, &t) == nil {
				switch t.TaskState {
				case "Completed":
					completed.Add(1)
				case "Exception", "Cancelled", "Killed":
					other.Add(1)
				default:
					time.Sleep(200 * time.Millisecond)
					continue
				}
				for d := time.Since(t0); ; {
					l := last.Load()
					if int64(d) <= l || last.CompareAndSwap(l, int64(d)) {
						break
					}
				}
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		errs.Add(1)
		rep.fail(fmt.Errorf("task %s not terminal within %s", tasks[i], c.Timeout))
	})
	cy.CompletedS = time.Duration(last.Load()).Seconds()
	cy.Completed, cy.Other, cy.Errors = int(completed.Load()), int(other.Load()), errs.Load()
	if cy.Other > 0 {
		rep.fail(fmt.Errorf("%s: %d tasks did not complete", rt, cy.Other))
	}
	cy.Commands, cy.Overlaps, err = commandsSince(ctx, sim, before)
	return cy, err
}

// createAggregate makes one Aggregate of every node of sim (one POST)
// and returns its Aggregate.Reset target and the seconds to its 201.
func createAggregate(ctx context.Context, g *gwProc, sim *simProc, cl *fleetClient) (string, float64, error) {
	els := make([]map[string]string, len(sim.nodes))
	for i, n := range sim.nodes {
		els[i] = map[string]string{"@odata.id": "/redfish/v1/Systems/" + n.id}
	}
	name := "fleet-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	body, _ := json.Marshal(map[string]any{"Name": name, "Elements": els})
	t0 := time.Now()
	code, loc, err := cl.post(ctx, g.url+"/redfish/v1/AggregationService/Aggregates", body)
	if err != nil || code != http.StatusCreated || loc == "" {
		return "", 0, fmt.Errorf("POST an Aggregate of %d Systems: %d %v", len(els), code, err)
	}
	return "/redfish/v1/AggregationService/Aggregates/" + name + "/Actions/Aggregate.Reset", time.Since(t0).Seconds(), nil
}

// aggregateReset sends one Aggregate.Reset of ResetType rt (every node in
// one batch), polls the parent task until it ends, and checks with bmcsim
// that each node received one command and never two at once. Completed and
// Other count the parent's sub-tasks.
func aggregateReset(ctx context.Context, c fleetConfig, g *gwProc, sim *simProc, cl *fleetClient, target, rt string, rep *fleetReport) (cycle, error) {
	var cy cycle
	before, err := sim.counts(ctx)
	if err != nil {
		return cy, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	t0 := time.Now()
	code, loc, err := cl.post(ctx, g.url+target, []byte(`{"ResetType":"`+rt+`"}`))
	if err != nil || code != http.StatusAccepted || loc == "" {
		return cy, fmt.Errorf("POST %s %s: %d %v", target, rt, code, err)
	}
	cy.AdmittedS = time.Since(t0).Seconds()
	task := g.url + strings.Replace(loc, "/TaskMonitors/", "/Tasks/", 1)
	var parent struct {
		TaskState string
		Oem       struct {
			Fishgate struct{ Nodes, Completed, Failed, Cancelled int }
		}
	}
	for {
		_, b, err := cl.get(ctx, task)
		if err == nil && json.Unmarshal(b, &parent) == nil {
			switch parent.TaskState {
			case "Completed", "Exception", "Cancelled", "Killed":
			default:
				parent.TaskState = ""
			}
		}
		if parent.TaskState != "" {
			break
		}
		if ctx.Err() != nil {
			cy.Errors++
			rep.fail(fmt.Errorf("Aggregate.Reset %s: parent task %s not terminal within %s", rt, task, c.Timeout))
			return cy, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	cy.CompletedS = time.Since(t0).Seconds()
	f := parent.Oem.Fishgate
	cy.Completed, cy.Other = f.Completed, f.Nodes-f.Completed
	if parent.TaskState != "Completed" || f.Nodes != len(sim.nodes) || cy.Other != 0 {
		cy.Errors++
		rep.fail(fmt.Errorf("Aggregate.Reset %s ended %s: %d of %d sub-tasks Completed (%d failed, %d cancelled), %d nodes",
			rt, parent.TaskState, f.Completed, f.Nodes, f.Failed, f.Cancelled, len(sim.nodes)))
	}
	cy.Commands, cy.Overlaps, err = commandsSince(ctx, sim, before)
	return cy, err
}

// commandsSince counts the nodes whose BMC got exactly one command since
// before, and the nodes that ever had two commands in flight.
func commandsSince(ctx context.Context, sim *simProc, before map[string][2]int) (one, overlaps int, err error) {
	after, err := sim.counts(ctx)
	if err != nil {
		return 0, 0, err
	}
	for id, a := range after {
		if a[0]-before[id][0] == 1 {
			one++
		}
		if a[1] > 1 {
			overlaps++
		}
	}
	return one, overlaps, nil
}

// pageLatency measures a paged collection at its default page size: the
// median of 11 GETs of its first page, of a page half-way through ($skip)
// and of its last page. Each answer must be a page: at most the default
// size, the total count, a next link unless it is the last.
func pageLatency(ctx context.Context, cl *fleetClient, g *gwProc, coll string, rep *fleetReport) pages {
	var p pages
	var first struct {
		Count    int               `json:"Members@odata.count"`
		Members  []json.RawMessage `json:"Members"`
		NextLink string            `json:"Members@odata.nextLink"`
	}
	code, b, err := cl.get(ctx, g.url+coll)
	if err == nil && code == http.StatusOK {
		err = json.Unmarshal(b, &first)
	}
	if err != nil || code != http.StatusOK || len(first.Members) == 0 ||
		(first.Count > len(first.Members)) != (first.NextLink != "") {
		rep.fail(fmt.Errorf("GET %s: %d %v: not a page (%d of %d members, next link %q)", coll, code, err, len(first.Members), first.Count, first.NextLink))
		return p
	}
	p.Total, p.Size = first.Count, len(first.Members)
	deep := fmt.Sprintf("%s?$skip=%d", coll, p.Total/2)
	last := fmt.Sprintf("%s?$skip=%d", coll, (p.Total-1)/p.Size*p.Size)
	p.FirstMs = medianLatency(ctx, cl, g, []string{coll}, 11, rep)
	p.DeepMs = medianLatency(ctx, cl, g, []string{deep}, 11, rep)
	p.LastMs = medianLatency(ctx, cl, g, []string{last}, 11, rep)
	return p
}

// medianLatency GETs each path rounds times and returns the median in ms.
func medianLatency(ctx context.Context, cl *fleetClient, g *gwProc, paths []string, rounds int, rep *fleetReport) float64 {
	var ms []float64
	for range rounds {
		for _, p := range paths {
			t0 := time.Now()
			code, _, err := cl.get(ctx, g.url+p)
			ms = append(ms, float64(time.Since(t0).Microseconds())/1000)
			if err != nil || code != http.StatusOK {
				rep.fail(fmt.Errorf("GET %s: %d %v", p, code, err))
			}
		}
	}
	return median(ms)
}

// each runs f(0..n-1) on workers goroutines.
func each(workers, n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// fleetClient is the load side's HTTP client (keep-alive, HTTP Basic).
type fleetClient struct{ http *http.Client }

func newFleetClient(conns int) *fleetClient {
	return &fleetClient{http: &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		Proxy: nil, MaxIdleConns: conns, MaxIdleConnsPerHost: conns}}}
}

func (c *fleetClient) get(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth(benchUser, benchPass)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (c *fleetClient) post(ctx context.Context, url string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.SetBasicAuth(benchUser, benchPass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), nil
}

// rssMiB is a process's resident set size, or -1.
func rssMiB(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return -1
}

// medianRound is the per-figure median over rounds.
func medianRound(rs []fleetRound) fleetRound {
	m := func(f func(fleetRound) float64) float64 {
		var xs []float64
		for _, r := range rs {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	mc := func(f func(fleetRound) cycle) cycle {
		return cycle{
			AdmittedS:  m(func(r fleetRound) float64 { return f(r).AdmittedS }),
			CompletedS: m(func(r fleetRound) float64 { return f(r).CompletedS }),
			Completed:  int(m(func(r fleetRound) float64 { return float64(f(r).Completed) })),
			Other:      int(m(func(r fleetRound) float64 { return float64(f(r).Other) })),
			Commands:   int(m(func(r fleetRound) float64 { return float64(f(r).Commands) })),
			Overlaps:   int(m(func(r fleetRound) float64 { return float64(f(r).Overlaps) })),
			Errors:     int64(m(func(r fleetRound) float64 { return float64(f(r).Errors) })),
		}
	}
	mp := func(f func(fleetRound) pages) pages {
		return pages{
			FirstMs: m(func(r fleetRound) float64 { return f(r).FirstMs }),
			DeepMs:  m(func(r fleetRound) float64 { return f(r).DeepMs }),
			LastMs:  m(func(r fleetRound) float64 { return f(r).LastMs }),
			Total:   int(m(func(r fleetRound) float64 { return float64(f(r).Total) })),
			Size:    int(m(func(r fleetRound) float64 { return float64(f(r).Size) })),
		}
	}
	return fleetRound{
		FirstAnswerS: m(func(r fleetRound) float64 { return r.FirstAnswerS }),
		AllReadS:     m(func(r fleetRound) float64 { return r.AllReadS }),
		IdleCPUPct:   m(func(r fleetRound) float64 { return r.IdleCPUPct }),
		RSSIdleMiB:   m(func(r fleetRound) float64 { return r.RSSIdleMiB }),
		On:           mc(func(r fleetRound) cycle { return r.On }),
		Off:          mc(func(r fleetRound) cycle { return r.Off }),
		RSSCycleMiB:  m(func(r fleetRound) float64 { return r.RSSCycleMiB }),
		AggCreateS:   m(func(r fleetRound) float64 { return r.AggCreateS }),
		AggOn:        mc(func(r fleetRound) cycle { return r.AggOn }),
		AggOff:       mc(func(r fleetRound) cycle { return r.AggOff }),
		RSSAggMiB:    m(func(r fleetRound) float64 { return r.RSSAggMiB }),
		Tasks:        mp(func(r fleetRound) pages { return r.Tasks }),
		Systems:      mp(func(r fleetRound) pages { return r.Systems }),
		RootMs:       m(func(r fleetRound) float64 { return r.RootMs }),
		SimIdleCPU:   m(func(r fleetRound) float64 { return r.SimIdleCPU }),
		SimRSSMiB:    m(func(r fleetRound) float64 { return r.SimRSSMiB }),
	}
}

// verdict is one figure of issue 13 against its target.
type verdict struct {
	Figure string  `json:"figure"`
	Target string  `json:"target"`
	Value  float64 `json:"median"`
	Unit   string  `json:"unit"`
	Limit  float64 `json:"limit"`
	Ratio  float64 `json:"ratio"` // Value / Limit: at most 1 passes
	Pass   bool    `json:"pass"`
	Note   string  `json:"note,omitempty"`
}

// verdicts sets the medians against the targets (at most limit,
// or, for counts that must be exact, equal to it).
func (r *fleetReport) verdicts() []verdict {
	m, n := r.Median, r.Config.Nodes
	var vs []verdict
	atMost := func(fig string, v, limit float64, unit, note string) {
		vs = append(vs, verdict{Figure: fig, Target: fmt.Sprintf("<= %g %s", limit, unit), Value: v, Unit: unit, Limit: limit,
			Ratio: div(v, limit), Pass: v <= limit, Note: note})
	}
	exactly := func(fig string, v, want float64, note string) {
		vs = append(vs, verdict{Figure: fig, Target: fmt.Sprintf("= %g", want), Value: v, Limit: want, Ratio: div(v, want), Pass: v == want, Note: note})
	}
	atMost("first answer after start", m.FirstAnswerS, 5, "s",
		fmt.Sprintf("with %d nodes down or hanging in the config; every node read after %.1f s", r.Config.Faulty, m.AllReadS))
	atMost("idle CPU", m.IdleCPUPct, 10, "% of a core", fmt.Sprintf("over %s; bmcsim %.1f %%", r.Config.IdleWindow, m.SimIdleCPU))
	atMost("RSS after a fleet-wide power cycle", max(m.RSSCycleMiB, m.RSSAggMiB), 512, "MiB",
		fmt.Sprintf("idle %.0f MiB; bmcsim %.0f MiB", m.RSSIdleMiB, m.SimRSSMiB))
	for _, x := range []struct {
		rt string
		c  cycle
	}{{"On", m.AggOn}, {"ForceOff", m.AggOff}} {
		atMost("Aggregate.Reset "+x.rt+" admitted", x.c.AdmittedS, 5, "s", fmt.Sprintf("one request, %d nodes", n))
		atMost("Aggregate.Reset "+x.rt+" all Completed", x.c.CompletedS, 60, "s", fmt.Sprintf("%d sub-tasks Completed, %d not", x.c.Completed, x.c.Other))
		exactly("Aggregate.Reset "+x.rt+" nodes with one command", float64(x.c.Commands), float64(n), "bmcsim's count")
		exactly("Aggregate.Reset "+x.rt+" overlaps", float64(x.c.Overlaps), 0, "bmcsim's count")
	}
	page := func(where string, p pages) {
		atMost(fmt.Sprintf("%s page, %d members (first/half-way/last)", where, p.Total), p.worst(), 100, "ms",
			fmt.Sprintf("%.1f / %.1f / %.1f ms, %d a page", p.FirstMs, p.DeepMs, p.LastMs, p.Size))
	}
	page("Tasks", m.Tasks)
	page("Systems", m.Systems)
	if rf := r.Redis; rf != nil {
		page("Tasks (redis-server)", rf.Tasks)
		atMost("Redis per idle node", rf.IdlePerNode, 1024, "B", "INFO memory used_memory")
		atMost("Redis per node after one action", rf.ActionPerNode, 2048, "B", "its task, events and log included")
		vs = append(vs, verdict{Figure: "Redis per retained task", Target: "(report)", Value: rf.PerTaskAll, Unit: "B", Pass: true,
			Note: fmt.Sprintf("%d tasks over the idle fleet; %.0f B each for the second action's", rf.Tasks.Total, rf.PerTask)})
	}
	return vs
}

func (r *fleetReport) print(w io.Writer) {
	m, n := r.Median, r.Config.Nodes
	fmt.Fprintf(w, "\nmedians over %d rounds, %d nodes (gateway with embedded Redis; bmcsim, the same fleet without a gateway, as the baseline):\n", len(r.Rounds), n)
	fmt.Fprintf(w, "  RSS idle                     %8.0f MiB   bmcsim %.0f MiB (gateway/bmcsim %.2f)\n", m.RSSIdleMiB, m.SimRSSMiB, div(m.RSSIdleMiB, m.SimRSSMiB))
	for _, x := range []struct {
		name string
		c    cycle
	}{{"On", m.On}, {"ForceOff", m.Off}} {
		fmt.Fprintf(w, "  %-8s x %-6d requests admitted in %6.1f s, all terminal in %6.1f s; %d Completed, %d not; %d nodes got exactly one command; %d overlaps\n",
			x.name, n, x.c.AdmittedS, x.c.CompletedS, x.c.Completed, x.c.Other, x.c.Commands, x.c.Overlaps)
	}
	fmt.Fprintf(w, "  Aggregate of %d Systems created in %.2f s (one POST)\n", n, m.AggCreateS)
	for _, x := range []struct {
		name string
		c    cycle
	}{{"On", m.AggOn}, {"ForceOff", m.AggOff}} {
		fmt.Fprintf(w, "  Aggregate.Reset %-8s  admitted in %6.2f s, Completed in %6.1f s; %d sub-tasks Completed, %d not; %d nodes got exactly one command; %d overlaps\n",
			x.name, x.c.AdmittedS, x.c.CompletedS, x.c.Completed, x.c.Other, x.c.Commands, x.c.Overlaps)
	}
	fmt.Fprintf(w, "  service root GET             %8.2f ms    (the baseline request; Tasks page/root %.1f, Systems page/root %.1f)\n",
		m.RootMs, div(m.Tasks.worst(), m.RootMs), div(m.Systems.worst(), m.RootMs))
	if rf := r.Redis; rf != nil {
		fmt.Fprintf(w, "redis-server (INFO memory used_memory), %d tasks retained:\n", rf.Tasks.Total)
		fmt.Fprintf(w, "  Tasks pages %.1f / %.1f / %.1f ms (first/half-way/last), Systems pages %.1f / %.1f / %.1f ms; service root %.2f ms (Tasks page/root %.1f)\n",
			rf.Tasks.FirstMs, rf.Tasks.DeepMs, rf.Tasks.LastMs, rf.Systems.FirstMs, rf.Systems.DeepMs, rf.Systems.LastMs, rf.RootMs, div(rf.Tasks.worst(), rf.RootMs))
		fmt.Fprintf(w, "  bytes per idle node %.0f (%.2f of 1 KiB), per node after one action %.0f (%.2f of 2 KiB), per retained task %.0f\n",
			rf.IdlePerNode, rf.IdlePerNode/1024, rf.ActionPerNode, rf.ActionPerNode/2048, rf.PerTaskAll)
		if line := byKindLine(rf.ActionByKind); line != "" {
			fmt.Fprintf(w, "  after one action, bytes per node by key (MEMORY USAGE, without Redis's own overhead): %s\n", line)
		}
	}
	fmt.Fprintf(w, "\n%-64s %-20s %18s %7s  %s\n", "FIGURE", "TARGET", "MEDIAN", "RATIO", "RESULT")
	for _, v := range r.Verdicts {
		res := "pass"
		if !v.Pass {
			res = "FAIL"
		}
		fmt.Fprintf(w, "%-64s %-20s %18s %7.2f  %s  (%s)\n", v.Figure, v.Target, strconv.FormatFloat(v.Value, 'f', 2, 64)+" "+v.Unit, v.Ratio, res, v.Note)
	}
}

// byKindLine lists the kinds of key from the most bytes down, those of at
// least one byte a node.
func byKindLine(m map[string]float64) string {
	kinds := make([]string, 0, len(m))
	for k, b := range m {
		if b >= 1 {
			kinds = append(kinds, k)
		}
	}
	sort.Slice(kinds, func(i, j int) bool {
		if m[kinds[i]] != m[kinds[j]] {
			return m[kinds[i]] > m[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %.0f", k, m[k])
	}
	return strings.Join(parts, ", ")
}
