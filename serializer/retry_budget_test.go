package serializer_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	amtbackend "github.com/fishgate/fishgate/backends/amt"
	ipmibackend "github.com/fishgate/fishgate/backends/ipmi"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// The retries of a power command do not multiply across layers
// (internal/retry): the action owns them (Options.Retries), and each of its
// sends is granted one attempt, so a backend that retries by itself (AMT:
// Retries 3 by default, transient ReturnValues and faults; IPMI: Retries 2,
// "node busy") sends it once per attempt of the action. A BMC that fails
// every time gets exactly Retries+1 commands for the action, not
// (Retries+1) x (1 + the backend's Retries).
func TestRetryBudgetAcrossLayers(t *testing.T) {
	const retries = 2
	// The backends' defaults (AMT Retries 3, IPMI Retries 2), with short
	// pauses.
	amt, ipmi := amtProtocolWith(5*time.Millisecond), ipmiProtocolWith(5*time.Millisecond)
	for _, c := range []struct {
		name    string
		proto   protocol
		machine simulator.MachineConfig
		prep    func(t *testing.T, m *simulator.Machine)
		cmd     schemas.ResetType
		// alone is how many commands the backend sends by itself, without
		// the action's budget: what the action would multiply.
		alone int
	}{
		{
			// AMT answers ReturnValue 2 and s:Receiver faults in turn: both
			// are retried by the backend.
			name: "amt ForceOff", proto: amt, cmd: schemas.ResetForceOff, alone: 1 + amtbackend.DefaultRetries,
			machine: simulator.MachineConfig{InitialPower: simulator.PowerOn, Faults: simulator.Faults{FailFirst: 1000}},
		},
		{
			// The BMC answers "node busy" (C0h) to every power-on within
			// an hour of a power-off: retried by the backend.
			name: "ipmi On", proto: ipmi, cmd: schemas.ResetOn, alone: 1 + ipmibackend.DefaultRetries,
			machine: simulator.MachineConfig{InitialPower: simulator.PowerOn, DelayMin: time.Millisecond, DelayMax: time.Millisecond,
				Faults: simulator.Faults{RefuseOnWithin: time.Hour}},
			prep: func(t *testing.T, m *simulator.Machine) {
				if err := m.Reset(context.Background(), "test", "ForceOff"); err != nil {
					t.Fatal(err)
				}
				waitMachine(t, m, simulator.PowerOff)
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnvOver(t, testkit.MiniRedis(t), []simNode{{ID: node1, Machine: c.machine}}, c.proto)
			m := e.machine(node1)
			if c.prep != nil {
				c.prep(t, m)
			}
			sent := func() int {
				n := 0
				for _, cmd := range bmcCommands(m) {
					if strings.HasPrefix(cmd, string(c.cmd)) {
						n++
					}
				}
				return n
			}

			// The backend alone retries: this is what would multiply.
			b, err := c.proto.open(e.sims[node1], slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := b.Reset(ctx, c.cmd); err == nil {
				t.Fatalf("%s to a BMC failing every time succeeded", c.cmd)
			}
			b.Close()
			if got := sent(); got != c.alone {
				t.Fatalf("the backend alone sent %s %d times, want %d (its own retries)", c.cmd, got, c.alone)
			}

			// Under the action: Retries+1 in all.
			o := fastOptions()
			o.Retries = retries
			svc := e.addReplica("r1", o, nil)
			a := reset(t, svc, c.cmd, serializer.Started)
			e.waitQuiet(20*time.Second, []string{node1}, []string{a.Task})
			tr := e.task(a.Task)
			if tr.State != "Exception" || !strings.Contains(tr.Reason, "failed after 3 attempts") {
				t.Fatalf("task %+v: want Exception after 3 attempts", tr)
			}
			if got := sent() - c.alone; got != retries+1 {
				t.Fatalf("the action sent %s %d times in all, want %d (its budget), not %d x %d; BMC log %v",
					c.cmd, got, retries+1, retries+1, c.alone, bmcCommands(m))
			}
		})
	}
}
