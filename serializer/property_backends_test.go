package serializer_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"pgregory.net/rapid"

	"github.com/fishgate/fishgate/backends"
	amtbackend "github.com/fishgate/fishgate/backends/amt"
	ipmibackend "github.com/fishgate/fishgate/backends/ipmi"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// The property of property_test.go (invariants (a)-(d) there, checked by
// checkInvariants; docs/architecture.md#invariants) with the simulated nodes
// driven over IPMI and over Intel AMT instead of Redfish: two replicas
// sharing one Redis, several clients, random delays, DELETEs and failing
// first commands.
//
// Both protocols have no transitional power state (a transition reads as
// the state it leaves until it settles), which is what the serializer's
// verification and its settling after a cancellation must cope with.
//
// The AMT backend keeps its own retries (Retries at its default, as the
// gateway builds it): invariant (d) counts one BMC command per command the
// lease holder logged, which holds because the serializer grants each send
// one attempt (internal/retry) and does the retrying itself. The gateway's
// retries against FailFirst are exercised end to end in
// e2e/backends_test.go; retry_budget_test.go counts them.
//
// GracefulShutdown is drawn too: over a BMC without transitional states a
// soft off under way reads On, so a cancelled or superseded one is given
// Options.SoftCancelGrace to reach Off before the next command
// (TestCancelledGracefulShutdownWithoutTransitionalStates shows it alone).
//
// Fewer scenarios than the Redfish run (each is slower over UDP or
// WS-Man); -rapid.checks overrides.

const backendPropertyChecks = 15

// propertyProtocol is one protocol the property runs over, and the
// ResetTypes its clients send (those the backend offers and that have a
// target state).
type propertyProtocol struct {
	protocol
	types []schemas.ResetType
}

var (
	ipmiProtocol = ipmiProtocolWith(0)
	amtProtocol  = amtProtocolWith(0)
)

// ipmiProtocolWith drives the nodes over IPMI with the backend's defaults,
// as the gateway builds it, but for its RetryBackoff when given.
func ipmiProtocolWith(backoff time.Duration) protocol {
	return protocol{
		name:  "ipmi",
		front: func(s *simulator.NodeSpec) { s.IPMIListen = "127.0.0.1:0" },
		open: func(sn *simulator.Node, log *slog.Logger) (backends.Backend, error) {
			host, port, err := ipmibackend.SplitAddress(sn.IPMIAddr())
			if err != nil {
				return nil, err
			}
			return ipmibackend.New(ipmibackend.Config{Host: host, Port: port, User: "admin", Password: "password", RetryBackoff: backoff, Logger: log})
		},
	}
}

// amtProtocolWith drives the nodes over AMT with the backend's defaults,
// as the gateway builds it, but for its RetryBackoff when given.
func amtProtocolWith(backoff time.Duration) protocol {
	return protocol{
		name:  "amt",
		front: func(s *simulator.NodeSpec) { s.AMTListen = "127.0.0.1:0" },
		open: func(sn *simulator.Node, log *slog.Logger) (backends.Backend, error) {
			return amtbackend.New(amtbackend.Config{Endpoint: sn.AMTURL(), User: "admin", Password: "password", RetryBackoff: backoff, Logger: log})
		},
	}
}

// propertyProtocols: Nmi has no target state. IPMI has no GracefulRestart
// nor ForceOn: the gateway emulates them (GracefulShutdown, then On; On),
// so composite actions and their cancellation between phases are drawn
// too. The simulated AMT offers GracefulRestart (14); ForceOn is emulated.
var propertyProtocols = []propertyProtocol{
	{ipmiProtocol, []schemas.ResetType{schemas.ResetOn, schemas.ResetForceOff, schemas.ResetGracefulShutdown,
		schemas.ResetGracefulRestart, schemas.ResetForceRestart, schemas.ResetPowerCycle, schemas.ResetForceOn}},
	{amtProtocol, []schemas.ResetType{schemas.ResetOn, schemas.ResetForceOff, schemas.ResetGracefulShutdown,
		schemas.ResetGracefulRestart, schemas.ResetForceRestart, schemas.ResetPowerCycle, schemas.ResetForceOn}},
}

