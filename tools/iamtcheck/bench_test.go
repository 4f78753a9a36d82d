package iamtcheck_test

import (
	"context"
	"testing"
	"time"

	"github.com/fishgate/fishgate/simulator"
)

// BenchmarkIAMTPowerAction is iamt's "power on/off" against the simulator's
// AMT front (loopback, transitions instant), for comparison with
// backends/amt's BenchmarkPowerAction: actions/s, and http-reqs/op, the
// HTTP requests one action cost once the Digest challenge is known,
// counted on the simulator side.
//
//	cd tools/iamtcheck && go test -run='^$' -bench=. ./...
func BenchmarkIAMTPowerAction(b *testing.B) {
	// so that iamt's off is 8 (ForceOff), as the backend's
	n := startAMT(b, simulator.MachineConfig{ResetTypes: []string{"On", "ForceOff", "ForceRestart", "PowerCycle"}, Seed: 1})
	c := iamtClient(b, n, amtPassword)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := c.Open(ctx); err != nil {
		b.Fatal(err)
	}
	on := false
	before := n.AMT().Stats().Requests
	b.ResetTimer()
	for b.Loop() {
		// iamt's PowerOn and PowerOff read the state themselves first.
		var err error
		if on {
			err = c.PowerOff(ctx)
		} else {
			err = c.PowerOn(ctx)
		}
		if err != nil {
			b.Fatal(err)
		}
		on = !on
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "actions/s")
	b.ReportMetric(float64(n.AMT().Stats().Requests-before)/float64(b.N), "http-reqs/op")
}
