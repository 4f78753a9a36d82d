package redfish_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/fronts/redfish"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/serializer"
)

// bulkEnv is n simulated nodes with bulk power enabled.
func bulkEnv(t *testing.T, rdb redis.UniversalClient, n int) *env {
	t.Helper()
	return newEnvWith(t, rdb, time.Minute, envConfig{nodes: n, tune: func(o *redfish.Options) {
		b := serializer.NewBulk(o.Nodes.(*serializer.Service))
		ctx, cancel := context.WithCancel(context.Background())
		b.Start(ctx)
		t.Cleanup(func() { cancel(); b.Wait() })
		o.Bulk = b
	}})
}

// schemaCheck validates answers against the DMTF schemas, failing t.
func schemaCheck(t *testing.T) func(response) {
	v := testkit.Schemas(t)
	return func(r response) {
		t.Helper()
		if err := v.Validate(r.Body); err != nil {
			t.Errorf("schema: %v\n%s", err, r.Body)
		}
	}
}

func systemLinks(ids ...string) string {
	var parts []string
	for _, id := range ids {
		parts = append(parts, `{"@odata.id":"/redfish/v1/Systems/`+id+`"}`)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// wantError checks an error answer's status and first MessageId.
func wantError(t *testing.T, what string, r response, status int, msg string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.Status, status, r.Body)
	}
	if got := r.messageID(t); !strings.HasSuffix(got, "."+msg) {
		t.Errorf("%s: MessageId %s, want Base.*.%s", what, got, msg)
	}
}

