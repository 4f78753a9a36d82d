package serializer

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
)

// admissionDriver runs transcript commands against one implementation of
// the admission policy. Every implementation prints the same text, so the
// same transcript checks them all
// (docs/decisions/0007-transcripts-on-every-implementation.md).
type admissionDriver interface {
	init(t *testing.T, rules Rules)
	submit(r schemas.ResetType, task string, now time.Time) string
	finish(now time.Time) string
	cancel(task string, now time.Time) string
	state() string
}

// formatDecision is the one rendering of an admission outcome.
func formatDecision(outcome Outcome, task string, refusal Refusal, retryAfter time.Duration, cancelNow bool, dropped []string) string {
	var b strings.Builder
	switch outcome {
	case Refused:
		fmt.Fprintf(&b, "refused %s", refusal)
		if retryAfter > 0 {
			fmt.Fprintf(&b, " retry-after=%s", retryAfter)
		}
	case Coalesced:
		fmt.Fprintf(&b, "coalesced into %s", task)
	default:
		fmt.Fprintf(&b, "%s %s", outcome, task)
	}
	if cancelNow {
		b.WriteString(" cancel-now")
	}
	if len(dropped) > 0 {
		fmt.Fprintf(&b, " dropped %s", strings.Join(dropped, ","))
	}
	return b.String()
}

func formatSlots(s Slots, desired schemas.PowerState) string {
	var b strings.Builder
	if s.Now.Task == "" {
		b.WriteString("now: -")
	} else {
		fmt.Fprintf(&b, "now: %s %s", s.Now.Task, s.Now.Type)
		if s.Cancelling {
			b.WriteString(" (cancelling)")
		}
	}
	b.WriteString("; waiting:")
	if len(s.Waiting) == 0 {
		b.WriteString(" -")
	}
	for _, w := range s.Waiting {
		fmt.Fprintf(&b, " %s %s", w.Task, w.Type)
	}
	if desired != "" {
		fmt.Fprintf(&b, "; desired %s", desired)
	}
	return b.String()
}

// pureDriver: the Go functions over in-memory values.
type pureDriver struct {
	rules   Rules
	slots   Slots
	desired schemas.PowerState
	flips   []time.Time
}

func (d *pureDriver) init(_ *testing.T, rules Rules) { *d = pureDriver{rules: rules} }

func (d *pureDriver) recentFlips(now time.Time) (int, time.Duration) {
	d.flips = slices.DeleteFunc(d.flips, func(t time.Time) bool { return !t.After(now.Add(-d.rules.FlipWindow)) })
	if len(d.flips) == 0 {
		return 0, d.rules.FlipWindow
	}
	return len(d.flips), max(d.flips[0].Add(d.rules.FlipWindow).Sub(now), time.Millisecond)
}

func (d *pureDriver) setSlots(s Slots) {
	d.slots = s
	if t, ok := Desired(s); ok {
		d.desired = t
	}
}

func (d *pureDriver) submit(r schemas.ResetType, task string, now time.Time) string {
	n, retry := d.recentFlips(now)
	dec := Admit(d.slots, d.rules, r, task, n)
	if dec.Outcome == Refused {
		if dec.Refusal != RefusedFlipFlop {
			retry = 0
		}
		return formatDecision(dec.Outcome, "", dec.Refusal, retry, false, nil)
	}
	if dec.Conflict {
		d.flips = append(d.flips, now)
	}
	if dec.Outcome != Coalesced || len(dec.Dropped) > 0 {
		d.setSlots(dec.Slots)
	}
	return formatDecision(dec.Outcome, dec.Task, "", 0, dec.CancelNow, dec.Dropped)
}

func (d *pureDriver) finish(time.Time) string {
	if d.slots.Now.Task == "" {
		return "idle"
	}
	d.setSlots(Finish(d.slots))
	return "ok"
}

func (d *pureDriver) cancel(task string, _ time.Time) string {
	s, res := Cancel(d.slots, task)
	d.setSlots(s)
	return string(res)
}

func (d *pureDriver) state() string { return formatSlots(d.slots, d.desired) }

// redisDriver: the Lua scripts on a Redis.
type redisDriver struct {
	t     *testing.T
	rdb   *redis.Client
	st    *Store
	rules Rules
	node  string
	runs  int
	lease string
}

