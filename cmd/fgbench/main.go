// Command fgbench measures what the gateway costs on its hottest read: GET
// of one ComputerSystem, through fishgate (HTTP Basic and session token)
// against a bare echo server that answers the same bytes with the same
// headers and also checks HTTP Basic. The figure is the throughput ratio
// gateway/baseline.
//
// The servers (embedded Redis, simulated BMCs, the gateway and the baseline)
// run in a child process, `fgbench serve` (hidden), and this process drives
// the load: the servers' CPU time is then measured apart from the load
// generator's (from /proc), which is the steadier figure on a small, noisy
// machine where both share the same cores. -inprocess runs everything in
// one process instead.
//
// Each round measures the baseline, then the gateway with Basic, then with
// a session token, each after a short warm-up on the same keep-alive
// connections; the report gives the medians over rounds and the median of
// the per-round ratios. Every response is checked (status 200 and the exact
// body); any failure makes fgbench exit 1.
//
//	go run ./cmd/fgbench -duration 10s -rounds 5 [-concurrency 16] [-nodes 8] [-json]
//
// `fgbench fleet` is the third: one gateway in front of a bmcsim of
// 10,000 BMCs (start, idle CPU and memory, a fleet-wide power cycle, paged
// collections, Redis bytes per node and per task); see fleet.go.
//
//	go run ./cmd/fgbench fleet -nodes 10000 -rounds 3
//
// `fgbench admission` is the second benchmark: Reset admissions per second
// (serializer.Store.Admit, one Lua script, and POST Reset through the
// gateway) against a real redis-server it starts on loopback, with a plain
// SET as the baseline; see admission.go.
//
//	go run ./cmd/fgbench admission -nodes 1000 -duration 10s -rounds 5
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	Duration    time.Duration `json:"duration"`
	Warmup      time.Duration `json:"warmup"`
	Rounds      int           `json:"rounds"`
	Concurrency int           `json:"concurrency"`
	Nodes       int           `json:"nodes"`
	MaxRequests int64         `json:"max_requests_per_phase"`
	InProcess   bool          `json:"in_process"`
	Aim         float64       `json:"aim"`
	JSON        bool          `json:"-"`
}

