package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/fishgate/fishgate/simulator"
)

// simNode is one simulated BMC and the faults it keeps between refreshes.
type simNode struct {
	id   string
	node *simulator.Node
	base simulator.Faults // Hang / RefuseOnWithin, kept when FailFirst is refreshed
	// flaky nodes get FailFirst (refreshed periodically); the others never do,
	// so that no task sees more failures than the gateway's retries absorb.
	flaky bool
}

// startFleet starts n simulated Redfish BMCs on loopback with the given
// transition delays and faults on a fraction of them. Every random choice
// comes from rng, so a seed reproduces the fleet.
func startFleet(o *options, rng *rand.Rand) (*simulator.Fleet, []*simNode, error) {
	fleet := simulator.NewFleet(nil)
	nodes := make([]*simNode, 0, o.nodes)
	for i := 0; i < o.nodes; i++ {
		sn := &simNode{id: fmt.Sprintf("n%03d", i)}
		r := rng.Float64()
		switch {
		case r < o.failFrac:
			sn.flaky = true
		case r < o.failFrac+0.10:
			// refuses a power-on shortly after a power-off (the gateway retries).
			sn.base.RefuseOnWithin = 150 * time.Millisecond
		case r < o.failFrac+0.20:
			// slow to answer every command.
			sn.base.Hang = time.Duration(30+rng.IntN(120)) * time.Millisecond
		}
		faults := sn.base
		if sn.flaky {
			faults.FailFirst = 1 + rng.IntN(2)
		}
		power := simulator.PowerOff
		if rng.IntN(2) == 0 {
			power = simulator.PowerOn
		}
		n, err := fleet.Add(simulator.NodeSpec{
			ID: sn.id, User: "bmc", Password: "bmcpass",
			AsyncReset: rng.Float64() < o.asyncFrac,
			Machine: simulator.MachineConfig{
				DelayMin: o.delayMin, DelayMax: o.delayMax, InitialPower: power,
				Faults: faults, Seed: rng.Uint64() | 1,
			},
		})
		if err != nil {
			fleet.Close()
			return nil, nil, err
		}
		sn.node = n
		nodes = append(nodes, sn)
	}
	return fleet, nodes, nil
}

// refreshFaults gives FailFirst=1 again to flaky nodes whose counter ran
// out, every period, until ctx ends. One failure per refresh and a period
// longer than the gateway's retry window keep every task within its
// retries (retries 3 = 4 attempts, backoff 1s, 2s, 4s: a 7 s window): with a
// period of at least 8 s a task meets at most its FailFirst (1 or 2) plus
// one refresh, so at most 3 failures.
func refreshFaults(ctx context.Context, nodes []*simNode, period time.Duration, seed uint64, refreshes *atomic.Int64) {
	rng := rand.New(rand.NewPCG(seed, 0xfa17))
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, sn := range nodes {
			if !sn.flaky || rng.IntN(2) == 0 {
				continue
			}
			m := sn.node.Machine()
			if m.Status().Faults.FailFirst > 0 {
				continue
			}
			f := sn.base
			f.FailFirst = 1
			m.SetFaults(f)
			refreshes.Add(1)
		}
	}
}