// TestAggregates: an Aggregate is created with Elements that name Systems,
// read, changed by AddElements and RemoveElements, shared through Redis
// (a second replica sees it) and deleted; bad Elements, a duplicate Name and
// a read-only account are refused with the right Base message; every answer
// validates against the DMTF schemas.
func TestAggregates(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			e := bulkEnv(t, target.New(t), 3)
			valid := schemaCheck(t)
			const coll = "/redfish/v1/AggregationService/Aggregates"
			r := e.do("POST", coll, `{"Name":"rack1","Elements":`+systemLinks("node2", "node1", "node1")+`}`)
			if r.Status != http.StatusCreated || r.Header.Get("Location") != coll+"/rack1" {
				t.Fatalf("create: %d %v %s", r.Status, r.Header, r.Body)
			}
			valid(r)
			if got := r.json(t)["ElementsCount"]; got != 2.0 {
				t.Errorf("ElementsCount %v, want 2 (node1 once)", got)
			}
			wantError(t, "duplicate", e.do("POST", coll, `{"Name":"rack1","Elements":[]}`), http.StatusConflict, "ResourceAlreadyExists")
			wantError(t, "unknown System", e.do("POST", coll, `{"Elements":`+systemLinks("node1", "nosuch")+`}`), http.StatusBadRequest, "ResourceMissingAtURI")
			wantError(t, "not a System", e.do("POST", coll, `{"Elements":[{"@odata.id":"/redfish/v1/Managers/node1"}]}`), http.StatusBadRequest, "PropertyValueIncorrect")
			wantError(t, "no Elements", e.do("POST", coll, `{"Name":"x"}`), http.StatusBadRequest, "PropertyMissing")
			wantError(t, "bad Name", e.do("POST", coll, `{"Name":"a b/c","Elements":[]}`), http.StatusBadRequest, "PropertyValueFormatError")
			wantError(t, "read-only create", e.do("POST", coll, `{"Elements":[]}`, basic(roUser, roPass)), http.StatusForbidden, "InsufficientPrivilege")

			r = e.do("GET", coll, "", basic(roUser, roPass))
			if r.Status != http.StatusOK || !strings.Contains(string(r.Body), coll+"/rack1") {
				t.Fatalf("collection: %d %s", r.Status, r.Body)
			}
			valid(r)
			act := coll + "/rack1/Actions/Aggregate."
			r = e.do("POST", act+"AddElements", `{"Elements":`+systemLinks("node3")+`}`)
			if r.Status != http.StatusOK || r.json(t)["ElementsCount"] != 3.0 {
				t.Fatalf("AddElements: %d %s", r.Status, r.Body)
			}
			wantError(t, "add unknown", e.do("POST", act+"AddElements", `{"Elements":`+systemLinks("nosuch")+`}`), http.StatusBadRequest, "ResourceMissingAtURI")
			wantError(t, "add nothing", e.do("POST", act+"AddElements", `{}`), http.StatusBadRequest, "ActionParameterMissing")
			wantError(t, "remove a stranger", e.do("POST", act+"RemoveElements", `{"Elements":`+systemLinks("nosuch")+`}`), http.StatusBadRequest, "ActionParameterValueError")
			if r = e.do("POST", act+"RemoveElements", `{"Elements":`+systemLinks("node1")+`}`); r.Status != http.StatusOK {
				t.Fatalf("RemoveElements: %d %s", r.Status, r.Body)
			}
			// another replica on the same Redis sees the change
			e2 := e.secondReplica([]redfish.Account{{User: roUser, Password: roPass, Role: redfish.RoleReadOnly}}, redfish.AccountPolicy{})
			r = e2.do("GET", coll+"/rack1", "", basic(roUser, roPass))
			valid(r)
			els := fmt.Sprint(r.json(t)["Elements"])
			if r.Status != http.StatusOK || strings.Contains(els, "node1") || !strings.Contains(els, "node2") || !strings.Contains(els, "node3") {
				t.Fatalf("second replica: %d %s", r.Status, r.Body)
			}
			if r = e.do("DELETE", coll+"/rack1", ""); r.Status != http.StatusNoContent {
				t.Fatalf("delete: %d %s", r.Status, r.Body)
			}
			wantError(t, "deleted", e2.do("GET", coll+"/rack1", "", basic(roUser, roPass)), http.StatusNotFound, "ResourceNotFound")
			wantError(t, "per-node view", e.do("GET", "/bmc/node1"+coll, ""), http.StatusNotFound, "ResourceMissingAtURI")
			// the service root, the OData service document and $metadata
			// name the AggregationService in the aggregate view only
			for _, p := range []string{"/redfish/v1", "/redfish/v1/odata"} {
				if b := string(e.do("GET", p, "").Body); !strings.Contains(b, `"/redfish/v1/AggregationService"`) {
					t.Errorf("%s does not link the AggregationService: %s", p, b)
				}
				if b := string(e.do("GET", "/bmc/node1"+p, "").Body); strings.Contains(b, "AggregationService") {
					t.Errorf("/bmc/node1%s links the AggregationService: %s", p, b)
				}
			}
			if md := string(e.do("GET", "/redfish/v1/$metadata", "").Body); !strings.Contains(md, `Namespace="Aggregate.v1_0_3"`) || !strings.Contains(md, `Namespace="AggregationService.v1_0_3"`) {
				t.Errorf("$metadata lacks the aggregation schemas: %s", md)
			}
		})
	}
}

