package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/simulator"
)

// Signals (docs/architecture.md#signals), on real `fishgate serve`
// processes: SIGHUP reloads the configuration file under a running
// action; SIGTERM drains a replica while another shares its Redis.

// signalNode is a simulated node of these tests: its transitions take
// delay.
type signalNode struct {
	id    string
	delay time.Duration
}

// signalSet starts the simulated nodes and returns a replica set over
// them; its configuration file is written by write.
func signalSet(t *testing.T, nodes ...signalNode) (*replicaSet, map[string]*simulator.Node) {
	fleet := simulator.NewFleet(discardLogger())
	t.Cleanup(func() { fleet.Close() })
	sims := map[string]*simulator.Node{}
	for _, n := range nodes {
		sn, err := fleet.Add(simulator.NodeSpec{ID: n.id, Machine: simulator.MachineConfig{DelayMin: n.delay, DelayMax: n.delay, InitialPower: "Off"}})
		if err != nil {
			t.Fatal(err)
		}
		sims[n.id] = sn
	}
	rs := &replicaSet{t: t, fleet: fleet, config: filepath.Join(t.TempDir(), "fishgate.yaml"), logs: &lockedBuffer{}}
	return rs, sims
}

// write writes the replica set's configuration: head, the accounts, then
// one node per sims entry in ids with its password.
func (rs *replicaSet) write(head, accounts string, sims map[string]*simulator.Node, ids []string, passwords map[string]string) {
	var b strings.Builder
	b.WriteString(head)
	b.WriteString("accounts: " + accounts + "\nnodes:\n")
	for _, id := range ids {
		pw := passwords[id]
		if pw == "" {
			pw = "password"
		}
		fmt.Fprintf(&b, "  - {id: %s, backend: redfish, address: %q, user: admin, password: %s}\n", id, sims[id].URL(), pw)
	}
	if err := os.WriteFile(rs.config, []byte(b.String()), 0o600); err != nil {
		rs.t.Fatal(err)
	}
}

// waitLog waits until the replicas' logs match re.
func (rs *replicaSet) waitLog(what string, re *regexp.Regexp) {
	rs.t.Helper()
	waitFor(rs.t, 15*time.Second, what, func() (bool, string) { return re.MatchString(rs.logs.String()), "" })
}

// basicAs is the Authorization header of user and password.
func basicAs(user, pw string) map[string]string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pw)
	return map[string]string{"Authorization": req.Header.Get("Authorization")}
}

// waitTaskEnd waits until task id, read through r, has ended.
func (r *replica) waitTaskEnd(t *testing.T, id string, limit time.Duration) taskView {
	t.Helper()
	var tv taskView
	waitFor(t, limit, "task "+id+" to end", func() (bool, string) {
		tv, _ = r.task(t, id)
		return isTerminalState(tv.TaskState), tv.TaskState
	})
	return tv
}

