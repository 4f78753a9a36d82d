package serializer_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// A storm of duplicates (what MAAS does, docs/clients.md#maas): 100 nodes,
// each sent 20 identical On requests at once, spread over two replicas that
// share one Redis, all within about a second. Coalescing must turn each
// node's burst into one task and one BMC command.

const (
	stormNodes    = 100
	stormRequests = 20
	stormSpread   = time.Second // the bursts of the nodes start over this long
)

func TestStormOfDuplicateOnsCoalesces(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) { stormOfDuplicateOns(t, target.New(t)) })
	}
}

// stormOfDuplicateOns is TestStormOfDuplicateOnsCoalesces on rdb
// (TestOnRedisCluster runs it on a Cluster too).
func stormOfDuplicateOns(t *testing.T, rdb redis.UniversalClient) {
	var nodes []simNode
	for i := range stormNodes {
		nodes = append(nodes, simNode{ID: stormNodeID(i), Machine: simulator.MachineConfig{
			DelayMin: 50 * time.Millisecond, DelayMax: 100 * time.Millisecond, Seed: uint64(i + 1)}})
	}
	e := newEnv(t, rdb, nodes)
	opts := fastOptions()
	// A Lua script takes ~0.6ms on miniredis under -race, one at a
	// time: with 100 nodes' workers polling, a 1s lease (renewed
	// with a 333ms budget) would be lost to latency alone.
	opts.LeaseTTL = 6 * time.Second
	replicas := []*serializer.Service{e.addReplica("A", opts, nil), e.addReplica("B", opts, nil)}

	type answer struct {
		adm serializer.Admission
		err error
	}
	answers := make([][]answer, stormNodes)
	var wg sync.WaitGroup
	start := time.Now()
	for i, id := range e.ids {
		answers[i] = make([]answer, stormRequests)
		wg.Go(func() {
			time.Sleep(time.Until(start.Add(stormSpread * time.Duration(i) / stormNodes)))
			// one node's burst: every request released at once.
			var burst sync.WaitGroup
			gate := make(chan struct{})
			for k := range stormRequests {
				burst.Go(func() {
					<-gate
					a, err := replicas[k%2].Reset(context.Background(), id, schemas.ResetOn, fmt.Sprintf("storm %d", k))
					answers[i][k] = answer{a, err}
				})
			}
			close(gate)
			burst.Wait()
		})
	}
	wg.Wait()
	fired := time.Since(start)

	var tasks []string
	for i, id := range e.ids {
		first := answers[i][0]
		if first.err != nil {
			t.Fatalf("node %s: Reset: %v", id, first.err)
		}
		started := 0
		for k, a := range answers[i] {
			if a.err != nil {
				t.Fatalf("node %s request %d: %v", id, k, a.err)
			}
			if a.adm.Task != first.adm.Task {
				t.Fatalf("node %s: request %d got task %s (%s), request 0 got %s (%s): duplicates did not coalesce",
					id, k, a.adm.Task, a.adm.Outcome, first.adm.Task, first.adm.Outcome)
			}
			switch a.adm.Outcome {
			case serializer.Started:
				started++
			case serializer.Coalesced:
			default:
				t.Fatalf("node %s request %d: outcome %+v", id, k, a.adm)
			}
		}
		if started != 1 {
			t.Fatalf("node %s: %d requests started a task, want 1", id, started)
		}
		tasks = append(tasks, first.adm.Task)
	}
	e.waitQuiet(60*time.Second, e.ids, tasks)

	for i, id := range e.ids {
		tr := e.task(tasks[i])
		// "On confirmed by the BMC", or "confirmed On after recovery"
		// should a replica have lost its lease to Redis latency.
		if tr.State != schemas.TaskStateCompleted || !strings.Contains(tr.Reason, "confirmed") {
			t.Fatalf("node %s: task %+v, want Completed, On confirmed\n%s", id, tr, strings.Join(e.logs.find("WARN"), "\n"))
		}
		if tr.Joined != stormRequests-1 {
			t.Fatalf("node %s: task joined by %d requests, want %d", id, tr.Joined, stormRequests-1)
		}
		st := e.machine(id).Status()
		if got := bmcCommands(e.machine(id)); !slices.Equal(got, []string{"On:accepted"}) || st.CommandCount != 1 {
			t.Fatalf("node %s: BMC commands %v (count %d), want exactly one On", id, got, st.CommandCount)
		}
		if st.MaxInFlight != 1 || st.PowerState != simulator.PowerOn || st.PowerOnCount != 1 {
			t.Fatalf("node %s: machine %+v, want On once with one command in flight", id, st)
		}
	}
	t.Logf("%d requests to %d nodes: bursts started over %v, all answered after %v",
		stormNodes*stormRequests, stormNodes, stormSpread, fired.Round(time.Millisecond))
}

// stormNodeID is the id of the storm's node i.
func stormNodeID(i int) string { return fmt.Sprintf("s%03d", i) }
