package serializer_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/redisx"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// offNodes are n simulated nodes "n01", "n02", ..., all powered off, and
// their ids.
func offNodes(n int) ([]simNode, []string) {
	nodes, ids := make([]simNode, n), make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("n%02d", i+1)
		nodes[i] = simNode{ID: ids[i], Machine: simulator.MachineConfig{InitialPower: "Off"}}
	}
	return nodes, ids
}

// bulkOf starts the bulk requests of a replica until the test ends.
func bulkOf(t *testing.T, svc *serializer.Service) *serializer.Bulk {
	b := serializer.NewBulk(svc)
	ctx, cancel := context.WithCancel(context.Background())
	b.Start(ctx)
	t.Cleanup(func() { cancel(); b.Wait() })
	return b
}

func waitBulk(t *testing.T, b *serializer.Bulk, id string) serializer.BulkRecord {
	t.Helper()
	var rec serializer.BulkRecord
	testkit.WaitFor(t, 60*time.Second, "bulk task "+id+" to end", func() (bool, string) {
		var err error
		rec, err = b.Get(context.Background(), id)
		return err == nil && rec.Terminal(), fmt.Sprintf("%+v %v", rec, err)
	})
	return rec
}

// TestBulkOverTwoReplicas: a bulk On of twelve nodes and one unknown id,
// in batches of five, created on one replica of two: every node gets
// exactly one command, one at a time; the unknown one's part ends
// Exception naming the problem; the parent ends Exception with the counts,
// whichever replica drove it.
func TestBulkOverTwoReplicas(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			nodes, ids := offNodes(12)
			e := newEnv(t, target.New(t), nodes)
			a := bulkOf(t, e.addReplica("a", fastOptions(), nil))
			bulkOf(t, e.addReplica("b", fastOptions(), nil))
			ctx := context.Background()
			rec, err := a.Create(ctx, serializer.BulkRequest{Nodes: append(ids, "ghost", "n01"), Reset: schemas.ResetOn, BatchSize: 5})
			if err != nil {
				t.Fatal(err)
			}
			if rec.Total != 13 || rec.State != schemas.TaskStateNew && rec.State != schemas.TaskStateRunning {
				t.Fatalf("created %+v", rec)
			}
			rec = waitBulk(t, a, rec.ID)
			if rec.State != schemas.TaskStateException || rec.Completed != 12 || rec.Failed != 1 || rec.Done != 13 || rec.Batches != 3 || rec.Percent() != 100 {
				t.Errorf("ended %+v", rec)
			}
			for i, id := range ids {
				st := e.machine(id).Status()
				if accepted := len(st.Commands); accepted != 1 || st.MaxInFlight != 1 || e.machine(id).PowerState() != "On" {
					t.Errorf("%s: %d commands, max in flight %d, %s", id, accepted, st.MaxInFlight, e.machine(id).PowerState())
				}
				sub, err := a.Sub(ctx, rec.ID, id)
				if err != nil || sub.State != schemas.TaskStateCompleted || sub.Batch != i/5 || sub.Record == nil || sub.Record.ID != sub.Task {
					t.Errorf("sub-task %s: %+v %v", id, sub, err)
				}
			}
			ghost, err := a.Sub(ctx, rec.ID, "ghost")
			if err != nil || ghost.State != schemas.TaskStateException || !strings.Contains(ghost.Reason, "not managed") {
				t.Errorf("unknown node's part: %+v %v", ghost, err)
			}
			if _, err := a.Sub(ctx, rec.ID, "n99"); err != serializer.ErrBulkNotFound {
				t.Errorf("a node outside the request: %v", err)
			}
			if res, err := a.Cancel(ctx, rec.ID); err != nil || res != serializer.BulkCancelFinished {
				t.Errorf("cancel of an ended task: %v %v", res, err)
			}
		})
	}
}

