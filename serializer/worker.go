package serializer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fishgate/fishgate/schemas"
)

// The worker is the lease holder of one node: the only writer for it
// (DESIGN.md §6). It runs now, then promotes next, until the node is idle,
// checking its fencing token in Redis before every BMC command and before
// writing any result.

// kick asks for node id's work to be run by this replica. Only one worker
// goroutine per node runs in a replica; a kick while it runs makes it look
// again before it stops.
func (s *Service) kick(n *node) {
	n.wmu.Lock()
	if n.working {
		n.again = true
		n.wmu.Unlock()
		return
	}
	n.working = true
	n.wmu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			s.work(n)
			n.wmu.Lock()
			if !n.again || s.ctx.Err() != nil {
				n.working = false
				n.wmu.Unlock()
				return
			}
			n.again = false
			n.wmu.Unlock()
		}
	}()
}

// work acquires the node's lease, if it has work and nobody holds it, and
// runs actions until the node is idle or the lease is lost.
func (s *Service) work(n *node) {
	ctx := s.ctx
	st, err := s.store.State(ctx, n.ID)
	if err != nil || st.Slots.Now.Task == "" {
		return
	}
	lease, err := s.store.acquire(ctx, n.ID, s.opts.ReplicaID, s.opts.LeaseTTL)
	if err != nil || lease == "" {
		return // someone else holds it (or Redis is away: the sweep retries)
	}
	log := s.opts.Logger.With("node", n.ID, "replica", s.opts.ReplicaID, "lease", lease)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		s.holdLease(wctx, cancel, n.ID, lease, log)
	}()
	defer func() {
		cancel()
		<-renewed
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		s.store.release(rctx, n.ID, lease)
		rcancel()
	}()
	for wctx.Err() == nil {
		st, err := s.store.State(wctx, n.ID)
		if err != nil {
			log.Warn("read state", "err", err)
			return
		}
		if st.Slots.Now.Task == "" {
			return
		}
		if err := s.run(wctx, n, lease, st); err != nil {
			if errors.Is(err, ErrFenced) || wctx.Err() != nil {
				log.Warn("lease lost; stopping without writing results", "err", err)
			} else {
				log.Warn("action failed", "err", err)
			}
			return
		}
	}
}

// holdLease renews the lease every TTL/3; when it cannot, it cancels the
// work (a holder that cannot renew stops its action).
func (s *Service) holdLease(ctx context.Context, cancel context.CancelFunc, node, lease string, log *slog.Logger) {
	t := time.NewTicker(s.opts.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, rcancel := context.WithTimeout(ctx, s.opts.LeaseTTL/3)
		ok, err := s.store.renew(rctx, node, lease, s.opts.LeaseTTL)
		rcancel()
		if err != nil || !ok {
			log.Warn("lease renewal failed; cancelling the action", "err", err, "held", ok)
			cancel()
			return
		}
	}
}

// result is how a task ends.
type result struct {
	state, status, reason string
	observed              schemas.PowerState
	desiredIsObserved     bool
	// abandon: stop without writing a result (lease lost, Redis failing).
	abandon error
}

// run executes the node's running action st.Slots.Now to its end.
func (s *Service) run(ctx context.Context, n *node, lease string, st NodeState) error {
	task := st.Slots.Now.Task
	now := s.opts.Clock
	res, err := s.store.workerOp(ctx, n.ID, lease, task, now(), "begin")
	if err != nil {
		return err
	}
	rt := schemas.ResetType(res[1])
	wasRunning := res[2] == "Running" || res[2] == "Cancelling"
	log := s.opts.Logger.With("node", n.ID, "task", task, "reset", rt, "replica", s.opts.ReplicaID)
	if !wasRunning {
		s.emitTask(ctx, n.ID, task, schemas.TaskEvent("TaskStarted", task))
	}
	r := s.execute(ctx, n, lease, task, rt, wasRunning && st.Issued == task, st.IssuedAt, res[3] == "1", log)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if r.abandon != nil {
		// Redis failed mid-action: write nothing; the task stays Running and
		// is resumed (recovery path) once a lease can be taken again.
		return r.abandon
	}
	fin, err := s.store.workerOp(ctx, n.ID, lease, task, now(), "finish",
		r.state, r.status, r.reason, string(r.observed), boolArg(r.desiredIsObserved))
	if err == nil {
		if len(fin) >= 6 { // the script's word on how it ended (a late cancellation wins)
			r.state, r.status, r.reason = fin[3], fin[4], fin[5]
		}
		log.Info("task finished", "state", r.state, "reason", r.reason, "power", r.observed)
		s.setPower(n, r.observed)
		s.emitFinish(ctx, n.ID, task, r)
	}
	return err
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

var errCancelled = errors.New("cancelled")

// execute performs one action and says how it ended. interrupted is true
// when a previous holder had sent the BMC command without confirming it.
func (s *Service) execute(ctx context.Context, n *node, lease, task string, rt schemas.ResetType, interrupted bool, issuedAt time.Time, cancelling bool, log *slog.Logger) result {
	target, steady := rt.Target()
	// sent: when a command of this task may have been put under way on the
	// BMC (zero: none); it cannot be unsent, so a cancellation lets it settle
	// first (cancelled), for as long as such a command may take.
	var sent time.Time
	if interrupted {
		sent = issuedAt
		if sent.IsZero() {
			sent = time.Now()
		}
	}
	if cancelling {
		return s.cancelled(ctx, n, "cancelled before it started", rt, sent)
	}
	var (
		before schemas.PowerState
		err    error
	)
	if interrupted {
		// The previous holder's command may still be under way: let the node
		// settle before deciding, or a second command would overlap it.
		// BMCs without transitional states show the state they are leaving,
		// so wait for the target, no longer than the command may still run.
		want := schemas.PowerUnknown
		limit := max(s.verifyLimit(rt)-time.Since(sent), s.opts.VerifyInterval)
		switch {
		case restarts(rt):
			want = schemas.PowerOn
		case rt == schemas.ResetOn || rt == schemas.ResetForceOn || rt == schemas.ResetForceOff:
			want, _ = rt.Target()
		case rt == schemas.ResetGracefulShutdown:
			want, limit = schemas.PowerOff, s.softGrace(sent)
		}
		if before = s.settle(ctx, n, want, limit); before == schemas.PowerUnknown {
			err = errors.New("power state unknown")
		}
	} else {
		before, err = s.readPower(ctx, n)
	}
	if rt == schemas.ResetPushPowerButton && err == nil {
		target, steady = schemas.PowerOn, true
		if before == schemas.PowerOn {
			target = schemas.PowerOff
		}
	}
	if interrupted {
		// Never re-send blindly (a second PowerCycle is a second cycle):
		// read the BMC first, and converge only if it is not there.
		if err == nil && steady && before == target {
			return result{state: "Completed", status: "OK", observed: before,
				reason: fmt.Sprintf("interrupted by a gateway restart; confirmed %s after recovery", target)}
		}
		log.Info("resuming an interrupted action", "power", before)
	}
	// Nothing to send when a plain On/Off finds the node already there.
	if err == nil && before == target && (rt == schemas.ResetOn || rt == schemas.ResetForceOn || rt == schemas.ResetForceOff || rt == schemas.ResetGracefulShutdown) {
		return result{state: "Completed", status: "OK", observed: before, reason: fmt.Sprintf("already %s; no command sent", target)}
	}
	if interrupted && steady && (rt == schemas.ResetPowerCycle || rt == schemas.ResetForceRestart || rt == schemas.ResetGracefulRestart) && before == schemas.PowerOn {
		// The restart was sent and the node is On again: converge, do not cycle twice.
		return result{state: "Completed", status: "Warning", observed: before,
			reason: "interrupted by a gateway restart after the command was sent; the node is On, not restarted again"}
	}
	attempts := s.opts.Retries + 1
	var lastErr error
	for attempt := 1; attempt <= attempts; attempt++ {
		if attempt > 1 {
			if err := s.pause(ctx, n, lease, task, backoff(s.opts.RetryBackoff, attempt-1)); err != nil {
				return s.stopped(ctx, n, err, rt, sent)
			}
		}
		res, err := s.store.workerOp(ctx, n.ID, lease, task, s.opts.Clock(), "step", fmt.Sprintf("%s attempt %d", rt, attempt))
		if err != nil {
			return s.stopped(ctx, n, err, rt, sent)
		}
		if res[1] == "1" {
			return s.cancelled(ctx, n, "", rt, sent)
		}
		if attempt == 1 {
			switch {
			case restarts(rt):
				s.emitPower(ctx, n.ID, "ResourcePoweringOff")
			case target == schemas.PowerOn:
				s.emitPower(ctx, n.ID, "ResourcePoweringOn")
			case target == schemas.PowerOff:
				s.emitPower(ctx, n.ID, "ResourcePoweringOff")
			}
		}
		cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
		n.call.Lock()
		err = n.Backend.Reset(cctx, rt)
		n.call.Unlock()
		cancel()
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			sent = time.Now() // accepted, or no answer in time: perhaps accepted
		} else if sent.IsZero() {
			// A definite refusal: nothing is under way, and a later holder
			// must not treat the command as sent (it would wait for a
			// transition that never started).
			if _, uerr := s.store.workerOp(ctx, n.ID, lease, task, s.opts.Clock(), "unissue"); uerr != nil {
				return s.stopped(ctx, n, uerr, rt, sent)
			}
		}
		if err != nil {
			lastErr = err
			log.Warn("BMC command failed", "attempt", attempt, "err", err)
			continue
		}
		if !steady {
			return result{state: "Completed", status: "OK", observed: before, reason: fmt.Sprintf("%s accepted by the BMC", rt)}
		}
		got, dark, err := s.verify(ctx, n, lease, task, rt, target)
		if err != nil {
			return s.stopped(ctx, n, err, rt, sent)
		}
		if got == target {
			reason := fmt.Sprintf("%s confirmed by the BMC", target)
			if restarts(rt) {
				if dark {
					reason += ", after the node was seen going through Off"
				} else {
					reason += "; its Off phase was too short to be seen between power reads"
				}
			}
			if attempt > 1 {
				reason += fmt.Sprintf(" after %d attempts", attempt)
			}
			if interrupted {
				reason = "interrupted by a gateway restart; " + reason + " after recovery"
			}
			return result{state: "Completed", status: "OK", observed: got, reason: reason}
		}
		lastErr = fmt.Errorf("the node did not reach %s (last seen %s)", target, orUnknown(got))
		log.Warn("target not reached", "attempt", attempt, "power", got)
	}
	observed, _ := s.readPower(ctx, n)
	return result{state: "Exception", status: "Critical", observed: observed,
		reason: fmt.Sprintf("%s failed after %d attempts: %v", rt, attempts, lastErr)}
}

