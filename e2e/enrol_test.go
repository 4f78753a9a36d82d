package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/simulator"
)

// Runtime enrolment over the AggregationService (docs/architecture.md#runtime-enrolment),
// with two `fishgate serve` replicas sharing a real redis-server.

const sourcesURL = "/redfish/v1/AggregationService/AggregationSources"

// withSecretsKey adds a new secrets_key_file to the replica set's config.
func (rs *replicaSet) withSecretsKey() {
	rs.t.Helper()
	key := filepath.Join(rs.t.TempDir(), "secrets.key")
	if err := config.WriteSecretsKey(key); err != nil {
		rs.t.Fatal(err)
	}
	rs.appendConfig(fmt.Sprintf("secrets_key_file: %q\n", key))
}

func (rs *replicaSet) appendConfig(yaml string) {
	rs.t.Helper()
	f, err := os.OpenFile(rs.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		rs.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(yaml); err != nil {
		rs.t.Fatal(err)
	}
}

// startOnAnyPort runs a replica on a port the kernel picks (--listen
// 127.0.0.1:0) and learns its URL from its "fishgate serving" line: a
// port found free and given back may be taken by another process before
// the replica binds it (other tests run on the machine).
func (rs *replicaSet) startOnAnyPort() *replica {
	t := rs.t
	t.Helper()
	cmd := exec.Command(fishgateBinary(t), "serve", "--config", rs.config, "--listen", "127.0.0.1:0", "--insecure-http", "--log-level", "debug")
	urls := make(chan string, 1)
	cmd.Stdout = io.MultiWriter(rs.logs, lineWatcher(func(line string) {
		if u, ok := strings.CutPrefix(line, "fishgate serving "); ok {
			u, _, _ = strings.Cut(u, " ")
			select {
			case urls <- strings.TrimSuffix(u, ","):
			default:
			}
		}
	}))
	cmd.Stderr = rs.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &replica{cmd: cmd}
	t.Cleanup(func() {
		r.cmd.Process.Signal(syscall.SIGTERM)
		r.cmd.Wait()
		if t.Failed() {
			t.Logf("replica %s logs (all replicas):\n%s", r.url, rs.logs.String())
		}
	})
	select {
	case r.url = <-urls:
	case <-time.After(20 * time.Second):
		t.Fatalf("replica did not say where it serves within 20s; logs:\n%s", rs.logs.String())
	}
	waitFor(t, 20*time.Second, "replica "+r.url+" ready", func() (bool, string) {
		st, _, body := do(t, http.MethodGet, r.url+"/readyz", nil, nil)
		return st == http.StatusOK, fmt.Sprintf("%d %s", st, body)
	})
	return r
}

// lineWatcher is a writer that calls f with each complete line.
type lineWatcher func(line string)

func (f lineWatcher) Write(p []byte) (int, error) {
	for _, l := range strings.Split(string(p), "\n") {
		f(strings.TrimSpace(l))
	}
	return len(p), nil
}

// sourceBody is a POST body for a BMC of kind method at host.
func sourceBody(method, host, user, password string, oem map[string]any) map[string]any {
	b := map[string]any{
		"HostName": host, "UserName": user, "Password": password,
		"Links": map[string]any{"ConnectionMethod": map[string]string{"@odata.id": "/redfish/v1/AggregationService/ConnectionMethods/" + method}},
	}
	if oem != nil {
		b["Oem"] = map[string]any{"Fishgate": oem}
	}
	return b
}

// randomSecret is a BMC password that cannot be found by accident.
func randomSecret(t *testing.T) string {
	b := make([]byte, 8)
	rand.Read(b)
	return "Pw-" + hex.EncodeToString(b)
}

// TestEnrolmentAtRuntime: Redfish, IPMI and AMT BMCs enrolled over
// Redfish on one replica are managed by both within a second, driven
// (Reset, boot override, pass-through), removed (one while an action runs
// and another waits); every bad input gets its Redfish error; no password
// is in Redis or in the logs in clear; a restart of every replica keeps
// the sources.
func TestEnrolmentAtRuntime(t *testing.T) {
	rs := newReplicaSet(t, 1, 400*time.Millisecond) // n1: a node of the configuration file
	rs.withSecretsKey()
	a, b := rs.startOnAnyPort(), rs.startOnAnyPort()

	secrets := map[string]string{}
	add := func(spec simulator.NodeSpec) *simulator.Node {
		spec.User, spec.Password = "bmc", randomSecret(t)
		spec.Machine = simulator.MachineConfig{DelayMin: 400 * time.Millisecond, DelayMax: 400 * time.Millisecond, InitialPower: "Off"}
		sn, err := rs.fleet.Add(spec)
		if err != nil {
			t.Fatal(err)
		}
		secrets[spec.ID] = spec.Password
		return sn
	}
	rf := add(simulator.NodeSpec{ID: "rt-rf"})
	ipmi := add(simulator.NodeSpec{ID: "rt-ipmi", IPMIListen: "127.0.0.1:0"})
	amt := add(simulator.NodeSpec{ID: "rt-amt", AMTListen: "127.0.0.1:0"})
	enrol := []struct {
		id, method, host string
	}{
		{"rt-rf", "Redfish", rf.URL()},
		{"rt-ipmi", "IPMI", "ipmi://" + ipmi.IPMIAddr()},
		{"rt-amt", "AMT", amt.AMTURL()},
	}
	v := validator(t)

	for _, e := range enrol {
		body := sourceBody(e.method, e.host, "bmc", secrets[e.id], map[string]any{"NodeId": e.id, "Name": "runtime " + e.id})
		st, h, resp := do(t, http.MethodPost, a.url+sourcesURL, body, adminHdr)
		if st != http.StatusCreated {
			t.Fatalf("POST source %s: %d %s", e.id, st, resp)
		}
		if loc := h.Get("Location"); loc != sourcesURL+"/"+e.id {
			t.Errorf("POST source %s: Location %q", e.id, loc)
		}
		if err := v.Validate(resp); err != nil {
			t.Errorf("created source %s does not validate: %v\n%s", e.id, err, resp)
		}
		var src struct {
			HostName string
			Password *string
			Links    struct {
				ConnectionMethod struct {
					OdataID string `json:"@odata.id"`
				}
				ResourcesAccessed []struct {
					OdataID string `json:"@odata.id"`
				}
			}
		}
		json.Unmarshal(resp, &src)
		if src.Password != nil || strings.Contains(string(resp), secrets[e.id]) {
			t.Errorf("source %s: the password is shown: %s", e.id, resp)
		}
		if src.HostName != e.host || !strings.HasSuffix(src.Links.ConnectionMethod.OdataID, "/"+e.method) {
			t.Errorf("source %s: HostName %q, ConnectionMethod %q", e.id, src.HostName, src.Links.ConnectionMethod.OdataID)
		}
		if len(src.Links.ResourcesAccessed) != 1 || src.Links.ResourcesAccessed[0].OdataID != "/redfish/v1/Systems/"+e.id {
			t.Errorf("source %s: ResourcesAccessed %+v", e.id, src.Links.ResourcesAccessed)
		}
		// On the other replica within a second, in both views.
		start := time.Now()
		waitFor(t, time.Second, e.id+" on the second replica", func() (bool, string) {
			st1, _, _ := do(t, http.MethodGet, b.url+"/redfish/v1/Systems/"+e.id, nil, adminHdr)
			st2, _, _ := do(t, http.MethodGet, b.url+"/bmc/"+e.id+"/redfish/v1/Systems/"+e.id, nil, adminHdr)
			return st1 == http.StatusOK && st2 == http.StatusOK, fmt.Sprintf("%d %d", st1, st2)
		})
		t.Logf("%s visible on the second replica after %v", e.id, time.Since(start).Round(time.Millisecond))
	}
	for _, e := range enrol {
		waitHealthy(t, b, e.id)
	}

	// Driven through the other replica: Reset, and for the Redfish one a
	// boot override and a pass-through read.
	for _, e := range enrol {
		task := b.reset(t, e.id, "On")
		waitFor(t, 20*time.Second, e.id+" On completed", func() (bool, string) {
			tv, _ := b.task(t, task)
			return tv.TaskState == "Completed", fmt.Sprintf("%+v", tv)
		})
		if sn, _ := rs.fleet.Node(e.id); sn.Machine().PowerState() != simulator.PowerOn {
			p := sn.Machine().PowerState()
			t.Errorf("%s is %s after On", e.id, p)
		}
	}
	st, _, resp := do(t, http.MethodPatch, a.url+"/redfish/v1/Systems/rt-rf", `{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}`, adminHdr)
	if st != http.StatusOK && st != http.StatusNoContent {
		t.Fatalf("boot override of rt-rf: %d %s", st, resp)
	}
	if bt := rf.Machine().Status().Boot; bt.Target != "Pxe" || bt.Enabled != "Once" {
		t.Errorf("rt-rf machine boot override %+v, want Pxe/Once", bt)
	}
	// The simulated BMC has no Bios: its own 404 comes back through the
	// proxy, naming its own path (Systems/1) and, rewritten, the gateway's.
	if st, _, resp := do(t, http.MethodGet, b.url+"/redfish/v1/Systems/rt-rf/Bios", nil, adminHdr); st != http.StatusNotFound ||
		!strings.Contains(string(resp), "/redfish/v1/Systems/1/Bios") || !strings.Contains(string(resp), "/redfish/v1/Systems/rt-rf/Bios") {
		t.Errorf("pass-through GET .../rt-rf/Bios: %d %s, want the BMC's 404 through the proxy", st, resp)
	}

	t.Run("bad-input", func(t *testing.T) {
		closed := testkit.RefusedAddr(t)
		cases := []struct {
			name   string
			method string
			url    string
			body   any
			status int
			msgID  string
		}{
			{"duplicate NodeId", "POST", sourcesURL, sourceBody("Redfish", rf.URL(), "bmc", secrets["rt-rf"], map[string]any{"NodeId": "rt-rf"}), 409, "ResourceAlreadyExists"},
			{"NodeId of a config node", "POST", sourcesURL, sourceBody("Redfish", rf.URL(), "bmc", secrets["rt-rf"], map[string]any{"NodeId": "n1"}), 409, "ResourceAlreadyExists"},
			{"unknown connection method", "POST", sourcesURL, sourceBody("SNMP", rf.URL(), "bmc", "x", nil), 400, "PropertyValueNotInList"},
			{"no connection method", "POST", sourcesURL, map[string]any{"HostName": rf.URL(), "UserName": "bmc", "Password": "x"}, 400, "PropertyMissing"},
			{"no HostName", "POST", sourcesURL, map[string]any{"UserName": "bmc", "Password": "x", "Links": map[string]any{"ConnectionMethod": map[string]string{"@odata.id": "/redfish/v1/AggregationService/ConnectionMethods/Redfish"}}}, 400, "PropertyMissing"},
			{"no Password", "POST", sourcesURL, map[string]any{"HostName": rf.URL(), "UserName": "bmc", "Links": map[string]any{"ConnectionMethod": map[string]string{"@odata.id": "/redfish/v1/AggregationService/ConnectionMethods/Redfish"}}}, 400, "PropertyMissing"},
			{"HostName not a URL", "POST", sourcesURL, sourceBody("Redfish", "ftp://x", "bmc", "x", nil), 400, "PropertyValueIncorrect"},
			{"bad Policy", "POST", sourcesURL, sourceBody("Redfish", rf.URL(), "bmc", secrets["rt-rf"], map[string]any{"Policy": "lottery"}), 400, "PropertyValueNotInList"},
			{"bad CipherSuite", "POST", sourcesURL, sourceBody("IPMI", "ipmi://"+ipmi.IPMIAddr(), "bmc", secrets["rt-ipmi"], map[string]any{"CipherSuite": 999}), 400, "PropertyValueIncorrect"},
			{"bad NodeId", "POST", sourcesURL, sourceBody("Redfish", rf.URL(), "bmc", secrets["rt-rf"], map[string]any{"NodeId": "a/b"}), 400, "PropertyValueIncorrect"},
			{"unknown property", "POST", sourcesURL, map[string]any{"HostName": rf.URL(), "Colour": "red"}, 400, "PropertyUnknown"},
			{"IpmiListen without IpmiUser", "POST", sourcesURL, sourceBody("Redfish", rf.URL(), "bmc", secrets["rt-rf"], map[string]any{"IpmiListen": "127.0.0.1:0"}), 400, "PropertyValueIncorrect"},
			{"wrong Redfish credentials", "POST", sourcesURL, sourceBody("Redfish", rf.URL(), "bmc", "wrong", map[string]any{"NodeId": "bad-cred"}), 400, "ResourceAtUriUnauthorized"},
			{"wrong IPMI credentials", "POST", sourcesURL, sourceBody("IPMI", "ipmi://"+ipmi.IPMIAddr(), "bmc", "wrong", map[string]any{"NodeId": "bad-cred2"}), 400, "ResourceAtUriUnauthorized"},
			{"wrong AMT credentials", "POST", sourcesURL, sourceBody("AMT", amt.AMTURL(), "bmc", "wrong", map[string]any{"NodeId": "bad-cred3"}), 400, "ResourceAtUriUnauthorized"},
			{"PATCH of a config source", "PATCH", sourcesURL + "/n1", `{"UserName":"x"}`, 405, "OperationNotAllowed"},
			{"DELETE of a config source", "DELETE", sourcesURL + "/n1", nil, 405, "ResourceCannotBeDeleted"},
			{"PATCH of Policy", "PATCH", sourcesURL + "/rt-rf", `{"Oem":{"Fishgate":{"Policy":"queue"}}}`, 400, "PropertyNotWritable"},
			{"PATCH with wrong credentials", "PATCH", sourcesURL + "/rt-rf", `{"Password":"wrong"}`, 400, "ResourceAtUriUnauthorized"},
			{"DELETE of an unknown source", "DELETE", sourcesURL + "/nope", nil, 404, "ResourceNotFound"},
			{"unreachable BMC", "POST", sourcesURL, sourceBody("Redfish", "http://"+closed, "bmc", "x", map[string]any{"NodeId": "rt-down"}), 201, ""},
		}
		for _, c := range cases {
			st, _, resp := do(t, c.method, a.url+c.url, c.body, adminHdr)
			ids := messageIDs(resp)
			if st != c.status || (c.msgID != "" && !slices.ContainsFunc(ids, func(id string) bool { return strings.HasSuffix(id, "."+c.msgID) })) {
				t.Errorf("%s: %d %v, want %d %s\n%s", c.name, st, ids, c.status, c.msgID, resp)
			}
		}
		// The unreachable one exists, Critical with the reason.
		waitFor(t, 10*time.Second, "rt-down Critical with a reason", func() (bool, string) {
			_, _, resp := do(t, http.MethodGet, b.url+sourcesURL+"/rt-down", nil, adminHdr)
			var src struct {
				Status struct{ Health string }
				Oem    struct{ Fishgate struct{ LastError string } }
			}
			json.Unmarshal(resp, &src)
			return src.Status.Health == "Critical" && strings.Contains(src.Oem.Fishgate.LastError, "refused"), string(resp)
		})
	})

	t.Run("patch-credentials", func(t *testing.T) {
		// A new password on the BMC, then on the source: the node works with it.
		newPw := randomSecret(t)
		secrets["rt-rf-2"] = newPw
		st, _, resp := do(t, http.MethodPatch, a.url+sourcesURL+"/rt-rf", map[string]any{"Password": secrets["rt-rf"], "Oem": map[string]any{"Fishgate": map[string]any{"Insecure": true}}}, adminHdr)
		if st != http.StatusOK {
			t.Fatalf("PATCH rt-rf: %d %s", st, resp)
		}
		if !strings.Contains(string(resp), `"Insecure":true`) {
			t.Errorf("PATCH rt-rf: Insecure not changed: %s", resp)
		}
		waitHealthy(t, b, "rt-rf")
		task := b.reset(t, "rt-rf", "ForceOff")
		waitFor(t, 20*time.Second, "rt-rf ForceOff after PATCH", func() (bool, string) {
			tv, _ := b.task(t, task)
			return tv.TaskState == "Completed", fmt.Sprintf("%+v", tv)
		})
	})

	t.Run("no-clear-password", func(t *testing.T) {
		rdb := redisClient(rs.redis)
		defer rdb.Close()
		ctx := context.Background()
		keys, err := rdb.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		var dump strings.Builder
		for _, k := range keys {
			switch typ := rdb.Type(ctx, k).Val(); typ {
			case "string":
				dump.WriteString(rdb.Get(ctx, k).Val())
			case "hash":
				fmt.Fprint(&dump, rdb.HGetAll(ctx, k).Val())
			case "stream":
				fmt.Fprint(&dump, rdb.XRange(ctx, k, "-", "+").Val())
			case "set":
				fmt.Fprint(&dump, rdb.SMembers(ctx, k).Val())
			case "zset":
				fmt.Fprint(&dump, rdb.ZRange(ctx, k, 0, -1).Val())
			case "list":
				fmt.Fprint(&dump, rdb.LRange(ctx, k, 0, -1).Val())
			}
		}
		if !strings.Contains(dump.String(), "rt-ipmi") || !strings.Contains(dump.String(), "aes256gcm:v1:") {
			t.Fatalf("the Redis dump has no sealed source records: %d keys", len(keys))
		}
		for id, pw := range secrets {
			if strings.Contains(dump.String(), pw) {
				t.Errorf("the password of %s is in Redis in clear", id)
			}
			if strings.Contains(rs.logs.String(), pw) {
				t.Errorf("the password of %s is in the replicas' logs", id)
			}
		}
	})

	t.Run("restart-keeps-sources", func(t *testing.T) {
		a.kill(t)
		b.kill(t)
		a2 := rs.startOnAnyPort()
		for _, e := range enrol {
			st, _, resp := do(t, http.MethodGet, a2.url+"/redfish/v1/Systems/"+e.id, nil, adminHdr)
			if st != http.StatusOK {
				t.Errorf("%s after a restart of every replica: %d %s", e.id, st, resp)
			}
		}
		b = rs.startOnAnyPort()
		a = a2
	})

	t.Run("delete-while-running", func(t *testing.T) {
		// an action runs (400 ms transitions), another waits behind it
		running := a.reset(t, "rt-ipmi", "ForceOff")
		waitFor(t, 10*time.Second, "the ForceOff running", func() (bool, string) {
			tv, _ := a.task(t, running)
			return tv.TaskState == "Running", tv.TaskState
		})
		queued := b.reset(t, "rt-ipmi", "On")
		st, _, resp := do(t, http.MethodDelete, b.url+sourcesURL+"/rt-ipmi", nil, adminHdr)
		if st != http.StatusNoContent {
			t.Fatalf("DELETE rt-ipmi: %d %s", st, resp)
		}
		tr, _ := a.task(t, running)
		tq, _ := a.task(t, queued)
		if tr.TaskState != "Completed" || tq.TaskState != "Cancelled" {
			t.Errorf("after the DELETE: running task %s, queued task %s; want Completed, Cancelled", tr.TaskState, tq.TaskState)
		}
		for _, r := range []*replica{a, b} {
			waitFor(t, time.Second, "rt-ipmi gone from "+r.url, func() (bool, string) {
				st1, _, _ := do(t, http.MethodGet, r.url+"/redfish/v1/Systems/rt-ipmi", nil, adminHdr)
				st2, _, _ := do(t, http.MethodGet, r.url+sourcesURL+"/rt-ipmi", nil, adminHdr)
				return st1 == http.StatusNotFound && st2 == http.StatusNotFound, fmt.Sprintf("%d %d", st1, st2)
			})
		}
		if st, _, resp := do(t, http.MethodPost, a.url+"/redfish/v1/Systems/rt-ipmi/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`, adminHdr); st != http.StatusNotFound {
			t.Errorf("Reset of a removed node: %d %s", st, resp)
		}
		// the other two go too, and the amt one can be enrolled again
		for _, id := range []string{"rt-rf", "rt-amt", "rt-down"} {
			if st, _, resp := do(t, http.MethodDelete, a.url+sourcesURL+"/"+id, nil, adminHdr); st != http.StatusNoContent {
				t.Errorf("DELETE %s: %d %s", id, st, resp)
			}
		}
		body := sourceBody("AMT", amt.AMTURL(), "bmc", secrets["rt-amt"], map[string]any{"NodeId": "rt-amt"})
		if st, _, resp := do(t, http.MethodPost, b.url+sourcesURL, body, adminHdr); st != http.StatusCreated {
			t.Fatalf("POST rt-amt again: %d %s", st, resp)
		}
		waitHealthy(t, a, "rt-amt")
		task := a.reset(t, "rt-amt", "ForceOff")
		waitFor(t, 20*time.Second, "rt-amt ForceOff after re-enrolment", func() (bool, string) {
			tv, _ := a.task(t, task)
			return tv.TaskState == "Completed", fmt.Sprintf("%+v", tv)
		})
	})
}

// waitHealthy waits until replica r has read node id's BMC (its source
// shows Health OK).
func waitHealthy(t *testing.T, r *replica, id string) {
	t.Helper()
	waitFor(t, 10*time.Second, id+" read by "+r.url, func() (bool, string) {
		_, _, resp := do(t, http.MethodGet, r.url+sourcesURL+"/"+id, nil, adminHdr)
		return strings.Contains(string(resp), `"Health":"OK"`), string(resp)
	})
}

// TestEnrolmentNeedsSecretsKey: without secrets_key_file a POST is
// refused with the reason, and the configuration's nodes are listed as
// read-only sources.
func TestEnrolmentNeedsSecretsKey(t *testing.T) {
	rs := newReplicaSet(t, 1, 0)
	a := rs.startOnAnyPort()
	st, _, resp := do(t, http.MethodPost, a.url+sourcesURL, sourceBody("Redfish", "https://10.0.0.1", "bmc", "x", nil), adminHdr)
	if st != http.StatusMethodNotAllowed || !strings.Contains(string(resp), "secrets_key_file") {
		t.Errorf("POST without a key: %d %s, want 405 naming secrets_key_file", st, resp)
	}
	st, _, resp = do(t, http.MethodGet, a.url+sourcesURL+"/n1", nil, adminHdr)
	if st != http.StatusOK || !strings.Contains(string(resp), `"FromConfiguration":true`) || !strings.Contains(string(resp), `"Password":null`) {
		t.Errorf("config source n1: %d %s", st, resp)
	}
}

// TestReadmeEnrolExample posts the body of the README's enrolment example
// (its BMC address and credentials replaced by a simulated BMC's) to a
// demo: the node it names is managed with the options it gives, and
// redfishtool lists its source.
func TestReadmeEnrolExample(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "<!-- enrol-example")
	if !ok {
		t.Fatal("README has no enrol-example")
	}
	_, rest, _ = strings.Cut(rest, "-d '")
	js, _, ok := strings.Cut(rest, "'\n```")
	if !ok {
		t.Fatalf("README's enrol example has no -d '...' body:\n%.300s", rest)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(js), &body); err != nil {
		t.Fatalf("README's enrol example body is not JSON: %v\n%s", err, js)
	}
	d := startDemo(t, 1)
	sn, err := d.Fleet.Add(simulator.NodeSpec{ID: "readme-bmc", User: "root", Password: "calvin", Machine: simulator.MachineConfig{InitialPower: "Off"}})
	if err != nil {
		t.Fatal(err)
	}
	body["HostName"] = sn.URL()
	st, _, resp := do(t, http.MethodPost, d.URL()+sourcesURL, body, basic(d))
	if st != http.StatusCreated {
		t.Fatalf("POST of the README's example: %d %s", st, resp)
	}
	src := getJSON(t, d, d.URL()+sourcesURL+"/rack1-n17")
	oem := src["Oem"].(map[string]any)["Fishgate"].(map[string]any)
	if oem["Insecure"] != true || oem["Policy"] != "queue" || src["Password"] != nil {
		t.Errorf("the README's source as read back: %v", src)
	}
	if p := gatewayPower(t, d, "rack1-n17"); p != "Off" {
		t.Errorf("rack1-n17 PowerState %q, want Off (read from its BMC)", p)
	}
	if _, err := os.Stat(redfishtoolPath); err == nil || os.Getenv("CI") != "" {
		out := mustRedfishtool(t, d, "raw", "GET", sourcesURL)
		if !strings.Contains(out, sourcesURL+"/rack1-n17") {
			t.Errorf("redfishtool raw GET %s does not list rack1-n17:\n%s", sourcesURL, out)
		}
	}
}
