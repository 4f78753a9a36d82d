package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/simulator"
)

// Bulk power (docs/architecture.md#bulk-power) with real `fishgate serve`
// replicas sharing a redis-server: batches and their delay seen in the
// simulator's command times, a DELETE of the parent mid-way, a node that
// refuses, the fleet-wide power-on limit across two replicas, and a parent
// whose driving replica is killed.

// configure edits the replica set's configuration: extra top-level YAML,
// and per-node options added to a node's entry ("n2": "policy: reject").
func (rs *replicaSet) configure(extra string, nodeOpts map[string]string) {
	b, err := os.ReadFile(rs.config)
	if err != nil {
		rs.t.Fatal(err)
	}
	s := string(b)
	for id, o := range nodeOpts {
		s = strings.Replace(s, "{id: "+id+", ", "{id: "+id+", "+o+", ", 1)
	}
	if err := os.WriteFile(rs.config, []byte(extra+s), 0o600); err != nil {
		rs.t.Fatal(err)
	}
}

func systemsJSON(ids ...string) string {
	var parts []string
	for _, id := range ids {
		parts = append(parts, `{"@odata.id":"/redfish/v1/Systems/`+id+`"}`)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func nodeIDs(n int) []string {
	var ids []string
	for i := 1; i <= n; i++ {
		ids = append(ids, fmt.Sprintf("n%d", i))
	}
	return ids
}

// bulkView is a parent task or a sub-task as the tests read it.
type bulkView struct {
	Id, TaskState, TaskStatus string
	PercentComplete           int
	SubTasks                  struct {
		ODataID string `json:"@odata.id"`
	}
	Oem struct {
		Fishgate struct {
			Done, Completed, Failed, Cancelled, BatchesBegun, Batch int
			Reason                                                  string
			NodeTask                                                struct {
				ODataID string `json:"@odata.id"`
			}
		}
	}
}

// get GETs path on the replica and decodes it, validating it against the
// DMTF schemas when v is set.
func (r *replica) get(t *testing.T, path string, v *testkit.SchemaValidator, out any) int {
	t.Helper()
	st, _, body := do(t, http.MethodGet, r.url+path, nil, adminHdr)
	if st == http.StatusOK && v != nil {
		if err := v.Validate(body); err != nil {
			t.Errorf("%s: schema: %v\n%s", path, err, body)
		}
	}
	if out != nil {
		json.Unmarshal(body, out)
	}
	return st
}

// post POSTs body and returns status, Location and the decoded answer.
func (r *replica) post(t *testing.T, path, body string) (int, string, map[string]any) {
	t.Helper()
	st, h, b := do(t, http.MethodPost, r.url+path, body, adminHdr)
	var m map[string]any
	json.Unmarshal(b, &m)
	loc := ""
	if h != nil {
		loc = h.Get("Location")
	}
	return st, loc, m
}

// bulkReset posts an Aggregate.Reset (agg set) or AggregationService.Reset
// and returns the parent task's path.
func (r *replica) bulkReset(t *testing.T, agg, body string) string {
	t.Helper()
	path := "/redfish/v1/AggregationService/Actions/AggregationService.Reset"
	if agg != "" {
		path = "/redfish/v1/AggregationService/Aggregates/" + agg + "/Actions/Aggregate.Reset"
	}
	st, loc, m := r.post(t, path, body)
	if st != http.StatusAccepted || !strings.Contains(loc, "/TaskMonitors/bulk-") {
		t.Fatalf("bulk reset: %d %q %v", st, loc, m)
	}
	return m["@odata.id"].(string)
}

// waitParent waits until the parent task at path has ended and returns it.
func (r *replica) waitParent(t *testing.T, path string, timeout time.Duration) bulkView {
	t.Helper()
	var p bulkView
	waitFor(t, timeout, "parent task "+path+" to end", func() (bool, string) {
		p = bulkView{}
		r.get(t, path, nil, &p)
		return isTerminalState(p.TaskState), fmt.Sprintf("%+v", p)
	})
	return p
}

// subTasks reads every sub-task of a parent (validated when v is set).
func (r *replica) subTasks(t *testing.T, parent bulkView, v *testkit.SchemaValidator) map[string]bulkView {
	t.Helper()
	var coll struct {
		Members []struct {
			ODataID string `json:"@odata.id"`
		}
	}
	if st := r.get(t, parent.SubTasks.ODataID, v, &coll); st != http.StatusOK {
		t.Fatalf("SubTasks %s: %d", parent.SubTasks.ODataID, st)
	}
	out := map[string]bulkView{}
	for _, m := range coll.Members {
		var s bulkView
		if st := r.get(t, m.ODataID, v, &s); st != http.StatusOK {
			t.Fatalf("sub-task %s: %d", m.ODataID, st)
		}
		out[s.Id] = s
	}
	return out
}

// onTimes are the times node's BMC accepted a power-on.
func onTimes(st simulator.Status) []time.Time {
	var out []time.Time
	for _, c := range st.Commands {
		if c.Action == "On" && c.Result == "accepted" {
			out = append(out, c.Time)
		}
	}
	return out
}

// TestBulkResetInBatches: two replicas; an Aggregate created on one is
// reset from the other in batches of 2 with 1 s between batches. Every
// node gets exactly one On, batch k+1's commands come at least the delay
// after the last of batch k, the parent and its six sub-tasks end
// Completed, and the Aggregate, parent, SubTasks and sub-tasks validate
// against the DMTF schemas.
func TestBulkResetInBatches(t *testing.T) {
	const n = 6
	rs := newReplicaSet(t, n, 50*time.Millisecond)
	a := rs.start(freeAddr(t))
	b := rs.start(freeAddr(t))
	v := testkit.Schemas(t)
	st, loc, m := a.post(t, "/redfish/v1/AggregationService/Aggregates", `{"Name":"rack","Elements":`+systemsJSON(nodeIDs(n)...)+`}`)
	if st != http.StatusCreated {
		t.Fatalf("create aggregate: %d %v", st, m)
	}
	if st := b.get(t, strings.TrimPrefix(loc, a.url), v, nil); st != http.StatusOK {
		t.Fatalf("aggregate on the other replica: %d", st)
	}
	parent := b.bulkReset(t, "rack", `{"ResetType":"On","BatchSize":2,"DelayBetweenBatchesInSeconds":1}`)
	p := a.waitParent(t, parent, 60*time.Second)
	a.get(t, parent, v, nil)
	if p.TaskState != "Completed" || p.PercentComplete != 100 || p.Oem.Fishgate.Completed != n || p.Oem.Fishgate.BatchesBegun != 3 {
		t.Errorf("parent %+v", p)
	}
	subs := a.subTasks(t, p, v)
	if len(subs) != n {
		t.Fatalf("%d sub-tasks, want %d", len(subs), n)
	}
	var batchFirst, batchLast [3]time.Time
	for i, id := range nodeIDs(n) {
		if s := subs[id]; s.TaskState != "Completed" || s.Oem.Fishgate.Batch != i/2+1 || s.Oem.Fishgate.NodeTask.ODataID == "" {
			t.Errorf("sub-task %s: %+v", id, s)
		}
		sn, _ := rs.fleet.Node(id)
		ms := sn.Machine().Status()
		ons := onTimes(ms)
		if len(ons) != 1 || ms.CommandCount != 1 || ms.MaxInFlight > 1 {
			t.Fatalf("node %s: %d On commands, %d in all, max in flight %d, want exactly one: %+v", id, len(ons), ms.CommandCount, ms.MaxInFlight, ms.Commands)
		}
		k := i / 2
		if batchFirst[k].IsZero() || ons[0].Before(batchFirst[k]) {
			batchFirst[k] = ons[0]
		}
		if ons[0].After(batchLast[k]) {
			batchLast[k] = ons[0]
		}
	}
	for k := 1; k < 3; k++ {
		gap := batchFirst[k].Sub(batchLast[k-1])
		t.Logf("batch %d began %s after the last command of batch %d", k+1, gap.Round(time.Millisecond), k)
		if gap < time.Second {
			t.Errorf("batch %d began %s after batch %d's last command, want at least the 1 s delay", k+1, gap, k)
		}
	}
}

// TestBulkResetCancelMidway: a DELETE of the parent while it waits between
// batches ends the nodes whose batch had not come Cancelled at once; they
// get no command, the first batch's nodes stay Completed and the parent
// ends Cancelled.
func TestBulkResetCancelMidway(t *testing.T) {
	const n = 6
	rs := newReplicaSet(t, n, 50*time.Millisecond)
	a := rs.start(freeAddr(t))
	b := rs.start(freeAddr(t))
	parent := a.bulkReset(t, "", `{"ResetType":"On","BatchSize":2,"DelayBetweenBatchesInSeconds":30,"TargetURIs":`+systemsJSON(nodeIDs(n)...)+`}`)
	waitFor(t, 30*time.Second, "the first batch to finish", func() (bool, string) {
		var p bulkView
		b.get(t, parent, nil, &p)
		return p.Oem.Fishgate.Done == 2, fmt.Sprintf("%+v", p)
	})
	st, _, body := do(t, http.MethodDelete, b.url+parent, nil, adminHdr)
	if st != http.StatusOK {
		t.Fatalf("DELETE: %d %s", st, body)
	}
	p := a.waitParent(t, parent, 20*time.Second)
	if p.TaskState != "Cancelled" || p.Oem.Fishgate.Completed != 2 || p.Oem.Fishgate.Cancelled != n-2 {
		t.Errorf("parent %+v", p)
	}
	subs := a.subTasks(t, p, nil)
	for i, id := range nodeIDs(n) {
		s := subs[id]
		sn, _ := rs.fleet.Node(id)
		cmds := sn.Machine().Status().CommandCount
		if i < 2 {
			if s.TaskState != "Completed" || cmds != 1 {
				t.Errorf("%s (first batch): %s, %d commands", id, s.TaskState, cmds)
			}
			continue
		}
		if s.TaskState != "Cancelled" || cmds != 0 || !strings.Contains(s.Oem.Fishgate.Reason, "cancelled before its batch") {
			t.Errorf("%s (cancelled batch): %+v, %d commands", id, s, cmds)
		}
	}
	if st, _, _ := do(t, http.MethodDelete, a.url+parent, nil, adminHdr); st != http.StatusConflict {
		t.Errorf("DELETE of an ended parent: %d, want 409", st)
	}
}

// TestBulkResetRefusedNode: a node whose policy refuses a different action
// while busy (reject) refuses its part; its sub-task ends Exception saying
// why, the others complete, and the parent ends Exception.
func TestBulkResetRefusedNode(t *testing.T) {
	rs := newReplicaSet(t, 3, 1500*time.Millisecond)
	rs.configure("", map[string]string{"n2": "policy: reject"})
	a := rs.start(freeAddr(t))
	busy := a.reset(t, "n2", "On") // runs 1.5 s
	parent := a.bulkReset(t, "", `{"ResetType":"ForceOff","TargetURIs":`+systemsJSON("n1", "n2", "n3")+`}`)
	p := a.waitParent(t, parent, 30*time.Second)
	if p.TaskState != "Exception" || p.Oem.Fishgate.Failed != 1 || p.Oem.Fishgate.Completed != 2 {
		t.Errorf("parent %+v", p)
	}
	subs := a.subTasks(t, p, testkit.Schemas(t))
	if s := subs["n2"]; s.TaskState != "Exception" || !strings.Contains(s.Oem.Fishgate.Reason, "refused") || !strings.Contains(s.Oem.Fishgate.Reason, "busy") {
		t.Errorf("refused node's sub-task: %+v", s)
	}
	for _, id := range []string{"n1", "n3"} {
		if s := subs[id]; s.TaskState != "Completed" {
			t.Errorf("%s: %+v", id, s)
		}
	}
	waitFor(t, 20*time.Second, "the busy node's own task to end", func() (bool, string) {
		tv, _ := a.task(t, busy)
		return tv.TaskState == "Completed", tv.TaskState
	})
}

// TestPowerOnLimitAcrossReplicas: with max_power_on_per_second: 2, On
// requests for six nodes, three single Resets through one replica and a
// bulk request for three through the other, reach the BMCs at least about
// half a second apart, fleet-wide.
func TestPowerOnLimitAcrossReplicas(t *testing.T) {
	const n = 6
	rs := newReplicaSet(t, n, 10*time.Millisecond)
	rs.configure("max_power_on_per_second: 2\n", nil)
	a := rs.start(freeAddr(t))
	b := rs.start(freeAddr(t))
	for _, id := range []string{"n1", "n2", "n3"} {
		a.reset(t, id, "On")
	}
	parent := b.bulkReset(t, "", `{"ResetType":"On","TargetURIs":`+systemsJSON("n4", "n5", "n6")+`}`)
	if p := b.waitParent(t, parent, 60*time.Second); p.TaskState != "Completed" {
		t.Fatalf("parent %+v", p)
	}
	var all []time.Time
	for _, id := range nodeIDs(n) {
		sn, _ := rs.fleet.Node(id)
		m := sn.Machine()
		waitMachineState(t, m, "On")
		ons := onTimes(m.Status())
		if len(ons) != 1 {
			t.Fatalf("%s: %d On commands", id, len(ons))
		}
		all = append(all, ons[0])
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Before(all[j]) })
	// 500 ms apart by the schedule; the slack covers the scheduling of
	// two processes on a loaded machine (a send is late, the next on
	// time). Unbounded, the six would come within a few milliseconds.
	for i := 1; i < len(all); i++ {
		if gap := all[i].Sub(all[i-1]); gap < 250*time.Millisecond {
			t.Errorf("power-ons %d and %d only %s apart (limit 2 per second): %v", i, i+1, gap, all)
		}
	}
	if span := all[len(all)-1].Sub(all[0]); span < 2200*time.Millisecond {
		t.Errorf("six power-ons within %s, want about 2.5 s at 2 per second", span)
	}
}

// TestBulkParentSurvivesItsReplica: the replica driving a parent task is
// killed between batches; the other replica takes the parent over (its
// lease) and drives it to Completed, every node getting exactly one On.
func TestBulkParentSurvivesItsReplica(t *testing.T) {
	const n = 4
	rs := newReplicaSet(t, n, 50*time.Millisecond)
	a := rs.start(freeAddr(t))
	b := rs.start(freeAddr(t))
	parent := a.bulkReset(t, "", `{"ResetType":"On","BatchSize":1,"DelayBetweenBatchesInSeconds":2,"TargetURIs":`+systemsJSON(nodeIDs(n)...)+`}`)
	id := parent[strings.LastIndexByte(parent, '/')+1:]
	waitFor(t, 30*time.Second, "the first batch to finish", func() (bool, string) {
		var p bulkView
		a.get(t, parent, nil, &p)
		return p.Oem.Fishgate.Done >= 1, fmt.Sprintf("%+v", p)
	})
	c := redisClient(rs.redis)
	defer c.Close()
	holder, _ := c.Get(t.Context(), "fg:bulk:{"+id+"}:lease").Result()
	victim, survivor := a, b
	if strings.Contains(holder, fmt.Sprintf("-%d-", b.cmd.Process.Pid)) {
		victim, survivor = b, a
	}
	victim.kill(t)
	p := survivor.waitParent(t, parent, 60*time.Second)
	if p.TaskState != "Completed" || p.Oem.Fishgate.Completed != n {
		t.Errorf("parent after take-over: %+v", p)
	}
	for _, nid := range nodeIDs(n) {
		sn, _ := rs.fleet.Node(nid)
		if ons := onTimes(sn.Machine().Status()); len(ons) != 1 {
			t.Errorf("%s: %d On commands, want exactly 1", nid, len(ons))
		}
	}
	if now, _ := c.Get(t.Context(), "fg:bulk:{"+id+"}:lease").Result(); now != "" && strings.Contains(now, fmt.Sprintf("-%d-", victim.cmd.Process.Pid)) {
		t.Errorf("the killed replica still holds the parent's lease: %s", now)
	}
}

// TestBulkSchemaWalk: after an Aggregate.Reset, a crawl of the aggregate
// view from the service root reaches the AggregationService, the
// Aggregates, the parent task, its SubTasks and every sub-task, and each
// validates against its DMTF schema (walk); the per-node view shows none
// of them.
func TestBulkSchemaWalk(t *testing.T) {
	v := validator(t)
	d := startDemo(t, 3)
	auth := basic(d)
	st, _, body := do(t, http.MethodPost, d.URL()+"/redfish/v1/AggregationService/Aggregates",
		`{"Name":"rack","Elements":`+systemsJSON("node01", "node02", "node03")+`}`, auth)
	if st != http.StatusCreated {
		t.Fatalf("create aggregate: %d %s", st, body)
	}
	st, _, body = do(t, http.MethodPost, d.URL()+"/redfish/v1/AggregationService/Aggregates/rack/Actions/Aggregate.Reset",
		`{"ResetType":"On","BatchSize":2}`, auth)
	var parent struct {
		ID string `json:"@odata.id"`
	}
	if json.Unmarshal(body, &parent); st != http.StatusAccepted || parent.ID == "" {
		t.Fatalf("reset: %d %s", st, body)
	}
	waitFor(t, 30*time.Second, "the parent task to end", func() (bool, string) {
		m := getJSON(t, d, d.URL()+parent.ID)
		return m["TaskState"] == "Completed", fmt.Sprint(m["TaskState"])
	})
	c := walk(t, v, d.URL(), "/redfish/v1", "/redfish/v1", auth)
	requireSeen(t, "aggregate view", c, map[string]int{
		"AggregationService": 1, "AggregateCollection": 1, "Aggregate": 1,
		"TaskCollection": 2,         // the Tasks and the parent's SubTasks
		"Task":           1 + 3 + 3, // the parent, its sub-tasks, the node tasks
	})
	pn := walk(t, v, d.URL(), "/bmc/node02/redfish/v1", "/bmc/node02/redfish/v1", auth)
	for _, kind := range []string{"AggregationService", "AggregateCollection", "Aggregate"} {
		if got := pn.byType[kind]; len(got) != 0 {
			t.Errorf("the per-node view shows %s %v", kind, got)
		}
	}
}