const (
	tBaseline = "baseline"
	tBasic    = "gateway-basic"
	tToken    = "gateway-token"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(serveMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "admission" {
		os.Exit(admissionMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "fleet" {
		os.Exit(fleetMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "addresses" {
		os.Exit(addressesMain(os.Args[2:]))
	}
	var c config
	flag.DurationVar(&c.Duration, "duration", 10*time.Second, "measured time of each phase (one target in one round)")
	flag.DurationVar(&c.Warmup, "warmup", time.Second, "unmeasured warm-up before each phase")
	flag.IntVar(&c.Rounds, "rounds", 5, "rounds; each measures baseline, gateway-basic, gateway-token in turn")
	flag.IntVar(&c.Concurrency, "concurrency", 16, "concurrent workers (one keep-alive connection each)")
	flag.IntVar(&c.Nodes, "nodes", 8, "simulated nodes behind the gateway")
	flag.Int64Var(&c.MaxRequests, "max-requests", 20_000_000, "safety bound on requests per phase")
	flag.BoolVar(&c.InProcess, "inprocess", false, "run the servers in this process instead of a child process")
	flag.Float64Var(&c.Aim, "aim", 0.5, "throughput ratio gateway-basic/baseline to aim for (reported, not enforced)")
	flag.BoolVar(&c.JSON, "json", false, "write the results as JSON to stdout (the report goes to stderr)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: fgbench [flags]\n       fgbench admission [flags]   (Reset admission benchmark; fgbench admission -h)\n       fgbench fleet [flags]       (10,000 nodes behind one gateway; fgbench fleet -h)\n       fgbench addresses [flags]   (RSS and sockets with 10,000 node addresses; fgbench addresses -h)\n\nGET ComputerSystem throughput and latency through fishgate against a bare echo server.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := c.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "fgbench:", err)
		os.Exit(2)
	}
	os.Exit(runReport("fgbench", "REQUESTS", c.JSON, func(ctx context.Context, out io.Writer) (*report, error) {
		return bench(ctx, c, out)
	}))
}

// failures is a report that counts failed operations (its figures are
// then not valid).
type failures interface {
	failed() (n int64, first string)
}

func (rep *report) failed() (int64, string) { return rep.Errors, rep.FirstError }

// runReport runs a benchmark until SIGINT/SIGTERM or its end, writes its
// report as JSON to stdout with -json (the human report then goes to
// stderr), and returns the exit status: 1 when it failed or counted failed
// operations (noun names them in the banner).
func runReport[R failures](name, noun string, asJSON bool, bench func(ctx context.Context, out io.Writer) (R, error)) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := io.Writer(os.Stdout)
	if asJSON {
		out = os.Stderr
	}
	rep, err := bench(ctx, out)
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	}
	if n, first := rep.failed(); n > 0 {
		fmt.Fprintf(os.Stderr, "\n!!! %s: %d FAILED %s (first: %s): the figures above are not valid !!!\n", name, n, noun, first)
		return 1
	}
	return 0
}

func (c config) MarshalJSON() ([]byte, error) {
	type plain config
	return json.Marshal(struct {
		plain
		Duration string `json:"duration"`
		Warmup   string `json:"warmup"`
	}{plain(c), c.Duration.String(), c.Warmup.String()})
}

func (c config) validate() error {
	switch {
	case c.Duration <= 0 || c.Duration > time.Hour:
		return errors.New("-duration must be in (0, 1h]")
	case c.Warmup < 0 || c.Warmup > 10*time.Minute:
		return errors.New("-warmup must be in [0, 10m]")
	case c.Rounds < 1 || c.Rounds > 100:
		return errors.New("-rounds must be in 1..100")
	case c.Concurrency < 1 || c.Concurrency > 1024:
		return errors.New("-concurrency must be in 1..1024")
	case c.Nodes < 1 || c.Nodes > 5000:
		return errors.New("-nodes must be in 1..5000")
	case c.MaxRequests < 1:
		return errors.New("-max-requests must be positive")
	}
	return nil
}

// report is the outcome of a run (the -json document).
type report struct {
	Config     config                   `json:"config"`
	GoVersion  string                   `json:"go_version"`
	NumCPU     int                      `json:"num_cpu"`
	Path       string                   `json:"path"`
	BodyBytes  int                      `json:"body_bytes"`
	ServerPID  int                      `json:"server_pid"`
	Rounds     [][]phaseResult          `json:"rounds"`
	Medians    []phaseResult            `json:"medians"`
	Ratios     map[string]ratio         `json:"ratios"` // by gateway target
	Figure     float64                  `json:"figure"` // throughput ratio gateway-basic/baseline
	Errors     int64                    `json:"errors"`
	FirstError string                   `json:"first_error,omitempty"`
	byTarget   map[string][]phaseResult // per round
}

// ratio compares a gateway target with the baseline: medians over rounds of
// the per-round (paired) ratios, and the ratio of the medians.
type ratio struct {
	Throughput        float64 `json:"throughput"`            // gateway/baseline req/s (higher is better)
	ThroughputMedians float64 `json:"throughput_of_medians"` // median gw req/s / median baseline req/s
	P50               float64 `json:"p50"`                   // gateway/baseline p50 latency (lower is better)
	P99               float64 `json:"p99"`                   // gateway/baseline p99 latency
	ServerCPU         float64 `json:"server_cpu"`            // gateway/baseline server CPU per request; 0 if not measured
}

func bench(ctx context.Context, c config, out io.Writer) (*report, error) {
	ep, cpu, closeServers, err := launch(ctx, c)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := closeServers(); err != nil {
			fmt.Fprintln(os.Stderr, "fgbench: stopping the servers:", err)
		}
	}()

	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer cl.CloseIdleConnections()
	basic := func(r *http.Request) { r.SetBasicAuth(ep.User, ep.Pass) }
	ref, err := fetch(ctx, cl, ep.Gateway+ep.Path, basic)
	if err != nil {
		return nil, fmt.Errorf("reference response: %w", err)
	}
	token, sessURL, err := login(ctx, cl, ep)
	if err != nil {
		return nil, err
	}
	defer logout(cl, ep, sessURL, basic)
	tokenAuth := func(r *http.Request) { r.Header.Set("X-Auth-Token", token) }
	// The baseline and the token path must give the very same response.
	if err := same(ctx, cl, ref, ep.Baseline+ep.Path, basic); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	if err := same(ctx, cl, ref, ep.Gateway+ep.Path, tokenAuth); err != nil {
		return nil, fmt.Errorf("gateway with session token: %w", err)
	}

	targets := []target{
		{name: tBaseline, url: ep.Baseline + ep.Path, auth: basic},
		{name: tBasic, url: ep.Gateway + ep.Path, auth: basic},
		{name: tToken, url: ep.Gateway + ep.Path, auth: tokenAuth},
	}
	rep := &report{
		Config: c, GoVersion: runtime.Version(), NumCPU: runtime.NumCPU(),
		Path: ep.Path, BodyBytes: len(ref.body), ServerPID: cpu.serverPID,
		byTarget: map[string][]phaseResult{}, Ratios: map[string]ratio{},
	}
	where := fmt.Sprintf("servers in child process %d", cpu.serverPID)
	if c.InProcess {
		where = "servers in this process (load CPU = whole process)"
	}
	fmt.Fprintf(out, "fgbench: GET %s (%d bytes, %s), %d workers, %d rounds x %d targets x %s (+%s warm-up)\n",
		ep.Path, len(ref.body), ref.headers.Get("Content-Type"), c.Concurrency, c.Rounds, len(targets), c.Duration, c.Warmup)
	fmt.Fprintf(out, "         %s, %s, %d CPUs, GOMAXPROCS %d\n", where, runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0))
	o := loadOptions{concurrency: c.Concurrency, warmup: c.Warmup, duration: c.Duration, maxRequests: c.MaxRequests}
	for r := 1; r <= c.Rounds; r++ {
		var round []phaseResult
		for _, t := range targets {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			res := measure(ctx, t, ref.body, o, cpu)
			round = append(round, res)
			rep.byTarget[t.name] = append(rep.byTarget[t.name], res)
			rep.Errors += res.Errors
			if rep.FirstError == "" && res.FirstErr != "" {
				rep.FirstError = t.name + ": " + res.FirstErr
			}
			fmt.Fprintf(out, "round %d/%d  %s\n", r, c.Rounds, formatResult(res))
		}
		rep.Rounds = append(rep.Rounds, round)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	rep.summarize(targets)
	rep.print(out)
	return rep, nil
}

// launch starts the servers, in a child process unless -inprocess, and
// returns their endpoints, the CPU meter and how to stop them.
func launch(ctx context.Context, c config) (endpoints, cpuMeter, func() error, error) {
	if c.InProcess {
		s, err := startServers(ctx, c.Nodes, os.Stderr)
		if err != nil {
			return endpoints{}, cpuMeter{}, nil, err
		}
		return s.ep, cpuMeter{}, s.close, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return endpoints{}, cpuMeter{}, nil, fmt.Errorf("locate own executable (try -inprocess): %w", err)
	}
	// The child lives at most as long as the whole run could take, plus margin.
	life := time.Duration(c.Rounds*3)*(c.Duration+c.Warmup+5*time.Second) + 5*time.Minute
	cmd := exec.Command(exe, "serve", "-nodes", strconv.Itoa(c.Nodes), "-lifetime", life.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return endpoints{}, cpuMeter{}, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return endpoints{}, cpuMeter{}, nil, err
	}
	if err := cmd.Start(); err != nil {
		return endpoints{}, cpuMeter{}, nil, fmt.Errorf("start servers process (try -inprocess): %w", err)
	}
	stopChild := func() error {
		stdin.Close() // the child's signal to shut down
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("servers process %d did not stop within 30s; killed", cmd.Process.Pid)
		}
	}
	type line struct {
		ep  endpoints
		err error
	}
	lc := make(chan line, 1)
	go func() {
		s, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			lc <- line{err: fmt.Errorf("servers process: %w", err)}
			return
		}
		var ep endpoints
		if err := json.Unmarshal([]byte(s), &ep); err != nil {
			lc <- line{err: fmt.Errorf("servers process said %q: %w", s, err)}
			return
		}
		lc <- line{ep: ep}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case l := <-lc:
		if l.err != nil {
			stopChild()
			return endpoints{}, cpuMeter{}, nil, l.err
		}
		return l.ep, cpuMeter{serverPID: cmd.Process.Pid}, stopChild, nil
	case <-time.After(90 * time.Second):
		stopChild()
		return endpoints{}, cpuMeter{}, nil, errors.New("servers process did not start within 90s")
	case <-ctx.Done():
		stopChild()
		return endpoints{}, cpuMeter{}, nil, ctx.Err()
	}
}

