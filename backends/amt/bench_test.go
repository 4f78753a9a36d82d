package amt_test

import (
	"context"
	"testing"

	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/simulator"
)

// Benchmarks of the backend against the simulator's AMT front (loopback,
// transitions instant), and the HTTP requests per power action, counted on
// the simulator side (iamt's, bmclib's AMT client, are measured in
// tools/iamtcheck, a module of its own):
//
//	go test -run='^$' -bench=. ./backends/amt/
//
// Metrics: reads/s and resets/s; http-reqs/op is the requests one operation
// cost once the Digest challenge is known.

// benchNode runs one node whose transitions are instant, offering types.
func benchNode(b *testing.B, types ...string) *simulator.Node {
	b.Helper()
	fleet := simulator.NewFleet(nil)
	b.Cleanup(func() { fleet.Close() })
	n, err := fleet.Add(simulator.NodeSpec{ID: "bench", User: testUser, Password: testPassword, AMTListen: "127.0.0.1:0",
		Machine: simulator.MachineConfig{ResetTypes: types, Seed: 1}})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// reportRequests reports the simulator-side HTTP requests per operation.
func reportRequests(b *testing.B, n *simulator.Node, before int) {
	b.ReportMetric(float64(n.AMT().Stats().Requests-before)/float64(b.N), "http-reqs/op")
}

func BenchmarkPowerState(b *testing.B) {
	n := benchNode(b)
	be := newBackend(b, n.AMTURL(), nil)
	ctx := context.Background()
	if _, err := be.PowerState(ctx); err != nil { // challenge
		b.Fatal(err)
	}
	before := n.AMT().Stats().Requests
	b.ResetTimer()
	for b.Loop() {
		if _, err := be.PowerState(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
	reportRequests(b, n, before)
}

func BenchmarkReset(b *testing.B) {
	n := benchNode(b)
	be := newBackend(b, n.AMTURL(), nil)
	ctx := context.Background()
	if err := be.Reset(ctx, schemas.ResetOn); err != nil { // challenge, ManagedSystem lookup
		b.Fatal(err)
	}
	before := n.AMT().Stats().Requests
	types := []schemas.ResetType{schemas.ResetForceOff, schemas.ResetOn}
	i := 0
	b.ResetTimer()
	for b.Loop() {
		if err := be.Reset(ctx, types[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "resets/s")
	reportRequests(b, n, before)
}

// BenchmarkPowerAction is what a client needs for "power on/off" with the
// backend: read the state, then send the command (what iamt's PowerOn and
// PowerOff do), for comparison with tools/iamtcheck's BenchmarkIAMTPowerAction.
func BenchmarkPowerAction(b *testing.B) {
	n := benchNode(b)
	be := newBackend(b, n.AMTURL(), nil)
	ctx := context.Background()
	if err := be.Reset(ctx, schemas.ResetOn); err != nil {
		b.Fatal(err)
	}
	before := n.AMT().Stats().Requests
	b.ResetTimer()
	for b.Loop() {
		ps, err := be.PowerState(ctx)
		if err != nil {
			b.Fatal(err)
		}
		next := schemas.ResetOn
		if ps == schemas.PowerOn {
			next = schemas.ResetForceOff
		}
		if err := be.Reset(ctx, next); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "actions/s")
	reportRequests(b, n, before)
}