// TestSIGHUPReloadsConfig: with an action running on one node (the
// embedded Redis: the state lives in the process), the file gets a new
// account and another node's new BMC password (the simulated BMC's
// password changes too, and its sessions end). After SIGHUP the account
// logs in, the node works with the new password, and the running action
// completes undisturbed: one command, no interruption. A file that does
// not load is refused and the running configuration stays.
func TestSIGHUPReloadsConfig(t *testing.T) {
	const head = "lease_ttl: 2s\nsync_interval: 2s\n"
	rs, sims := signalSet(t, signalNode{"slow", 3 * time.Second}, signalNode{"n2", 50 * time.Millisecond})
	ids := []string{"slow", "n2"}
	rs.write(head, "[{user: admin, password: pw}]", sims, ids, nil)
	a := rs.start(freeAddr(t))

	slow := a.reset(t, "slow", "On")
	m := sims["slow"].Machine()
	waitFor(t, 10*time.Second, "the On reaching the slow BMC", func() (bool, string) {
		return accepted(m.Status(), "On") == 1, m.PowerState()
	})

	ops := func() int {
		st, _, _ := do(t, http.MethodGet, a.url+"/redfish/v1/Systems", nil, basicAs("ops", "ops-secret-1"))
		return st
	}
	if st := ops(); st != http.StatusUnauthorized {
		t.Fatalf("ops before the reload: %d, want 401", st)
	}
	sims["n2"].SetPassword("rotated-pw-2")
	rs.write(head, "[{user: admin, password: pw}, {user: ops, password: ops-secret-1, role: Operator}]", sims, ids, map[string]string{"n2": "rotated-pw-2"})
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	rs.waitLog("the reload logged", regexp.MustCompile(`SIGHUP: configuration reloaded`))
	for _, re := range []string{`msg="reload: account added" id=ops`, `msg="reload: node changed" id=n2 settings=password`} {
		if !strings.Contains(rs.logs.String(), re) {
			t.Errorf("no log line with %s", re)
		}
	}
	if strings.Contains(rs.logs.String(), "rotated-pw-2") || strings.Contains(rs.logs.String(), "ops-secret-1") {
		t.Error("a secret is in the log")
	}
	if tv, _ := a.task(t, slow); tv.TaskState != "Running" {
		t.Errorf("the slow On is %s right after the reload, want still Running (the test needs it mid-action)", tv.TaskState)
	}
	if st := ops(); st != http.StatusOK {
		t.Errorf("ops after the reload: %d, want 200", st)
	}
	n2 := a.reset(t, "n2", "On")
	if tv := a.waitTaskEnd(t, n2, 15*time.Second); tv.TaskState != "Completed" {
		t.Errorf("n2's On after the password change: %s %+v, want Completed", tv.TaskState, tv.Messages)
	}
	waitMachineState(t, sims["n2"].Machine(), "On")

	tv := a.waitTaskEnd(t, slow, 15*time.Second)
	if tv.TaskState != "Completed" {
		t.Errorf("the slow On ended %s: %+v", tv.TaskState, tv.Messages)
	}
	for _, msg := range tv.Messages {
		if strings.Contains(msg.Message, "interrupted") {
			t.Errorf("the slow On was interrupted: %s", msg.Message)
		}
	}
	if st := m.Status(); accepted(st, "On") != 1 || st.CommandCount != 1 {
		t.Errorf("the slow BMC got %d commands (%d On), want the one On: %+v", st.CommandCount, accepted(st, "On"), st.Commands)
	}

	// A file that does not load: refused, nothing changes.
	if err := os.WriteFile(rs.config, []byte("accounts: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	rs.waitLog("the refused reload logged", regexp.MustCompile(`SIGHUP: configuration not reloaded; the running one stays.*err=`))
	if st := ops(); st != http.StatusOK {
		t.Errorf("ops after a refused reload: %d, want 200", st)
	}
	if tv, st := a.task(t, slow); st != http.StatusOK || tv.TaskState != "Completed" {
		t.Errorf("the slow On after the reloads: %d %s (the embedded Redis kept)", st, tv.TaskState)
	}
}

// TestSIGTERMDrains: two replicas share a redis-server; the one running a
// node's action gets SIGTERM (SIGINT in the first case: the same drain). With time enough it finishes the action and
// exits 0, and the action waiting next runs on the other replica; with a
// shutdown_timeout shorter than the action it exits 0 at the timeout and
// the other replica takes the node over at once (its lease TTL is 20 s)
// and completes the action without sending the command again. No task is
// lost.
func TestSIGTERMDrains(t *testing.T) {
	cases := []struct {
		name     string
		timeout  time.Duration
		delay    time.Duration
		handover bool
		sig      syscall.Signal
	}{
		{"finishes", 30 * time.Second, 3 * time.Second, false, syscall.SIGINT},
		{"hands_over", time.Second, 6 * time.Second, true, syscall.SIGTERM},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			redisAddr := testkit.StartRedisServer(t)
			head := fmt.Sprintf("redis_url: redis://%s/0\nlease_ttl: 20s\nsync_interval: 2s\nshutdown_timeout: %s\n", redisAddr, c.timeout)
			rs, sims := signalSet(t, signalNode{"n1", c.delay})
			rs.redis = redisAddr
			rs.write(head, "[{user: admin, password: pw}]", sims, []string{"n1"}, nil)
			a := rs.start(freeAddr(t))
			first := a.reset(t, "n1", "On")
			m := sims["n1"].Machine()
			waitFor(t, 10*time.Second, "the On reaching the BMC", func() (bool, string) {
				return accepted(m.Status(), "On") == 1, m.PowerState()
			})
			b := rs.start(freeAddr(t)) // after A took the lease
			if l := leaseHolder(t, redisAddr, "n1"); !strings.Contains(l, fmt.Sprintf("-%d-", a.cmd.Process.Pid)) {
				t.Fatalf("lease %q, want held by A (pid %d)", l, a.cmd.Process.Pid)
			}
			second := b.reset(t, "n1", "ForceRestart") // ranks no higher than On: it waits

			sent := time.Now()
			if err := a.cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- a.cmd.Wait() }()
			if !c.handover {
				// While it finishes its action, A refuses connections: a
				// load balancer sends the next request elsewhere.
				waitFor(t, 5*time.Second, "A to refuse connections", func() (bool, string) {
					_, err := net.DialTimeout("tcp", strings.TrimPrefix(a.url, "http://"), time.Second)
					return err != nil, fmt.Sprint(err)
				})
				select {
				case <-exited:
					t.Fatal("A exited before its action finished (the test needs it still draining)")
				default:
				}
				if tv, _ := b.task(t, first); tv.TaskState != "Running" {
					t.Fatalf("the first task is %s while A drains, want Running", tv.TaskState)
				}
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("A exited with %v, want 0", err)
				}
			case <-time.After(c.timeout + 10*time.Second):
				t.Fatalf("A did not exit within shutdown_timeout %s (+10 s)", c.timeout)
			}
			t.Logf("A exited %s after %s", time.Since(sent).Round(10*time.Millisecond), c.sig)
			want := `msg=drained .*finished=1 handed_over=0 finished_tasks=` + regexp.QuoteMeta(first)
			if c.handover {
				want = `msg=drained .*finished=0 handed_over=1 finished_tasks="" handed_over_tasks=` + regexp.QuoteMeta(first)
			}
			rs.waitLog("A's drain summary", regexp.MustCompile(want))
			if c.handover {
				// At once, not when the 20 s lease expires.
				bTag := fmt.Sprintf("-%d-", b.cmd.Process.Pid)
				waitFor(t, 5*time.Second, "B to take the lease over", func() (bool, string) {
					l := leaseHolder(t, redisAddr, "n1")
					return strings.Contains(l, bTag), l
				})
				t.Logf("B holds the lease %s after SIGTERM", time.Since(sent).Round(10*time.Millisecond))
			}

			// The first within 15 s, under the 20 s lease TTL: the lease
			// was released, not left to expire.
			for id, limit := range map[string]time.Duration{first: 15 * time.Second, second: 40 * time.Second} {
				if tv := b.waitTaskEnd(t, id, limit); tv.TaskState != "Completed" {
					t.Errorf("task %s ended %s: %+v", id, tv.TaskState, tv.Messages)
				}
			}
			if n := accepted(m.Status(), "On"); n != 1 {
				t.Errorf("the BMC got %d On, want 1 (a take-over resumes, never re-sends): %+v", n, m.Status().Commands)
			}
			if st := m.Status(); st.MaxInFlight > 1 {
				t.Errorf("max in flight %d", st.MaxInFlight)
			}
		})
	}
}