// login opens a Redfish session and returns its token and URL.
func login(ctx context.Context, cl *http.Client, ep endpoints) (token, sessURL string, err error) {
	body, _ := json.Marshal(map[string]string{"UserName": ep.User, "Password": ep.Pass})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.Gateway+"/redfish/v1/SessionService/Sessions", bytes.NewReader(body))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("create session: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	token = resp.Header.Get("X-Auth-Token")
	if resp.StatusCode != http.StatusCreated || token == "" {
		return "", "", fmt.Errorf("create session: %s, X-Auth-Token %q", resp.Status, token)
	}
	return token, resp.Header.Get("Location"), nil
}

// logout ends the session (best effort).
func logout(cl *http.Client, ep endpoints, sessURL string, auth func(*http.Request)) {
	if sessURL == "" {
		return
	}
	if !strings.HasPrefix(sessURL, "http") {
		sessURL = ep.Gateway + sessURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, sessURL, nil)
	if err != nil {
		return
	}
	auth(req)
	if resp, err := cl.Do(req); err == nil {
		resp.Body.Close()
	}
}

// same checks that url answers exactly ref: body and copied headers.
func same(ctx context.Context, cl *http.Client, ref reference, url string, auth func(*http.Request)) error {
	got, err := fetch(ctx, cl, url, auth)
	if err != nil {
		return err
	}
	if !bytes.Equal(got.body, ref.body) {
		return fmt.Errorf("body differs from the gateway's (%d bytes, want %d)", len(got.body), len(ref.body))
	}
	for _, k := range copiedHeaders {
		if got.headers.Get(k) != ref.headers.Get(k) {
			return fmt.Errorf("header %s: %q, the gateway's is %q", k, got.headers.Get(k), ref.headers.Get(k))
		}
	}
	return nil
}

