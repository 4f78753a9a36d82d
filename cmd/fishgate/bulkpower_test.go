package main

import (
	"net/http"
	"strings"
	"testing"
)

func TestProgressLine(t *testing.T) {
	for _, c := range []struct {
		done, total, failed, cancelled int
		want                           string
	}{
		{0, 10, 0, 0, "[..........]   0%  0/10 nodes"},
		{5, 10, 1, 0, "[#####.....]  50%  5/10 nodes (1 failed)"},
		{10, 10, 1, 2, "[##########] 100%  10/10 nodes (1 failed, 2 cancelled)"},
		{0, 0, 0, 0, "[##########] 100%  0/0 nodes"},
	} {
		if got := progressLine(c.done, c.total, c.failed, c.cancelled, 10); got != c.want {
			t.Errorf("progressLine(%d, %d, %d, %d) = %q, want %q", c.done, c.total, c.failed, c.cancelled, got, c.want)
		}
	}
}

// TestPowerAggregateAgainstDemo: `fishgate power --aggregate NAME on
// --batch 2 --delay 1s --wait` powers every node of the aggregate on and
// reports the parent task Completed; with stderr not a terminal it draws no
// progress bar. Bad flags are exit 3.
func TestPowerAggregateAgainstDemo(t *testing.T) {
	d := startDemo(t, 3)
	req, _ := http.NewRequest(http.MethodPost, d.URL()+"/redfish/v1/AggregationService/Aggregates",
		strings.NewReader(`{"Name":"rack","Elements":[{"@odata.id":"/redfish/v1/Systems/node01"},{"@odata.id":"/redfish/v1/Systems/node02"},{"@odata.id":"/redfish/v1/Systems/node03"}]}`))
	req.SetBasicAuth(d.User, d.Pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create aggregate: %v %v", resp, err)
	}
	resp.Body.Close()
	run := func(args ...string) cliResult { return cli(t, d.URL(), d.User, d.Pass, args...) }
	r := run("power", "--aggregate", "rack", "on", "--batch", "2", "--delay", "1s", "--wait", "--timeout", "60s")
	if r.code != 0 || !strings.Contains(r.out, "aggregate rack: On: task bulk-") || !strings.Contains(r.out, ": Completed: 3 of 3 nodes completed") {
		t.Fatalf("power --aggregate --wait: %+v", r)
	}
	if r.stderr != "" {
		t.Errorf("no terminal, yet stderr has %q", r.stderr)
	}
	for _, id := range []string{"node01", "node02", "node03"} {
		n, _ := d.Fleet.Node(id)
		if ps := n.Machine().PowerState(); ps != "On" {
			t.Errorf("%s: %s", id, ps)
		}
	}
	for _, args := range [][]string{
		{"power", "on", "--aggregate", "nosuch"},
		{"power", "on", "--aggregate", "rack", "--node", "node01"},
		{"power", "on", "--node", "node01", "--batch", "2"},
		{"power", "reboot", "--aggregate", "rack"},
		{"power", "on", "--aggregate", "rack", "--delay", "1500ms"},
		{"power", "on", "--aggregate", "rack", "--batch", "-1"},
	} {
		if r := run(args...); r.code != exitError {
			t.Errorf("%v: exit %d (%q), want %d", args, r.code, r.stderr, exitError)
		}
	}
}
