package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/simulator"
)

// TestReload: a reload applies the file's accounts, nodes and admission
// policy to the running gateway and names each change once (a password
// by its field, never its value), and the settings it leaves for a
// restart; a configuration that does not validate changes nothing.
func TestReload(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			rdb := target.New(t)
			fleet := simulator.NewFleet(slog.New(slog.DiscardHandler))
			t.Cleanup(func() { fleet.Close() })
			sims := map[string]*simulator.Node{}
			for _, id := range []string{"r1", "r2", "r3"} {
				mc := simulator.MachineConfig{InitialPower: "Off"}
				switch id {
				case "r1": // no soft off: soft_off_fallback force offers GracefulShutdown
					mc.ResetTypes = []string{"On", "ForceOff", "ForceRestart", "ForceOn"}
				case "r3": // its actions last: a second Reset meets a running one
					mc.DelayMin, mc.DelayMax = time.Second, time.Second
				}
				sn, err := fleet.Add(simulator.NodeSpec{ID: id, User: "bmc", Password: "old-pw", Machine: mc})
				if err != nil {
					t.Fatal(err)
				}
				sims[id] = sn
			}
			node := func(id, pw string, more ...string) string {
				return fmt.Sprintf("  - {id: %s, backend: redfish, address: %q, user: bmc, password: %s%s}\n", id, sims[id].URL(), pw, strings.Join(more, ""))
			}
			head := "listen: 127.0.0.1:0\nredis_url: redis://" + rdb.Options().Addr + "\ntls: {disabled: true}\n"
			const fastSync = "sync_interval: 1s\n" // the re-assertion below is the sweep's
			parse := func(yaml string) config.Config {
				t.Helper()
				cfg, err := config.Parse([]byte(head + yaml))
				if err != nil {
					t.Fatal(err)
				}
				return cfg
			}
			logs := &testkit.SyncBuffer{}
			g := serve(t, parse(fastSync+"accounts: [{user: admin, password: pw}, {user: auditor, password: audit-1, role: ReadOnly}]\nnodes:\n"+node("r1", "old-pw")+node("r2", "old-pw")),
				slog.New(slog.NewTextHandler(logs, nil)))
			base := g.URL()
			ops := func() int { return status(t, "GET", base+"/redfish/v1/Systems", "ops", "ops-secret") }
			if st := ops(); st != http.StatusUnauthorized {
				t.Fatalf("ops before the reload: %d, want 401", st)
			}

			token := login(t, base, "auditor", "audit-1") // a session of an account whose password changes
			if st := withToken(t, base+"/redfish/v1/Systems", token); st != http.StatusOK {
				t.Fatalf("session before the reload: %d", st)
			}

			sims["r1"].SetPassword("new-pw-r1")
			changes, err := g.Reload(context.Background(), parse(`sync_interval: 5s
admission: {policy: reject}
accounts: [{user: admin, password: pw}, {user: auditor, password: audit-2, role: ReadOnly}, {user: ops, password: ops-secret, role: Operator}]
nodes:
`+node("r1", "new-pw-r1", ", name: rack-one, soft_off_fallback: force, reassert_desired: true")+node("r3", "old-pw")))
			if err != nil {
				t.Fatalf("Reload: %v", err)
			}
			var got []string
			for _, c := range changes {
				got = append(got, c.String())
			}
			want := []string{"account changed auditor (password)", "account added ops", "node changed r1 (name, password, reassert_desired, soft_off_fallback)", "node added r3", "node removed r2",
				"admission changed (admission.policy)", "settings changed (sync_interval): takes effect after a restart"}
			if !slices.Equal(got, want) {
				t.Fatalf("changes\n%q\nwant\n%q", got, want)
			}
			for _, line := range []string{`msg="reload: account added" id=ops`, `msg="reload: node changed" id=r1 settings=name,password,reassert_desired,soft_off_fallback`,
				`msg="reload: node added" id=r3`, `msg="reload: node removed" id=r2`, `level=WARN msg="reload: settings changed; takes effect after a restart" id="" settings=sync_interval`} {
				if !strings.Contains(logs.String(), line) {
					t.Errorf("the log has no line with %s:\n%s", line, logs.String())
				}
			}
			if strings.Contains(logs.String(), "new-pw-r1") || strings.Contains(logs.String(), "ops-secret") || strings.Contains(logs.String(), "audit-2") {
				t.Errorf("a secret is in the log:\n%s", logs.String())
			}

			if st := ops(); st != http.StatusOK {
				t.Errorf("ops after the reload: %d, want 200", st)
			}
			if st := withToken(t, base+"/redfish/v1/Systems", token); st != http.StatusUnauthorized {
				t.Errorf("the session of a changed account after the reload: %d, want 401", st)
			}
			if st := status(t, "GET", base+"/redfish/v1/Systems", "auditor", "audit-1"); st != http.StatusUnauthorized {
				t.Errorf("the old auditor password after the reload: %d, want 401", st)
			}
			if st := status(t, "GET", base+"/redfish/v1/Systems", "auditor", "audit-2"); st != http.StatusOK {
				t.Errorf("the new auditor password after the reload: %d, want 200", st)
			}
			// r1 works with its new password, r3 is managed, r2 is gone.
			for _, id := range []string{"r1", "r3"} {
				resetCompletes(t, base, id)
			}
			// r1's settings: its name, the graceful ResetTypes that
			// soft_off_fallback force offers, and reassert_desired: the
			// sweep brings it back On when it is switched off behind the
			// gateway's back.
			var sys struct {
				Name    string
				Actions struct {
					Reset struct {
						Allowed []string `json:"ResetType@Redfish.AllowableValues"`
					} `json:"#ComputerSystem.Reset"`
				}
			}
			testkit.WaitFor(t, 10*time.Second, "r1's new settings in its System", func() (bool, string) {
				r := request(t, "GET", base+"/redfish/v1/Systems/r1", "")
				json.NewDecoder(r.Body).Decode(&sys)
				r.Body.Close()
				return sys.Name == "rack-one" && slices.Contains(sys.Actions.Reset.Allowed, "GracefulShutdown"), fmt.Sprintf("%+v", sys)
			})
			sims["r1"].Machine().SetPower("Off")
			testkit.WaitFor(t, 15*time.Second, "r1 re-asserted On", func() (bool, string) {
				return sims["r1"].Machine().PowerState() == "On", sims["r1"].Machine().PowerState()
			})

			// The admission policy is reject now: a Reset meeting a running
			// action is refused (now-next, before, queued it).
			first := request(t, "POST", base+"/redfish/v1/Systems/r3/Actions/ComputerSystem.Reset", `{"ResetType":"ForceOff"}`)
			first.Body.Close()
			second := request(t, "POST", base+"/redfish/v1/Systems/r3/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`)
			second.Body.Close()
			if first.StatusCode != http.StatusAccepted || second.StatusCode != http.StatusConflict {
				t.Errorf("ForceOff then On under policy reject: %d, %d; want 202, 409", first.StatusCode, second.StatusCode)
			}
			testkit.WaitFor(t, 10*time.Second, "r2 removed", func() (bool, string) {
				st := status(t, "GET", base+"/redfish/v1/Systems/r2", user, pass)
				return st == http.StatusNotFound, fmt.Sprint(st)
			})

			// A replica that starts with r2 in its file (or this one,
			// restarted) manages it again: the file clears the removal.
			other := serve(t, parse("accounts: [{user: admin, password: pw}]\nnodes:\n"+node("r2", "old-pw")), slog.New(slog.DiscardHandler))
			resetCompletes(t, other.URL(), "r2")

			bad := parse("accounts: [{user: admin, password: pw}]\n")
			bad.Nodes = []config.Node{{ID: "r9", Backend: "redfish"}} // no address, no user
			if _, err := g.Reload(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "nodes[0].address") {
				t.Fatalf("Reload of an invalid configuration: %v, want the field named", err)
			}
			if st := ops(); st != http.StatusOK {
				t.Errorf("ops after a refused reload: %d, want 200 (nothing changed)", st)
			}
			if st := status(t, "GET", base+"/redfish/v1/Systems/r3", user, pass); st != http.StatusOK {
				t.Errorf("r3 after a refused reload: %d", st)
			}
		})
	}
}