// TestBulkResetBadInputs: each bad parameter of the bulk Reset actions is
// a 400 naming it, and nothing is created.
func TestBulkResetBadInputs(t *testing.T) {
	e := bulkEnv(t, testkit.MiniRedis(t), 2)
	const svc = "/redfish/v1/AggregationService/Actions/AggregationService.Reset"
	two := systemLinks("node1", "node2")
	for _, c := range []struct{ what, body, msg string }{
		{"no TargetURIs", `{"ResetType":"On"}`, "ActionParameterMissing"},
		{"empty TargetURIs", `{"ResetType":"On","TargetURIs":[]}`, "ActionParameterValueError"},
		{"unknown System", `{"ResetType":"On","TargetURIs":` + systemLinks("node1", "nosuch") + `}`, "ResourceMissingAtURI"},
		{"not a System", `{"ResetType":"On","TargetURIs":[{"@odata.id":"/redfish/v1/Chassis/node1"}]}`, "ActionParameterValueError"},
		{"BatchSize 0", `{"ResetType":"On","BatchSize":0,"TargetURIs":` + two + `}`, "ActionParameterValueOutOfRange"},
		{"BatchSize -3", `{"ResetType":"On","BatchSize":-3,"TargetURIs":` + two + `}`, "ActionParameterValueOutOfRange"},
		{"negative delay", `{"ResetType":"On","DelayBetweenBatchesInSeconds":-1,"TargetURIs":` + two + `}`, "ActionParameterValueOutOfRange"},
		{"bad ResetType", `{"ResetType":"Explode","TargetURIs":` + two + `}`, "ActionParameterValueNotInList"},
		{"no ResetType", `{"TargetURIs":` + two + `}`, "ActionParameterMissing"},
		{"BatchSize a string", `{"ResetType":"On","BatchSize":"5","TargetURIs":` + two + `}`, "ActionParameterValueTypeError"},
		{"unknown parameter", `{"ResetType":"On","Batch":5,"TargetURIs":` + two + `}`, "ActionParameterUnknown"},
	} {
		wantError(t, c.what, e.do("POST", svc, c.body), http.StatusBadRequest, c.msg)
	}
	wantError(t, "read-only", e.do("POST", svc, `{"ResetType":"On","TargetURIs":`+two+`}`, basic(roUser, roPass)), http.StatusForbidden, "InsufficientPrivilege")
	e.do("POST", "/redfish/v1/AggregationService/Aggregates", `{"Name":"empty","Elements":[]}`)
	const agg = "/redfish/v1/AggregationService/Aggregates/"
	wantError(t, "empty aggregate", e.do("POST", agg+"empty/Actions/Aggregate.Reset", `{"ResetType":"On"}`), http.StatusBadRequest, "ActionParameterValueError")
	wantError(t, "unknown aggregate", e.do("POST", agg+"nosuch/Actions/Aggregate.Reset", `{"ResetType":"On"}`), http.StatusNotFound, "ResourceNotFound")
	wantError(t, "aggregate BatchSize 0", e.do("POST", agg+"empty/Actions/Aggregate.Reset", `{"ResetType":"On","BatchSize":0}`), http.StatusBadRequest, "ActionParameterValueOutOfRange")
	r := e.do("GET", "/redfish/v1/TaskService/Tasks", "")
	if strings.Contains(string(r.Body), serializer.BulkPrefix) {
		t.Errorf("a refused request left a task: %s", r.Body)
	}
}

