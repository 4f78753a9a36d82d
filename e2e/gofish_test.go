package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"

	"github.com/fishgate/fishgate/app/demo"
)

// gofishSystem finds node among the service's systems.
func gofishSystem(t *testing.T, c *gofish.APIClient, node string) *schemas.ComputerSystem {
	t.Helper()
	systems, err := c.Service.Systems()
	if err != nil {
		t.Fatalf("gofish Systems(): %v", err)
	}
	var ids []string
	var found *schemas.ComputerSystem
	for _, s := range systems {
		ids = append(ids, s.ID)
		if s.ID == node {
			found = s
		}
	}
	if want := []string{"node01", "node02", "node03"}; !slices.Equal(ids, want) {
		t.Errorf("gofish lists systems %v, want %v", ids, want)
	}
	if found == nil {
		t.Fatalf("gofish: no system %s among %v", node, ids)
	}
	return found
}

// gofishPowerAndBoot powers node on through gofish, waits until gofish reads
// On, sets a boot override and reads it back, then checks the machine.
func gofishPowerAndBoot(t *testing.T, d *demo.Demo, c *gofish.APIClient, node string, boot schemas.Boot) {
	t.Helper()
	sys := gofishSystem(t, c, node)
	if sys.PowerState != schemas.OffPowerState {
		t.Errorf("%s PowerState %q before Reset, want Off", node, sys.PowerState)
	}
	if types, err := sys.GetSupportedResetTypes(); err != nil || !slices.Contains(types, schemas.OnResetType) {
		t.Errorf("%s supported reset types %v (err %v) lack On", node, types, err)
	}
	if _, err := sys.Reset(schemas.OnResetType); err != nil {
		t.Fatalf("gofish Reset(On) on %s: %v", node, err)
	}
	var last schemas.PowerState
	waitFor(t, powerTimeout, node+" PowerState On via gofish", func() (bool, string) {
		s, err := schemas.GetComputerSystem(c, sys.ODataID)
		if err != nil {
			return false, err.Error()
		}
		last = s.PowerState
		return last == schemas.OnPowerState, string(last)
	})
	if ps := machine(t, d, node).PowerState(); ps != "On" {
		t.Errorf("%s machine is %s after gofish read On", node, ps)
	}

	sys, err := schemas.GetComputerSystem(c, sys.ODataID)
	if err != nil {
		t.Fatalf("re-read %s: %v", node, err)
	}
	if !slices.Contains(sys.Boot.AllowableBootSourceOverrideTargetValues, boot.BootSourceOverrideTarget) {
		t.Errorf("%s allows boot targets %v, not %s", node, sys.Boot.AllowableBootSourceOverrideTargetValues, boot.BootSourceOverrideTarget)
	}
	if err := sys.SetBoot(&boot); err != nil {
		t.Fatalf("gofish SetBoot(%s/%s) on %s: %v", boot.BootSourceOverrideTarget, boot.BootSourceOverrideEnabled, node, err)
	}
	got, err := schemas.GetComputerSystem(c, sys.ODataID)
	if err != nil {
		t.Fatalf("re-read %s: %v", node, err)
	}
	if got.Boot.BootSourceOverrideTarget != boot.BootSourceOverrideTarget || got.Boot.BootSourceOverrideEnabled != boot.BootSourceOverrideEnabled {
		t.Errorf("%s boot override read back %s/%s, want %s/%s", node,
			got.Boot.BootSourceOverrideTarget, got.Boot.BootSourceOverrideEnabled,
			boot.BootSourceOverrideTarget, boot.BootSourceOverrideEnabled)
	}
	st := machine(t, d, node).Status()
	if st.Boot.Target != string(boot.BootSourceOverrideTarget) || st.Boot.Enabled != string(boot.BootSourceOverrideEnabled) {
		t.Errorf("%s machine boot override %+v, want %s/%s", node, st.Boot, boot.BootSourceOverrideTarget, boot.BootSourceOverrideEnabled)
	}
	if st.PowerState != "On" || st.PowerOnCount != 1 || accepted(st, "On") != 1 {
		t.Errorf("%s machine: %s, %d power-ons, commands %+v; want On after one On", node, st.PowerState, st.PowerOnCount, st.Commands)
	}
}

func TestGofish(t *testing.T) {
	t.Parallel()
	d := startDemo(t, 3)

	t.Run("session", func(t *testing.T) {
		t.Parallel()
		c, err := gofish.Connect(gofish.ClientConfig{Endpoint: d.URL(), Username: d.User, Password: d.Pass})
		if err != nil {
			t.Fatalf("gofish.Connect (session): %v", err)
		}
		s, err := c.GetSession()
		if err != nil || !strings.HasPrefix(s.ID, "/redfish/v1/SessionService/Sessions/") || s.Token == "" {
			t.Fatalf("gofish session: %+v, %v", s, err)
		}
		// The gateway knows the session: an administrator sees it listed.
		coll := getJSON(t, d, d.URL()+"/redfish/v1/SessionService/Sessions")
		members, _ := coll["Members"].([]any)
		if !slices.ContainsFunc(members, func(m any) bool { return m.(map[string]any)["@odata.id"] == s.ID }) {
			t.Errorf("session %s not in the gateway's Sessions: %v", s.ID, members)
		}
		gofishPowerAndBoot(t, d, c, "node01", schemas.Boot{
			BootSourceOverrideTarget:  schemas.PxeBootSource,
			BootSourceOverrideEnabled: schemas.OnceBootSourceOverrideEnabled,
		})
		c.Logout()
		if st, _, _ := do(t, http.MethodGet, d.URL()+s.ID, nil, basic(d)); st != http.StatusNotFound {
			t.Errorf("GET %s after gofish Logout: status %d, want 404", s.ID, st)
		}
		if st, _, _ := do(t, http.MethodGet, d.URL()+"/redfish/v1/Systems", nil, map[string]string{"X-Auth-Token": s.Token}); st != http.StatusUnauthorized {
			t.Errorf("token accepted after gofish Logout: status %d", st)
		}
	})

	t.Run("basic", func(t *testing.T) {
		t.Parallel()
		c, err := gofish.Connect(gofish.ClientConfig{Endpoint: d.URL(), Username: d.User, Password: d.Pass, BasicAuth: true})
		if err != nil {
			t.Fatalf("gofish.Connect (basic): %v", err)
		}
		defer c.Logout()
		if _, err := c.GetSession(); err == nil {
			t.Errorf("basic-auth client has a session")
		}
		gofishPowerAndBoot(t, d, c, "node02", schemas.Boot{
			BootSourceOverrideTarget:  schemas.HddBootSource,
			BootSourceOverrideEnabled: schemas.ContinuousBootSourceOverrideEnabled,
		})
	})

	t.Run("wrong-password", func(t *testing.T) {
		t.Parallel()
		if _, err := gofish.Connect(gofish.ClientConfig{Endpoint: d.URL(), Username: d.User, Password: "wrong"}); err == nil {
			t.Errorf("gofish session login with a wrong password succeeded")
		}
	})
}
