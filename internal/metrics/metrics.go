// Package metrics is fishgate's Prometheus instrumentation
// (docs/architecture.md#metrics): one Metrics value per gateway, holding
// its own registry, passed to the parts that count (the Redfish front, the
// serializer, the backends through the serializer, the event bus, Redis).
// There is no package-level state: every gateway, and every test, has its
// own registry.
//
// A nil *Metrics counts nothing: every method may be called on it, so the
// packages that take one need no checks and their tests no registry.
//
// Labels are bounded: route templates (never paths), methods, status
// codes, outcomes, reasons, policies, ResetTypes, task states, backend
// kinds, BMC operations and results, Redis command names. No node id or
// task id is ever a label.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// Namespace prefixes every metric of the gateway.
const Namespace = "fishgate"

// Metrics is one gateway's collectors and their registry.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	admissions    *prometheus.CounterVec
	tasksFinished *prometheus.CounterVec
	taskDuration  *prometheus.HistogramVec

	bmcCalls    *prometheus.CounterVec
	bmcDuration *prometheus.HistogramVec
	bmcRetries  *prometheus.CounterVec

	takeovers   prometheus.Counter
	fenced      prometheus.Counter
	sweep       prometheus.Histogram
	powerDrifts prometheus.Counter

	redisDuration *prometheus.HistogramVec
	redisErrors   *prometheus.CounterVec

	eventFailures   *prometheus.CounterVec
	deliveryLag     prometheus.Histogram
	eventsDelivered prometheus.Counter
}

// Build is what fishgate_build_info says of the binary.
type Build struct{ Version, Commit string }

// New makes a registry with the gateway's collectors, Go's runtime and
// process collectors and fishgate_build_info.
func New(b Build) *Metrics {
	reg := prometheus.NewRegistry()
	f := factory{reg}
	m := &Metrics{reg: reg}
	m.httpRequests = f.counterVec("http_requests_total",
		"Redfish API requests answered, by route template, method and status code.", "route", "method", "code")
	m.httpDuration = f.histogramVec("http_request_duration_seconds",
		"Time to answer a Redfish API request, by route template and method.", prometheus.DefBuckets, "route", "method")

	m.admissions = f.counterVec("admissions_total",
		"Reset requests admitted or refused, by outcome (started, queued, replaced, coalesced, refused), refusal reason and admission policy.",
		"outcome", "reason", "policy")
	m.tasksFinished = f.counterVec("tasks_finished_total",
		"Power actions run to their end by this replica's workers, by ResetType, backend kind and final task state.",
		"reset_type", "backend", "state")
	m.taskDuration = f.histogramVec("task_duration_seconds",
		"Time from a task's admission to its end, for the actions this replica's workers ended.",
		[]float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800}, "reset_type", "backend", "state")

	m.bmcCalls = f.counterVec("bmc_calls_total",
		"Calls to BMCs, by backend kind, operation and result (ok, error, no_answer, unsupported).", "backend", "op", "result")
	m.bmcDuration = f.histogramVec("bmc_call_duration_seconds",
		"Time a BMC call took, by backend kind and operation.",
		[]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30}, "backend", "op")
	m.bmcRetries = f.counterVec("bmc_retries_total",
		"Power commands sent again by an action after a failed or ignored one, by backend kind.", "backend")

	m.takeovers = f.counter("lease_takeovers_total",
		"Actions this replica resumed that a previous lease holder had begun (take-over or recovery).")
	m.fenced = f.counter("fencing_rejections_total",
		"Worker writes refused because the writer's node lease was no longer held (fence token stale).")
	m.sweep = f.histogram("power_sync_sweep_duration_seconds",
		"Time one power-sync sweep (a part of the fleet, or all of it at start) took to read its nodes.",
		[]float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120})
	m.powerDrifts = f.counter("power_drift_total",
		"Power state changes made outside the gateway, found by the power sync.")

	m.redisDuration = f.histogramVec("redis_command_duration_seconds",
		"Time a Redis command (or a whole pipeline: command=pipeline; a new connection's set-up: command=connect) took, blocking reads included, by command name.",
		[]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5}, "command")
	m.redisErrors = f.counterVec("redis_errors_total",
		"Redis commands that failed (a missing key is not a failure), by command name.", "command")

	m.eventFailures = f.counterVec("event_failures_total",
		"Events that could not be appended to the stream (stage=emit) and push deliveries that failed (stage=delivery, each attempt).", "stage")
	m.deliveryLag = f.histogram("event_delivery_lag_seconds",
		"Time from an event's emission to its delivery to a push subscriber.",
		[]float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300})
	m.eventsDelivered = f.counter("events_delivered_total", "Events delivered to push subscribers.")
	for _, stage := range []string{"emit", "delivery"} { // both series from the start, at 0
		m.eventFailures.WithLabelValues(stage)
	}

	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help:        "The gateway's build: always 1, its version and commit in labels.",
		ConstLabels: prometheus.Labels{"version": orUnknown(b.Version), "commit": orUnknown(b.Commit), "goversion": runtime.Version()},
	}, func() float64 { return 1 }))
	return m
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// factory makes and registers the gateway's collectors.
type factory struct{ reg prometheus.Registerer }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

// Registry is the registry the collectors are in (tests gather it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text (or OpenMetrics)
// format. Failing collectors are reported in the answer, never a panic.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// GaugeFunc registers a gauge whose value f gives at every scrape (the
// fleet totals kept elsewhere: actions running, SSE clients).
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, f))
}