// TestBulkCoalescesAndCancels: a bulk request's node action goes through
// the node's slots like any Reset: an identical running action is joined
// (no second command), and a DELETE between batches ends the later
// batch's parts Cancelled without any command.
func TestBulkCoalescesAndCancels(t *testing.T) {
	e := newEnv(t, testkit.MiniRedis(t), []simNode{
		{ID: "n1", Machine: simulator.MachineConfig{InitialPower: "Off", DelayMin: 300 * time.Millisecond, DelayMax: 300 * time.Millisecond}},
		{ID: "n2", Machine: simulator.MachineConfig{InitialPower: "Off"}},
	})
	svc := e.addReplica("a", fastOptions(), nil)
	b := bulkOf(t, svc)
	ctx := context.Background()
	single, err := svc.Reset(ctx, "n1", schemas.ResetOn, "test")
	if err != nil {
		t.Fatal(err)
	}
	rec, err := b.Create(ctx, serializer.BulkRequest{Nodes: []string{"n1", "n2"}, Reset: schemas.ResetOn, BatchSize: 1, Delay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "the first batch to end", func() (bool, string) {
		r, _ := b.Get(ctx, rec.ID)
		return r.Done == 1, fmt.Sprintf("%+v", r)
	})
	sub, _ := b.Sub(ctx, rec.ID, "n1")
	if sub.Outcome != serializer.Coalesced || sub.Task != single.Task || sub.State != schemas.TaskStateCompleted {
		t.Errorf("n1's part did not join the running On: %+v (single %s)", sub, single.Task)
	}
	if res, err := b.Cancel(ctx, rec.ID); err != nil || res != serializer.BulkCancelled {
		t.Fatalf("cancel: %v %v", res, err)
	}
	if res, _ := b.Cancel(ctx, rec.ID); res != serializer.BulkCancelAlready && res != serializer.BulkCancelFinished {
		t.Errorf("second cancel: %v", res)
	}
	rec = waitBulk(t, b, rec.ID)
	if rec.State != schemas.TaskStateCancelled || rec.Cancelled != 1 || rec.Completed != 1 {
		t.Errorf("ended %+v", rec)
	}
	if sub, _ := b.Sub(ctx, rec.ID, "n2"); sub.State != schemas.TaskStateCancelled || sub.Task != "" {
		t.Errorf("n2's part: %+v", sub)
	}
	if st := e.machine("n1").Status(); st.CommandCount != 1 {
		t.Errorf("n1 got %d commands, want 1 (the bulk On joined the running one)", st.CommandCount)
	}
	if st := e.machine("n2").Status(); st.CommandCount != 0 {
		t.Errorf("n2 got %d commands after the cancel", st.CommandCount)
	}
}

// TestBulkProgressWithinABatch: a batch's parts are recorded while it is
// still being admitted: one node's admission is held, and the parent
// counts the other nodes' ends meanwhile (before, nothing counted until the
// batch's last admission had answered: at 10,000 nodes in one batch the
// parent stood at 0 % for most of the run). Once the held admission
// answers, the parent completes.
func TestBulkProgressWithinABatch(t *testing.T) {
	nodes, ids := offNodes(6)
	rdb := testkit.MiniRedis(t)
	h := newHoldCalls(func(cmd redis.Cmder) bool {
		if n := cmd.Name(); n == "evalsha" || n == "eval" {
			return slices.Contains(cmd.Args(), any("fg:node:{n06}:slots"))
		}
		return false
	})
	h.armed.Store(true)
	rdb.AddHook(h)
	e := newEnv(t, rdb, nodes)
	b := bulkOf(t, e.addReplica("a", fastOptions(), nil))
	released := false
	release := func() {
		if !released {
			released = true
			close(h.release)
		}
	}
	t.Cleanup(release) // registered last, so run first: before the replica closes
	ctx := context.Background()
	rec, err := b.Create(ctx, serializer.BulkRequest{Nodes: ids, Reset: schemas.ResetOn})
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "the five other nodes' ends to count", func() (bool, string) {
		r, err := b.Get(ctx, rec.ID)
		return err == nil && r.Done == 5, fmt.Sprintf("%+v %v", r, err)
	})
	if h.holding.Load() == 0 {
		t.Fatal("n06's admission is no longer held")
	}
	if st := e.machine("n06").Status(); st.CommandCount != 0 {
		t.Errorf("n06 got %d commands while its admission was held", st.CommandCount)
	}
	release()
	if rec = waitBulk(t, b, rec.ID); rec.State != schemas.TaskStateCompleted || rec.Completed != len(ids) {
		t.Errorf("ended %+v", rec)
	}
}

