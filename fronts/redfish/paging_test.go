package redfish_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
)

// readPage reads a collection page: its member ids, count and next link.
func readPage(t *testing.T, e *env, path string) (members []string, count int, next string) {
	t.Helper()
	r := e.do("GET", path, "")
	wantStatus(t, "GET "+path, r, http.StatusOK)
	body := r.json(t)
	for _, m := range body["Members"].([]any) {
		members = append(members, m.(map[string]any)["@odata.id"].(string))
	}
	next, _ = body["Members@odata.nextLink"].(string)
	return members, int(body["Members@odata.count"].(float64)), next
}

// TestCollectionsArePaged: Tasks (newest first, from the fleet-wide index)
// and Systems are served a page at a time with $top and $skip; each page
// gives the total in Members@odata.count and links the next page until
// the last; bad values are refused naming the parameter.
func TestCollectionsArePaged(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	e := newEnv(t, rdb, 3, time.Hour)
	var tasks []string // in admission order
	for _, rt := range []string{"On", "ForceOff"} {
		for _, n := range []string{"node1", "node2", "node3"} {
			r := e.do("POST", "/redfish/v1/Systems/"+n+"/Actions/ComputerSystem.Reset", `{"ResetType":"`+rt+`"}`)
			wantStatus(t, rt+" "+n, r, http.StatusAccepted)
			tasks = append(tasks, r.json(t)["@odata.id"].(string))
		}
	}
	// One page of all, newest first (serializer's TestTaskPage checks the
	// order); the small pages must give the same sequence.
	all, n, more := readPage(t, e, "/redfish/v1/TaskService/Tasks")
	if len(all) != 6 || n != 6 || more != "" {
		t.Fatalf("Tasks without $top: %d members, count %d, next %q; want one page of 6", len(all), n, more)
	}
	if !sameSet(all, tasks) {
		t.Fatalf("Tasks lists %v, want %v", all, tasks)
	}

	var got []string
	path := "/redfish/v1/TaskService/Tasks?$top=4"
	for pages := 0; path != ""; pages++ {
		if pages > 2 {
			t.Fatalf("more than 2 pages of 4 for 6 tasks: %v", got)
		}
		members, count, next := readPage(t, e, path)
		if count != len(tasks) {
			t.Errorf("GET %s: Members@odata.count %d, want the total %d", path, count, len(tasks))
		}
		if len(members) > 4 {
			t.Errorf("GET %s: %d members, want at most 4", path, len(members))
		}
		got = append(got, members...)
		if next != "" && !strings.Contains(next, "$top=4") {
			t.Errorf("next link %q does not keep $top", next)
		}
		path = next
	}
	if !slices.Equal(got, all) {
		t.Errorf("Tasks over pages of 4:\n got %v\nwant %v", got, all)
	}
	if members, count, _ := readPage(t, e, "/bmc/node2/redfish/v1/TaskService/Tasks?$top=1&$skip=1"); len(members) != 1 || count != 2 || !strings.Contains(members[0], "node2.") {
		t.Errorf("node2's Tasks, second page of 1: %v, count %d; want one node2 task of 2", members, count)
	}
	// The whole fleet's pages come from the fleet-wide index, not from
	// every node's own listing (one read per node, which took 174 ms a
	// page at 10,000 nodes): a task taken out of the index leaves them,
	// and stays in its node's listing.
	gone := all[0][strings.LastIndexByte(all[0], '/')+1:]
	if err := rdb.ZRem(t.Context(), "fg:{tasks}:index", gone).Err(); err != nil {
		t.Fatal(err)
	}
	if members, count, _ := readPage(t, e, "/redfish/v1/TaskService/Tasks"); count != 5 || slices.Contains(members, all[0]) {
		t.Errorf("Tasks after %s left the fleet-wide index: %d members, count %d; want 5 without it (pages not from the index)", gone, len(members), count)
	}
	node := gone[:strings.LastIndexByte(gone, '.')]
	if members, _, _ := readPage(t, e, "/bmc/"+node+"/redfish/v1/TaskService/Tasks"); !slices.Contains(members, "/bmc/"+node+all[0]) {
		t.Errorf("%s's own Tasks %v lost %s", node, members, gone)
	}

	members, count, next := readPage(t, e, "/redfish/v1/Systems?$top=2")
	if count != 3 || len(members) != 2 || next == "" {
		t.Fatalf("Systems?$top=2: %v, count %d, next %q", members, count, next)
	}
	rest, count, last := readPage(t, e, next)
	if count != 3 || len(rest) != 1 || last != "" || slices.Contains(members, rest[0]) {
		t.Errorf("Systems second page %v (count %d, next %q) after %v", rest, count, last, members)
	}
	if members, _, _ := readPage(t, e, "/redfish/v1/Systems?$skip=5"); len(members) != 0 {
		t.Errorf("Systems?$skip=5: %v, want none", members)
	}

	for _, q := range []string{"$top=x", "$skip=-1", "$top=1.5"} {
		r := e.do("GET", "/redfish/v1/TaskService/Tasks?"+q, "")
		wantStatus(t, q, r, http.StatusBadRequest)
		if id := r.messageID(t); !strings.HasSuffix(id, "QueryParameterValueFormatError") || !strings.Contains(string(r.Body), strings.Split(q, "=")[0]) {
			t.Errorf("%s: %s %s, want QueryParameterValueFormatError naming the parameter", q, id, r.Body)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestSystemsExpand: $expand=. (or *, with $levels=1 at most) puts the
// Systems themselves in the page, the same as their own GETs, with
// Oem.Fishgate.BackendKind; the next link keeps $expand; deeper levels
// answer 501 and other values 400 naming the parameter.
func TestSystemsExpand(t *testing.T) {
	e := newEnv(t, testkit.MiniRedis(t), 3, time.Hour)
	for _, q := range []string{"$expand=.", "$expand=*", "$expand=.($levels=1)"} {
		r := e.do("GET", "/redfish/v1/Systems?$top=2&"+q, "")
		wantStatus(t, q, r, http.StatusOK)
		var page struct {
			Members []map[string]any `json:"Members"`
			Count   int              `json:"Members@odata.count"`
			Next    string           `json:"Members@odata.nextLink"`
		}
		if err := json.Unmarshal(r.Body, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Members) != 2 || page.Count != 3 {
			t.Fatalf("%s: %d members, count %d; want 2 of 3", q, len(page.Members), page.Count)
		}
		for _, m := range page.Members {
			one := e.do("GET", m["@odata.id"].(string), "").json(t)
			if m["Id"] != one["Id"] || m["PowerState"] != one["PowerState"] || m["@odata.type"] != one["@odata.type"] {
				t.Errorf("%s: inline %v differs from its GET %v", q, m, one)
			}
			if kind := m["Oem"].(map[string]any)["Fishgate"].(map[string]any)["BackendKind"]; kind != "redfish" {
				t.Errorf("%s: Oem.Fishgate.BackendKind = %v, want redfish", q, kind)
			}
		}
		next := e.do("GET", page.Next, "")
		wantStatus(t, "next "+page.Next, next, http.StatusOK)
		if rest := next.json(t)["Members"].([]any); len(rest) != 1 || rest[0].(map[string]any)["Id"] == nil {
			t.Errorf("%s: next page %s is not the last System expanded: %s", q, page.Next, next.Body)
		}
	}
	if r := e.do("GET", "/redfish/v1/Systems?$expand=*($levels=2)", ""); r.Status != http.StatusNotImplemented {
		t.Errorf("$levels=2: %d, want 501: %s", r.Status, r.Body)
	}
	for _, bad := range []string{"x", ".($levels=0)", ".($levels=one)", ".($levels=1"} {
		r := e.do("GET", "/redfish/v1/Systems?$expand="+url.QueryEscape(bad), "")
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "$expand") {
			t.Errorf("$expand=%s: %d, want 400 naming $expand: %s", bad, r.Status, r.Body)
		}
	}
}