// login opens a Redfish session and returns its token.
func login(t *testing.T, base, u, p string) string {
	t.Helper()
	resp, err := http.Post(base+"/redfish/v1/SessionService/Sessions", "application/json",
		strings.NewReader(fmt.Sprintf(`{"UserName":%q,"Password":%q}`, u, p)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("login %s: %s", u, resp.Status)
	}
	return resp.Header.Get("X-Auth-Token")
}

// withToken is the status of a GET with a session token.
func withToken(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("X-Auth-Token", token)
	return statusOf(t, req)
}

// status is the status of a request with Basic auth.
func status(t *testing.T, method, url, u, p string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.SetBasicAuth(u, p)
	return statusOf(t, req)
}

func statusOf(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// resetCompletes sends node id a ForceOn and waits for its task to end
// Completed.
func resetCompletes(t *testing.T, base, id string) {
	t.Helper()
	var resp *http.Response
	testkit.WaitFor(t, 10*time.Second, id+" read (its Reset admitted)", func() (bool, string) {
		resp = request(t, "POST", base+"/redfish/v1/Systems/"+id+"/Actions/ComputerSystem.Reset", `{"ResetType":"ForceOn"}`)
		if resp.StatusCode == http.StatusAccepted {
			return true, ""
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return false, resp.Status + " " + string(b)
	})
	task := resp.Header.Get("Location")
	resp.Body.Close()
	var tv struct{ TaskState string }
	testkit.WaitFor(t, 15*time.Second, id+"'s ForceOn to end", func() (bool, string) {
		r := request(t, "GET", base+task, "")
		json.NewDecoder(r.Body).Decode(&tv)
		r.Body.Close()
		return tv.TaskState == "Completed" || tv.TaskState == "Exception", tv.TaskState
	})
	if tv.TaskState != "Completed" {
		t.Errorf("%s's ForceOn ended %s", id, tv.TaskState)
	}
}