// TestBulkResetCompletes: an Aggregate.Reset of four nodes in batches of
// two answers 202 with a task monitor; the parent task and its four
// sub-tasks end Completed, every node is On, and the parent, its SubTasks
// collection and each sub-task validate against the DMTF schemas.
func TestBulkResetCompletes(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			e := bulkEnv(t, target.New(t), 4)
			valid := schemaCheck(t)
			r := e.do("POST", "/redfish/v1/AggregationService/Aggregates", `{"Name":"all","Elements":`+systemLinks("node1", "node2", "node3", "node4")+`}`)
			if r.Status != http.StatusCreated {
				t.Fatalf("create: %d %s", r.Status, r.Body)
			}
			r = e.do("POST", "/redfish/v1/AggregationService/Aggregates/all/Actions/Aggregate.Reset", `{"ResetType":"On","BatchSize":2}`)
			if r.Status != http.StatusAccepted {
				t.Fatalf("reset: %d %s", r.Status, r.Body)
			}
			valid(r)
			monitor := r.Header.Get("Location")
			task := r.json(t)["@odata.id"].(string)
			if !strings.HasPrefix(monitor, "/redfish/v1/TaskService/TaskMonitors/bulk-") {
				t.Fatalf("Location %q", monitor)
			}
			testkit.WaitFor(t, 30*time.Second, "parent task Completed", func() (bool, string) {
				r := e.do("GET", monitor, "")
				return r.Status == http.StatusOK && r.json(t)["TaskState"] == "Completed", string(r.Body)
			})
			r = e.do("GET", task, "")
			valid(r)
			p := r.json(t)
			if p["PercentComplete"] != 100.0 || p["TaskStatus"] != "OK" || r.Header.Get("Allow") != "GET" {
				t.Errorf("parent: %s (Allow %q)", r.Body, r.Header.Get("Allow"))
			}
			if fg := p["Oem"].(map[string]any)["Fishgate"].(map[string]any); fg["BatchesBegun"] != 2.0 || fg["Completed"] != 4.0 {
				t.Errorf("parent counts: %v", fg)
			}
			subs := p["SubTasks"].(map[string]any)["@odata.id"].(string)
			r = e.do("GET", subs, "")
			valid(r)
			members := r.json(t)["Members"].([]any)
			if len(members) != 4 {
				t.Fatalf("SubTasks: %s", r.Body)
			}
			for i, m := range members {
				r := e.do("GET", m.(map[string]any)["@odata.id"].(string), "")
				valid(r)
				st := r.json(t)
				if st["TaskState"] != "Completed" || st["Oem"].(map[string]any)["Fishgate"].(map[string]any)["Batch"] != float64(i/2+1) {
					t.Errorf("sub-task %d: %s", i, r.Body)
				}
				if _, has := st["SubTasks"]; has {
					t.Errorf("a sub-task has SubTasks: %s", r.Body)
				}
			}
			for i := 1; i <= 4; i++ {
				e.waitPower(fmt.Sprintf("node%d", i), "On")
			}
			r = e.do("GET", "/redfish/v1/TaskService/Tasks", "")
			if !strings.Contains(string(r.Body), task) {
				t.Errorf("Tasks collection does not list %s: %s", task, r.Body)
			}
			wantError(t, "delete finished", e.do("DELETE", task, ""), http.StatusConflict, "ResourceCannotBeDeleted")
			wantError(t, "parent in a node's view", e.do("GET", "/bmc/node1"+task, ""), http.StatusNotFound, "ResourceNotFound")
		})
	}
}

// TestSubTasksPaged: a parent's SubTasks come 1000 at a time in batch
// order, Members@odata.count counting them all and
// Members@odata.nextLink naming the next page; a sub-task of a node the
// gateway does not manage ends Exception saying so.
func TestSubTasksPaged(t *testing.T) {
	var bulk *serializer.Bulk
	e := newEnvWith(t, testkit.MiniRedis(t), time.Minute, envConfig{nodes: 1, tune: func(o *redfish.Options) {
		bulk = serializer.NewBulk(o.Nodes.(*serializer.Service))
		ctx, cancel := context.WithCancel(context.Background())
		bulk.Start(ctx)
		t.Cleanup(func() { cancel(); bulk.Wait() })
		o.Bulk = bulk
	}})
	var ids []string
	for i := 0; i < 2500; i++ {
		ids = append(ids, fmt.Sprintf("gone%04d", i))
	}
	rec, err := bulk.Create(context.Background(), serializer.BulkRequest{Nodes: ids, Reset: "On"})
	if err != nil {
		t.Fatal(err)
	}
	task := "/redfish/v1/TaskService/Tasks/" + rec.ID
	testkit.WaitFor(t, 30*time.Second, "the parent to end", func() (bool, string) {
		r := e.do("GET", task, "")
		return r.json(t)["TaskState"] == "Exception", string(r.Body)
	})
	valid := schemaCheck(t)
	next, seen := task+"/SubTasks", 0
	for pages := 0; next != ""; pages++ {
		if pages > 3 {
			t.Fatalf("more than 3 pages")
		}
		r := e.do("GET", next, "")
		valid(r)
		m := r.json(t)
		members := m["Members"].([]any)
		if m["Members@odata.count"] != 2500.0 {
			t.Fatalf("page %d: count %v", pages, m["Members@odata.count"])
		}
		if first := members[0].(map[string]any)["@odata.id"]; first != task+"/SubTasks/"+ids[seen] {
			t.Fatalf("page %d starts with %v, want %s", pages, first, ids[seen])
		}
		seen += len(members)
		next, _ = m["Members@odata.nextLink"].(string)
	}
	if seen != 2500 {
		t.Errorf("saw %d sub-tasks over the pages, want 2500", seen)
	}
	r := e.do("GET", task+"/SubTasks/gone0042", "")
	valid(r)
	if st := r.json(t); st["TaskState"] != "Exception" || !strings.Contains(fmt.Sprint(st["Oem"]), "not managed") {
		t.Errorf("sub-task of an unknown node: %s", r.Body)
	}
	wantError(t, "bad skiptoken", e.do("GET", task+"/SubTasks?$skiptoken=x", ""), http.StatusBadRequest, "QueryParameterValueFormatError")
	wantError(t, "not a sub-task", e.do("GET", task+"/SubTasks/node1", ""), http.StatusNotFound, "ResourceNotFound")
}

