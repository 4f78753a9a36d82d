package simulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/fishgate/fishgate/wire/ipmi"

	"github.com/fishgate/fishgate/wire/ipmibmc"
)

// The IPMI front of a node (NodeSpec.IPMIListen): IPMI over LAN, RMCP+
// ("ipmitool -I lanplus") and IPMI v1.5 ("-I lan"), on one UDP port, with
// the node's User and Password. It is wire/ipmibmc, the gateway's IPMI
// front too, with the node's Machine as the power target:
//
//	Chassis Control power up             Reset "On"
//	                power down           Reset "ForceOff"
//	                soft shutdown        Reset "GracefulShutdown"
//	                hard reset           Reset "ForceRestart"
//	                power cycle          Reset "PowerCycle"
//	                diagnostic interrupt Reset "Nmi"
//	Set System Boot Options (flags)      SetBoot (Target, Enabled, Mode)
//	Cold Reset, Warm Reset               logged "ColdReset", "WarmReset";
//	                                     the host's power does not change
//
// In the command log, Protocol is "ipmi" and Action the ResetType above.
// Faults apply as for Redfish: a failed command answers FFh, a refused
// power-on C0h (node busy), a Hang longer than the command timeout C3h.
//
// Get Chassis Status answers "on" or "off", which cannot say "on the way":
// while a transition is under way it answers the opposite of the state the
// transition will settle in (powering on: off; powering off: on; a restart:
// off until it is On again). So a client that polls until it sees the
// target, as fishgate's serializer does, sees it only when the command has
// settled, the moment it stops being in flight.

// ipmiProtocol names the IPMI front in the command log.
const ipmiProtocol = "ipmi"

// ipmiFront is a running IPMI front.
type ipmiFront struct {
	srv    *ipmibmc.Server
	served chan struct{} // closed when Serve returned
}

// startIPMIFront binds spec.IPMIListen and serves it.
func startIPMIFront(spec NodeSpec, m *Machine, log *slog.Logger) (*ipmiFront, error) {
	srv, err := ipmibmc.New(ipmibmc.Config{
		Addr:     spec.IPMIListen,
		Name:     "bmcsim " + spec.ID,
		User:     spec.User,
		Password: spec.Password,
		Logger:   log,
	}, machineTarget{m})
	if err != nil {
		return nil, fmt.Errorf("IPMI front: %w", err)
	}
	f := &ipmiFront{srv: srv, served: make(chan struct{})}
	go func() {
		defer close(f.served)
		if err := srv.Serve(context.Background()); err != nil {
			log.Error("IPMI front stopped", "err", err)
		}
	}()
	log.Info("IPMI front started", "addr", srv.Addr())
	return f, nil
}

// close stops the front and waits for its calls in flight; nil-safe.
func (f *ipmiFront) close() error {
	if f == nil {
		return nil
	}
	err := f.srv.Close()
	<-f.served
	return err
}

// IPMIAddr returns the UDP address of the node's IPMI front,
// "127.0.0.1:40123", or "" when it has none.
func (n *Node) IPMIAddr() string {
	if n.ipmi == nil {
		return ""
	}
	return n.ipmi.srv.Addr()
}

// machineTarget is a Machine as an ipmibmc.PowerTarget.
type machineTarget struct{ m *Machine }

func (t machineTarget) PowerState(context.Context) (bool, error) {
	return t.m.ipmiPowerOn(), nil
}

func (t machineTarget) Control(ctx context.Context, cmd ipmi.ChassisCommand) error {
	err := t.m.Reset(ctx, ipmiProtocol, cmd.ResetType())
	switch {
	case errors.Is(err, ErrUnsupportedResetType):
		return fmt.Errorf("%w: %w", ipmi.ErrUnsupported, err)
	case errors.Is(err, ErrPowerOnRefused):
		return fmt.Errorf("%w: %w", ipmi.ErrBusy, err)
	}
	return err
}

func (t machineTarget) SetBoot(_ context.Context, b ipmi.Boot) error {
	target, enabled, mode := b.Redfish()
	err := t.m.SetBoot(ipmiProtocol, Boot{Target: target, Enabled: enabled, Mode: mode})
	if errors.Is(err, ErrInvalidBoot) {
		return fmt.Errorf("%w: %w", ipmi.ErrUnsupported, err)
	}
	return err
}

func (t machineTarget) Boot(context.Context) (ipmi.Boot, error) {
	b := t.m.Boot()
	return ipmi.Boot{}.WithRedfish(b.Target, b.Enabled, b.Mode)
}

func (t machineTarget) BMCReset(_ context.Context, cold bool) error {
	action := "WarmReset"
	if cold {
		action = "ColdReset"
	}
	t.m.logOnly(ipmiProtocol, action, "accepted")
	return nil
}

// ipmiPowerOn is the machine's power as Get Chassis Status reports it (see
// above): while a transition is under way, the opposite of its final state.
func (m *Machine) ipmiPowerOn() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := len(m.steps); n > 0 {
		return m.steps[n-1].State == PowerOff
	}
	return m.state == PowerOn
}

// logOnly records a command that changes nothing of the machine.
func (m *Machine) logOnly(protocol, action, result string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record(protocol, action, result)
}
