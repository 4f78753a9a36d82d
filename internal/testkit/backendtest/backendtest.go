// Package backendtest holds checks that every backends.Backend passes
// against the simulator, for the backends' tests.
package backendtest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/simulator"
)

// Start starts a simulated machine with mc and a backend for its BMC that
// waits timeout for an answer (its per-request timeout).
type Start func(t *testing.T, timeout time.Duration, mc simulator.MachineConfig) (backends.Backend, *simulator.Machine)

// slowLatency is how long the slow BMC takes to answer; the backend gives
// up after a third of it.
const slowLatency = 3 * time.Second

// CheckSlowCommands checks what a BMC slower than the backend gets (issue
// 9), in parallel subtests: each of resets (On, or one that leaves the
// machine On) with the backend's timeout ending the wait, and On with the
// caller's deadline ending it. Reset fails at once with
// backends.ErrNoAnswer (and context.DeadlineExceeded when the deadline
// ended it); the command reaches the machine once and is carried out; the
// caller then reads the power state and sends the next command (ForceOff,
// answered at once), never with two commands in flight.
func CheckSlowCommands(t *testing.T, start Start, resets ...schemas.ResetType) {
	type slowCase struct {
		name     string
		r        schemas.ResetType
		deadline bool
	}
	cases := []slowCase{{"On, deadline", schemas.ResetOn, true}}
	for _, r := range resets {
		cases = append(cases, slowCase{string(r), r, false})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mc := simulator.MachineConfig{CommandLatency: slowLatency, InitialPower: simulator.PowerOn,
				DelayMin: 10 * time.Millisecond, DelayMax: 10 * time.Millisecond}
			if tc.r == schemas.ResetOn {
				mc.InitialPower = simulator.PowerOff
			}
			timeout, wait := slowLatency/3, 10*time.Second
			if tc.deadline {
				timeout, wait = 10*time.Second, slowLatency/3
			}
			b, m := start(t, timeout, mc)
			err := checkSlowCommand(t, b, m, tc.r, wait)
			if tc.deadline && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s cut by the caller's deadline: %v, want context.DeadlineExceeded too", tc.r, err)
			}
		})
	}
}

// checkSlowCommand is one case of CheckSlowCommands; wait is the caller's
// deadline for r. It returns Reset's error.
func checkSlowCommand(t *testing.T, b backends.Backend, m *simulator.Machine, r schemas.ResetType, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A read first: the session is open, so that the command alone meets
	// the slow BMC.
	if _, err := b.PowerState(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, wait)
	defer rcancel()
	start := time.Now()
	err := b.Reset(rctx, r)
	if !errors.Is(err, backends.ErrNoAnswer) {
		t.Fatalf("%s to a BMC that answers after %v: %v, want backends.ErrNoAnswer", r, slowLatency, err)
	}
	if took := time.Since(start); took >= slowLatency {
		t.Errorf("Reset returned after %v: it waited for the late answer", took)
	}
	// Whatever the backend sent reaches the machine long before the
	// latency of the first command ends.
	st := waitMachine(t, m, "finished the command", func(st simulator.Status) bool {
		return st.CommandCount > 0 && st.InFlight == 0
	})
	checkLog(t, st, r)

	// The caller settles by reading the power state, then sends the next
	// command.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ps, err := b.PowerState(ctx)
		if err == nil && ps == schemas.PowerOn {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("power state %s, %v; want On", ps, err)
		}
	}
	m.SetCommandLatency(0)
	if err := b.Reset(ctx, schemas.ResetForceOff); err != nil {
		t.Fatalf("ForceOff after the slow %s: %v", r, err)
	}
	st = waitMachine(t, m, "Off", func(st simulator.Status) bool {
		return st.PowerState == simulator.PowerOff && st.InFlight == 0
	})
	checkLog(t, st, r, schemas.ResetForceOff)
	if st.MaxInFlight != 1 {
		t.Errorf("MaxInFlight %d, want 1", st.MaxInFlight)
	}
	return err
}

// checkLog checks that the machine got want, each accepted, and nothing
// else. A front may add its own name of the command: AMT logs "On (2)".
func checkLog(t *testing.T, st simulator.Status, want ...schemas.ResetType) {
	t.Helper()
	ok := len(st.Commands) == len(want)
	for i := 0; ok && i < len(want); i++ {
		a, r := st.Commands[i].Action, string(want[i])
		ok = st.Commands[i].Result == "accepted" && (a == r || strings.HasPrefix(a, r+" ("))
	}
	if !ok {
		t.Fatalf("machine logged %+v, want %v, each accepted once", st.Commands, want)
	}
}

// waitMachine polls m until ok, and returns that status.
func waitMachine(t *testing.T, m *simulator.Machine, what string, ok func(simulator.Status) bool) simulator.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := m.Status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("machine never %s: %+v", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
