package testkit

import (
	"testing"
	"time"
)

// WaitFor polls cond every 20 ms until it holds or timeout passes; then it
// fails the test with what, and what cond said last. It is how tests wait
// for a condition instead of sleeping for a guessed time: the timeout is a
// bound on a hang, generous enough for a loaded 2-core machine, never the
// expected duration.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (ok bool, last string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s (last: %s)", what, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
