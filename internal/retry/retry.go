// Package retry is the one backoff and retry helper of fishgate: an
// exponential backoff with jitter, a cap, and an attempt budget. Every retry
// loop in the tree uses it.
//
// The pause before retry n (1-based) is drawn uniformly from [c/2, c]
// ("equal jitter"), where the ceiling c is Base·2^(n-1), at most
// max(Cap, Base). Jitter spreads the retries of many nodes or
// subscriptions that failed at the same instant; the lower half keeps a
// flaky BMC from being asked again at once. The random source is
// injectable, so tests are deterministic.
//
// # One budget per power command, across layers
//
// Retries of a power command are owned by one layer: the serializer's
// action (serializer/action.go), which knows what the action is, verifies
// every attempt by reading the BMC, and has the budget (the config's
// retries). It grants each command it sends exactly one attempt, through
// the context (WithBudget(ctx, 1)). A backend's loop that sends a power
// command is a Policy with Command set: each of its attempts takes one
// from the context's budget, so under the serializer a backend sends a
// power command once per attempt of the action, and a ForceOff is sent at
// most retries+1 times in all, not (retries+1) times the backend's own
// attempts. A backend used without a budget in its context (a test, a
// tool) retries by its own Attempts.
//
// Reads and settings (power state, boot override, session setup) are not
// budgeted: a backend call retries them at most its Attempts times within
// the call's deadline, which the caller sets (serializer Options.CallTimeout).
package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Policy is one retry loop's rules.
type Policy struct {
	// Base is the ceiling of the pause before the first retry; each retry
	// after doubles it. Zero or less: no pause.
	Base time.Duration
	// Cap bounds the ceiling (a Base above Cap is kept as is). Zero or
	// less: no bound.
	Cap time.Duration
	// Attempts is the budget of the loop: tries in all, the first one
	// included. Zero or less: no limit (until success, Stop or ctx).
	Attempts int
	// Command says that each attempt sends a power command: it takes one
	// from the context's budget (WithBudget) before it is made.
	Command bool
	// Rand returns a number in [0, 1): the jitter's source. Nil:
	// math/rand/v2's.
	Rand func() float64
	// Sleep waits d or until ctx ends (its error then). Nil: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnRetry, if set, hears of each failed attempt that will be retried,
	// and of the pause before the next one.
	OnRetry func(attempt int, err error, pause time.Duration)
}

// Bounds returns the range the pause before retry n (1-based) is drawn
// from: [ceiling/2, ceiling].
func (p Policy) Bounds(n int) (lo, hi time.Duration) {
	if p.Base <= 0 {
		return 0, 0
	}
	limit := time.Duration(math.MaxInt64)
	if p.Cap > 0 {
		limit = max(p.Cap, p.Base)
	}
	hi = p.Base
	for i := 1; i < n && hi < limit; i++ {
		if hi > limit/2 {
			hi = limit
			break
		}
		hi *= 2
	}
	hi = min(hi, limit)
	return hi / 2, hi
}

// Delay draws the pause before retry n (1-based) from Bounds(n).
func (p Policy) Delay(n int) time.Duration {
	lo, hi := p.Bounds(n)
	return Draw(lo, hi, p.Rand)
}

// Draw returns a duration drawn uniformly from [lo, hi] with rnd (nil:
// math/rand/v2's source). A value of rnd outside [0, 1] is clamped; hi
// below lo gives lo.
func Draw(lo, hi time.Duration, rnd func() float64) time.Duration {
	if hi <= lo {
		return lo
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	r := min(max(rnd(), 0), 1)
	return lo + time.Duration(float64(hi-lo)*r)
}

// stopError marks an error that is not retried.
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }
func (e stopError) Unwrap() error { return e.err }

// Stop marks err as final: Do returns it without retrying.
func Stop(err error) error {
	if err == nil {
		return nil
	}
	return stopError{err}
}

// ErrBudgetSpent: the context's attempt budget was spent before a power
// command could be sent at all.
var ErrBudgetSpent = errors.New("the attempt budget of this command is spent")

// Do runs f (with the attempt number, 1-based) until it succeeds, returns
// an error marked with Stop, Attempts or the context's budget are used up,
// or ctx ends. A retry whose pause would end after ctx's deadline is not
// made. The error returned is f's last, saying which attempt it was when
// there was more than one.
func (p Policy) Do(ctx context.Context, f func(attempt int) error) error {
	if p.Command && !Take(ctx) {
		return ErrBudgetSpent
	}
	for attempt := 1; ; attempt++ {
		err := f(attempt)
		if err == nil {
			return nil
		}
		var stop stopError
		switch {
		case errors.As(err, &stop):
			return numbered(attempt, stop.err)
		case ctx.Err() != nil:
			if !errors.Is(err, ctx.Err()) {
				err = fmt.Errorf("%w (%w)", err, ctx.Err())
			}
			return numbered(attempt, err)
		case p.Attempts > 0 && attempt >= p.Attempts:
			return spent(attempt, err)
		}
		pause := p.Delay(attempt)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < pause {
			return fmt.Errorf("attempt %d: %w (no time left before the deadline for another: %w)", attempt, err, context.DeadlineExceeded)
		}
		if p.Command && !Take(ctx) {
			return spent(attempt, err)
		}
		if p.OnRetry != nil {
			p.OnRetry(attempt, err, pause)
		}
		sleep := p.Sleep
		if sleep == nil {
			sleep = Sleep
		}
		if serr := sleep(ctx, pause); serr != nil {
			return fmt.Errorf("attempt %d: %w (then: %w)", attempt, err, serr)
		}
	}
}

func numbered(attempt int, err error) error {
	if attempt > 1 {
		return fmt.Errorf("attempt %d: %w", attempt, err)
	}
	return err
}

func spent(attempt int, err error) error {
	if attempt > 1 {
		return fmt.Errorf("failed after %d attempts: %w", attempt, err)
	}
	return err
}

// Sleep waits d or until ctx ends, and then returns ctx's error.
func Sleep(ctx context.Context, d time.Duration) error {
	return sleepOr(ctx, d, nil, nil)
}

// SleepOr returns a Policy.Sleep that also ends, with errDone, when done is
// closed (a backend's Close).
func SleepOr(done <-chan struct{}, errDone error) func(context.Context, time.Duration) error {
	return func(ctx context.Context, d time.Duration) error { return sleepOr(ctx, d, done, errDone) }
}

func sleepOr(ctx context.Context, d time.Duration, done <-chan struct{}, errDone error) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-done: // nil: never
		return errDone
	}
}

type budgetKey struct{}

// WithBudget returns ctx carrying a budget of n attempts at a power command,
// shared by every loop below that sends it (Policy.Command): their attempts
// add up against it instead of multiplying. A budget in ctx already is
// replaced for the calls made with the returned context.
func WithBudget(ctx context.Context, n int) context.Context {
	b := new(atomic.Int64)
	b.Store(int64(max(n, 0)))
	return context.WithValue(ctx, budgetKey{}, b)
}

// Take takes one attempt from ctx's budget and reports whether there was
// one left. A ctx without a budget always has one (the loop's own Attempts
// bound it).
func Take(ctx context.Context) bool {
	b, ok := ctx.Value(budgetKey{}).(*atomic.Int64)
	if !ok {
		return true
	}
	return b.Add(-1) >= 0
}

// Left is what remains of ctx's budget, and whether it has one.
func Left(ctx context.Context) (int, bool) {
	b, ok := ctx.Value(budgetKey{}).(*atomic.Int64)
	if !ok {
		return 0, false
	}
	return int(max(b.Load(), 0)), true
}