func orUnknown(p schemas.PowerState) string {
	if p == "" {
		return "unknown"
	}
	return string(p)
}

// stopped turns a step error into a result: cancellation ends the task
// Cancelled; anything else (lease lost, Redis failing) abandons the action
// without writing: no BMC command is sent until a lease is held again.
func (s *Service) stopped(ctx context.Context, n *node, err error, rt schemas.ResetType, sent time.Time) result {
	if errors.Is(err, errCancelled) {
		return s.cancelled(ctx, n, "", rt, sent)
	}
	return result{abandon: err}
}

// cancelled ends a task that was aborted or superseded: the node's power
// is re-read and becomes its desired state (DESIGN.md §5).
//
// A command already sent cannot be unsent: before the task ends (and the
// next action may start) the node is left to settle in On or Off, so that no
// new command reaches a BMC that is still carrying out the previous one. A
// restart (rt) that was sent passes through Off on its way to On: there it
// settles only in On (or when its verification time is up). A forced On or
// Off that was sent settles only in its target: BMCs without transitional
// states (IPMI, AMT) go on showing the state they are leaving until the
// change is done. A graceful action is an ACPI request to the OS, which may
// never act on it: a sent GracefulShutdown gets a short grace to reach Off
// (SoftCancelGrace), then settles in whatever steady state it shows.
func (s *Service) cancelled(ctx context.Context, n *node, why string, rt schemas.ResetType, sent time.Time) result {
	var want schemas.PowerState
	limit := s.opts.VerifyTimeout
	if !sent.IsZero() {
		switch {
		case restarts(rt):
			want = schemas.PowerOn
		case rt == schemas.ResetOn || rt == schemas.ResetForceOn || rt == schemas.ResetForceOff:
			want, _ = rt.Target()
		}
		if want != schemas.PowerUnknown {
			// No longer than the command may still be running: a cancelled
			// restart waits only for its power-on phase (seen Off), which the
			// hardware bounds, not the OS's handling of an ACPI request.
			limit = max(s.opts.VerifyTimeout-time.Since(sent), s.opts.VerifyInterval)
		}
		if rt == schemas.ResetGracefulShutdown {
			// A soft off under way reads On on BMCs without transitional
			// states (IPMI, AMT): give the OS a short grace to finish before
			// the next command (a ForceOff that outranked it) is sent.
			want, limit = schemas.PowerOff, s.softGrace(sent)
		}
	}
	observed := s.settle(ctx, n, want, limit)
	reason := "cancelled"
	if why != "" {
		reason += ": " + why
	}
	if observed != "" {
		reason += "; the node is " + string(observed)
	}
	return result{state: "Cancelled", status: "OK", reason: reason, observed: observed, desiredIsObserved: true}
}

