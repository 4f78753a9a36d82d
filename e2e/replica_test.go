package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/simulator"
)

// Process-level tests of leases and recovery (docs/architecture.md#recovery):
// real `fishgate serve` replicas sharing a real redis-server, killed with
// SIGKILL.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// fishgateBinary builds cmd/fishgate once per test binary.
func fishgateBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fishgate-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "fishgate")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/fishgate/fishgate/cmd/fishgate").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// replicaSet is a simulated fleet, a redis-server and a config for replicas.
type replicaSet struct {
	t      *testing.T
	fleet  *simulator.Fleet
	config string
	redis  string // the redis-server's address (newReplicaSet)
	logs   *lockedBuffer
}

func newReplicaSet(t *testing.T, nodes int, delay time.Duration) *replicaSet {
	redisAddr := testkit.StartRedisServer(t)
	rs := newReplicaSetOn(t, nodes, delay, fmt.Sprintf("redis_url: redis://%s/0\n", redisAddr))
	rs.redis = redisAddr
	return rs
}

// newReplicaSetOn is a replica set whose config starts with redisYAML (the
// Redis settings) and whose Redis the caller runs.
func newReplicaSetOn(t *testing.T, nodes int, delay time.Duration, redisYAML string) *replicaSet {
	fleet := simulator.NewFleet(discardLogger())
	t.Cleanup(func() { fleet.Close() })
	var b strings.Builder
	b.WriteString(redisYAML)
	b.WriteString("lease_ttl: 2s\nretries: 2\nsync_interval: 2s\n")
	b.WriteString("accounts: [{user: admin, password: pw}]\nnodes:\n")
	for i := 1; i <= nodes; i++ {
		id := fmt.Sprintf("n%d", i)
		sn, err := fleet.Add(simulator.NodeSpec{ID: id, Machine: simulator.MachineConfig{DelayMin: delay, DelayMax: delay, InitialPower: "Off"}})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "  - {id: %s, backend: redfish, address: %q, user: admin, password: password}\n", id, sn.URL())
	}
	cfg := filepath.Join(t.TempDir(), "fishgate.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return &replicaSet{t: t, fleet: fleet, config: cfg, logs: &lockedBuffer{}}
}

// replica is one running `fishgate serve`.
type replica struct {
	url string
	cmd *exec.Cmd
}

