package serializer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/backends"
	rfbackend "github.com/fishgate/fishgate/backends/redfish"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// This file is the harness shared by the serializer's end-to-end tests:
// simulated Redfish BMCs (simulator.Fleet), one or more serializer replicas
// over one Redis, each replica with its own Redfish backends, and helpers to
// wait for a node to go quiet and to read what happened.

// tester is what the harness needs of *testing.T and *rapid.T.
type tester interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
}

// logSink keeps the log records of the replicas, to wait for a message and
// to print the recent ones when a test fails.
type logSink struct {
	mu   sync.Mutex
	recs []string
}

func (s *logSink) handler(replica string) slog.Handler {
	return &sinkHandler{sink: s, prefix: replica}
}

func (s *logSink) add(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, line)
	if len(s.recs) > 4000 {
		s.recs = slices.Clone(s.recs[len(s.recs)-2000:])
	}
}

// find returns the records that contain every one of parts.
func (s *logSink) find(parts ...string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.recs {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(r, p)
		}
		if ok {
			out = append(out, r)
		}
	}
	return out
}

func (s *logSink) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.recs[max(0, len(s.recs)-n):], "\n")
}

type sinkHandler struct {
	sink   *logSink
	prefix string
	attrs  []slog.Attr
}

func (h *sinkHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *sinkHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s [%s] %s", r.Time.Format("15:04:05.000"), r.Level, h.prefix, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.sink.add(b.String())
	return nil
}

func (h *sinkHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(slices.Clone(h.attrs), as...)
	return &c
}

func (h *sinkHandler) WithGroup(string) slog.Handler { return h }

// simNode describes one simulated node of a test.
type simNode struct {
	ID      string
	Machine simulator.MachineConfig
}

// env is a set of simulated BMCs and the replicas that drive them.
type env struct {
	t        tester
	rdb      redis.UniversalClient
	proto    protocol
	fleet    *simulator.Fleet
	ids      []string
	sims     map[string]*simulator.Node
	replicas []*serializer.Service
	logs     *logSink
}

// protocol is how the replicas of an env reach its simulated BMCs: the
// front each simulated node serves besides Redfish, and the backend a
// replica drives it with (property_backends_test.go has IPMI and AMT).
type protocol struct {
	name string
	// front adds the protocol's listener to a node's spec; nil for Redfish.
	front func(*simulator.NodeSpec)
	// open builds one replica's backend for node sn.
	open func(sn *simulator.Node, log *slog.Logger) (backends.Backend, error)
}

// redfishProtocol drives the nodes through their Redfish front.
var redfishProtocol = protocol{
	name: "redfish",
	open: func(sn *simulator.Node, log *slog.Logger) (backends.Backend, error) {
		return rfbackend.New(rfbackend.Config{Endpoint: sn.URL(), User: "admin", Password: "password", Logger: log, Timeout: 10 * time.Second})
	},
}

// newEnv starts the simulated nodes, driven over Redfish. Replicas are
// added with addReplica.
func newEnv(t tester, rdb redis.UniversalClient, nodes []simNode) *env {
	t.Helper()
	return newEnvOver(t, rdb, nodes, redfishProtocol)
}

// newEnvOver is newEnv with the replicas driving the nodes over proto.
func newEnvOver(t tester, rdb redis.UniversalClient, nodes []simNode, proto protocol) *env {
	t.Helper()
	e := &env{t: t, rdb: rdb, proto: proto, fleet: simulator.NewFleet(nil), sims: map[string]*simulator.Node{}, logs: &logSink{}}
	t.Cleanup(func() { e.fleet.Close() })
	for _, n := range nodes {
		spec := simulator.NodeSpec{ID: n.ID, Machine: n.Machine}
		if proto.front != nil {
			proto.front(&spec)
		}
		sn, err := e.fleet.Add(spec)
		if err != nil {
			t.Fatalf("simulated node %s: %v", n.ID, err)
		}
		e.ids = append(e.ids, n.ID)
		e.sims[n.ID] = sn
	}
	return e
}

