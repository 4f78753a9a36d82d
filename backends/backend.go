// Package backends is the southbound side of fishgate: one small interface
// that every BMC protocol (Redfish, IPMI, AMT) implements, so the serializer
// drives any machine the same way (docs/architecture.md#backends).
package backends

import (
	"context"
	"errors"

	"github.com/fishgate/fishgate/schemas"
)

// Capabilities is what a node's BMC can do, as advertised northbound in
// ResetType@Redfish.AllowableValues and the Boot AllowableValues.
type Capabilities struct {
	ResetTypes  []schemas.ResetType
	BootTargets []string
	BootModes   []string
}

// Supports reports whether the BMC offers reset type r.
func (c Capabilities) Supports(r schemas.ResetType) bool {
	for _, x := range c.ResetTypes {
		if x == r {
			return true
		}
	}
	return false
}

// Backend drives one BMC. Every call takes a context with a deadline. An
// implementation is used by one goroutine at a time per node unless it says
// otherwise.
type Backend interface {
	// PowerState reads the machine's current power state from the BMC.
	PowerState(ctx context.Context) (schemas.PowerState, error)
	// Reset sends one power command. It returns once the BMC accepted it,
	// not when the machine reached the target state.
	Reset(ctx context.Context, r schemas.ResetType) error
	// Boot reads the boot source override.
	Boot(ctx context.Context) (schemas.BootOverride, error)
	// SetBoot sets the boot source override; empty fields are left as they are.
	SetBoot(ctx context.Context, b schemas.BootOverride) error
	// Capabilities reports the reset types and boot targets the BMC supports.
	Capabilities(ctx context.Context) (Capabilities, error)
	// Close releases sessions and connections.
	Close() error
}

// ErrUnsupported is wrapped by errors for a reset type or boot target the
// BMC does not offer.
var ErrUnsupported = errors.New("not supported by this BMC")

// ErrNoAnswer is wrapped by Reset errors when the BMC did not answer in
// time: the command may have been carried out, so the caller settles it by
// reading the power state and never re-sends it blindly (a second PowerCycle
// is a second cycle). Backends do not re-send such a command themselves.
var ErrNoAnswer = errors.New("no answer from the BMC (the command may have been carried out)")

// Confirmer is implemented by backends whose BMC can confirm a command
// carried out to its end (a Redfish BMC's task, followed until it
// completed): evidence that a restart happened although the power reads
// never saw it go through Off.
type Confirmer interface {
	ResetConfirmed(ctx context.Context, r schemas.ResetType) (confirmed bool, err error)
}
