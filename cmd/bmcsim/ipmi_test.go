package main

import (
	"context"
	"regexp"
	"testing"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/simulator"
)

// TestRunIPMI starts nodes with --ipmi, reads their IPMI addresses from the
// output and asks one for its power with ipmitool.
func TestRunIPMI(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	control, out, done := startBmcsim(t, ctx, "--nodes", "2", "--control", "127.0.0.1:0", "--ipmi", "--power-on",
		"--user", "root", "--password", "calvin", "--log-level", "warn")
	addrs := regexp.MustCompile(`(?m)^(node0[12])\tipmi\t(127\.0\.0\.1:\d+)$`).FindAllStringSubmatch(out.String(), -1)
	if len(addrs) != 2 {
		t.Fatalf("want two IPMI addresses in the output:\n%s", out.String())
	}
	var view simulator.NodeView
	getJSON(t, control+"/nodes/node02", &view)
	if view.IPMIAddr != addrs[1][2] {
		t.Errorf("control API IPMIAddr %q, printed %q", view.IPMIAddr, addrs[1][2])
	}
	to := testkit.IPMITarget{Addr: addrs[1][2], User: "root", Password: "calvin"}
	if got := testkit.MustIpmitool(t, to, "power", "status"); got != "Chassis Power is on" {
		t.Errorf("%s power status: %q", addrs[1][1], got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("bmcsim: %v", err)
	}
}
