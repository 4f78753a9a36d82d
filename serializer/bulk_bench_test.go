package serializer_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// BenchmarkBulkReset: one bulk request over benchBulkNodes simulated
// Redfish BMCs (instant) on a real redis-server, one replica, alternately
// On and ForceOff. It reports the time until the request is admitted
// (Create returns: the 202 of the API; admitted-s), until every part has
// ended (done-s), and the Redis round trips of the
// whole replica per node (trips/node), which stay constant as the fleet
// grows when the bookkeeping is O(nodes). FISHGATE_BENCH_NODES sets the
// number of nodes (default 1000).
//
//	go test -run='^$' -bench=BulkReset -benchtime=3x ./serializer
func BenchmarkBulkReset(b *testing.B) {
	benchBulkNodes := 1000
	if n, err := strconv.Atoi(os.Getenv("FISHGATE_BENCH_NODES")); err == nil && n > 0 {
		benchBulkNodes = n
	}
	var nodes []simNode
	var ids []string
	for i := 0; i < benchBulkNodes; i++ {
		id := fmt.Sprintf("n%05d", i)
		nodes = append(nodes, simNode{ID: id, Machine: simulator.MachineConfig{InitialPower: "Off"}})
		ids = append(ids, id)
	}
	rdb := testkit.RealRedis(b)
	trips := &benchTrips{}
	rdb.AddHook(trips)
	e := newEnv(b, rdb, nodes)
	o := fastOptions()
	o.LeaseTTL = 6 * time.Second
	svc := e.addReplica("a", o, nil)
	bk := serializer.NewBulk(svc)
	ctx, cancel := context.WithCancel(context.Background())
	bk.Start(ctx)
	b.Cleanup(func() { cancel(); bk.Wait() })
	// every node read once, as a running gateway has
	testkit.WaitFor(b, time.Minute+time.Duration(benchBulkNodes)*30*time.Millisecond, "every node read", func() (bool, string) {
		for _, id := range ids {
			if v, _ := svc.View(id); !v.CapsKnown {
				return false, id
			}
		}
		return true, ""
	})
	b.ResetTimer()
	var admitted, done time.Duration
	before := trips.n.Load()
	for i := 0; i < b.N; i++ {
		rt := schemas.ResetOn
		if i%2 == 1 {
			rt = schemas.ResetForceOff
		}
		start := time.Now()
		rec, err := bk.Create(ctx, serializer.BulkRequest{Nodes: ids, Reset: rt})
		if err != nil {
			b.Fatal(err)
		}
		adm := time.Since(start)
		for {
			r, err := bk.Get(ctx, rec.ID)
			if err != nil {
				b.Fatal(err)
			}
			if r.Terminal() {
				if r.Completed != benchBulkNodes {
					var why []string
					for _, id := range ids {
						if s, err := bk.Sub(ctx, rec.ID, id); err == nil && s.State != schemas.TaskStateCompleted && len(why) < 5 {
							why = append(why, id+": "+string(s.State)+" "+s.Reason)
						}
					}
					b.Fatalf("ended %+v: %v", r, why)
				}
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		admitted += adm
		done += time.Since(start)
	}
	b.ReportMetric(admitted.Seconds()/float64(b.N), "admitted-s")
	b.ReportMetric(done.Seconds()/float64(b.N), "done-s")
	b.ReportMetric(float64(trips.n.Load()-before)/float64(b.N*benchBulkNodes), "trips/node")
	for _, id := range ids {
		if st := e.machine(id).Status(); st.MaxInFlight > 1 {
			b.Fatalf("%s: %d commands in flight at once", id, st.MaxInFlight)
		}
	}
}