// methods are the HTTP methods counted by name; any other is "other", so
// that a client cannot add series with made-up methods.
var methods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// HTTPRequest counts one answered request: route is the route template
// (echo's c.Path(), "(no route)" when none matched), never the path.
func (m *Metrics) HTTPRequest(route, method string, code int, d time.Duration) {
	if m == nil {
		return
	}
	if !methods[method] {
		method = "other"
	}
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(route, method).Observe(d.Seconds())
}

// Admission counts one admission decision: outcome started, queued,
// replaced (queued in place of a waiting action), coalesced or refused;
// reason is the refusal's ("" otherwise); policy the node's.
func (m *Metrics) Admission(outcome, reason, policy string) {
	if m == nil {
		return
	}
	m.admissions.WithLabelValues(outcome, reason, policy).Inc()
}

// TaskFinished counts a task whose action a worker of this replica ended,
// and how long it took from its admission (d < 0: not known).
func (m *Metrics) TaskFinished(resetType, backend, state string, d time.Duration) {
	if m == nil {
		return
	}
	m.tasksFinished.WithLabelValues(resetType, backend, state).Inc()
	if d >= 0 {
		m.taskDuration.WithLabelValues(resetType, backend, state).Observe(d.Seconds())
	}
}

// BMCCall counts one call to a BMC.
func (m *Metrics) BMCCall(backend, op, result string, d time.Duration) {
	if m == nil {
		return
	}
	m.bmcCalls.WithLabelValues(backend, op, result).Inc()
	m.bmcDuration.WithLabelValues(backend, op).Observe(d.Seconds())
}

// BMCRetries counts n re-sent power commands to a BMC of kind backend.
func (m *Metrics) BMCRetries(backend string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.bmcRetries.WithLabelValues(backend).Add(float64(n))
}

// LeaseTakeover counts an action resumed after another holder began it.
func (m *Metrics) LeaseTakeover() {
	if m != nil {
		m.takeovers.Inc()
	}
}

// FencingRejection counts a worker write refused for a stale lease.
func (m *Metrics) FencingRejection() {
	if m != nil {
		m.fenced.Inc()
	}
}

// PowerSyncSweep records how long one sweep of the power sync took.
func (m *Metrics) PowerSyncSweep(d time.Duration) {
	if m != nil {
		m.sweep.Observe(d.Seconds())
	}
}

// PowerDrift counts a power change made outside the gateway.
func (m *Metrics) PowerDrift() {
	if m != nil {
		m.powerDrifts.Inc()
	}
}

// EventEmitFailure counts an event that could not be written to the stream.
func (m *Metrics) EventEmitFailure() {
	if m != nil {
		m.eventFailures.WithLabelValues("emit").Inc()
	}
}

// EventDeliveryFailure counts a failed push delivery attempt.
func (m *Metrics) EventDeliveryFailure() {
	if m != nil {
		m.eventFailures.WithLabelValues("delivery").Inc()
	}
}

// EventDelivered counts an event delivered to a push subscriber lag
// after it was emitted.
func (m *Metrics) EventDelivered(lag time.Duration) {
	if m == nil {
		return
	}
	m.eventsDelivered.Inc()
	m.deliveryLag.Observe(max(lag, 0).Seconds())
}

// RedisHook is a go-redis hook that times every command and pipeline and
// counts their errors (client.AddHook). A nil Metrics gives a hook that
// only passes the calls on.
func (m *Metrics) RedisHook() redis.Hook { return redisHook{m} }

type redisHook struct{ m *Metrics }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.m == nil {
			return next(ctx, cmd)
		}
		start := time.Now()
		err := next(ctx, cmd)
		h.m.redisCommand(strings.ToLower(cmd.Name()), time.Since(start), err)
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.m == nil {
			return next(ctx, cmds)
		}
		start := time.Now()
		err := next(ctx, cmds)
		if handshake(cmds) {
			// A new connection's set-up: go-redis tolerates what
			// a server refuses of it (CLIENT SETINFO, HELLO on an old one).
			h.m.redisDuration.WithLabelValues("connect").Observe(time.Since(start).Seconds())
			return err
		}
		if err == nil {
			for _, c := range cmds {
				if c.Err() != nil && redisFailed(c.Err()) {
					err = c.Err()
					break
				}
			}
		}
		h.m.redisCommand("pipeline", time.Since(start), err)
		return err
	}
}

// handshake reports whether cmds are the set-up go-redis pipelines on a
// new connection.
func handshake(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		switch strings.ToLower(c.Name()) {
		case "hello", "client", "auth", "select", "readonly", "ping":
		default:
			return false
		}
	}
	return len(cmds) > 0
}

func (m *Metrics) redisCommand(name string, d time.Duration, err error) {
	m.redisDuration.WithLabelValues(name).Observe(d.Seconds())
	errs := m.redisErrors.WithLabelValues(name) // 0 until one fails: error ratios have both series
	if redisFailed(err) {
		errs.Inc()
	}
}

// redisFailed reports whether err is a failure: a missing key (redis.Nil)
// is an answer, and NOSCRIPT is go-redis's cue to send a script's body
// (EVALSHA, then EVAL), not a failure either.
func redisFailed(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return false
	}
	return !strings.HasPrefix(err.Error(), "NOSCRIPT")
}