// TestInrushSchedule: reservations of the power-on limiter are spaced by
// 1/rate on the Redis server's clock, whoever takes them.
func TestInrushSchedule(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			rdb := target.New(t)
			a := serializer.NewInrush(rdb, nil, 10)
			b := serializer.NewInrush(rdb, redisx.Plain(rdb), 10)
			if serializer.NewInrush(rdb, nil, 0) != nil {
				t.Fatal("rate 0 is no limiter")
			}
			ctx := context.Background()
			start := time.Now()
			var waits []time.Duration
			for i := 0; i < 6; i++ {
				l := a
				if i%2 == 1 {
					l = b
				}
				w, err := l.Reserve(ctx)
				if err != nil {
					t.Fatal(err)
				}
				waits = append(waits, w+time.Since(start))
			}
			// each turn is 100 ms after the previous one; time spent in the
			// calls themselves is added back, so the slack is the clock's
			for i := 1; i < len(waits); i++ {
				if d := waits[i] - waits[i-1]; d < 95*time.Millisecond || d > 150*time.Millisecond {
					t.Errorf("turns %d and %d are %s apart, want 100 ms: %v", i, i+1, d, waits)
				}
			}
			backlog, err := a.Backlog(ctx)
			if err != nil || backlog < 450*time.Millisecond || backlog > 650*time.Millisecond {
				t.Errorf("backlog %s (%v), want about 600 ms minus the time taken", backlog, err)
			}
		})
	}
}

// TestBulkResumesAClaimedBatch: a driver died after claiming a batch: one
// node's admission had happened (its task, named at the claim, exists),
// another's had not, a third was never claimed. The replica that takes the
// parent over follows the first node's task without admitting it again,
// and admits the other two: every node gets exactly one command.
func TestBulkResumesAClaimedBatch(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	e := newEnv(t, rdb, []simNode{
		{ID: "n1", Machine: simulator.MachineConfig{InitialPower: "Off"}},
		{ID: "n2", Machine: simulator.MachineConfig{InitialPower: "Off"}},
		{ID: "n3", Machine: simulator.MachineConfig{InitialPower: "Off"}},
	})
	svc := e.addReplica("b", fastOptions(), nil)
	ctx := context.Background()
	admitted, err := svc.Reset(ctx, "n1", schemas.ResetOn, "the dead driver's admission")
	if err != nil || admitted.Outcome != serializer.Started {
		t.Fatalf("admission: %+v %v", admitted, err)
	}
	// the dead driver's parent, as it left it in Redis
	const id = "bulk-dead1"
	p := "fg:bulk:{" + id + "}:"
	if _, err := rdb.TxPipelined(ctx, func(pp redis.Pipeliner) error {
		pp.HSet(ctx, p+"meta", "type", "On", "batch", 0, "delay", 0, "total", 3, "created", time.Now().UnixMilli(),
			"start", time.Now().UnixMilli(), "state", "Running", "done", 0, "batches", 1)
		pp.RPush(ctx, p+"nodes", "n1", "n2", "n3")
		pp.HSet(ctx, p+"subs", "n1", "A|"+admitted.Task+"||||", "n2", "A|n2.never||||")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rdb.SAdd(ctx, "fg:bulks:active", id)
	rdb.ZAdd(ctx, "fg:bulks", redis.Z{Score: float64(time.Now().UnixMilli()), Member: id})
	start := time.Now()
	b := bulkOf(t, svc)
	rec := waitBulk(t, b, id)
	if rec.State != schemas.TaskStateCompleted || rec.Completed != 3 {
		t.Fatalf("ended %+v", rec)
	}
	// The ends are learnt from the nodes' notifications, not from the
	// full re-read every 15 s that makes up for a lost one.
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the parent ended %s after the take-over: a node's end was not noticed when it happened", took)
	}
	if s, _ := b.Sub(ctx, id, "n1"); s.Task != admitted.Task {
		t.Errorf("n1 follows %s, want the task its admission created, %s", s.Task, admitted.Task)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if st := e.machine(n).Status(); st.CommandCount != 1 {
			t.Errorf("%s got %d commands, want exactly 1: %+v", n, st.CommandCount, st.Commands)
		}
	}
}
