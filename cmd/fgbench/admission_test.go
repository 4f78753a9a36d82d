package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/schemas"
)

// TestAdmissionSmoke runs one tiny round of `fgbench admission` against a
// real redis-server: every operation succeeds, a Store admission is exactly
// one round trip (one EVALSHA), and the mix and figure are reported. It
// asserts no timing.
func TestAdmissionSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and a gateway")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not installed (CI is set)")
		}
		t.Skip("redis-server not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := admConfig{Nodes: 30, HTTPNodes: 4, Concurrency: 2, Rounds: 1, Duration: 300 * time.Millisecond,
		Warmup: 50 * time.Millisecond, MaxOps: 100_000, HTTP: true, HTTPRedis: "real", RedisServer: "redis-server", Aim: 1}
	var out bytes.Buffer
	rep, err := benchAdmission(ctx, c, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if rep.Errors != 0 {
		t.Fatalf("%d errors, first: %s", rep.Errors, rep.FirstError)
	}
	for _, name := range []string{tSet, tAdmit, tHTTP} {
		if m := rep.median(name); m.Ops == 0 || m.P50us <= 0 {
			t.Errorf("%s: %d ops, p50 %v", name, m.Ops, m.P50us)
		}
	}
	a := rep.median(tAdmit)
	if a.RoundTrips != 1 || a.EvalSha != 1 || a.Eval != 0 || a.Scripts != 1 {
		t.Errorf("store-admit: %.3f round trips, %.3f EVALSHA, %.3f EVAL per admission on the client, %.3f script calls on the server; want exactly one EVALSHA",
			a.RoundTrips, a.EvalSha, a.Eval, a.Scripts)
	}
	if s := rep.median(tSet); s.RoundTrips != 1 || s.ServerCmds < 0.99 || s.ServerCmds > 1.01 {
		t.Errorf("redis-set: %.3f round trips, %.3f server commands per SET; want 1 and 1", s.RoundTrips, s.ServerCmds)
	}
	if a.Mix["coalesced"] == 0 || a.Mix["queued+replaced"]+a.Mix["queued"] == 0 {
		t.Errorf("store-admit mix %v lacks coalesced or queued admissions", a.Mix)
	}
	for _, want := range []string{"medians over 1 rounds", "store-admit", "http-admit", "FIGURE  admission/SET"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// TestAdmissionType: each node gets On, then pairs of one type that
// alternate between GracefulRestart and ForceRestart.
func TestAdmissionType(t *testing.T) {
	want := []schemas.ResetType{schemas.ResetOn,
		schemas.ResetGracefulRestart, schemas.ResetGracefulRestart,
		schemas.ResetForceRestart, schemas.ResetForceRestart,
		schemas.ResetGracefulRestart, schemas.ResetGracefulRestart}
	for v, w := range want {
		if got := admissionType(int64(v)); got != w {
			t.Errorf("visit %d: %s, want %s", v, got, w)
		}
	}
}

func TestAdmissionValidate(t *testing.T) {
	ok := admConfig{Nodes: 1000, HTTPNodes: 1000, Concurrency: 16, Rounds: 5, Duration: time.Second, MaxOps: 1, HTTP: true, HTTPRedis: "real"}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func(*admConfig){
		func(c *admConfig) { c.Nodes = 0 },
		func(c *admConfig) { c.HTTPNodes = 5001 },
		func(c *admConfig) { c.Concurrency = 0 },
		func(c *admConfig) { c.Rounds = 0 },
		func(c *admConfig) { c.Duration = 0 },
		func(c *admConfig) { c.MaxOps = 0 },
		func(c *admConfig) { c.HTTPRedis = "cluster" },
	} {
		c := ok
		bad(&c)
		if c.validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
