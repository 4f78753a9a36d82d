package ipmi

import (
	"context"
	"testing"
	"time"

	ipmifront "github.com/fishgate/fishgate/fronts/ipmi"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// BenchmarkPowerState: power-status round trips (Get Chassis Status over
// one RMCP+ session, cipher suite 17) through the backend against the
// simulator's IPMI front, one call at a time as the serializer makes them.
func BenchmarkPowerState(b *testing.B) {
	n := simNode(b, simulator.MachineConfig{InitialPower: simulator.PowerOn})
	be := newBackend(b, n.IPMIAddr(), func(c *Config) { c.CipherSuite = 17 })
	benchPowerState(b, be, schemas.PowerOn)
}

// BenchmarkChassisPowerStatus compares "chassis power status" latency with
// the same client (this backend, a reused session) asking the simulator's
// IPMI front directly and asking the gateway's IPMI front for a node whose
// view is that simulated machine. The ratio gateway/direct is the figure.
func BenchmarkChassisPowerStatus(b *testing.B) {
	n := simNode(b, simulator.MachineConfig{InitialPower: simulator.PowerOn})
	gateway := func(b *testing.B) string {
		front, err := ipmifront.Serve(context.Background(), ipmifront.Config{
			Addr: "127.0.0.1:0", Node: "node01", User: "admin", Password: "password", Logger: quiet,
		}, &machineGateway{m: n.Machine()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { front.Close() })
		return front.Addr()
	}
	suite17 := func(c *Config) { c.CipherSuite = 17 }
	b.Run("direct-simulator", func(b *testing.B) {
		benchPowerState(b, newBackend(b, n.IPMIAddr(), suite17), schemas.PowerOn)
	})
	b.Run("gateway-front", func(b *testing.B) {
		benchPowerState(b, newBackend(b, gateway(b), suite17), schemas.PowerOn)
	})
	// Both in turn, in one loop, so that drift of the machine hits both
	// alike: the ratio metric is the figure.
	b.Run("ratio", func(b *testing.B) {
		direct := newBackend(b, n.IPMIAddr(), suite17)
		front := newBackend(b, gateway(b), suite17)
		ctx := context.Background()
		var tDirect, tFront time.Duration
		for b.Loop() {
			for _, c := range []struct {
				be *Backend
				t  *time.Duration
			}{{direct, &tDirect}, {front, &tFront}} {
				start := time.Now()
				if p, err := c.be.PowerState(ctx); err != nil || p != schemas.PowerOn {
					b.Fatalf("%s, %v", p, err)
				}
				*c.t += time.Since(start)
			}
		}
		b.ReportMetric(float64(tDirect.Microseconds())/float64(b.N), "direct-µs/op")
		b.ReportMetric(float64(tFront.Microseconds())/float64(b.N), "gateway-µs/op")
		b.ReportMetric(float64(tFront)/float64(tDirect), "gateway/direct")
	})
}

func benchPowerState(b *testing.B, be *Backend, want schemas.PowerState) {
	ctx := context.Background()
	if _, err := be.PowerState(ctx); err != nil { // open the session
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		p, err := be.PowerState(ctx)
		if err != nil || p != want {
			b.Fatalf("%s, %v", p, err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "roundtrips/s")
}

// machineGateway is an ipmifront.Gateway whose one node is a simulated
// machine: View reads the machine, as the serializer's view is read from
// memory.
type machineGateway struct{ m *simulator.Machine }

func (g *machineGateway) View(id string) (serializer.View, error) {
	return serializer.View{ID: "node01", PowerState: schemas.PowerState(g.m.PowerState())}, nil
}

func (g *machineGateway) Reset(ctx context.Context, id string, r schemas.ResetType, req string) (serializer.Admission, error) {
	return serializer.Admission{Outcome: serializer.Started}, g.m.Reset(ctx, "gateway", string(r))
}

func (g *machineGateway) SetBoot(ctx context.Context, id string, b schemas.BootOverride) error {
	return g.m.SetBoot("gateway", simulator.Boot{Target: b.Target, Enabled: b.Enabled, Mode: b.Mode})
}
