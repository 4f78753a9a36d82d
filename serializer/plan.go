package serializer

import (
	"fmt"
	"slices"
	"strings"

	"github.com/fishgate/fishgate/schemas"
)

// This file says how every standard ResetType is carried out with the
// primitives a node's BMC offers (docs/architecture.md#emulated-resettypes):
// the BMC's own command where it has one, otherwise a sequence of phases that
// the action state machine (action.go) runs as one serialized action. It is
// pure: no I/O.

// Phase is one primitive step of an action: a command sent to the BMC and
// the power state that confirms it.
type Phase struct {
	// Cmd is the BMC's own ResetType that is sent.
	Cmd schemas.ResetType
	// Want is the power state that confirms the phase; PowerUnknown for a
	// command with no steady outcome (Nmi, a native PushPowerButton).
	Want schemas.PowerState
	// Restart: the node goes through Off (or a reset) and back to On by
	// itself; it is confirmed by On and evidence that it restarted.
	Restart bool
	// Soft: an ACPI request the OS may ignore; bounded by SoftOffTimeout
	// (GracefulShutdown) and never re-sent.
	Soft bool
	// Label names the phase in task messages ("soft off", "power on").
	Label string
}

func (p Phase) String() string {
	if p.Label == "" {
		return string(p.Cmd)
	}
	return string(p.Cmd) + " (" + p.Label + ")"
}

// phaseOf is the single phase of a native command.
func phaseOf(r schemas.ResetType) Phase {
	switch r {
	case schemas.ResetOn, schemas.ResetForceOn:
		return Phase{Cmd: r, Want: schemas.PowerOn, Label: "power on"}
	case schemas.ResetForceOff:
		return Phase{Cmd: r, Want: schemas.PowerOff, Label: "power off"}
	case schemas.ResetGracefulShutdown:
		return Phase{Cmd: r, Want: schemas.PowerOff, Soft: true, Label: "soft off"}
	case schemas.ResetGracefulRestart:
		return Phase{Cmd: r, Want: schemas.PowerOn, Restart: true, Soft: true, Label: "soft restart"}
	case schemas.ResetForceRestart, schemas.ResetPowerCycle:
		return Phase{Cmd: r, Want: schemas.PowerOn, Restart: true, Label: "restart"}
	}
	return Phase{Cmd: r, Label: strings.ToLower(string(r))}
}

// Emulation says how a node whose BMC offers native provides r: "native",
// the phases of an emulation ("GracefulShutdown, then On"), or ok=false
// when it cannot (Nmi cannot be emulated).
//
// force is the node's soft_off_fallback "force": a BMC without a soft-off
// primitive then offers the graceful types, carried out forced (the OS is
// not asked to shut down).
func Emulation(r schemas.ResetType, native []schemas.ResetType, force bool) (how string, ok bool) {
	if slices.Contains(native, r) {
		return "native", true
	}
	ph, ok := emulate(r, native, schemas.PowerUnknown, force)
	if !ok {
		return "", false
	}
	if r == schemas.ResetPushPowerButton {
		return "On when Off, GracefulShutdown when On", true
	}
	var parts []string
	for _, p := range ph {
		parts = append(parts, string(p.Cmd))
	}
	how = strings.Join(parts, ", then ")
	if (r == schemas.ResetGracefulRestart || r == schemas.ResetGracefulShutdown) && !slices.Contains(native, schemas.ResetGracefulShutdown) {
		how += " (the BMC has no soft off; soft_off_fallback: force)"
	}
	return how, true
}

// Offered lists every ResetType a node with native primitives offers,
// natively or by emulation, in the order the gateway advertises them.
func Offered(native []schemas.ResetType, force bool) []schemas.ResetType {
	var out []schemas.ResetType
	for _, r := range schemas.AllResetTypes {
		if _, ok := Emulation(r, native, force); ok {
			out = append(out, r)
		}
	}
	return out
}

// Plan is the phases of an action of type r on a BMC offering native, given
// the power state before it starts (it matters only for an emulated
// PushPowerButton: On when Off, GracefulShutdown when On).
func Plan(r schemas.ResetType, native []schemas.ResetType, before schemas.PowerState, force bool) ([]Phase, error) {
	if len(native) == 0 || slices.Contains(native, r) {
		// No capabilities known (an action admitted before the first read,
		// or recovered): the type was valid when admitted; send it as is.
		ph := phaseOf(r)
		if r == schemas.ResetPushPowerButton {
			// The button toggles: its outcome depends on where it starts.
			switch before {
			case schemas.PowerOn:
				ph.Want, ph.Soft = schemas.PowerOff, true
			case schemas.PowerOff:
				ph.Want = schemas.PowerOn
			}
		}
		return []Phase{ph}, nil
	}
	ph, ok := emulate(r, native, before, force)
	if !ok {
		return nil, fmt.Errorf("%s: %w", r, ErrUnsupportedReset)
	}
	return ph, nil
}

// emulate builds r from the native primitives.
func emulate(r schemas.ResetType, native []schemas.ResetType, before schemas.PowerState, force bool) ([]Phase, bool) {
	has := func(x schemas.ResetType) bool { return slices.Contains(native, x) }
	on := func() (Phase, bool) {
		switch {
		case has(schemas.ResetOn):
			return phaseOf(schemas.ResetOn), true
		case has(schemas.ResetForceOn):
			return phaseOf(schemas.ResetForceOn), true
		}
		return Phase{}, false
	}
	p, hasOn := on()
	ok := true
	offPhase := phaseOf(schemas.ResetForceOff)
	hasOff := has(schemas.ResetForceOff)
	switch r {
	case schemas.ResetOn, schemas.ResetForceOn:
		return []Phase{p}, hasOn
	case schemas.ResetGracefulShutdown:
		// Only forced, where the node's fallback says so.
		return forced([]Phase{offPhase}), force && hasOff
	case schemas.ResetGracefulRestart:
		if !has(schemas.ResetGracefulShutdown) {
			var ph []Phase
			switch {
			case !force:
				return nil, false
			case has(schemas.ResetForceRestart):
				ph = []Phase{phaseOf(schemas.ResetForceRestart)}
			default:
				ph, ok = emulate(schemas.ResetForceRestart, native, before, false)
			}
			return forced(ph), ok
		}
		if !hasOn {
			return nil, false
		}
		return []Phase{phaseOf(schemas.ResetGracefulShutdown), p}, true
	case schemas.ResetPowerCycle:
		if !hasOff || !hasOn {
			return nil, false
		}
		return []Phase{offPhase, p}, true
	case schemas.ResetForceRestart:
		if has(schemas.ResetPowerCycle) {
			return []Phase{phaseOf(schemas.ResetPowerCycle)}, true
		}
		if !hasOff || !hasOn {
			return nil, false
		}
		return []Phase{offPhase, p}, true
	case schemas.ResetPushPowerButton:
		if !hasOn || !has(schemas.ResetGracefulShutdown) {
			return nil, false
		}
		if before == schemas.PowerOn {
			return []Phase{phaseOf(schemas.ResetGracefulShutdown)}, true
		}
		return []Phase{p}, true
	}
	return nil, false // Nmi, and anything unknown
}

// forced labels the phases of a graceful type carried out forced.
func forced(ph []Phase) []Phase {
	out := make([]Phase, len(ph))
	for i, p := range ph {
		p.Label = "forced: the BMC has no soft off; soft_off_fallback: force"
		out[i] = p
	}
	return out
}