// addReplica starts a serializer replica over every node of e, with its
// own backends of e's protocol (wrap, when set, wraps each of them) and
// opts (Redis, ReplicaID and Logger are filled in).
func (e *env) addReplica(replica string, opts serializer.Options, wrap func(id string, b backends.Backend) backends.Backend) *serializer.Service {
	e.t.Helper()
	log := slog.New(e.logs.handler(replica))
	var nodes []serializer.Node
	for _, id := range e.ids {
		b, err := e.proto.open(e.sims[id], log)
		if err != nil {
			e.t.Fatalf("%s backend %s: %v", e.proto.name, id, err)
		}
		be := b
		if wrap != nil {
			be = wrap(id, b)
		}
		nodes = append(nodes, serializer.Node{ID: id, Backend: be})
	}
	opts.Redis, opts.ReplicaID, opts.Logger = e.rdb, replica, log
	svc, err := serializer.New(nodes, opts)
	if err != nil {
		e.t.Fatalf("replica %s: %v", replica, err)
	}
	svc.Start(context.Background())
	e.t.Cleanup(func() { svc.Close() })
	e.replicas = append(e.replicas, svc)
	return svc
}

// reenrol removes node id from every replica at once (each waits for the
// node's running action) and then enrols it again on each, with new
// backends: what the gateway does when a source is deleted and posted
// again.
func (e *env) reenrol(ctx context.Context, id string) error {
	errs := make([]error, len(e.replicas))
	var wg sync.WaitGroup
	for i, svc := range e.replicas {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			errs[i] = svc.Remove(rctx, id)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, svc := range e.replicas {
		if _, err := svc.View(id); err == nil {
			return fmt.Errorf("node %s still managed by replica %s after Remove", id, svc.ReplicaID())
		}
	}
	if err := e.replicas[0].Reinstate(ctx, id); err != nil {
		return err
	}
	for _, svc := range e.replicas {
		b, err := e.proto.open(e.sims[id], slog.New(e.logs.handler(svc.ReplicaID())))
		if err != nil {
			return err
		}
		if err := svc.Add(serializer.Node{ID: id, Backend: b}); err != nil {
			return err
		}
	}
	return nil
}

// configuredOptions are the serializer options of the default
// configuration (app/config), for tests to change what they test.
func configuredOptions() serializer.Options { return config.Default().SerializerOptions() }

// fastOptions are short timings for tests: a 1s lease, quick polls and
// retries.
func fastOptions() serializer.Options {
	o := configuredOptions()
	o.LeaseTTL = time.Second
	o.VerifyInterval = 5 * time.Millisecond
	o.VerifyTimeout = 2 * time.Second
	// The simulated machines restart in well under this: a restart that
	// shows no Off phase (ignored) is reported within it.
	o.RestartEvidence = 300 * time.Millisecond
	o.SoftOffTimeout = 5 * time.Second
	o.Retries = 2
	o.RetryBackoff = 10 * time.Millisecond
	o.CallTimeout = 5 * time.Second
	o.SyncInterval = time.Minute
	return o
}

func (e *env) machine(id string) *simulator.Machine { return e.sims[id].Machine() }

func (e *env) store() *serializer.Store { return e.replicas[0].Store() }

// quiet reports whether node id has nothing running or waiting and its
// machine has no command in flight.
func (e *env) quiet(ctx context.Context, id string) (bool, error) {
	ns, err := e.store().State(ctx, id)
	if err != nil {
		return false, err
	}
	return ns.Slots.Now.Task == "" && len(ns.Slots.Waiting) == 0 && e.machine(id).Status().InFlight == 0, nil
}

// waitQuiet waits until every node of ids is quiet and every task of tasks
// is terminal, failing the test after limit.
func (e *env) waitQuiet(limit time.Duration, ids []string, tasks []string) {
	e.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(limit)
	for {
		busy := ""
		for _, id := range ids {
			ok, err := e.quiet(ctx, id)
			if err != nil {
				e.t.Fatalf("state of %s: %v", id, err)
			}
			if !ok {
				busy = "node " + id
				break
			}
		}
		if busy == "" {
			for _, id := range tasks {
				tr, err := e.store().Task(ctx, id)
				if err != nil {
					e.t.Fatalf("task %s: %v", id, err)
				}
				if !tr.Terminal() {
					busy = fmt.Sprintf("task %s (%s)", id, tr.State)
					break
				}
			}
		}
		if busy == "" {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("not quiet after %v: %s\n%s\nrecent logs:\n%s", limit, busy, e.describe(ids), e.logs.tail(60))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitTask waits until task id satisfies ok.
func (e *env) waitTask(limit time.Duration, id string, what string, ok func(serializer.TaskRecord) bool) serializer.TaskRecord {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		tr, err := e.store().Task(context.Background(), id)
		if err != nil {
			e.t.Fatalf("task %s: %v", id, err)
		}
		if ok(tr) {
			return tr
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("task %s: not %s after %v: %+v\nrecent logs:\n%s", id, what, limit, tr, e.logs.tail(40))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// task reads a task, failing the test when it cannot.
func (e *env) task(id string) serializer.TaskRecord {
	e.t.Helper()
	tr, err := e.store().Task(context.Background(), id)
	if err != nil {
		e.t.Fatalf("task %s: %v", id, err)
	}
	return tr
}

func (e *env) state(id string) serializer.NodeState {
	e.t.Helper()
	ns, err := e.store().State(context.Background(), id)
	if err != nil {
		e.t.Fatalf("state of %s: %v", id, err)
	}
	return ns
}

// nodeLog is node id's command log stream in Redis, oldest first.
func (e *env) nodeLog(id string) []map[string]any {
	e.t.Helper()
	l, err := e.store().Log(context.Background(), id, 10000)
	if err != nil {
		e.t.Fatalf("log of %s: %v", id, err)
	}
	return l
}

// describe renders what the nodes' machines and slots look like, for
// failure messages.
func (e *env) describe(ids []string) string {
	var b strings.Builder
	for _, id := range ids {
		st := e.machine(id).Status()
		ns, _ := e.store().State(context.Background(), id)
		fmt.Fprintf(&b, "%s: machine %s inflight=%d max=%d; slots %+v desired=%s\n", id, st.PowerState, st.InFlight, st.MaxInFlight, ns.Slots, ns.Desired)
		for _, c := range st.Commands {
			fmt.Fprintf(&b, "    bmc #%d %s %s %s\n", c.Seq, c.Time.Format("15:04:05.000"), c.Action, c.Result)
		}
		l, _ := e.store().Log(context.Background(), id, 200)
		for _, m := range l {
			fmt.Fprintf(&b, "    log %v\n", compactEntry(m))
		}
	}
	return b.String()
}

func compactEntry(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "id" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// bmcCommands lists the power commands the machine received, as
// "Action:Result" (Result cut at the first colon: accepted, failed,
// ignored, refused).
func bmcCommands(m *simulator.Machine) []string {
	var out []string
	for _, c := range m.Status().Commands {
		if c.Action == "SetBoot" {
			continue
		}
		res, _, _ := strings.Cut(c.Result, ":")
		out = append(out, c.Action+":"+res)
	}
	return out
}

// targetOf is the power state a ResetType leaves the node in
// (docs/architecture.md#convergence).
func targetOf(t tester, r schemas.ResetType) schemas.PowerState {
	t.Helper()
	p, ok := r.Target()
	if !ok {
		t.Fatalf("%s has no target state", r)
	}
	return p
}

// scenarioSeq numbers the scenarios that share one Redis (a rapid run), so
// that their node ids, hence their keys, never meet.
type scenarioSeq struct{ n atomic.Int64 }

func (s *scenarioSeq) next(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, s.n.Add(1))
}
