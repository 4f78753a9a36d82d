package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// target is one thing to measure: a URL and how to authenticate.
type target struct {
	name string
	url  string
	auth func(*http.Request)
}

// loadOptions bounds one phase.
type loadOptions struct {
	concurrency int
	warmup      time.Duration
	duration    time.Duration
	maxRequests int64 // per phase (warm-up and measurement each); a safety bound
}

// phaseResult is one measured phase.
type phaseResult struct {
	Target    string  `json:"target"`
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	FirstErr  string  `json:"first_error,omitempty"`
	Seconds   float64 `json:"seconds"`
	RPS       float64 `json:"req_per_s"`
	P50us     float64 `json:"p50_us"`
	P90us     float64 `json:"p90_us"`
	P99us     float64 `json:"p99_us"`
	MaxUs     float64 `json:"max_us"`
	SrvCPUus  float64 `json:"server_cpu_us_per_req"` // -1: not measured
	LoadCPUus float64 `json:"load_cpu_us_per_req"`   // -1: not measured
}

// worker state of one run.
type worker struct {
	h        hist
	n        int64
	errs     int64
	firstErr string
}

// newTransport is a keep-alive client transport with one connection per
// worker, no proxy and no compression.
func newTransport(conc int) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          conc,
		MaxIdleConnsPerHost:   conc,
		MaxConnsPerHost:       conc,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		DisableCompression:    true,
	}
}

// run drives conc workers against t for d (or until maxReq requests have
// been started, or ctx ends), each checking every response against want.
// It returns the merged workers and the wall time from start to the last
// worker's end.
func run(ctx context.Context, rt http.RoundTripper, t target, want []byte, conc int, d time.Duration, maxReq int64) ([]*worker, time.Duration) {
	var stop atomic.Bool
	var started atomic.Int64
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	ws := make([]*worker, conc)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range ws {
		w := &worker{}
		ws[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx, rt, t, want, &stop, &started, maxReq)
		}()
	}
	wg.Wait()
	return ws, time.Since(begin)
}

func (w *worker) fail(format string, args ...any) {
	w.errs++
	if w.firstErr == "" {
		w.firstErr = fmt.Sprintf(format, args...)
	}
}

func (w *worker) loop(ctx context.Context, rt http.RoundTripper, t target, want []byte, stop *atomic.Bool, started *atomic.Int64, maxReq int64) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		w.fail("%v", err)
		return
	}
	t.auth(req)
	var buf bytes.Buffer
	buf.Grow(len(want) + 512)
	for !stop.Load() && ctx.Err() == nil && started.Add(1) <= maxReq {
		t0 := time.Now()
		resp, err := rt.RoundTrip(req)
		if err != nil {
			if ctx.Err() == nil {
				w.fail("%v", err)
			}
			continue
		}
		buf.Reset()
		_, err = buf.ReadFrom(io.LimitReader(resp.Body, int64(len(want))+1))
		resp.Body.Close()
		lat := time.Since(t0)
		w.n++
		switch {
		case err != nil:
			w.fail("read body: %v", err)
		case resp.StatusCode != http.StatusOK:
			w.fail("status %s", resp.Status)
		case !bytes.Equal(buf.Bytes(), want):
			w.fail("body differs: %d bytes, want %d", buf.Len(), len(want))
		default:
			w.h.record(lat)
		}
	}
}

// measure runs one phase against t: warm-up (not recorded, opens the
// connections), then the measured run on the same connections.
func measure(ctx context.Context, t target, want []byte, o loadOptions, cpu cpuMeter) phaseResult {
	tr := newTransport(o.concurrency)
	defer tr.CloseIdleConnections()
	if o.warmup > 0 {
		run(ctx, tr, t, want, o.concurrency, o.warmup, o.maxRequests)
	}
	srv0, load0 := cpu.sample()
	ws, elapsed := run(ctx, tr, t, want, o.concurrency, o.duration, o.maxRequests)
	srv1, load1 := cpu.sample()

	var h hist
	r := phaseResult{Target: t.name, Seconds: elapsed.Seconds(), SrvCPUus: -1, LoadCPUus: -1}
	for _, w := range ws {
		h.merge(&w.h)
		r.Requests += w.n
		r.Errors += w.errs
		if r.FirstErr == "" {
			r.FirstErr = w.firstErr
		}
	}
	if elapsed > 0 {
		r.RPS = float64(r.Requests) / elapsed.Seconds()
	}
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	r.P50us, r.P90us, r.P99us, r.MaxUs = us(h.quantile(0.50)), us(h.quantile(0.90)), us(h.quantile(0.99)), us(time.Duration(h.max))
	if r.Requests > 0 {
		if srv0 >= 0 && srv1 >= 0 {
			r.SrvCPUus = us(srv1-srv0) / float64(r.Requests)
		}
		if load0 >= 0 && load1 >= 0 {
			r.LoadCPUus = us(load1-load0) / float64(r.Requests)
		}
	}
	return r
}
