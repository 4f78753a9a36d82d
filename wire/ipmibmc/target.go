package ipmibmc

import (
	"context"
	"errors"

	"github.com/fishgate/fishgate/wire/ipmi"
)

// PowerTarget is what an IPMI front drives: the simulated machine in the
// simulator, the serializer in the gateway. Its methods are called from the
// server's packet goroutines, concurrently for different sessions, each under
// a context bounded by Config.CommandTimeout and cancelled by Close.
//
// Errors become completion codes (IPMI v2.0 §5.2 Table 5-2): wrap ipmi.ErrBusy,
// ipmi.ErrUnsupported or ipmi.ErrNotNow to choose one; a done context answers C3h
// (timeout); anything else FFh (unspecified error).
type PowerTarget interface {
	// PowerState reports whether the host has power: Get Chassis Status
	// (v2.0 §28.2), "Chassis Power is on/off".
	PowerState(ctx context.Context) (on bool, err error)
	// Control carries out one Chassis Control command (v2.0 §28.3). It
	// returns once the command was accepted, not when power has changed.
	Control(ctx context.Context, cmd ipmi.ChassisCommand) error
	// SetBoot writes the boot flags (Set System Boot Options parameter 5,
	// v2.0 §28.12, Table 28-14).
	SetBoot(ctx context.Context, b ipmi.Boot) error
	// Boot reads the boot flags back (Get System Boot Options, §28.13).
	Boot(ctx context.Context) (ipmi.Boot, error)
	// BMCReset is told that the BMC itself was reset: Cold Reset (v2.0
	// §20.2, cold true) or Warm Reset (§20.3). A BMC reset restarts the
	// management controller only: the host's power must not change.
	BMCReset(ctx context.Context, cold bool) error
}

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
	case errors.Is(err, ipmi.ErrBusy):
		return ccNodeBusy
	case errors.Is(err, ipmi.ErrUnsupported):
		return ccInvalidDataField
	case errors.Is(err, ipmi.ErrNotNow):
		return ccNotInPresentState
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return ccTimeout
	}
	return ccUnspecified
}
