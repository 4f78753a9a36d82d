package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestBenchSmoke runs one tiny in-process round: every target answers, every
// response is checked, and the report has its table and figure. It asserts
// no timing.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a demo gateway")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := config{Duration: 150 * time.Millisecond, Warmup: 50 * time.Millisecond, Rounds: 1,
		Concurrency: 2, Nodes: 2, MaxRequests: 100_000, InProcess: true, Aim: 0.5}
	var out bytes.Buffer
	rep, err := bench(ctx, c, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if rep.Errors != 0 {
		t.Fatalf("%d errors, first: %s", rep.Errors, rep.FirstError)
	}
	if len(rep.Rounds) != 1 || len(rep.Medians) != 3 {
		t.Fatalf("rounds %d, medians %d", len(rep.Rounds), len(rep.Medians))
	}
	for _, m := range rep.Medians {
		if m.Requests == 0 || m.P50us <= 0 {
			t.Errorf("%s: %d requests, p50 %v", m.Target, m.Requests, m.P50us)
		}
	}
	for _, want := range []string{"medians over 1 rounds", "gateway-basic", "gateway-token", "FIGURE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := config{Duration: time.Second, Rounds: 1, Concurrency: 16, Nodes: 8, MaxRequests: 1}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func(*config){
		func(c *config) { c.Duration = 0 },
		func(c *config) { c.Rounds = 0 },
		func(c *config) { c.Concurrency = 0 },
		func(c *config) { c.Nodes = 5001 },
		func(c *config) { c.Warmup = -1 },
		func(c *config) { c.MaxRequests = 0 },
	} {
		c := ok
		bad(&c)
		if c.validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestLoadCountsBadResponses: a wrong status, a wrong body and a refused
// connection are all errors, never latencies.
func TestLoadCountsBadResponses(t *testing.T) {
	want := []byte(`{"ok":true}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/good":
			w.Write(want)
		case "/short":
			w.Write(want[:3])
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	noAuth := func(*http.Request) {}
	o := loadOptions{concurrency: 2, duration: 50 * time.Millisecond, maxRequests: 200}
	ctx := context.Background()
	for _, c := range []struct {
		path string
		ok   bool
	}{{"/good", true}, {"/short", false}, {"/missing", false}} {
		r := measure(ctx, target{name: c.path, url: srv.URL + c.path, auth: noAuth}, want, o, cpuMeter{})
		if r.Requests == 0 || r.Requests > o.maxRequests {
			t.Errorf("%s: %d requests, want 1..%d", c.path, r.Requests, o.maxRequests)
		}
		if c.ok && (r.Errors != 0 || r.P50us <= 0) {
			t.Errorf("%s: %d errors (%s), p50 %v", c.path, r.Errors, r.FirstErr, r.P50us)
		}
		if !c.ok && (r.Errors != r.Requests || r.FirstErr == "") {
			t.Errorf("%s: %d errors of %d (%q)", c.path, r.Errors, r.Requests, r.FirstErr)
		}
	}
	srv.Close()
	r := measure(ctx, target{name: "closed", url: srv.URL + "/good", auth: noAuth}, want, o, cpuMeter{})
	if r.Errors == 0 || r.FirstErr == "" {
		t.Errorf("refused connections: %d errors", r.Errors)
	}
}
