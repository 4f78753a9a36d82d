package retry

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// ceiling is the documented upper bound of retry n's pause, computed the
// slow way.
func ceiling(base, cap time.Duration, n int) time.Duration {
	c := float64(base)
	for i := 1; i < n; i++ {
		c *= 2
	}
	if cap <= 0 {
		if c >= math.MaxInt64 {
			return math.MaxInt64
		}
		return time.Duration(c)
	}
	return time.Duration(min(c, float64(max(cap, base))))
}

// Every pause lies within [ceiling/2, ceiling] of its attempt, the ceiling
// doubles from Base and never passes the cap, for any draw of the random
// source, including its extremes.
func TestDelayBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sources := map[string]func() float64{
		"zero":   func() float64 { return 0 },
		"almost": func() float64 { return 0.9999999999 },
		"one":    func() float64 { return 1 }, // outside [0,1): clamped
		"above":  func() float64 { return 7 },
		"below":  func() float64 { return -3 },
		"pcg":    rng.Float64,
	}
	for _, c := range []struct{ base, cap time.Duration }{
		{time.Second, 30 * time.Second},
		{250 * time.Millisecond, 10 * time.Second},
		{10 * time.Second, 5 * time.Minute},
		{time.Minute, 5 * time.Second}, // Base above Cap: kept
		{3 * time.Millisecond, 0},      // no cap: no overflow either
		{7 * time.Second, 7 * time.Second},
	} {
		for name, src := range sources {
			p := Policy{Base: c.base, Cap: c.cap, Rand: src}
			prevHi := time.Duration(0)
			for n := 1; n <= 80; n++ {
				lo, hi := p.Bounds(n)
				if want := ceiling(c.base, c.cap, n); hi != want {
					t.Fatalf("base %v cap %v retry %d: ceiling %v, want %v", c.base, c.cap, n, hi, want)
				}
				if lo != hi/2 {
					t.Fatalf("base %v cap %v retry %d: floor %v, want half of %v", c.base, c.cap, n, lo, hi)
				}
				if c.cap > 0 && hi > max(c.cap, c.base) {
					t.Fatalf("base %v cap %v retry %d: ceiling %v above the cap", c.base, c.cap, n, hi)
				}
				if hi < prevHi {
					t.Fatalf("base %v cap %v retry %d: ceiling %v fell from %v", c.base, c.cap, n, hi, prevHi)
				}
				prevHi = hi
				for range 5 {
					if d := p.Delay(n); d < lo || d > hi {
						t.Fatalf("base %v cap %v rand %s retry %d: pause %v outside [%v, %v]", c.base, c.cap, name, n, d, lo, hi)
					}
				}
			}
		}
	}
	if lo, hi := (Policy{}).Bounds(3); lo != 0 || hi != 0 {
		t.Errorf("no Base: bounds [%v, %v], want none", lo, hi)
	}
}

// The jitter is the source's: fixed sources give fixed pauses, and a
// spread source spreads them over the whole range.
func TestDelayJitter(t *testing.T) {
	p := Policy{Base: time.Second, Cap: 30 * time.Second}
	p.Rand = func() float64 { return 0 }
	if d := p.Delay(3); d != 2*time.Second {
		t.Errorf("rand 0, retry 3: %v, want the floor 2s", d)
	}
	p.Rand = func() float64 { return 0.5 }
	if d := p.Delay(3); d != 3*time.Second {
		t.Errorf("rand 0.5, retry 3: %v, want 3s", d)
	}
	p.Rand = rand.New(rand.NewPCG(7, 7)).Float64
	seen := map[time.Duration]bool{}
	var low, high bool
	for range 200 {
		d := p.Delay(1)
		seen[d] = true
		low = low || d < 600*time.Millisecond
		high = high || d > 900*time.Millisecond
	}
	if len(seen) < 100 || !low || !high {
		t.Errorf("200 draws gave %d distinct pauses (low %v, high %v): not jittered over [500ms, 1s]", len(seen), low, high)
	}
	if d := Draw(time.Second, time.Second/2, nil); d != time.Second {
		t.Errorf("Draw with hi below lo: %v", d)
	}
}

// recorder is a Policy.Sleep that records pauses instead of sleeping.
type recorder struct{ pauses []time.Duration }

func (r *recorder) sleep(ctx context.Context, d time.Duration) error {
	r.pauses = append(r.pauses, d)
	return ctx.Err()
}

var errFlaky = errors.New("flaky")

