package ipmi

import (
	"errors"
	"fmt"
)

// ChassisCommand is the action of a Chassis Control request (v2.0 §28.3,
// Table 28-4, request data byte 1 bits [3:0]).
type ChassisCommand uint8

// The Chassis Control actions, with the ipmitool command that sends each.
const (
	PowerDown           ChassisCommand = 0 // "chassis power off": hard off, no OS shutdown
	PowerUp             ChassisCommand = 1 // "chassis power on"
	PowerCycle          ChassisCommand = 2 // "chassis power cycle": off, wait, on
	HardReset           ChassisCommand = 3 // "chassis power reset": reset without power-off
	DiagnosticInterrupt ChassisCommand = 4 // "chassis power diag": pulse the NMI
	SoftShutdown        ChassisCommand = 5 // "chassis power soft": ACPI soft off
)

var chassisCommandNames = [...]string{
	PowerDown:           "power down",
	PowerUp:             "power up",
	PowerCycle:          "power cycle",
	HardReset:           "hard reset",
	DiagnosticInterrupt: "diagnostic interrupt",
	SoftShutdown:        "soft shutdown",
}

// Valid reports whether c is one of the six actions of Table 28-4.
func (c ChassisCommand) Valid() bool { return int(c) < len(chassisCommandNames) }

func (c ChassisCommand) String() string {
	if c.Valid() {
		return chassisCommandNames[c]
	}
	return fmt.Sprintf("chassis control %#x", uint8(c))
}

// ResetType is the Redfish ResetType (Resource.ResetType) a Chassis Control
// command stands for: the one mapping both fronts and the IPMI backend use.
//
//	power up             On
//	power down           ForceOff
//	soft shutdown        GracefulShutdown
//	hard reset           ForceRestart
//	power cycle          PowerCycle
//	diagnostic interrupt Nmi
func (c ChassisCommand) ResetType() string {
	switch c {
	case PowerUp:
		return "On"
	case PowerDown:
		return "ForceOff"
	case SoftShutdown:
		return "GracefulShutdown"
	case HardReset:
		return "ForceRestart"
	case PowerCycle:
		return "PowerCycle"
	case DiagnosticInterrupt:
		return "Nmi"
	}
	return ""
}

// CommandFor is the inverse of ResetType. ForceOn is sent as power up: IPMI
// has one power-on command. GracefulRestart and PushPowerButton have no
// Chassis Control equivalent (ok false).
func CommandFor(resetType string) (ChassisCommand, bool) {
	switch resetType {
	case "On", "ForceOn":
		return PowerUp, true
	case "ForceOff":
		return PowerDown, true
	case "GracefulShutdown":
		return SoftShutdown, true
	case "ForceRestart":
		return HardReset, true
	case "PowerCycle":
		return PowerCycle, true
	case "Nmi":
		return DiagnosticInterrupt, true
	}
	return 0, false
}

// Errors an IPMI server's target wraps to choose the completion code of its
// answer (see wire/ipmibmc).
var (
	// ErrBusy: C0h "node busy", try again later (a refused admission, a
	// state store that is down).
	ErrBusy = errors.New("node busy")
	// ErrUnsupported: CCh "invalid data field in request" (an action or
	// boot device this node does not offer).
	ErrUnsupported = errors.New("not supported by this node")
	// ErrNotNow: D5h "command not supported in present state" (e.g. the
	// power state is not known yet).
	ErrNotNow = errors.New("not possible in the present state")
)
