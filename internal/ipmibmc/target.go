package ipmibmc

import (
	"context"
	"errors"
	"fmt"
)

// PowerTarget is what an IPMI front drives: the simulated machine in the
// simulator, the serializer in the gateway. Its methods are called from the
// server's packet goroutines, concurrently for different sessions, each under
// a context bounded by Config.CommandTimeout and cancelled by Close.
//
// Errors become completion codes (IPMI v2.0 §5.2 Table 5-2): wrap ErrBusy,
// ErrUnsupported or ErrNotNow to choose one; a done context answers C3h
// (timeout); anything else FFh (unspecified error).
type PowerTarget interface {
	// PowerState reports whether the host has power: Get Chassis Status
	// (v2.0 §28.2), "Chassis Power is on/off".
	PowerState(ctx context.Context) (on bool, err error)
	// Control carries out one Chassis Control command (v2.0 §28.3). It
	// returns once the command was accepted, not when power has changed.
	Control(ctx context.Context, cmd ChassisCommand) error
	// SetBoot writes the boot flags (Set System Boot Options parameter 5,
	// v2.0 §28.12, Table 28-14).
	SetBoot(ctx context.Context, b Boot) error
	// Boot reads the boot flags back (Get System Boot Options, §28.13).
	Boot(ctx context.Context) (Boot, error)
	// BMCReset is told that the BMC itself was reset: Cold Reset (v2.0
	// §20.2, cold true) or Warm Reset (§20.3). A BMC reset restarts the
	// management controller only: the host's power must not change.
	BMCReset(ctx context.Context, cold bool) error
}

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

// Errors a PowerTarget wraps to choose the completion code of its answer.
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

// Completion codes of IPMI v2.0 Table 5-2 (and §28.12 for 80h/81h).
const (
	ccOK                   = 0x00
	ccParamNotSupported    = 0x80
	ccNodeBusy             = 0xC0
	ccTimeout              = 0xC3
	ccRequestDataTruncated = 0xC6
	ccRequestLenInvalid    = 0xC7
	ccInvalidDataField     = 0xCC
	ccNotInPresentState    = 0xD5
	ccUnspecified          = 0xFF
)

// completionCode maps a PowerTarget error to the completion code answered.
func completionCode(err error) uint8 {
	switch {
	case err == nil:
		return ccOK
	case errors.Is(err, ErrBusy):
		return ccNodeBusy
	case errors.Is(err, ErrUnsupported):
		return ccInvalidDataField
	case errors.Is(err, ErrNotNow):
		return ccNotInPresentState
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return ccTimeout
	}
	return ccUnspecified
}
