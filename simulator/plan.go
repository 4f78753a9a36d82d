package simulator

import (
	"fmt"
	"slices"
	"time"
)

// PowerState values (Redfish Resource.PowerState).
const (
	PowerOn          = "On"
	PowerOff         = "Off"
	PowerPoweringOn  = "PoweringOn"
	PowerPoweringOff = "PoweringOff"
)

// The Redfish ResetTypes (Resource.ResetType) the state machine knows.
const (
	ResetOn               = "On"
	ResetForceOff         = "ForceOff"
	ResetGracefulShutdown = "GracefulShutdown"
	ResetGracefulRestart  = "GracefulRestart"
	ResetForceRestart     = "ForceRestart"
	ResetNmi              = "Nmi"
	ResetForceOn          = "ForceOn"
	ResetPushPowerButton  = "PushPowerButton"
	ResetPowerCycle       = "PowerCycle"
)

// DefaultResetTypes returns the nine ResetTypes a machine offers unless
// MachineConfig.ResetTypes says otherwise.
func DefaultResetTypes() []string {
	return []string{ResetOn, ResetForceOff, ResetGracefulShutdown, ResetGracefulRestart,
		ResetForceRestart, ResetNmi, ResetForceOn, ResetPushPowerButton, ResetPowerCycle}
}

// knownResetType reports whether the state machine knows resetType.
func knownResetType(resetType string) bool {
	return slices.Contains(DefaultResetTypes(), resetType)
}

// step is one stage of a transition: the machine enters State and stays
// there for Dwell before the next step. The last step of a plan is the steady
// state the transition settles in; its Dwell is 0.
type step struct {
	State string
	Dwell time.Duration
}

// plan returns the steps resetType walks through from state from, for a
// transition of nominal length d. No steps (nil, nil) means the command is
// accepted without changing the power state. ignoreACPI is the
// NeverFinishSoftOff fault: soft-off requests from On do nothing.
//
// plan is pure: the Machine applies its result, plan decides.
func plan(from, resetType string, d time.Duration, ignoreACPI bool) ([]step, error) {
	switch from {
	case PowerOn, PowerOff, PowerPoweringOn, PowerPoweringOff:
	default:
		return nil, fmt.Errorf("unknown power state %q", from)
	}
	powerOn := []step{{PowerPoweringOn, d}, {PowerOn, 0}}
	hardOff := []step{{PowerPoweringOff, d / 4}, {PowerOff, 0}}
	softOff := []step{{PowerPoweringOff, d}, {PowerOff, 0}}

	switch resetType {
	case ResetOn, ResetForceOn:
		if from == PowerOn {
			return nil, nil
		}
		return powerOn, nil
	case ResetForceOff:
		if from == PowerOff {
			return nil, nil
		}
		return hardOff, nil
	case ResetGracefulShutdown:
		if from == PowerOff || (from == PowerOn && ignoreACPI) {
			return nil, nil
		}
		return softOff, nil
	case ResetForceRestart, ResetPowerCycle:
		if from == PowerOff {
			return powerOn, nil
		}
		return restart(d/4, d/4, d-d/4-d/4), nil
	case ResetGracefulRestart:
		if from == PowerOff {
			return powerOn, nil
		}
		if from == PowerOn && ignoreACPI {
			return nil, nil
		}
		return restart(d/2, d/4, d-d/2-d/4), nil
	case ResetNmi:
		return nil, nil
	case ResetPushPowerButton:
		switch from {
		case PowerOff, PowerPoweringOff:
			return powerOn, nil
		case PowerOn:
			if ignoreACPI {
				return nil, nil
			}
		}
		return softOff, nil
	}
	return nil, fmt.Errorf("unknown ResetType %q", resetType)
}

func restart(off, dark, on time.Duration) []step {
	return []step{{PowerPoweringOff, off}, {PowerOff, dark}, {PowerPoweringOn, on}, {PowerOn, 0}}
}

// startsPowerOn reports whether steps power the machine on from a state that
// is not On: the commands RefuseOnWithin may refuse.
func startsPowerOn(steps []step) bool {
	return len(steps) > 0 && steps[0].State == PowerPoweringOn
}
