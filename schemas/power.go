package schemas

import "fmt"

// PowerState is ComputerSystem.PowerState (Resource.PowerState enum).
type PowerState string

const (
	PowerOn          PowerState = "On"
	PowerOff         PowerState = "Off"
	PowerPoweringOn  PowerState = "PoweringOn"
	PowerPoweringOff PowerState = "PoweringOff"
	PowerPaused      PowerState = "Paused"
	PowerUnknown     PowerState = "" // rendered as null
)

// ResetType is the parameter of ComputerSystem.Reset (Resource.ResetType).
type ResetType string

const (
	ResetOn               ResetType = "On"
	ResetForceOff         ResetType = "ForceOff"
	ResetGracefulShutdown ResetType = "GracefulShutdown"
	ResetGracefulRestart  ResetType = "GracefulRestart"
	ResetForceRestart     ResetType = "ForceRestart"
	ResetNmi              ResetType = "Nmi"
	ResetForceOn          ResetType = "ForceOn"
	ResetPushPowerButton  ResetType = "PushPowerButton"
	ResetPowerCycle       ResetType = "PowerCycle"
)

// AllResetTypes lists every ResetType a ComputerSystem may offer, in the
// order the gateway advertises them.
var AllResetTypes = []ResetType{
	ResetOn, ResetForceOff, ResetGracefulShutdown, ResetGracefulRestart,
	ResetForceRestart, ResetNmi, ResetForceOn, ResetPushPowerButton, ResetPowerCycle,
}

// ParseResetType returns the ResetType named s, or an error when s is not a
// ResetType of the Redfish Resource schema.
func ParseResetType(s string) (ResetType, error) {
	for _, r := range AllResetTypes {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown ResetType %q", s)
}

// Target is the power state a node must show for the action to be done
// (docs/architecture.md#convergence). ok is false for actions that do not
// change the steady power state (Nmi) or whose outcome depends on the current
// state (PushPowerButton toggles).
func (r ResetType) Target() (state PowerState, ok bool) {
	switch r {
	case ResetOn, ResetForceOn, ResetGracefulRestart, ResetForceRestart, ResetPowerCycle:
		return PowerOn, true
	case ResetForceOff, ResetGracefulShutdown:
		return PowerOff, true
	}
	return PowerUnknown, false
}

// BootOverride is ComputerSystem.Boot's one-time or persistent override.
type BootOverride struct {
	Target  string `json:"BootSourceOverrideTarget,omitempty"`
	Enabled string `json:"BootSourceOverrideEnabled,omitempty"`
	Mode    string `json:"BootSourceOverrideMode,omitempty"`
}

// Allowable values of the Boot override properties (ComputerSystem v1_x
// BootSource, BootSourceOverrideEnabled, BootSourceOverrideMode).
var (
	BootTargets = []string{"None", "Pxe", "Floppy", "Cd", "Usb", "Hdd", "BiosSetup",
		"Utilities", "Diags", "UefiShell", "UefiTarget", "SDCard", "UefiHttp",
		"RemoteDrive", "UefiBootNext", "Recovery"}
	BootEnabledValues = []string{"Disabled", "Once", "Continuous"}
	BootModes         = []string{"Legacy", "UEFI"}
)
