package main

import (
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/fishgate/fishgate/internal/testkit"
)

// TestDemoNodeLines (issue 16): `fishgate demo` prints one line per node
// with its Redfish URL at 127.0.10.N and an ipmitool command for IPMI at
// the same address; both work as printed.
func TestDemoNodeLines(t *testing.T) {
	d := startDemoWith(t, 2, true)
	lines := strings.Split(strings.TrimRight(nodeLines(d), "\n"), "\n")
	re := regexp.MustCompile(`^  (node0[12])  redfish (http://(127\.0\.10\.[12]):\d+)/redfish/v1/Systems/node0[12]   ipmitool -I lanplus -H (127\.0\.10\.[12]) -p (\d+) -U (\S+) -P (\S+) chassis power status$`)
	if len(lines) != 2 {
		t.Fatalf("node lines:\n%s", nodeLines(d))
	}
	for i, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil || m[1] != []string{"node01", "node02"}[i] || m[3] != m[4] {
			t.Fatalf("line %q", l)
		}
		req, _ := http.NewRequest(http.MethodGet, m[2]+"/redfish/v1/Systems", nil)
		req.SetBasicAuth(d.User, d.Pass)
		if st, ids, err := testkit.Members(http.DefaultClient, req); err != nil || st != 200 || len(ids) != 1 || ids[0] != "/redfish/v1/Systems/"+m[1] {
			t.Errorf("%s: %d %v %v", m[2], st, ids, err)
		}
		out := testkit.MustIpmitool(t, testkit.IPMITarget{Addr: net.JoinHostPort(m[4], m[5]), User: m[6], Password: m[7]}, "chassis", "power", "status")
		if !strings.Contains(out, "Chassis Power is off") {
			t.Errorf("ipmitool at %s: %s", m[4], out)
		}
	}
}
