package redfish_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/simulator"
)

// slowEnv is one node (node1) whose power transitions take about a second,
// so that its tasks can be seen running.
func slowEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, testkit.MiniRedis(t), time.Minute, envConfig{nodes: 1,
		machine: simulator.MachineConfig{DelayMin: time.Second, DelayMax: time.Second}})
}

// startTask posts a Reset to node1 and returns the Location (the task monitor)
// and the task's @odata.id.
func (e *env) startTask(base, rt string) (monitor, task string) {
	e.t.Helper()
	r := e.do("POST", base+"/redfish/v1/Systems/node1/Actions/ComputerSystem.Reset", `{"ResetType":"`+rt+`"}`)
	if r.Status != http.StatusAccepted {
		e.t.Fatalf("reset %s: %d %s", rt, r.Status, r.Body)
	}
	monitor, task = r.Header.Get("Location"), r.json(e.t)["@odata.id"].(string)
	if !strings.HasPrefix(monitor, base+"/redfish/v1/TaskService/TaskMonitors/") || !strings.HasPrefix(task, base+"/redfish/v1/TaskService/Tasks/") {
		e.t.Fatalf("reset %s: Location %q, task %q", rt, monitor, task)
	}
	return monitor, task
}

// wantTaskAnswer checks a GET of a task or task monitor: status, Allow and
// TaskState.
func wantTaskAnswer(t *testing.T, what string, r response, status int, allow, state string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.Status, status, r.Body)
	}
	if got := r.Header.Get("Allow"); got != allow {
		t.Errorf("%s: Allow %q, want %q", what, got, allow)
	}
	if got := r.json(t)["TaskState"]; got != state {
		t.Errorf("%s: TaskState %v, want %s", what, got, state)
	}
}

// TestTaskAllowHeaders: GET of a Task and of its task monitor say with
// Allow whether the task can still be cancelled (DSP0266: DELETE in the
// monitor's Allow; sushy's TaskMonitor.cancellable wants exactly "DELETE"),
// the monitor answers 202 while the task runs and 200 with the final Task
// once it ended, and other methods are 405 with the methods of the URI.
func TestTaskAllowHeaders(t *testing.T) {
	e := slowEnv(t)
	for _, base := range []string{"", "/bmc/node1"} {
		t.Run("base="+base, func(t *testing.T) {
			monitor, task := e.startTask(base, "On")
			m := e.do("GET", monitor, "")
			if m.Status != http.StatusAccepted {
				t.Fatalf("monitor of a running task: %d %s", m.Status, m.Body)
			}
			if m.Header.Get("Allow") != "DELETE" || m.Header.Get("Location") != monitor || m.Header.Get("Retry-After") == "" {
				t.Errorf("monitor of a running task: Allow %q, Location %q, Retry-After %q; want DELETE, %s, set",
					m.Header.Get("Allow"), m.Header.Get("Location"), m.Header.Get("Retry-After"), monitor)
			}
			if st := m.json(t)["TaskState"]; st != "New" && st != "Running" {
				t.Errorf("monitor of a running task: TaskState %v", st)
			}
			tk := e.do("GET", task, "")
			if tk.Status != http.StatusOK || tk.Header.Get("Allow") != "DELETE" {
				t.Errorf("Task while running: %d, Allow %q; want 200, DELETE", tk.Status, tk.Header.Get("Allow"))
			}

			// Other methods: 405 with the methods of the URI.
			for _, u := range []string{monitor, task} {
				for _, meth := range []string{"PATCH", "POST", "PUT"} {
					r := e.do(meth, u, `{}`)
					if r.Status != http.StatusMethodNotAllowed || r.messageID(t) != "Base.1.22.OperationNotAllowed" {
						t.Fatalf("%s %s: %d %s", meth, u, r.Status, r.Body)
					}
					allow := r.Header.Get("Allow")
					if !strings.Contains(allow, "GET") || !strings.Contains(allow, "DELETE") || strings.Contains(allow, meth) {
						t.Errorf("%s %s: 405 with Allow %q, want GET and DELETE", meth, u, allow)
					}
				}
			}

			// The monitor answers 202 until the task ends, then 200 with
			// the final Task; both it and the Task then allow GET only.
			deadline := time.Now().Add(10 * time.Second)
			for m.Status == http.StatusAccepted {
				if time.Now().After(deadline) {
					t.Fatalf("task monitor still 202 after 10 s: %s", m.Body)
				}
				time.Sleep(20 * time.Millisecond)
				m = e.do("GET", monitor, "")
			}
			wantTaskAnswer(t, "monitor of a finished task", m, http.StatusOK, "GET", "Completed")
			wantTaskAnswer(t, "finished Task", e.do("GET", task, ""), http.StatusOK, "GET", "Completed")
			if r := e.do("DELETE", monitor, ""); r.Status != http.StatusConflict {
				t.Errorf("DELETE of a finished task's monitor: %d, want 409", r.Status)
			}

			// Back to Off for the next round.
			_, off := e.startTask(base, "ForceOff")
			for deadline := time.Now().Add(10 * time.Second); e.do("GET", off, "").json(t)["TaskState"] != "Completed"; {
				if time.Now().After(deadline) {
					t.Fatal("ForceOff did not complete in 10 s")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestTaskMonitorDeleteOfWaitingTask: a waiting task's monitor allows
// DELETE; after DELETE the task is Cancelled and its monitor answers 200
// with Allow: GET.
func TestTaskMonitorDeleteOfWaitingTask(t *testing.T) {
	e := slowEnv(t)
	e.startTask("", "On")
	monitor, task := e.startTask("", "GracefulRestart") // waits behind the On
	m := e.do("GET", monitor, "")
	wantTaskAnswer(t, "monitor of a waiting task", m, http.StatusAccepted, "DELETE", "New")
	if r := e.do("DELETE", monitor, ""); r.Status != http.StatusOK {
		t.Fatalf("DELETE of a waiting task's monitor: %d %s", r.Status, r.Body)
	}
	wantTaskAnswer(t, "monitor of the cancelled task", e.do("GET", monitor, ""), http.StatusOK, "GET", "Cancelled")
	wantTaskAnswer(t, "cancelled Task", e.do("GET", task, ""), http.StatusOK, "GET", "Cancelled")
}