func (d *redisDriver) init(t *testing.T, rules Rules) {
	d.t, d.rules = t, rules
	d.runs++
	d.node = fmt.Sprintf("tn%d", d.runs)
	d.st = NewStore(d.rdb)
	l, err := d.st.acquire(context.Background(), d.node, "transcript", time.Hour)
	if err != nil {
		t.Fatalf("acquire lease: %v", err)
	}
	d.lease = l.Value()
}

func (d *redisDriver) submit(r schemas.ResetType, task string, now time.Time) string {
	a, err := d.st.Admit(context.Background(), d.node, d.rules, r, task, now, "transcript")
	if err != nil {
		d.t.Fatal(err)
	}
	return formatDecision(a.Outcome, a.Task, a.Refusal, a.RetryAfter, a.CancelNow, a.Dropped)
}

func (d *redisDriver) finish(now time.Time) string {
	ns, err := d.st.State(context.Background(), d.node)
	if err != nil {
		d.t.Fatal(err)
	}
	if ns.Slots.Now.Task == "" {
		return "idle"
	}
	if _, err := d.st.workerOp(context.Background(), d.node, d.lease, ns.Slots.Now.Task, now, "finish", string(schemas.TaskStateCompleted), "OK", "", "", "0"); err != nil {
		d.t.Fatal(err)
	}
	return "ok"
}

func (d *redisDriver) cancel(task string, now time.Time) string {
	res, err := d.st.Cancel(context.Background(), d.node, task, now)
	if err != nil {
		d.t.Fatal(err)
	}
	return string(res)
}

func (d *redisDriver) state() string {
	ns, err := d.st.State(context.Background(), d.node)
	if err != nil {
		d.t.Fatal(err)
	}
	return formatSlots(ns.Slots, ns.Desired)
}

// runTranscripts runs every file in testdata/admission against drv.
//
//	rules policy=now-next [queue=N] [flips=N] [window=60s] [precedence=ForceOff:2,...]
//	submit <ResetType> <task>    admission of a request whose new task would be <task>
//	finish                        the worker ends the running action
//	cancel <task>                 DELETE of a task
//	tick <duration>               advance the clock
//	state                         the node's slots and desired state
//
// Every command but state also prints the state after it.
func runTranscripts(t *testing.T, drv admissionDriver) {
	datadriven.Walk(t, "testdata/admission", func(t *testing.T, path string) {
		now := time.UnixMilli(1_700_000_000_000)
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			switch td.Cmd {
			case "rules":
				rules := DefaultRules()
				for _, a := range td.CmdArgs {
					v := ""
					if len(a.Vals) > 0 {
						v = a.Vals[0]
					}
					switch a.Key {
					case "policy":
						p, err := ParsePolicy(v)
						if err != nil {
							t.Fatal(err)
						}
						rules.Policy = p
					case "queue":
						rules.QueueMax, _ = strconv.Atoi(v)
					case "flips":
						rules.FlipLimit, _ = strconv.Atoi(v)
					case "window":
						rules.FlipWindow, _ = time.ParseDuration(v)
					case "precedence":
						rules.Precedence = Precedence{}
						for _, kv := range a.Vals {
							k, n, _ := strings.Cut(kv, ":")
							rules.Precedence[schemas.ResetType(k)], _ = strconv.Atoi(n)
						}
					default:
						t.Fatalf("unknown rules argument %s", a.Key)
					}
				}
				drv.init(t, rules)
				return drv.state()
			case "submit":
				out := drv.submit(schemas.ResetType(td.CmdArgs[0].Key), td.CmdArgs[1].Key, now)
				return out + "\n" + drv.state()
			case "finish":
				return drv.finish(now) + "\n" + drv.state()
			case "cancel":
				return drv.cancel(td.CmdArgs[0].Key, now) + "\n" + drv.state()
			case "tick":
				d, err := time.ParseDuration(td.CmdArgs[0].Key)
				if err != nil {
					t.Fatal(err)
				}
				now = now.Add(d)
				return "ok"
			case "state":
				return drv.state()
			}
			t.Fatalf("unknown command %s", td.Cmd)
			return ""
		})
	})
}

func TestAdmissionTranscriptsPure(t *testing.T) {
	runTranscripts(t, &pureDriver{})
}

func TestAdmissionTranscriptsRedis(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			runTranscripts(t, &redisDriver{rdb: target.New(t)})
		})
	}
}

func TestTranscriptFilesCoverEveryPolicy(t *testing.T) {
	files, _ := filepath.Glob("testdata/admission/*")
	for _, p := range Policies {
		if !slices.Contains(files, filepath.Join("testdata/admission", string(p))) {
			t.Errorf("no transcript for policy %s", p)
		}
	}
}
