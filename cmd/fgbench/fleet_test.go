package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestFleetVerdicts: each of issue 13's figures is set against its target,
// an exact count fails when it is off by one, and the table says FAIL.
func TestFleetVerdicts(t *testing.T) {
	good := fleetRound{FirstAnswerS: 1, IdleCPUPct: 2, RSSCycleMiB: 300, RSSAggMiB: 310,
		AggOn:   cycle{AdmittedS: 0.5, CompletedS: 20, Completed: 10, Commands: 10},
		AggOff:  cycle{AdmittedS: 0.5, CompletedS: 20, Completed: 10, Commands: 10},
		Tasks:   pages{FirstMs: 10, DeepMs: 20, LastMs: 30, Total: 100000, Size: 1000},
		Systems: pages{FirstMs: 5, DeepMs: 5, LastMs: 5, Total: 10, Size: 10}}
	rep := &fleetReport{Config: fleetConfig{Nodes: 10, IdleWindow: 30 * time.Second},
		Median: good, Redis: &redisFigures{IdlePerNode: 300, ActionPerNode: 1500, PerTaskAll: 400, Tasks: good.Tasks}}
	vs := rep.verdicts()
	if len(vs) != 17 {
		t.Fatalf("%d verdicts, want 17: %+v", len(vs), vs)
	}
	for _, v := range vs {
		if !v.Pass {
			t.Errorf("%s: %v %s against %s fails", v.Figure, v.Value, v.Unit, v.Target)
		}
	}

	bad := good
	bad.RSSAggMiB = 600            // the larger of the two RSS figures counts
	bad.AggOn.Commands = 9         // one node without its command
	bad.AggOff.Overlaps = 1        // one overlap
	bad.Tasks.LastMs = 101         // the slowest page counts
	rep.Redis.ActionPerNode = 2049 // one byte over 2 KiB
	rep.Median = bad
	failed := map[string]bool{}
	for _, v := range rep.verdicts() {
		if !v.Pass {
			failed[v.Figure] = true
		}
	}
	for _, want := range []string{"RSS after a fleet-wide power cycle", "Aggregate.Reset On nodes with one command",
		"Aggregate.Reset ForceOff overlaps", "Tasks page, 100000 members (first/half-way/last)", "Redis per node after one action"} {
		if !failed[want] {
			t.Errorf("%q passes, want FAIL (failed: %v)", want, failed)
		}
	}
	if len(failed) != 5 {
		t.Errorf("%d figures fail, want 5: %v", len(failed), failed)
	}
	rep.Verdicts = rep.verdicts()
	var out bytes.Buffer
	rep.print(&out)
	if got := strings.Count(out.String(), "FAIL"); got != 5 {
		t.Errorf("the table shows %d FAILs, want 5:\n%s", got, out.String())
	}
}

func TestFleetValidate(t *testing.T) {
	ok := fleetConfig{Nodes: 10, Rounds: 1, Concurrency: 1, IdleWindow: time.Second, Timeout: time.Minute}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]func(*fleetConfig){
		"-nodes":  func(c *fleetConfig) { c.Nodes = 0 },
		"-faulty": func(c *fleetConfig) { c.Faulty = -1 },
		"-tasks":  func(c *fleetConfig) { c.Tasks = -1 },
	} {
		c := ok
		bad(&c)
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v, want one naming %s", name, err, name)
		}
	}
}

func TestKeyKind(t *testing.T) {
	for key, want := range map[string]string{
		"fg:node:{node00042}:log":      "fg:node:{*}:log",
		"fg:node:{n1}:slots":           "fg:node:{*}:slots",
		"fg:bulk:{bulk-mxb8r66}:subs":  "fg:bulk:{*}:subs",
		"fg:sweep:17":                  "fg:sweep:*",
		"fg:{events}:stream":           "fg:{events}:stream",
		"fg:{tasks}:index":             "fg:{tasks}:index",
		"fg:{aggregates}:e:fleet":      "fg:{aggregates}:e:fleet",
		"fg:cfgaccounts":               "fg:cfgaccounts",
		"fg:node:{node1}:lease:holder": "fg:node:{*}:lease:holder",
	} {
		if got := keyKind(key); got != want {
			t.Errorf("keyKind(%q) = %q, want %q", key, got, want)
		}
	}
	line := byKindLine(map[string]float64{"a": 10, "b": 300, "c": 0.4, "d": 10})
	if line != "b 300, a 10, d 10" {
		t.Errorf("byKindLine: %q", line)
	}
}
