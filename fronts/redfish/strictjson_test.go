package redfish_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
)

// TestStrictDecodingIsCaseSensitiveAndRefusesDuplicates: Redfish property
// names are case-sensitive, so "RESETTYPE" is an unknown parameter, not
// ResetType (encoding/json alone matches it and lets the last one win); a
// property given twice is refused.
func TestStrictDecodingIsCaseSensitiveAndRefusesDuplicates(t *testing.T) {
	e := newEnv(t, testkit.MiniRedis(t), 1, time.Minute)
	reset := "/redfish/v1/Systems/node1/Actions/ComputerSystem.Reset"
	cases := []struct{ method, path, body, want string }{
		{"POST", reset, `{"RESETTYPE":"On"}`, "ActionParameterUnknown"},
		{"POST", reset, `{"resettype":"On"}`, "ActionParameterUnknown"},
		{"POST", reset, `{"ResetType":"On","RESETTYPE":"ForceOff"}`, "ActionParameterUnknown"},
		{"POST", reset, `{"RESETTYPE":"ForceOff","ResetType":"On"}`, "ActionParameterUnknown"},
		{"POST", reset, `{"ResetType":"On","ResetType":"ForceOff"}`, "ActionParameterDuplicate"},
		{"POST", reset, `{"ResetType":"On","Reset\u0054ype":"ForceOff"}`, "ActionParameterDuplicate"},
		{"PATCH", "/redfish/v1/Systems/node1", `{"Boot":{"BootSourceOverrideTarget":"Pxe","bootsourceoverridetarget":"Hdd"}}`, "PropertyUnknown"},
		{"PATCH", "/redfish/v1/Systems/node1", `{"boot":{"BootSourceOverrideTarget":"Pxe"}}`, "PropertyUnknown"},
		{"PATCH", "/redfish/v1/Systems/node1", `{"Boot":{"BootSourceOverrideTarget":"Pxe"},"Boot":{"BootSourceOverrideTarget":"Hdd"}}`, "PropertyDuplicate"},
		{"PATCH", "/redfish/v1/Systems/node1", `{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideTarget":"Hdd"}}`, "PropertyDuplicate"},
		{"POST", "/redfish/v1/SessionService/Sessions", `{"username":"admin","Password":"s3cret"}`, "PropertyUnknown"},
		{"POST", "/redfish/v1/SessionService/Sessions", `{"UserName":"nobody","UserName":"admin","Password":"s3cret"}`, "PropertyDuplicate"},
	}
	for _, c := range cases {
		r := e.do(c.method, c.path, c.body)
		if r.Status != http.StatusBadRequest || r.messageID(t) != "Base.1.22."+c.want {
			t.Errorf("%s %s %s: %d %s, want 400 %s", c.method, c.path, c.body, r.Status, r.Body, c.want)
		}
	}
	n, _ := e.fleet.Node("node1")
	if cmds := n.Machine().Status().Commands; len(cmds) != 0 {
		t.Errorf("the BMC got commands from refused requests: %+v", cmds)
	}
}