func TestPropertyResetsStaySerializedOverBackends(t *testing.T) {
	limitRapid(t, backendPropertyChecks)
	for _, pp := range propertyProtocols {
		t.Run(pp.name, func(t *testing.T) {
			for _, target := range testkit.RedisTargets() {
				t.Run(target.Name, func(t *testing.T) {
					rdb := target.New(t)
					var (
						seq   scenarioSeq
						stats scenarioStats
					)
					rapid.Check(t, func(rt *rapid.T) {
						runScenarioOver(rt, rdb, seq.next(pp.name), &stats, pp)
					})
					t.Logf("%d scenarios over %s: %s", seq.n.Load(), pp.name, &stats)
				})
			}
		})
	}
}

// runScenarioOver draws nodes and clients as runScenario does, runs the
// clients against two replicas driving the nodes over pp, and checks the
// invariants once everything is quiet.
func runScenarioOver(rt *rapid.T, rdb redis.UniversalClient, prefix string, stats *scenarioStats, pp propertyProtocol) {
	nNodes := rapid.IntRange(3, 4).Draw(rt, "nodes")
	nodes := make([]simNode, nNodes)
	for i := range nodes {
		lo := time.Duration(rapid.IntRange(10, 40).Draw(rt, "delayMin")) * time.Millisecond
		hi := lo + time.Duration(rapid.IntRange(0, 20).Draw(rt, "delaySpread"))*time.Millisecond
		nodes[i] = simNode{ID: fmt.Sprintf("%sn%d", prefix, i), Machine: simulator.MachineConfig{
			DelayMin: lo, DelayMax: hi,
			InitialPower: rapid.SampledFrom([]string{simulator.PowerOff, simulator.PowerOn}).Draw(rt, "initial"),
			Faults:       simulator.Faults{FailFirst: rapid.IntRange(0, 1).Draw(rt, "failFirst")},
		}}
	}
	rules := serializer.DefaultRules()
	rules.FlipLimit = rapid.SampledFrom([]int{0, 3}).Draw(rt, "flipLimit")
	op := rapid.Custom(func(t *rapid.T) clientOp {
		return clientOp{
			Delete:  rapid.IntRange(0, 5).Draw(t, "kind") == 0,
			Node:    rapid.IntRange(0, nNodes-1).Draw(t, "node"),
			Type:    rapid.SampledFrom(pp.types).Draw(t, "type"),
			Replica: rapid.IntRange(0, 1).Draw(t, "replica"),
			Pause:   time.Duration(rapid.IntRange(0, 30).Draw(t, "pause")) * time.Millisecond,
			Pick:    rapid.IntRange(0, 1<<10).Draw(t, "pick"),
		}
	})
	clients := rapid.SliceOfN(rapid.SliceOfN(op, 1, 10), 2, 4).Draw(rt, "clients")

	e := newEnvOver(rt, rdb, nodes, pp.protocol)
	opts := fastOptions()
	opts.Rules = &rules
	replicas := [2]*serializer.Service{e.addReplica("A", opts, nil), e.addReplica("B", opts, nil)}

	var (
		mu       sync.Mutex
		taskIDs  []string // ids Resets returned (not refused), in order
		results  []admitted
		failures []string
		wg       sync.WaitGroup
	)
	ctx := context.Background()
	for c, ops := range clients {
		who := fmt.Sprintf("client %d", c)
		wg.Go(func() {
			for _, o := range ops {
				time.Sleep(o.Pause)
				svc := replicas[o.Replica]
				if o.Delete {
					mu.Lock()
					n := len(taskIDs)
					var id string
					if n > 0 { // one of the last four: they may still run or wait
						id = taskIDs[n-1-o.Pick%min(n, 4)]
					}
					mu.Unlock()
					if id == "" {
						continue
					}
					res, err := svc.CancelTask(ctx, id)
					if err != nil {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("%s: DELETE %s: %v", who, id, err))
						mu.Unlock()
					}
					stats.add(func(s *scenarioStats) { s.cancels[res]++ })
					continue
				}
				node := e.ids[o.Node]
				a, err := svc.Reset(ctx, node, o.Type, who)
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, fmt.Sprintf("%s: Reset %s %s: %v", who, node, o.Type, err))
				default:
					results = append(results, admitted{node, o.Type, a})
					if a.Outcome != serializer.Refused {
						taskIDs = append(taskIDs, a.Task)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		rt.Fatalf("requests failed over %s:\n%s", pp.name, strings.Join(failures, "\n"))
	}
	e.waitQuiet(30*time.Second, e.ids, taskIDs)
	checkInvariants(rt, e, results)
	commands := 0
	for _, id := range e.ids {
		st := e.machine(id).Status()
		commands += st.CommandCount
		for _, c := range st.Commands {
			if c.Protocol != pp.name {
				rt.Fatalf("node %s: %s reached the machine over %s, want %s", id, c.Action, c.Protocol, pp.name)
			}
		}
	}
	ended := map[string]int{}
	for _, r := range results {
		if r.adm.Outcome == serializer.Started || r.adm.Outcome == serializer.Queued {
			tr := e.task(r.adm.Task)
			ended[string(tr.State)]++
			// composite actions that got past their first phase, and how
			// they ended
			if slices.ContainsFunc(tr.Steps, func(s string) bool { return strings.Contains(s, "phase 1/2 done") }) {
				ended["phased+"+string(tr.State)]++
			}
		}
	}
	stats.add(func(s *scenarioStats) {
		for _, r := range results {
			s.outcomes[r.adm.Outcome]++
		}
		for k, v := range ended {
			s.ended[k] += v
		}
		s.commands += commands
	})
}

// TestCancelledGracefulShutdownWithoutTransitionalStates: a GracefulShutdown
// the BMC accepted is superseded by a ForceOff, or DELETEd, while the
// machine is shutting down. Afterwards no two commands may have overlapped
// and the node's power must equal its desired state.
//
// Over Redfish the machine shows PoweringOff, and the cancellation waits
// for Off. Over IPMI and AMT the soft off under way reads On, the
// cancellation takes that for the settled state: the ForceOff is sent while
// the shutdown is still in flight (MaxInFlight 2), or desired becomes On and
// the node then goes Off. Known gap: those cases are skipped unless
// FISHGATE_KNOWN_GAPS is set.
func TestCancelledGracefulShutdownWithoutTransitionalStates(t *testing.T) {
	for _, p := range []protocol{redfishProtocol, ipmiProtocol, amtProtocol} {
		for _, how := range []string{"supersede", "delete"} {
			t.Run(p.name+"/"+how, func(t *testing.T) {
				id := "gs-" + p.name + "-" + how
				e := newEnvOver(t, testkit.MiniRedis(t), []simNode{{ID: id, Machine: simulator.MachineConfig{
					DelayMin: 600 * time.Millisecond, DelayMax: 600 * time.Millisecond, InitialPower: simulator.PowerOn}}}, p)
				svc := e.addReplica("A", fastOptions(), nil)
				ctx := context.Background()
				gs, err := svc.Reset(ctx, id, schemas.ResetGracefulShutdown, "test")
				if err != nil || gs.Outcome != serializer.Started {
					t.Fatalf("GracefulShutdown: %+v, %v", gs, err)
				}
				accepted := func() bool { // AMT logs "GracefulShutdown (12)"
					return slices.ContainsFunc(e.machine(id).Status().Commands, func(c simulator.Command) bool {
						return strings.HasPrefix(c.Action, "GracefulShutdown") && c.Result == "accepted"
					})
				}
				deadline := time.Now().Add(5 * time.Second)
				for !accepted() {
					if time.Now().After(deadline) {
						t.Fatalf("the machine did not accept the GracefulShutdown:\n%s", e.describe(e.ids))
					}
					time.Sleep(5 * time.Millisecond)
				}
				tasks := []string{gs.Task}
				if how == "supersede" {
					off, err := svc.Reset(ctx, id, schemas.ResetForceOff, "test")
					if err != nil || off.Outcome == serializer.Refused {
						t.Fatalf("ForceOff: %+v, %v", off, err)
					}
					tasks = append(tasks, off.Task)
				} else if res, err := svc.CancelTask(ctx, gs.Task); err != nil {
					t.Fatalf("DELETE: %s, %v", res, err)
				}
				e.waitQuiet(15*time.Second, e.ids, tasks)
				st := e.machine(id).Status()
				ns := e.state(id)
				if st.MaxInFlight > 1 {
					t.Errorf("MaxInFlight %d: a command overlapped the shutdown", st.MaxInFlight)
				}
				if got := schemas.PowerState(st.PowerState); got != ns.Desired {
					t.Errorf("power %s, desired %s", got, ns.Desired)
				}
				if t.Failed() {
					t.Logf("%s", e.describe(e.ids))
				}
			})
		}
	}
}
