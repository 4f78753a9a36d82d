package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/fishgate/fishgate/simulator"
)

// sushyTaskView is what testdata/sushy_cancel.py reports of one task
// monitor answer, as sushy's TaskMonitor reads it.
type sushyTaskView struct {
	Status      int    `json:"status"`
	Processing  bool   `json:"processing"`
	Cancellable bool   `json:"cancellable"`
	Allow       string `json:"allow"`
	State       string `json:"state"`
}

// TestSushyTaskCancellable: sushy (as Ironic uses it) sees a waiting or
// running task as processing and cancellable, cancels a waiting one through
// its monitor, and sees finished tasks as neither.
func TestSushyTaskCancellable(t *testing.T) {
	t.Parallel()
	needSushy(t)
	d := startDemo(t, 1)
	// The BMC takes 3 s to answer a power command: the On stays running.
	machine(t, d, "node01").SetFaults(simulator.Faults{Hang: 3 * time.Second})
	out, stderr, err := run(t, 60*time.Second, python, "testdata/sushy_cancel.py", d.URL(), d.User, d.Pass, "/redfish/v1/Systems/node01")
	if err != nil {
		t.Fatalf("sushy_cancel.py: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	var r struct {
		Posts        []int         `json:"posts"`
		Running      sushyTaskView `json:"running"`
		Waiting      sushyTaskView `json:"waiting"`
		DeleteStatus int           `json:"delete_status"`
		Cancelled    sushyTaskView `json:"cancelled"`
		Finished     sushyTaskView `json:"finished"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("sushy_cancel.py printed no JSON result: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	t.Logf("sushy saw %+v", r)
	if len(r.Posts) != 2 || r.Posts[0] != 202 || r.Posts[1] != 202 {
		t.Errorf("Reset answers %v, want 202 twice", r.Posts)
	}
	check := func(what string, v sushyTaskView, status int, processing, cancellable bool, states ...string) {
		t.Helper()
		ok := false
		for _, s := range states {
			ok = ok || v.State == s
		}
		if v.Status != status || v.Processing != processing || v.Cancellable != cancellable || !ok {
			t.Errorf("%s: sushy saw %+v; want status %d, processing %v, cancellable %v, TaskState in %v",
				what, v, status, processing, cancellable, states)
		}
	}
	check("running On", r.Running, 202, true, true, "New", "Running")
	check("waiting GracefulRestart", r.Waiting, 202, true, true, "New")
	if r.DeleteStatus != 200 {
		t.Errorf("DELETE of the waiting task's monitor: %d, want 200", r.DeleteStatus)
	}
	check("cancelled GracefulRestart", r.Cancelled, 200, false, false, "Cancelled")
	check("finished On", r.Finished, 200, false, false, "Completed")
}