// start runs a replica on addr and waits until it is ready.
func (rs *replicaSet) start(addr string) *replica {
	t := rs.t
	cmd := exec.Command(fishgateBinary(t), "serve", "--config", rs.config, "--listen", addr, "--insecure-http", "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = rs.logs, rs.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &replica{url: "http://" + addr, cmd: cmd}
	t.Cleanup(func() {
		r.cmd.Process.Signal(syscall.SIGTERM)
		r.cmd.Wait()
		if t.Failed() {
			t.Logf("replica logs:\n%s", rs.logs.String())
		}
	})
	waitFor(t, 20*time.Second, "replica "+addr+" ready", func() (bool, string) {
		st, _, body := do(t, http.MethodGet, r.url+"/readyz", nil, nil)
		return st == http.StatusOK, fmt.Sprintf("%d %s", st, body)
	})
	return r
}

func (r *replica) kill(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r.cmd.Wait()
}

var adminHdr = map[string]string{"Authorization": "Basic YWRtaW46cHc="} // admin:pw

// reset posts a Reset and returns the task id.
func (r *replica) reset(t *testing.T, node, rt string) string {
	t.Helper()
	st, h, body := do(t, http.MethodPost, r.url+"/redfish/v1/Systems/"+node+"/Actions/ComputerSystem.Reset", `{"ResetType":"`+rt+`"}`, adminHdr)
	if st != http.StatusAccepted || h.Get("Location") == "" {
		t.Fatalf("reset %s %s: %d %s", node, rt, st, body)
	}
	var task struct{ Id string }
	json.Unmarshal(body, &task)
	return task.Id
}

type taskView struct {
	Id, TaskState, TaskStatus string
	Messages                  []struct{ MessageId, Message string }
}

func (r *replica) task(t *testing.T, id string) (taskView, int) {
	t.Helper()
	st, _, body := do(t, http.MethodGet, r.url+"/redfish/v1/TaskService/Tasks/"+id, nil, adminHdr)
	var tv taskView
	json.Unmarshal(body, &tv)
	return tv, st
}

func isTerminalState(s string) bool { return s == "Completed" || s == "Exception" || s == "Cancelled" }

// TestRecoveryAfterSIGKILL: a replica is killed after it sent a PowerCycle to
// the BMC and before it confirmed it; a new replica finishes the task with a
// message about the interruption and does not cycle the machine twice.
func TestRecoveryAfterSIGKILL(t *testing.T) {
	rs := newReplicaSet(t, 1, 1500*time.Millisecond)
	m, _ := rs.fleet.Node("n1")
	m.Machine().SetPower("On")
	addr := freeAddr(t)
	a := rs.start(addr)
	task := a.reset(t, "n1", "PowerCycle")
	waitFor(t, 10*time.Second, "the PowerCycle reaching the BMC", func() (bool, string) {
		return accepted(m.Machine().Status(), "PowerCycle") == 1, fmt.Sprint(m.Machine().Status().Commands)
	})
	if tv, _ := a.task(t, task); tv.TaskState != "Running" {
		t.Fatalf("task %s before the kill, want Running (mid-action)", tv.TaskState)
	}
	a.kill(t) // mid-action: the machine is cycling, the task is Running
	b := rs.start(addr)
	var tv taskView
	waitFor(t, 20*time.Second, "the task to finish after recovery", func() (bool, string) {
		tv, _ = b.task(t, task)
		return isTerminalState(tv.TaskState), tv.TaskState
	})
	st := m.Machine().Status()
	if got := accepted(st, "PowerCycle"); got != 1 {
		t.Errorf("the BMC received %d PowerCycles, want exactly 1 (never re-sent blindly): %+v", got, st.Commands)
	}
	if st.CommandCount != 1 || st.MaxInFlight > 1 {
		t.Errorf("BMC commands %d (want 1), max in flight %d: %+v", st.CommandCount, st.MaxInFlight, st.Commands)
	}
	if tv.TaskState != "Completed" {
		t.Errorf("task %s, want Completed: %+v", tv.TaskState, tv.Messages)
	}
	text := ""
	for _, msg := range tv.Messages {
		text += msg.Message + " "
	}
	if !strings.Contains(text, "interrupted") {
		t.Errorf("task messages do not tell about the interruption: %q", text)
	}
	waitMachineState(t, m.Machine(), "On")
}

// TestTakeOverWithinLeaseTTL: two replicas; the one running a node's work is
// killed; the other takes the node over within one lease TTL (2s) and its
// queued action completes.
func TestTakeOverWithinLeaseTTL(t *testing.T) {
	rs := newReplicaSet(t, 1, 800*time.Millisecond)
	m, _ := rs.fleet.Node("n1")
	a := rs.start(freeAddr(t))
	b := rs.start(freeAddr(t))
	first := a.reset(t, "n1", "On")
	second := b.reset(t, "n1", "GracefulRestart") // waits in next
	waitFor(t, 10*time.Second, "the On reaching the BMC", func() (bool, string) {
		return accepted(m.Machine().Status(), "On") == 1, ""
	})
	// Kill whichever replica holds the lease (the other is the survivor).
	holder, survivor := a, b
	if lease := leaseHolder(t, rs.redis, "n1"); strings.Contains(lease, fmt.Sprintf("-%d-", b.cmd.Process.Pid)) {
		holder, survivor = b, a
	}
	killed := time.Now()
	holder.kill(t)
	survivorTag := fmt.Sprintf("-%d-", survivor.cmd.Process.Pid)
	waitFor(t, 10*time.Second, "the survivor to take the lease", func() (bool, string) {
		l := leaseHolder(t, rs.redis, "n1")
		return strings.Contains(l, survivorTag), l
	})
	tookOver := time.Since(killed)
	t.Logf("lease taken over %s after the kill (lease TTL 2s)", tookOver.Round(10*time.Millisecond))
	// Within one lease TTL, plus polling slack of this test.
	if tookOver > 2*time.Second+300*time.Millisecond {
		t.Errorf("take-over took %s, more than one lease TTL (2s)", tookOver)
	}
	var tv taskView
	waitFor(t, 20*time.Second, "the queued GracefulRestart to complete", func() (bool, string) {
		tv, _ = survivor.task(t, second)
		return isTerminalState(tv.TaskState), tv.TaskState
	})
	if tv.TaskState != "Completed" {
		t.Errorf("queued task %s, want Completed: %+v", tv.TaskState, tv.Messages)
	}
	if f, _ := survivor.task(t, first); !isTerminalState(f.TaskState) {
		t.Errorf("first task %s after take-over", f.TaskState)
	}
	if firstCommandAfter(m.Machine().Status(), "GracefulRestart", killed).IsZero() {
		t.Errorf("the GracefulRestart never reached the BMC: %+v", m.Machine().Status().Commands)
	}
	if st := m.Machine().Status(); st.MaxInFlight > 1 {
		t.Errorf("max in flight %d", st.MaxInFlight)
	}
}

func firstCommandAfter(st simulator.Status, action string, after time.Time) time.Time {
	for _, c := range st.Commands {
		if c.Action == action && c.Time.After(after) {
			return c.Time
		}
	}
	return time.Time{}
}

func waitMachineState(t *testing.T, m *simulator.Machine, state string) {
	t.Helper()
	waitFor(t, 10*time.Second, "machine "+state, func() (bool, string) { return m.PowerState() == state, m.PowerState() })
}

func leaseHolder(t *testing.T, redisAddr, node string) string {
	t.Helper()
	c := redisClient(redisAddr)
	defer c.Close()
	v, _ := c.Get(t.Context(), "fg:node:{"+node+"}:lease").Result()
	return v
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func redisClient(addr string) *redis.Client { return redis.NewClient(&redis.Options{Addr: addr}) }