// summarize computes the medians and ratios.
func (rep *report) summarize(targets []target) {
	for _, t := range targets {
		rep.Medians = append(rep.Medians, medianResult(t.name, rep.byTarget[t.name]))
	}
	base := rep.byTarget[tBaseline]
	for _, t := range targets[1:] {
		gw := rep.byTarget[t.name]
		var thr, p50, p99, cpu []float64
		for i := range gw {
			b, g := base[i], gw[i]
			thr = append(thr, div(g.RPS, b.RPS))
			p50 = append(p50, div(g.P50us, b.P50us))
			p99 = append(p99, div(g.P99us, b.P99us))
			if g.SrvCPUus > 0 && b.SrvCPUus > 0 {
				cpu = append(cpu, g.SrvCPUus/b.SrvCPUus)
			}
		}
		rep.Ratios[t.name] = ratio{
			Throughput:        median(thr),
			ThroughputMedians: div(median(field(gw, rps)), median(field(base, rps))),
			P50:               median(p50),
			P99:               median(p99),
			ServerCPU:         median(cpu),
		}
	}
	rep.Figure = rep.Ratios[tBasic].Throughput
}

func div(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func rps(r phaseResult) float64 { return r.RPS }

func field(rs []phaseResult, f func(phaseResult) float64) []float64 {
	var xs []float64
	for _, r := range rs {
		xs = append(xs, f(r))
	}
	return xs
}

// medianResult is the per-field median of rs; errors and requests are summed.
func medianResult(name string, rs []phaseResult) phaseResult {
	m := phaseResult{Target: name}
	for _, r := range rs {
		m.Requests += r.Requests
		m.Errors += r.Errors
		m.Seconds += r.Seconds
		if m.FirstErr == "" {
			m.FirstErr = r.FirstErr
		}
	}
	m.RPS = median(field(rs, rps))
	m.P50us = median(field(rs, func(r phaseResult) float64 { return r.P50us }))
	m.P90us = median(field(rs, func(r phaseResult) float64 { return r.P90us }))
	m.P99us = median(field(rs, func(r phaseResult) float64 { return r.P99us }))
	m.MaxUs = median(field(rs, func(r phaseResult) float64 { return r.MaxUs }))
	m.SrvCPUus = median(field(rs, func(r phaseResult) float64 { return r.SrvCPUus }))
	m.LoadCPUus = median(field(rs, func(r phaseResult) float64 { return r.LoadCPUus }))
	return m
}

func cpuStr(us float64) string {
	if us < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", us)
}

func formatResult(r phaseResult) string {
	s := fmt.Sprintf("%-14s %8.0f req/s  p50 %7.0fµs  p99 %7.0fµs  server CPU %6s µs/req  load CPU %6s µs/req  errors %d",
		r.Target, r.RPS, r.P50us, r.P99us, cpuStr(r.SrvCPUus), cpuStr(r.LoadCPUus), r.Errors)
	if r.FirstErr != "" {
		s += "  (first: " + r.FirstErr + ")"
	}
	return s
}

func (rep *report) print(w io.Writer) {
	c := rep.Config
	fmt.Fprintf(w, "\nmedians over %d rounds (GET %s, %d workers, %s per phase):\n", c.Rounds, rep.Path, c.Concurrency, c.Duration)
	fmt.Fprintf(w, "  %-14s %10s %9s %9s %9s %17s %15s %8s\n", "target", "req/s", "p50 µs", "p90 µs", "p99 µs", "server CPU µs/req", "load CPU µs/req", "errors")
	for _, m := range rep.Medians {
		fmt.Fprintf(w, "  %-14s %10.0f %9.0f %9.0f %9.0f %17s %15s %8d\n", m.Target, m.RPS, m.P50us, m.P90us, m.P99us, cpuStr(m.SrvCPUus), cpuStr(m.LoadCPUus), m.Errors)
	}
	fmt.Fprintf(w, "\nratios gateway/baseline (median of the per-round ratios):\n")
	fmt.Fprintf(w, "  %-14s %11s %13s %11s %11s %18s\n", "target", "throughput", "(of medians)", "p50 lat.", "p99 lat.", "server CPU/req")
	for _, name := range []string{tBasic, tToken} {
		r := rep.Ratios[name]
		cpu := "n/a"
		if r.ServerCPU > 0 {
			cpu = fmt.Sprintf("%.2fx", r.ServerCPU)
		}
		fmt.Fprintf(w, "  %-14s %11.2f %13.2f %10.2fx %10.2fx %18s\n", name, r.Throughput, r.ThroughputMedians, r.P50, r.P99, cpu)
	}
	verdict := "met"
	if rep.Figure < c.Aim {
		verdict = "NOT MET"
	}
	fmt.Fprintf(w, "\nFIGURE  throughput gateway-basic/baseline = %.2f  (aim >= %.2f: %s)\n", rep.Figure, c.Aim, verdict)
}
