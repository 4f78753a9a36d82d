package redfish

import (
	"errors"
	"slices"
	"testing"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/schemas"
)

func TestResetTypes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []string
		want    []schemas.ResetType
		unknown []string
	}{
		{"none advertised means the default set", nil, DefaultResetTypes(), nil},
		{"BMC order kept", []string{"ForceOff", "On"}, []schemas.ResetType{"ForceOff", "On"}, nil},
		{"outside the schema dropped", []string{"On", "Suspend", "FullPowerCycle"}, []schemas.ResetType{"On"}, []string{"Suspend", "FullPowerCycle"}},
		{"duplicates dropped", []string{"On", "On"}, []schemas.ResetType{"On"}, nil},
		{"only unknown means none", []string{"Pause"}, []schemas.ResetType{}, []string{"Pause"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, unknown := resetTypes(tc.in)
			if !slices.Equal(got, tc.want) || !slices.Equal(unknown, tc.unknown) {
				t.Errorf("resetTypes(%q) = %q, %q; want %q, %q", tc.in, got, unknown, tc.want, tc.unknown)
			}
		})
	}
}

func TestResetTarget(t *testing.T) {
	got, err := resetTarget([]byte(`{"Actions":{"#ComputerSystem.Reset":{"target":"/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"}}}`))
	if err != nil || got != "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset" {
		t.Errorf("resetTarget = %q, %v", got, err)
	}
	got, err = resetTarget([]byte(`{"Id":"1"}`))
	if err != nil || got != "" {
		t.Errorf("resetTarget without action = %q, %v; want empty", got, err)
	}
}

func TestBootCheck(t *testing.T) {
	v := bootValues{targets: []string{"None", "Pxe"}, modes: []string{"UEFI"}}
	for _, tc := range []struct {
		o           schemas.BootOverride
		unsupported bool
	}{
		{schemas.BootOverride{Target: "Pxe", Enabled: "Once"}, false},
		{schemas.BootOverride{Target: "Cd"}, true},
		{schemas.BootOverride{Mode: "Legacy"}, true},
		{schemas.BootOverride{Enabled: "Continuous"}, false}, // no Enabled values advertised: BMC decides
		{schemas.BootOverride{}, false},
	} {
		err := v.check(tc.o)
		if got := errors.Is(err, backends.ErrUnsupported); got != tc.unsupported {
			t.Errorf("check(%+v) = %v; want unsupported=%v", tc.o, err, tc.unsupported)
		}
	}
}

func TestTaskOutcome(t *testing.T) {
	for _, tc := range []struct {
		state, status string
		done, failed  bool
	}{
		{"New", "", false, false},
		{"Running", "OK", false, false},
		{"Pending", "", false, false},
		{"Cancelling", "", false, false},
		{"Completed", "OK", true, false},
		{"Completed", "Warning", true, false},
		{"Completed", "Critical", true, true},
		{"Exception", "Critical", true, true},
		{"Killed", "", true, true},
		{"Cancelled", "", true, true},
	} {
		done, err := taskView{TaskState: tc.state, TaskStatus: tc.status}.outcome()
		if done != tc.done || errors.Is(err, ErrTaskFailed) != tc.failed {
			t.Errorf("%s/%s: done=%v err=%v; want done=%v failed=%v", tc.state, tc.status, done, err, tc.done, tc.failed)
		}
	}
}

func TestPaths(t *testing.T) {
	for in, want := range map[string]string{
		"1":                                     "/redfish/v1/Systems/1",
		"/redfish/v1/Systems/abc/":              "/redfish/v1/Systems/abc",
		"https://10.0.0.5/redfish/v1/Systems/x": "/redfish/v1/Systems/x",
	} {
		if got := systemPathOf(in); got != want {
			t.Errorf("systemPathOf(%q) = %q; want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"":                                       "",
		"/redfish/v1/TaskService/TaskMonitors/7": "/redfish/v1/TaskService/TaskMonitors/7",
		"https://192.168.0.9:443/redfish/v1/Tasks/7": "/redfish/v1/Tasks/7",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestNewRejectsBadEndpoint(t *testing.T) {
	for _, ep := range []string{"", "10.0.0.5", "ftp://x", "https://"} {
		if _, err := New(Config{Endpoint: ep}); err == nil {
			t.Errorf("New(%q) accepted", ep)
		}
	}
}
