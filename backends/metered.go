package backends

import (
	"context"
	"errors"
	"time"

	"github.com/fishgate/fishgate/schemas"
)

// CallMeter records BMC calls (internal/metrics.Metrics does).
type CallMeter interface {
	BMCCall(backend, op, result string, d time.Duration)
}

// BMC call operations, as Metered names them.
const (
	OpPowerState   = "power_state"
	OpReset        = "reset"
	OpBoot         = "boot"
	OpSetBoot      = "set_boot"
	OpCapabilities = "capabilities"
)

// CallResult names how a BMC call ended: "ok", "no_answer" (ErrNoAnswer:
// the command may have been carried out), "unsupported" (ErrUnsupported)
// or "error".
func CallResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNoAnswer):
		return "no_answer"
	case errors.Is(err, ErrUnsupported):
		return "unsupported"
	}
	return "error"
}

// Metered returns b with every call recorded in m under backend kind
// kind: the operation, its result and how long it took. It keeps b's
// Confirmer.
func Metered(b Backend, kind string, m CallMeter) Backend {
	mb := metered{b: b, kind: kind, m: m}
	if c, ok := b.(Confirmer); ok {
		return meteredConfirmer{mb, c}
	}
	return mb
}

type metered struct {
	b    Backend
	kind string
	m    CallMeter
}

// timed runs one call of operation op and records it.
func timed[T any](b metered, op string, call func() (T, error)) (T, error) {
	start := time.Now()
	v, err := call()
	b.m.BMCCall(b.kind, op, CallResult(err), time.Since(start))
	return v, err
}

func (b metered) PowerState(ctx context.Context) (schemas.PowerState, error) {
	return timed(b, OpPowerState, func() (schemas.PowerState, error) { return b.b.PowerState(ctx) })
}

func (b metered) Reset(ctx context.Context, r schemas.ResetType) error {
	_, err := timed(b, OpReset, func() (struct{}, error) { return struct{}{}, b.b.Reset(ctx, r) })
	return err
}

func (b metered) Boot(ctx context.Context) (schemas.BootOverride, error) {
	return timed(b, OpBoot, func() (schemas.BootOverride, error) { return b.b.Boot(ctx) })
}

func (b metered) SetBoot(ctx context.Context, o schemas.BootOverride) error {
	_, err := timed(b, OpSetBoot, func() (struct{}, error) { return struct{}{}, b.b.SetBoot(ctx, o) })
	return err
}

func (b metered) Capabilities(ctx context.Context) (Capabilities, error) {
	return timed(b, OpCapabilities, func() (Capabilities, error) { return b.b.Capabilities(ctx) })
}

func (b metered) Close() error { return b.b.Close() }

// Unwrap is the backend underneath.
func (b metered) Unwrap() Backend { return b.b }

type meteredConfirmer struct {
	metered
	c Confirmer
}

func (b meteredConfirmer) ResetConfirmed(ctx context.Context, r schemas.ResetType) (bool, error) {
	return timed(b.metered, OpReset, func() (bool, error) { return b.c.ResetConfirmed(ctx, r) })
}
