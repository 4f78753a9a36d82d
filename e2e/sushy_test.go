package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/demo"
)

// python is Debian's interpreter: python3-sushy is installed for it, and
// another python3 may come first on PATH.
const python = "/usr/bin/python3"

// sushyResult is what testdata/sushy_flow.py prints.
type sushyResult struct {
	SushyVersion   string   `json:"sushy_version"`
	RootPrefix     string   `json:"root_prefix"`
	RedfishVersion string   `json:"redfish_version"`
	SessionKeySet  bool     `json:"session_key_set"`
	SessionURI     string   `json:"session_uri"`
	SessionUser    string   `json:"session_user"`
	Members        []string `json:"members"`
	SystemPath     string   `json:"system_path"`
	SystemID       string   `json:"system_id"`
	InitialPower   string   `json:"initial_power"`
	AllowedResets  []string `json:"allowed_resets"`
	StatesAfterOn  []string `json:"states_after_on"`
	Boot           struct {
		Target  string `json:"target"`
		Enabled string `json:"enabled"`
	} `json:"boot"`
	StatesAfterOff []string `json:"states_after_off"`
	FinalPower     string   `json:"final_power"`
	LoggedOut      bool     `json:"logged_out"`
}

func runSushy(t *testing.T, d *demo.Demo, address, auth, systemID string) sushyResult {
	t.Helper()
	args := []string{"testdata/sushy_flow.py", address, d.User, d.Pass, auth}
	if systemID != "" {
		args = append(args, systemID)
	}
	out, stderr, err := run(t, 60*time.Second, python, args...)
	if err != nil {
		t.Fatalf("sushy flow (%s auth, %s): %v\nstdout: %s\nstderr: %s", auth, address, err, out, stderr)
	}
	var r sushyResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("sushy flow printed no JSON result: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	t.Logf("sushy %s, %s auth: on %v, off %v; stderr: %q", r.SushyVersion, auth, r.StatesAfterOn, r.StatesAfterOff, stderr)
	if strings.Contains(stderr, "Falling back") || strings.Contains(stderr, "eTag") || strings.Contains(stderr, "Traceback") {
		t.Errorf("sushy stderr shows trouble:\n%s", stderr)
	}
	return r
}

// checkSushyRun checks what sushy reported and what the machine went through.
func checkSushyRun(t *testing.T, d *demo.Demo, node, prefix string, r sushyResult) {
	t.Helper()
	if want := prefix + "/Systems/" + node; r.SystemPath != want || r.SystemID != node {
		t.Errorf("sushy used system %s (Id %s), want %s", r.SystemPath, r.SystemID, want)
	}
	if r.RedfishVersion == "" {
		t.Errorf("service root has no RedfishVersion (sushy reads it)")
	}
	if r.InitialPower != "Off" {
		t.Errorf("initial power %q, want Off (the demo starts machines off)", r.InitialPower)
	}
	for _, rt := range []string{"On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi"} {
		if !slices.Contains(r.AllowedResets, rt) {
			t.Errorf("ResetType@Redfish.AllowableValues %v lacks %s, which Ironic sends", r.AllowedResets, rt)
		}
	}
	if r.StatesAfterOn[len(r.StatesAfterOn)-1] != "On" || r.StatesAfterOff[len(r.StatesAfterOff)-1] != "Off" || r.FinalPower != "Off" {
		t.Errorf("sushy saw on: %v, off: %v, final %s", r.StatesAfterOn, r.StatesAfterOff, r.FinalPower)
	}
	if r.Boot.Target != "Pxe" || r.Boot.Enabled != "Once" {
		t.Errorf("boot override read back by sushy: %+v, want Pxe/Once", r.Boot)
	}
	m := machine(t, d, node)
	st := m.Status()
	if st.PowerState != "Off" || st.PowerOnCount != 1 || st.PowerOffCount != 1 {
		t.Errorf("%s machine: PowerState %s, %d power-ons, %d power-offs; want Off after exactly one on and one off",
			node, st.PowerState, st.PowerOnCount, st.PowerOffCount)
	}
	if accepted(st, "On") != 1 || accepted(st, "ForceOff") != 1 {
		t.Errorf("%s machine accepted On ×%d, ForceOff ×%d; want one each: %+v",
			node, accepted(st, "On"), accepted(st, "ForceOff"), st.Commands)
	}
	if st.Boot.Target != "Pxe" || st.Boot.Enabled != "Once" {
		t.Errorf("%s machine boot override %+v, want Pxe/Once", node, st.Boot)
	}
}

// checkSessionLogin checks that sushy logged in with a session (not the
// Basic fallback), read it back, and that its logout ended it.
func checkSessionLogin(t *testing.T, d *demo.Demo, prefix string, r sushyResult) {
	t.Helper()
	if !r.SessionKeySet || !strings.HasPrefix(r.SessionURI, prefix+"/SessionService/Sessions/") {
		t.Fatalf("sushy did not log in with a session: key set %v, session %q", r.SessionKeySet, r.SessionURI)
	}
	if r.SessionUser != d.User {
		t.Errorf("session %s read back with UserName %q, want %q", r.SessionURI, r.SessionUser, d.User)
	}
	if !r.LoggedOut {
		t.Errorf("sushy did not log out")
	}
	if st, _, body := do(t, http.MethodGet, d.URL()+r.SessionURI, nil, basic(d)); st != http.StatusNotFound {
		t.Errorf("GET %s after sushy's logout: status %d, want 404; body %s", r.SessionURI, st, body)
	}
}

// needSushy skips (fails, with CI set) when Debian's python3-sushy is missing.
func needSushy(t *testing.T) {
	t.Helper()
	needTool(t, "python3-sushy", func() error {
		_, stderr, err := run(t, 30*time.Second, python, "-c", "import sushy, sushy.auth, sushy.taskmonitor")
		if err != nil {
			return &toolError{err, stderr}
		}
		return nil
	})
}

func TestSushy(t *testing.T) {
	t.Parallel()
	needSushy(t)
	d := startDemo(t, 3)

	// Ironic: redfish_address = gateway, redfish_system_id = /redfish/v1/Systems/node01, auth auto.
	t.Run("session-auth", func(t *testing.T) {
		t.Parallel()
		r := runSushy(t, d, d.URL(), "session", "/redfish/v1/Systems/node01")
		if want := []string{"/redfish/v1/Systems/node01", "/redfish/v1/Systems/node02", "/redfish/v1/Systems/node03"}; !slices.Equal(r.Members, want) {
			t.Errorf("systems collection members %v, want %v", r.Members, want)
		}
		checkSushyRun(t, d, "node01", "/redfish/v1", r)
		checkSessionLogin(t, d, "/redfish/v1", r)
	})

	// Ironic with redfish_auth_type = basic.
	t.Run("basic-auth", func(t *testing.T) {
		t.Parallel()
		r := runSushy(t, d, d.URL(), "basic", "/redfish/v1/Systems/node03")
		if r.SessionKeySet || r.SessionURI != "" {
			t.Errorf("basic auth run used a session: %q", r.SessionURI)
		}
		checkSushyRun(t, d, "node03", "/redfish/v1", r)
	})

	// Ironic without redfish_system_id: the address carries the per-node
	// path and sushy takes the single member of that view's Systems.
	t.Run("per-node-view", func(t *testing.T) {
		t.Parallel()
		const prefix = "/bmc/node02/redfish/v1"
		r := runSushy(t, d, d.URL()+prefix, "session", "")
		if r.RootPrefix != prefix+"/" {
			t.Errorf("root prefix %q, want %q", r.RootPrefix, prefix+"/")
		}
		if want := []string{prefix + "/Systems/node02"}; !slices.Equal(r.Members, want) {
			t.Errorf("per-node systems collection members %v, want %v", r.Members, want)
		}
		checkSushyRun(t, d, "node02", prefix, r)
		checkSessionLogin(t, d, prefix, r)
	})
}

// toolError carries a tool's stderr with its failure.
type toolError struct {
	err    error
	stderr string
}

func (e *toolError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }
