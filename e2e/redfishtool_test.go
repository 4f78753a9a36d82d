package e2e

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/demo"
)

const redfishtoolPath = "/usr/bin/redfishtool"

// redfishtool runs Debian's redfishtool against the demo over plain HTTP
// (-S Never) with the demo's credentials and extra arguments.
func redfishtool(t *testing.T, d *demo.Demo, args ...string) (string, string, error) {
	t.Helper()
	host := strings.TrimPrefix(d.URL(), "http://")
	full := append([]string{"-r", host, "-S", "Never", "-T", "10", "-u", d.User, "-p", d.Pass}, args...)
	return run(t, 60*time.Second, redfishtoolPath, full...)
}

// mustRedfishtool runs redfishtool, requires success and returns stdout.
func mustRedfishtool(t *testing.T, d *demo.Demo, args ...string) string {
	t.Helper()
	out, stderr, err := redfishtool(t, d, args...)
	if err != nil {
		t.Fatalf("redfishtool %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, stderr)
	}
	return out
}

func decodeObject(t *testing.T, what, out string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%s: output is not a JSON object: %v\n%s", what, err, out)
	}
	return m
}

// needRedfishtool skips (fails, with CI set) without Debian's redfishtool.
func needRedfishtool(t *testing.T) {
	t.Helper()
	needTool(t, "redfishtool", func() error {
		if _, err := exec.LookPath(redfishtoolPath); err != nil {
			return err
		}
		_, stderr, err := run(t, 30*time.Second, redfishtoolPath, "-V")
		if err != nil {
			return &toolError{err, stderr}
		}
		return nil
	})
}

func TestRedfishtool(t *testing.T) {
	t.Parallel()
	needRedfishtool(t)
	d := startDemo(t, 3)

	t.Run("list", func(t *testing.T) {
		t.Parallel()
		for _, auth := range []string{"Basic", "Session"} {
			out := mustRedfishtool(t, d, "-A", auth, "Systems", "list")
			list := decodeObject(t, "Systems list", out)
			var ids []string
			members, _ := list["Members"].([]any)
			for _, m := range members {
				mm, _ := m.(map[string]any)
				id, _ := mm["Id"].(string)
				uri, _ := mm["@odata.id"].(string)
				if uri != "/redfish/v1/Systems/"+id {
					t.Errorf("%s auth: member Id %q has @odata.id %q", auth, id, uri)
				}
				ids = append(ids, id)
			}
			if want := []string{"node01", "node02", "node03"}; !slices.Equal(ids, want) {
				t.Errorf("%s auth: Systems list ids %v, want %v\n%s", auth, ids, want, out)
			}
			if n, _ := list["Members@odata.count"].(float64); n != 3 {
				t.Errorf("%s auth: Members@odata.count %v, want 3", auth, list["Members@odata.count"])
			}
		}
	})

	t.Run("get", func(t *testing.T) {
		t.Parallel()
		out := mustRedfishtool(t, d, "-I", "node02", "Systems", "get")
		sys := decodeObject(t, "Systems get", out)
		if sys["Id"] != "node02" || sys["@odata.id"] != "/redfish/v1/Systems/node02" || sys["PowerState"] != "Off" {
			t.Errorf("-I node02 Systems get: Id %v, @odata.id %v, PowerState %v; want node02, Off",
				sys["Id"], sys["@odata.id"], sys["PowerState"])
		}
		out = mustRedfishtool(t, d, "-I", "node02", "-P", "PowerState", "Systems", "get")
		if p := decodeObject(t, "Systems get -P PowerState", out); p["PowerState"] != "Off" {
			t.Errorf("-P PowerState: %s", out)
		}
	})

	t.Run("reset-basic", func(t *testing.T) {
		t.Parallel()
		mustRedfishtool(t, d, "-I", "node01", "Systems", "reset", "On")
		waitMachine(t, d, "node01", "On")
		waitGateway(t, d, "node01", "On")
		out := mustRedfishtool(t, d, "-I", "node01", "-P", "PowerState", "Systems", "get")
		if p := decodeObject(t, "get PowerState", out); p["PowerState"] != "On" {
			t.Errorf("redfishtool reads PowerState %v after On, want On", p["PowerState"])
		}
		mustRedfishtool(t, d, "-I", "node01", "Systems", "reset", "ForceOff")
		waitMachine(t, d, "node01", "Off")
		waitGateway(t, d, "node01", "Off")
		st := machine(t, d, "node01").Status()
		if st.PowerOnCount != 1 || st.PowerOffCount != 1 || accepted(st, "On") != 1 || accepted(st, "ForceOff") != 1 {
			t.Errorf("node01 machine: %d power-ons, %d power-offs, commands %+v; want one On and one ForceOff",
				st.PowerOnCount, st.PowerOffCount, st.Commands)
		}
	})

	t.Run("reset-session", func(t *testing.T) {
		t.Parallel()
		// -ssss prints the login (201, token, session URI) and the logout.
		out, stderr, err := redfishtool(t, d, "-A", "Session", "-ssss", "-I", "node03", "Systems", "reset", "On")
		if err != nil {
			t.Fatalf("redfishtool -A Session reset On: %v\nstdout: %s\nstderr: %s", err, out, stderr)
		}
		trace := out + stderr
		for _, want := range []string{
			"POST     " + d.URL() + "/redfish/v1/SessionService/Sessions",
			"status_code: 201",
			"#____SESSION_URI: /redfish/v1/SessionService/Sessions/",
			"'X-Auth-Token': ",
			"AuthType: Session",
			"DELETE     " + d.URL() + "/redfish/v1/SessionService/Sessions/",
		} {
			if !strings.Contains(trace, want) {
				t.Errorf("redfishtool -A Session trace lacks %q:\n%s", want, trace)
			}
		}
		if strings.Contains(trace, "AuthType: Basic") {
			t.Errorf("redfishtool -A Session fell back to Basic:\n%s", trace)
		}
		waitMachine(t, d, "node03", "On")
		waitGateway(t, d, "node03", "On")

		mustRedfishtool(t, d, "-A", "Session", "-I", "node03", "Systems", "setBootOverride", "Once", "Pxe")
		if b := machine(t, d, "node03").Boot(); b.Target != "Pxe" || b.Enabled != "Once" {
			t.Errorf("node03 machine boot override %+v after setBootOverride Once Pxe", b)
		}
		out = mustRedfishtool(t, d, "-A", "Session", "-I", "node03", "-P", "Boot", "Systems", "get")
		boot, _ := decodeObject(t, "get Boot", out)["Boot"].(map[string]any)
		if boot["BootSourceOverrideTarget"] != "Pxe" || boot["BootSourceOverrideEnabled"] != "Once" {
			t.Errorf("Boot read back: %v", boot)
		}
		if st := machine(t, d, "node03").Status(); st.PowerOnCount != 1 || accepted(st, "On") != 1 {
			t.Errorf("node03 machine: %d power-ons, commands %+v; want one On", st.PowerOnCount, st.Commands)
		}
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		host := strings.TrimPrefix(d.URL(), "http://")
		out, stderr, err := run(t, 60*time.Second, redfishtoolPath, "-r", host, "-S", "Never",
			"-u", d.User, "-p", "wrong", "Systems", "list")
		if err == nil || !strings.Contains(out+stderr, "401") {
			t.Errorf("wrong password: err %v, want a failure naming 401\nstdout: %s\nstderr: %s", err, out, stderr)
		}
		out, stderr, err = redfishtool(t, d, "-I", "node02", "Systems", "reset", "Bogus")
		if err == nil {
			t.Errorf("reset Bogus succeeded\nstdout: %s\nstderr: %s", out, stderr)
		}
		if n := machine(t, d, "node02").Status().CommandCount; n != 0 {
			t.Errorf("node02's BMC got %d commands from refused requests", n)
		}
	})
}
