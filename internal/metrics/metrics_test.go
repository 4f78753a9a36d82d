package metrics_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/metrics"
	"github.com/fishgate/fishgate/internal/testkit"
)

// TestNilCountsNothing: every method may be called on a nil Metrics (the
// packages' tests build their parts without a registry).
func TestNilCountsNothing(t *testing.T) {
	var m *metrics.Metrics
	m.HTTPRequest("/x", "GET", 200, time.Second)
	m.Admission("started", "", "now-next")
	m.TaskFinished("On", "redfish", "Completed", time.Second)
	m.BMCCall("redfish", "reset", "ok", time.Second)
	m.BMCRetries("redfish", 1)
	m.LeaseTakeover()
	m.FencingRejection()
	m.PowerSyncSweep(time.Second)
	m.PowerDrift()
	m.EventEmitFailure()
	m.EventDeliveryFailure()
	m.EventDelivered(time.Second)
	m.GaugeFunc("x", "x", func() float64 { return 1 })
	rdb := testkit.MiniRedis(t)
	rdb.AddHook(m.RedisHook())
	if err := rdb.Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatalf("a nil Metrics' hook must pass calls on: %v", err)
	}
}

// TestCounts: each method moves its family by what it was given, with
// bounded labels (a made-up HTTP method is "other"), and the handler
// serves text that promtool accepts.
func TestCounts(t *testing.T) {
	m := metrics.New(metrics.Build{Version: "v1.2.3", Commit: "abc"})
	m.HTTPRequest("/redfish/v1", "GET", 200, 10*time.Millisecond)
	m.HTTPRequest("/redfish/v1", "BREW", 405, time.Millisecond)
	m.Admission("coalesced", "", "queue")
	m.Admission("refused", "flip-flop", "now-next")
	m.TaskFinished("On", "ipmi", "Completed", 3*time.Second)
	m.TaskFinished("On", "ipmi", "Exception", -1) // duration not known: counted, not timed
	m.BMCCall("amt", "power_state", "no_answer", time.Second)
	m.BMCRetries("amt", 2)
	m.BMCRetries("amt", 0)
	m.LeaseTakeover()
	m.FencingRejection()
	m.FencingRejection()
	m.PowerSyncSweep(time.Second)
	m.PowerDrift()
	m.EventEmitFailure()
	m.EventDeliveryFailure()
	m.EventDelivered(-time.Second) // clocks apart: observed as 0
	m.GaugeFunc("things", "Things.", func() float64 { return 7 })

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	s := testkit.ScrapeMetrics(t, srv.URL, "", "")
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"fishgate_http_requests_total", []string{"route", "/redfish/v1", "method", "GET", "code", "200"}, 1},
		{"fishgate_http_requests_total", []string{"method", "other", "code", "405"}, 1},
		{"fishgate_http_requests_total", []string{"method", "BREW"}, 0},
		{"fishgate_http_request_duration_seconds", []string{"route", "/redfish/v1"}, 2},
		{"fishgate_admissions_total", []string{"outcome", "coalesced", "policy", "queue"}, 1},
		{"fishgate_admissions_total", []string{"outcome", "refused", "reason", "flip-flop"}, 1},
		{"fishgate_tasks_finished_total", []string{"reset_type", "On", "backend", "ipmi"}, 2},
		{"fishgate_task_duration_seconds", []string{"state", "Completed"}, 1},
		{"fishgate_task_duration_seconds", []string{"state", "Exception"}, 0},
		{"fishgate_bmc_calls_total", []string{"backend", "amt", "op", "power_state", "result", "no_answer"}, 1},
		{"fishgate_bmc_call_duration_seconds", []string{"backend", "amt"}, 1},
		{"fishgate_bmc_retries_total", []string{"backend", "amt"}, 2},
		{"fishgate_lease_takeovers_total", nil, 1},
		{"fishgate_fencing_rejections_total", nil, 2},
		{"fishgate_power_sync_sweep_duration_seconds", nil, 1},
		{"fishgate_power_drift_total", nil, 1},
		{"fishgate_event_failures_total", []string{"stage", "emit"}, 1},
		{"fishgate_event_failures_total", []string{"stage", "delivery"}, 1},
		{"fishgate_events_delivered_total", nil, 1},
		{"fishgate_event_delivery_lag_seconds", nil, 1},
		{"fishgate_things", nil, 7},
		{"fishgate_build_info", []string{"version", "v1.2.3", "commit", "abc"}, 1},
	} {
		if got := s.Value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if f := s.Families["fishgate_event_delivery_lag_seconds"]; f.GetMetric()[0].GetHistogram().GetSampleSum() != 0 {
		t.Errorf("a negative lag was observed as %v, want 0", f.GetMetric()[0].GetHistogram().GetSampleSum())
	}
	if s.Families["go_goroutines"] == nil || s.Families["process_cpu_seconds_total"] == nil {
		t.Errorf("the Go and process collectors are missing: %v", s.Names())
	}
	testkit.PromtoolCheck(t, s.Raw)
}

// TestRedisHook times every command and pipeline and counts the failures,
// not a missing key, on miniredis and a real redis-server.
func TestRedisHook(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			rdb := target.New(t)
			m := metrics.New(metrics.Build{})
			rdb.AddHook(m.RedisHook())
			ctx := context.Background()
			rdb.Set(ctx, "fg:metrics:s", "text", 0)
			if err := rdb.Get(ctx, "fg:metrics:missing").Err(); !errors.Is(err, redis.Nil) {
				t.Fatalf("GET of a missing key: %v", err)
			}
			if err := rdb.Incr(ctx, "fg:metrics:s").Err(); err == nil {
				t.Fatal("INCR of a string succeeded")
			}
			script := redis.NewScript(`return 1`) // EVALSHA answers NOSCRIPT first: not a failure
			if err := script.Run(ctx, rdb, []string{"fg:metrics:s"}).Err(); err != nil {
				t.Fatal(err)
			}
			rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Get(ctx, "fg:metrics:s")
				p.Incr(ctx, "fg:metrics:s")
				return nil
			})
			srv := httptest.NewServer(m.Handler())
			defer srv.Close()
			s := testkit.ScrapeMetrics(t, srv.URL, "", "")
			for _, c := range []struct {
				name, cmd string
				want      float64
			}{
				{"fishgate_redis_command_duration_seconds", "set", 1},
				{"fishgate_redis_command_duration_seconds", "get", 1},
				{"fishgate_redis_command_duration_seconds", "pipeline", 1},
				{"fishgate_redis_errors_total", "connect", 0},
				{"fishgate_redis_errors_total", "get", 0},
				{"fishgate_redis_errors_total", "incr", 1},
				{"fishgate_redis_errors_total", "evalsha", 0},
				{"fishgate_redis_errors_total", "pipeline", 1},
			} {
				if got := s.Value(c.name, "command", c.cmd); got != c.want {
					t.Errorf("%s{command=%q} = %v, want %v", c.name, c.cmd, got, c.want)
				}
			}
		})
	}
}
