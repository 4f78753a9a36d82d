package serializer_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"pgregory.net/rapid"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// The invariants (docs/architecture.md#invariants), under random
// interleavings: several clients send Resets and DELETEs to 3-4 nodes through
// two replicas that share one Redis, against simulated Redfish BMCs with
// random delays and failing first commands. After everything settles:
//
//	(a) no BMC ever had two power commands in flight (MaxInFlight ≤ 1);
//	(b) the node's power is the target of the last accepted request when
//	    that task Completed, and always equals the node's desired state
//	    (which a DELETE of a running task sets to the observed state);
//	(c) every task is terminal, and none ended in Exception (the faults
//	    injected are all recoverable within the retries);
//	(d) every task id a Reset returned is readable, a coalesced request got
//	    the id of an existing task of the same ResetType (whose Joined
//	    count matches), and the BMC received no command that a lease
//	    holder did not log first (no stray command from a fenced replica).
//
// Some clients also remove a node (from both replicas at once, as every
// replica does when its source is deleted) and enrol it again, racing the
// others' Resets and DELETEs: a Reset to a node being removed is refused
// with ErrNodeNotFound, and (a)-(d) still hold; above all no task of a
// removed node is left unfinished (membership.go).
//
// The number of scenarios per Redis is rapid's -rapid.checks when given,
// else propertyChecks.

const propertyChecks = 40

var propertyTypes = []schemas.ResetType{
	schemas.ResetOn, schemas.ResetForceOff, schemas.ResetGracefulShutdown,
	schemas.ResetGracefulRestart, schemas.ResetForceRestart, schemas.ResetPowerCycle,
}

func TestPropertyResetsStaySerialized(t *testing.T) {
	limitRapid(t, propertyChecks)
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			checkScenarios(t, target.New(t), "p")
		})
	}
}

// checkScenarios runs rapid's random scenarios on rdb, their node ids
// starting with prefix, and logs what they did.
func checkScenarios(t *testing.T, rdb redis.UniversalClient, prefix string) {
	var (
		seq   scenarioSeq
		stats scenarioStats
	)
	rapid.Check(t, func(rt *rapid.T) {
		runScenario(rt, rdb, seq.next(prefix), &stats)
	})
	t.Logf("%d scenarios: %s", seq.n.Load(), &stats)
}

// limitRapid sets rapid's number of checks (and turns off its fail files,
// since a concurrent scenario does not replay from a seed) unless the
// command line chose them.
func limitRapid(t *testing.T, checks int) {
	given := func(name string) bool {
		for _, a := range os.Args[1:] {
			if strings.HasPrefix(strings.TrimLeft(a, "-"), name) {
				return true
			}
		}
		return false
	}
	for name, v := range map[string]string{"rapid.checks": strconv.Itoa(checks), "rapid.nofailfile": "true"} {
		if given(name) {
			continue
		}
		f := flag.Lookup(name)
		if f == nil {
			t.Fatalf("rapid flag %s not registered", name)
		}
		old := f.Value.String()
		if err := flag.Set(name, v); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { flag.Set(name, old) })
	}
}

// clientOp is one request of a simulated client.
type clientOp struct {
	Remove  bool // remove Node from both replicas, then enrol it again
	Delete  bool
	Node    int
	Type    schemas.ResetType
	Replica int
	Pause   time.Duration // before the request
	Pick    int           // which earlier task a DELETE aims at (0 = the latest)
}

func (o clientOp) String() string {
	if o.Remove {
		return fmt.Sprintf("+%v remove and re-enrol n%d", o.Pause, o.Node)
	}
	if o.Delete {
		return fmt.Sprintf("+%v DELETE #%d via r%d", o.Pause, o.Pick, o.Replica)
	}
	return fmt.Sprintf("+%v n%d %s via r%d", o.Pause, o.Node, o.Type, o.Replica)
}

// admitted is a Reset and what admission said.
type admitted struct {
	node string
	typ  schemas.ResetType
	adm  serializer.Admission
}

// scenarioStats counts what the scenarios did, to show in the test log that
// they exercise every path.
type scenarioStats struct {
	mu       sync.Mutex
	outcomes map[serializer.Outcome]int
	cancels  map[serializer.CancelResult]int
	removals int
	ended    map[string]int
	commands int
}

func (s *scenarioStats) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("admissions %v, DELETEs %v, tasks ended %v, BMC commands %d, removals %d", s.outcomes, s.cancels, s.ended, s.commands, s.removals)
}