// pause waits d, watching for cancellation.
func (s *Service) pause(ctx context.Context, n *node, lease, task string, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
	}
	res, err := s.store.workerOp(ctx, n.ID, lease, task, s.opts.Clock(), "progress", 10, "retrying")
	if err != nil {
		return err
	}
	if res[1] == "1" {
		return errCancelled
	}
	return nil
}

func backoff(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < 30*time.Second; i++ {
		d *= 2
	}
	return d
}

// verify polls the power state until target, the per-type timeout, or a
// cancellation (checked at every poll: a step boundary).
//
// dark reports whether a restart was seen outside On (going through Off):
// where the BMC can tell, a restart is "went off (or reset) and came back".
func (s *Service) verify(ctx context.Context, n *node, lease, task string, rt schemas.ResetType, target schemas.PowerState) (last schemas.PowerState, dark bool, err error) {
	limit := s.verifyLimit(rt)
	deadline := time.Now().Add(limit)
	pause := s.opts.VerifyInterval
	sawOff := false
	for {
		select {
		case <-ctx.Done():
			return last, dark, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(pause*2, 2*time.Second)
		p, err := s.readPower(ctx, n)
		if err == nil {
			last = p
			dark = dark || p != schemas.PowerOn
			if restarts(rt) && p == schemas.PowerOff && !sawOff {
				// A restart seen going through Off: tell waiters (Off, then On).
				sawOff = true
				s.emitPower(ctx, n.ID, "ResourcePoweredOff")
				s.emitPower(ctx, n.ID, "ResourcePoweringOn")
			}
			if p == target {
				return p, dark, nil
			}
		}
		pct := min(90, 10+int(80*time.Since(deadline.Add(-limit))/limit))
		res, err := s.store.workerOp(ctx, n.ID, lease, task, s.opts.Clock(), "progress", pct, "waiting for "+string(target))
		if err != nil {
			return last, dark, err
		}
		if res[1] == "1" {
			return last, dark, errCancelled
		}
		if time.Now().After(deadline) {
			return last, dark, nil
		}
	}
}

// verifyLimit is how long an action of type rt may take to reach its target.
func (s *Service) verifyLimit(rt schemas.ResetType) time.Duration {
	if rt == schemas.ResetGracefulShutdown || rt == schemas.ResetGracefulRestart {
		return 10 * s.opts.VerifyTimeout
	}
	return s.opts.VerifyTimeout
}

// readPower reads the BMC's power state (one call at a time per node) and
// records it in the view.
func (s *Service) readPower(ctx context.Context, n *node) (schemas.PowerState, error) {
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	n.call.Lock()
	p, err := n.Backend.PowerState(cctx)
	n.call.Unlock()
	cancel()
	if err == nil {
		s.setPower(n, p)
	}
	return p, err
}

// settle reads the power state until it is want (or, when want is
// PowerUnknown, any steady state: On or Off), for at most limit, and
// returns the last state seen.
func (s *Service) settle(ctx context.Context, n *node, want schemas.PowerState, limit time.Duration) schemas.PowerState {
	deadline := time.Now().Add(limit)
	pause := s.opts.VerifyInterval
	for {
		p, err := s.readPower(ctx, n)
		steady := p == schemas.PowerOn || p == schemas.PowerOff
		if (err == nil && ((want == schemas.PowerUnknown && steady) || (want != schemas.PowerUnknown && p == want))) || time.Now().After(deadline) {
			return p
		}
		select {
		case <-ctx.Done():
			return p
		case <-time.After(pause):
		}
		pause = min(pause*2, time.Second)
	}
}

// restarts reports whether rt takes the node through Off and back On.
func restarts(rt schemas.ResetType) bool {
	return rt == schemas.ResetForceRestart || rt == schemas.ResetGracefulRestart || rt == schemas.ResetPowerCycle
}

// softGrace is how much longer a soft off sent at sent may still be waited
// for when it is cancelled or taken over (Options.SoftCancelGrace).
func (s *Service) softGrace(sent time.Time) time.Duration {
	return max(min(s.opts.SoftCancelGrace, s.verifyLimit(schemas.ResetGracefulShutdown))-time.Since(sent), s.opts.VerifyInterval)
}