// Attempts is a budget: f runs exactly that many times against an error
// that never ends, with the pauses of Delay in between, and the error says
// how many.
func TestDoAttemptsBudget(t *testing.T) {
	for _, attempts := range []int{1, 2, 5} {
		rec := &recorder{}
		p := Policy{Base: time.Second, Cap: 3 * time.Second, Attempts: attempts, Sleep: rec.sleep, Rand: func() float64 { return 1 }}
		calls := 0
		err := p.Do(context.Background(), func(n int) error {
			calls++
			if n != calls {
				t.Errorf("attempt %d numbered %d", calls, n)
			}
			return errFlaky
		})
		if calls != attempts {
			t.Errorf("Attempts %d: f ran %d times", attempts, calls)
		}
		if !errors.Is(err, errFlaky) {
			t.Errorf("Attempts %d: %v, want the last error", attempts, err)
		}
		if attempts > 1 && !strings.Contains(err.Error(), "failed after") {
			t.Errorf("Attempts %d: %q does not say how many attempts", attempts, err)
		}
		want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}[:attempts-1]
		if !slices.Equal(rec.pauses, want) {
			t.Errorf("Attempts %d: pauses %v, want %v", attempts, rec.pauses, want)
		}
	}
	// Success ends it at once; Stop is not retried.
	calls := 0
	err := Policy{Attempts: 5, Sleep: (&recorder{}).sleep}.Do(context.Background(), func(n int) error {
		calls++
		if n == 2 {
			return nil
		}
		return errFlaky
	})
	if err != nil || calls != 2 {
		t.Errorf("success at 2: %v after %d calls", err, calls)
	}
	calls = 0
	err = Policy{Attempts: 5, Sleep: (&recorder{}).sleep}.Do(context.Background(), func(int) error {
		calls++
		return Stop(errFlaky)
	})
	var stop stopError
	if !errors.Is(err, errFlaky) || errors.As(err, &stop) || calls != 1 {
		t.Errorf("Stop: %v after %d calls, want the bare error after 1", err, calls)
	}
}

// A budget in the context bounds the power-command loops below it in all:
// a loop of 3 attempts over a loop of 4 sends at most the budget, not 12.
func TestBudgetDoesNotMultiply(t *testing.T) {
	rec := &recorder{}
	sends := 0
	inner := Policy{Attempts: 4, Command: true, Sleep: rec.sleep}
	outer := Policy{Attempts: 3, Sleep: rec.sleep}
	for _, budget := range []int{1, 3, 12, 20} {
		sends = 0
		ctx := WithBudget(context.Background(), budget)
		err := outer.Do(ctx, func(int) error {
			return inner.Do(ctx, func(int) error {
				sends++
				return errFlaky
			})
		})
		if want := min(budget, 12); sends != want {
			t.Errorf("budget %d: %d sends, want %d", budget, sends, want)
		}
		if !errors.Is(err, errFlaky) && !errors.Is(err, ErrBudgetSpent) {
			t.Errorf("budget %d: %v", budget, err)
		}
		if left, ok := Left(ctx); !ok || left != max(budget-12, 0) {
			t.Errorf("budget %d: %d left (%v)", budget, left, ok)
		}
	}
	// Without a budget the loops multiply, by their own Attempts.
	sends = 0
	_ = outer.Do(context.Background(), func(int) error {
		return inner.Do(context.Background(), func(int) error { sends++; return errFlaky })
	})
	if sends != 12 {
		t.Errorf("no budget: %d sends, want 3 x 4", sends)
	}
	// A spent budget sends nothing.
	ctx := WithBudget(context.Background(), 0)
	if err := inner.Do(ctx, func(int) error { t.Error("sent with no budget"); return nil }); !errors.Is(err, ErrBudgetSpent) {
		t.Errorf("budget 0: %v", err)
	}
	// Reads are not budgeted.
	reads := 0
	ctx = WithBudget(context.Background(), 1)
	_ = Policy{Attempts: 3, Sleep: rec.sleep}.Do(ctx, func(int) error { reads++; return errFlaky })
	if reads != 3 {
		t.Errorf("%d reads under a budget of 1, want 3 (reads are not budgeted)", reads)
	}
}

// A pause that would end after the deadline is not slept; a ctx that ends
// during the pause ends the loop with both errors.
func TestDoDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	calls := 0
	err := Policy{Base: 2 * time.Hour, Sleep: (&recorder{}).sleep}.Do(ctx, func(int) error { calls++; return errFlaky })
	if calls != 1 || !errors.Is(err, errFlaky) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("pause past the deadline: %v after %d calls", err, calls)
	}
	ctx, cancel = context.WithCancel(context.Background())
	calls = 0
	err = Policy{Base: time.Hour}.Do(ctx, func(int) error {
		calls++
		cancel()
		return errFlaky
	})
	if calls != 1 || !errors.Is(err, errFlaky) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v after %d calls", err, calls)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	calls = 0
	err = Policy{Base: time.Hour, Sleep: func(ctx context.Context, d time.Duration) error {
		cancel()
		return Sleep(ctx, d)
	}}.Do(ctx, func(int) error { calls++; return errFlaky })
	if calls != 1 || !errors.Is(err, errFlaky) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled while pausing: %v after %d calls", err, calls)
	}
}

// OnRetry hears of each retried failure with its pause, not of the last.
func TestOnRetry(t *testing.T) {
	var heard []int
	p := Policy{Base: time.Second, Attempts: 3, Sleep: (&recorder{}).sleep, Rand: func() float64 { return 0 },
		OnRetry: func(n int, err error, pause time.Duration) {
			if !errors.Is(err, errFlaky) {
				t.Errorf("OnRetry %d: %v", n, err)
			}
			if lo, _ := (Policy{Base: time.Second}).Bounds(n); pause != lo {
				t.Errorf("OnRetry %d: pause %v, want %v", n, pause, lo)
			}
			heard = append(heard, n)
		}}
	_ = p.Do(context.Background(), func(int) error { return errFlaky })
	if !slices.Equal(heard, []int{1, 2}) {
		t.Errorf("OnRetry heard %v, want [1 2]", heard)
	}
}