// TestAggregateWithARemovedNode: an element whose node the gateway no
// longer manages (removed at runtime) does not break the aggregate: it is
// listed apart, not linked, and an Aggregate.Reset ends its sub-task
// Exception saying so while the others complete.
func TestAggregateWithARemovedNode(t *testing.T) {
	e := bulkEnv(t, testkit.MiniRedis(t), 2)
	valid := schemaCheck(t)
	const agg = "/redfish/v1/AggregationService/Aggregates/rack"
	if r := e.do("POST", "/redfish/v1/AggregationService/Aggregates", `{"Name":"rack","Elements":`+systemLinks("node1", "node2")+`}`); r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	// as a node removed from the gateway after it joined the aggregate
	if err := e.rdb.SAdd(context.Background(), "fg:{aggregates}:e:rack", "gone1").Err(); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", agg, "")
	valid(r)
	if b := string(r.Body); strings.Contains(b, "Systems/gone1") || !strings.Contains(b, `"ElementsNotManaged":["gone1"]`) || r.json(t)["ElementsCount"] != 2.0 {
		t.Errorf("aggregate with a removed node: %s", b)
	}
	r = e.do("POST", agg+"/Actions/Aggregate.Reset", `{"ResetType":"On"}`)
	if r.Status != http.StatusAccepted {
		t.Fatalf("reset: %d %s", r.Status, r.Body)
	}
	task := r.json(t)["@odata.id"].(string)
	testkit.WaitFor(t, 30*time.Second, "the parent to end", func() (bool, string) {
		r := e.do("GET", task, "")
		return r.json(t)["TaskState"] == "Exception", string(r.Body)
	})
	r = e.do("GET", task+"/SubTasks/gone1", "")
	valid(r)
	if st := r.json(t); st["TaskState"] != "Exception" || !strings.Contains(fmt.Sprint(st["Oem"]), "not managed") {
		t.Errorf("removed node's sub-task: %s", r.Body)
	}
	for _, n := range []string{"node1", "node2"} {
		if st := e.do("GET", task+"/SubTasks/"+n, "").json(t); st["TaskState"] != "Completed" {
			t.Errorf("%s: %v", n, st)
		}
	}
	// it can be removed from the aggregate
	if r := e.do("POST", agg+"/Actions/Aggregate.RemoveElements", `{"Elements":`+systemLinks("gone1")+`}`); r.Status != http.StatusOK || strings.Contains(string(r.Body), "gone1") {
		t.Errorf("RemoveElements of the removed node: %d %s", r.Status, r.Body)
	}
}
