package simulator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestPlan runs testdata/plan.txt: for each "from resetType" line, the
// steps plan() chooses.
//
//	plan d=<duration> [ignore-acpi]
//	<from> <ResetType>
//	...
//	----
//	<from> <ResetType> → <State> <dwell>, ..., <steady state>   (or "no change")
func TestPlan(t *testing.T) {
	datadriven.RunTest(t, "testdata/plan.txt", func(t *testing.T, d *datadriven.TestData) string {
		if d.Cmd != "plan" {
			d.Fatalf(t, "unknown command %q", d.Cmd)
		}
		var dur string
		d.ScanArgs(t, "d", &dur)
		nominal, err := time.ParseDuration(dur)
		if err != nil {
			d.Fatalf(t, "d: %v", err)
		}
		ignoreACPI := d.HasArg("ignore-acpi")
		var out strings.Builder
		for line := range strings.Lines(d.Input) {
			fields := strings.Fields(line)
			if len(fields) != 2 {
				d.Fatalf(t, "want <from> <ResetType>, got %q", line)
			}
			fmt.Fprintf(&out, "%-11s %-16s → ", fields[0], fields[1])
			steps, err := plan(fields[0], fields[1], nominal, ignoreACPI)
			switch {
			case err != nil:
				fmt.Fprintf(&out, "error: %v\n", err)
				continue
			case len(steps) == 0:
				out.WriteString("no change\n")
				continue
			}
			var total time.Duration
			parts := make([]string, len(steps))
			for i, s := range steps {
				parts[i] = s.State
				if i < len(steps)-1 {
					parts[i] += " " + s.Dwell.String()
				} else if s.Dwell != 0 {
					t.Errorf("%s %s: final step %s has dwell %v", fields[0], fields[1], s.State, s.Dwell)
				}
				total += s.Dwell
			}
			fmt.Fprintf(&out, "%s (total %v)\n", strings.Join(parts, ", "), total)
		}
		return out.String()
	})
}

// TestPlanEndsSteady checks, for every state and ResetType, that a plan
// ends in On or Off, that no step repeats the state before it, and that
// only the commands meant to power on start with PoweringOn.
func TestPlanEndsSteady(t *testing.T) {
	states := []string{PowerOn, PowerOff, PowerPoweringOn, PowerPoweringOff}
	for _, from := range states {
		for _, rt := range DefaultResetTypes() {
			for _, ignore := range []bool{false, true} {
				steps, err := plan(from, rt, 100*time.Millisecond, ignore)
				if err != nil {
					t.Fatalf("plan(%s, %s): %v", from, rt, err)
				}
				if len(steps) == 0 {
					if from != PowerOn && from != PowerOff {
						if rt != ResetNmi {
							t.Errorf("plan(%s, %s, %v) leaves the machine in a transition state", from, rt, ignore)
						}
					}
					continue
				}
				last := steps[len(steps)-1].State
				if last != PowerOn && last != PowerOff {
					t.Errorf("plan(%s, %s) ends in %s", from, rt, last)
				}
				prev := ""
				for _, s := range steps {
					if s.State == prev {
						t.Errorf("plan(%s, %s): step %s repeats the state before it", from, rt, s.State)
					}
					prev = s.State
				}
			}
		}
	}
	if _, err := plan(PowerOn, "Explode", time.Second, false); err == nil {
		t.Error("plan accepted an unknown ResetType")
	}
	if _, err := plan("Paused", ResetOn, time.Second, false); err == nil {
		t.Error("plan accepted an unknown power state")
	}
}