func (s *scenarioStats) add(f func(*scenarioStats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outcomes == nil {
		s.outcomes, s.cancels, s.ended = map[serializer.Outcome]int{}, map[serializer.CancelResult]int{}, map[string]int{}
	}
	f(s)
}

func runScenario(rt *rapid.T, rdb redis.UniversalClient, prefix string, stats *scenarioStats) {
	nNodes := rapid.IntRange(3, 4).Draw(rt, "nodes")
	var nodes []simNode
	for i := range nNodes {
		dmin := rapid.IntRange(10, 40).Draw(rt, "delayMin")
		dmax := dmin + rapid.IntRange(0, 20).Draw(rt, "delaySpread")
		nodes = append(nodes, simNode{
			ID: fmt.Sprintf("%sn%d", prefix, i),
			Machine: simulator.MachineConfig{
				DelayMin:     time.Duration(dmin) * time.Millisecond,
				DelayMax:     time.Duration(dmax) * time.Millisecond,
				InitialPower: rapid.SampledFrom([]string{simulator.PowerOff, simulator.PowerOn}).Draw(rt, "initial"),
				Faults:       simulator.Faults{FailFirst: rapid.IntRange(0, 1).Draw(rt, "failFirst")},
			},
		})
	}
	rules := serializer.DefaultRules()
	rules.FlipLimit = rapid.SampledFrom([]int{0, 3}).Draw(rt, "flipLimit")
	opGen := rapid.Custom(func(t *rapid.T) clientOp {
		kind := rapid.IntRange(0, 11).Draw(t, "kind")
		return clientOp{
			Remove:  kind == 1,
			Delete:  kind == 0 || kind == 2,
			Node:    rapid.IntRange(0, nNodes-1).Draw(t, "node"),
			Type:    rapid.SampledFrom(propertyTypes).Draw(t, "type"),
			Replica: rapid.IntRange(0, 1).Draw(t, "replica"),
			Pause:   time.Duration(rapid.IntRange(0, 30).Draw(t, "pause")) * time.Millisecond,
			Pick:    rapid.IntRange(0, 1<<10).Draw(t, "pick"),
		}
	})
	clients := rapid.SliceOfN(rapid.SliceOfN(opGen, 1, 10), 2, 4).Draw(rt, "clients")

	e := newEnv(rt, rdb, nodes)
	opts := fastOptions()
	opts.Rules = &rules
	replicas := []*serializer.Service{e.addReplica("A", opts, nil), e.addReplica("B", opts, nil)}

	var (
		mu      sync.Mutex
		ids     []string // every task id a Reset returned, in order
		results []admitted
		errs    []string
		wg      sync.WaitGroup
		members sync.Mutex          // one removal and re-enrolment at a time, as one source's
		removed = map[string]bool{} // nodes removed at least once (under mu)
	)
	ctx := context.Background()
	for c, ops := range clients {
		wg.Go(func() {
			for _, op := range ops {
				time.Sleep(op.Pause)
				svc := replicas[op.Replica]
				if op.Remove {
					members.Lock()
					mu.Lock()
					removed[e.ids[op.Node]] = true
					mu.Unlock()
					if err := e.reenrol(ctx, e.ids[op.Node]); err != nil {
						mu.Lock()
						errs = append(errs, fmt.Sprintf("client %d: %s: %v", c, op, err))
						mu.Unlock()
					}
					members.Unlock()
					stats.add(func(s *scenarioStats) { s.removals++ })
					continue
				}
				if op.Delete {
					mu.Lock()
					if len(ids) == 0 {
						mu.Unlock()
						continue
					}
					// mostly one of the last few tasks: those may still
					// be running or waiting.
					id := ids[len(ids)-1-op.Pick%min(len(ids), 4)]
					mu.Unlock()
					res, err := svc.CancelTask(ctx, id)
					node, _ := serializer.TaskNode(id)
					mu.Lock()
					wasRemoved := removed[node]
					mu.Unlock()
					if errors.Is(err, serializer.ErrTaskNotFound) && wasRemoved {
						// its node was being removed: the task is not
						// served meanwhile (it still ends, checked below)
					} else if err != nil {
						mu.Lock()
						errs = append(errs, fmt.Sprintf("client %d: DELETE %s: %v", c, id, err))
						mu.Unlock()
					}
					stats.add(func(s *scenarioStats) { s.cancels[res]++ })
					continue
				}
				node := e.ids[op.Node]
				a, err := svc.Reset(ctx, node, op.Type, fmt.Sprintf("client %d", c))
				mu.Lock()
				if errors.Is(err, serializer.ErrNodeNotFound) {
					// removed at this moment: refused, nothing written
				} else if err != nil {
					errs = append(errs, fmt.Sprintf("client %d: Reset %s %s: %v", c, node, op.Type, err))
				} else {
					results = append(results, admitted{node, op.Type, a})
					if a.Outcome != serializer.Refused {
						ids = append(ids, a.Task)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		rt.Fatalf("requests failed:\n%s", strings.Join(errs, "\n"))
	}
	e.waitQuiet(30*time.Second, e.ids, ids)
	checkInvariants(rt, e, results)
	stats.add(func(s *scenarioStats) {
		for _, r := range results {
			s.outcomes[r.adm.Outcome]++
		}
		for _, r := range results {
			if r.adm.Outcome == serializer.Started || r.adm.Outcome == serializer.Queued {
				s.ended[string(e.task(r.adm.Task).State)]++
			}
		}
		for _, id := range e.ids {
			s.commands += e.machine(id).Status().CommandCount
		}
	})
}

func checkInvariants(rt *rapid.T, e *env, results []admitted) {
	ctx := context.Background()
	fail := func(format string, args ...any) {
		rt.Fatalf(format+"\n%s", append(args, e.describe(e.ids))...)
	}

	// (d) ids: fresh ones are unique, coalesced ones name an existing task
	// of the same node and type, and Joined counts the requests that joined.
	created := map[string]admitted{}
	joined := map[string]int{}
	for _, r := range results {
		switch r.adm.Outcome {
		case serializer.Started, serializer.Queued:
			if _, dup := created[r.adm.Task]; dup {
				fail("task id %s returned as new twice", r.adm.Task)
			}
			created[r.adm.Task] = r
		case serializer.Coalesced:
			joined[r.adm.Task]++
		case serializer.Refused:
		default:
			fail("unknown outcome %+v", r.adm)
		}
	}
	for id, n := range joined {
		c, ok := created[id]
		if !ok {
			fail("%d requests coalesced into %s, a task no request created", n, id)
		}
		tr := e.task(id)
		if tr.Type != c.typ || tr.Node != c.node {
			fail("task %s is %s on %s, but requests of %s on %s joined it", id, tr.Type, tr.Node, c.typ, c.node)
		}
		if tr.Joined != n {
			fail("task %s: Joined %d, but %d requests coalesced into it", id, tr.Joined, n)
		}
	}
	for _, r := range results {
		if r.adm.Outcome == serializer.Coalesced {
			if c := created[r.adm.Task]; c.typ != r.typ || c.node != r.node {
				fail("a %s on %s coalesced into %s (%s on %s)", r.typ, r.node, r.adm.Task, c.typ, c.node)
			}
		}
	}

	for _, id := range e.ids {
		m := e.machine(id)
		st := m.Status()
		// (a) one command at a time.
		if st.MaxInFlight > 1 {
			fail("node %s: MaxInFlight %d", id, st.MaxInFlight)
		}
		// (c) every task of the node is terminal, none failed.
		tids, err := e.store().TaskIDs(ctx, []string{id}, 1000)
		if err != nil {
			fail("task ids of %s: %v", id, err)
		}
		for _, tid := range tids {
			tr := e.task(tid)
			if !tr.Terminal() {
				fail("task %s is %s after quiescence", tid, tr.State)
			}
			if tr.State == schemas.TaskStateException {
				fail("task %s ended in Exception: %s", tid, tr.Reason)
			}
			if _, ok := created[tid]; !ok {
				fail("task %s exists but no Reset returned it", tid)
			}
		}
		// (d) every command the BMC got was logged by a lease holder just
		// before it was sent ("step"; a holder that loses its lease between
		// the two sends nothing, hence not equality).
		log := e.nodeLog(id)
		var last map[string]any
		logged := 0
		for _, ev := range log {
			switch ev["event"] {
			case "started", "queued", "coalesced":
				last = ev
			case "command":
				logged++
			}
		}
		if st.CommandCount > logged {
			fail("node %s: the BMC received %d commands, the lease holders logged %d", id, st.CommandCount, logged)
		}
		// (b) final power state.
		ns := e.state(id)
		power := schemas.PowerState(m.PowerState())
		if last == nil {
			if st.CommandCount != 0 {
				fail("node %s: no request accepted, yet %d commands", id, st.CommandCount)
			}
			continue
		}
		lastTask := fmt.Sprint(last["task"])
		tr := e.task(lastTask)
		switch tr.State {
		case schemas.TaskStateCompleted:
			if want := targetOf(rt, tr.Type); power != want {
				fail("node %s: last accepted %s (%s) Completed, but the node is %s", id, tr.Type, lastTask, power)
			}
		case schemas.TaskStateCancelled:
		default:
			fail("node %s: last accepted task %s ended %s", id, lastTask, tr.State)
		}
		if ns.Desired == "" {
			fail("node %s: requests were accepted but no desired state is set", id)
		}
		if power != ns.Desired {
			fail("node %s: power %s, desired %s (last accepted %s %s: %s %q)", id, power, ns.Desired, tr.Type, lastTask, tr.State, tr.Reason)
		}
	}
}
