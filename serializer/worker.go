package serializer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/internal/requestid"
	"github.com/fishgate/fishgate/internal/retry"
	"github.com/fishgate/fishgate/schemas"
)

// The worker is the lease holder of one node: the only writer for it
// (docs/architecture.md#leases-and-fencing). It runs now, then promotes next,
// until the node is idle, checking its fencing token in Redis before every
// BMC command and before writing any result.

// kick asks for node id's work to be run by this replica. Only one worker
// goroutine per node runs in a replica; a kick while it runs makes it look
// again before it stops.
func (s *Service) kick(n *node) {
	n.wmu.Lock()
	if n.gone.Load() || s.draining.Load() {
		n.wmu.Unlock()
		return
	}
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
	if err != nil || (st.Slots.Now.Task == "" && !st.BootPending) || s.draining.Load() {
		return
	}
	l, err := s.store.acquire(ctx, n.ID, s.opts.ReplicaID, s.opts.LeaseTTL)
	if err != nil {
		return // someone else holds it (or Redis is away: the sweep retries)
	}
	log := s.opts.Logger.With("node", n.ID, "replica", s.opts.ReplicaID, "lease", l.Value())
	// A holder that cannot renew stops its action (lease.Run).
	l.Run(ctx, func(wctx context.Context) { s.runActions(wctx, n, l.Value(), log) },
		func(err error) { log.Warn("lease renewal failed; cancelling the action", "err", err) })
	if s.draining.Load() {
		s.handOver(n.ID) // the lease is released: another replica takes over at once
	}
}

// runActions runs the node's actions under lease until the node is idle, ctx
// ends or the lease is lost.
func (s *Service) runActions(wctx context.Context, n *node, lease string, log *slog.Logger) {
	// A draining replica ends the action it runs and starts no other.
	for first := true; wctx.Err() == nil && !n.gone.Load() && (first || !s.draining.Load()); first = false {
		st, err := s.store.State(wctx, n.ID)
		if err != nil {
			log.Warn("read state", "err", err)
			return
		}
		if st.BootPending {
			// A boot override accepted before the next action begins is
			// applied first (boot.lua).
			if err := s.applyBoot(wctx, n, lease, log); err != nil {
				log.Warn("boot override not applied", "err", err)
				return
			}
		}
		if st.Slots.Now.Task == "" || n.gone.Load() {
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

// wasBegun reports whether the state a task had before worker.lua's begin
// (its reply's third field) says a previous holder had begun it: the
// worker resumes it (recovery) instead of reporting TaskStarted.
func wasBegun(before string) bool {
	s := schemas.TaskState(before)
	return s == schemas.TaskStateRunning || s == schemas.TaskStateCancelling
}

// result is how a task ends.
type result struct {
	Final
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
	wasRunning := wasBegun(res[2])
	if wasRunning {
		s.opts.Metrics.LeaseTakeover()
	}
	var created time.Time // when the task was admitted (worker.lua begin)
	if len(res) > 7 {
		if ms, err := strconv.ParseFloat(res[7], 64); err == nil {
			created = time.UnixMilli(int64(ms))
		}
	}
	if len(res) > 6 {
		// The request that created the task names the action's BMC calls
		// and log records, on whichever replica runs it.
		ctx = requestid.With(ctx, res[6])
	}
	log := s.opts.Logger.With("node", n.ID, "task", task, "reset", rt, "replica", s.opts.ReplicaID)
	if !wasRunning {
		s.emitTask(ctx, n.ID, task, schemas.TaskEvent(schemas.MsgTaskStarted, task))
	}
	begin := Observation{Kind: ObsBegin, Now: now(), Interrupted: wasRunning && st.Issued == task,
		IssuedCmd: st.IssuedCmd, IssuedAt: st.IssuedAt, Cancelling: res[3] == "1", Next: nextTarget(res, 4)}
	r := s.drive(ctx, n, lease, task, NewAction(s.actionConfig(n), rt, s.native(n)), begin, log)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if r.abandon != nil {
		// Redis failed mid-action: write nothing; the task stays Running and
		// is resumed (recovery path) once a lease can be taken again.
		return r.abandon
	}
	fin, err := s.store.workerOp(ctx, n.ID, lease, task, now(), "finish",
		string(r.State), r.Status, r.Reason, string(r.Observed), boolArg(r.DesiredIsObserved))
	if err == nil {
		if len(fin) >= 6 { // the script's word on how it ended (a late cancellation wins)
			r.State, r.Status, r.Reason = schemas.TaskState(fin[3]), fin[4], fin[5]
		}
		log.InfoContext(ctx, "task finished", "state", r.State, "reason", r.Reason, "power", r.Observed)
		took := time.Duration(-1)
		if !created.IsZero() {
			took = now().Sub(created)
		}
		s.opts.Metrics.TaskFinished(string(rt), n.Kind, string(r.State), took)
		s.setPower(n, r.Observed)
		s.emitFinish(ctx, n.ID, task, r)
	}
	return err
}

// actionConfig is the execution rules of node n.
func (s *Service) actionConfig(n *node) ActionConfig {
	fallback := s.softOffFallback(n)
	return ActionConfig{
		Retries: s.opts.Retries, RetryBackoff: s.opts.RetryBackoff,
		VerifyTimeout: s.opts.VerifyTimeout, VerifyInterval: s.opts.VerifyInterval,
		SoftOffTimeout: s.opts.SoftOffTimeout, SoftCancelGrace: s.opts.SoftCancelGrace,
		SoftOffFallback: fallback, RestartEvidence: s.opts.RestartEvidence,
	}
}

// native is what the node's BMC offers itself, as last read (nil: not
// read yet).
func (s *Service) native(n *node) []schemas.ResetType {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if !n.view.CapsKnown {
		return nil
	}
	return n.view.Native
}

// nextTarget reads the type of the action waiting next from a worker.lua
// reply (at index i) as the power state it wants.
func nextTarget(res []string, i int) schemas.PowerState {
	if len(res) <= i {
		return schemas.PowerUnknown
	}
	t, _ := schemas.ResetType(res[i]).Target()
	return t
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// drive performs the effects of the action's state machine (action.go)
// until it finishes: the only place where an action meets Redis, the BMC
// and the clock.
func (s *Service) drive(ctx context.Context, n *node, lease, task string, a *Action, obs Observation, log *slog.Logger) result {
	retried := a.retried
	for {
		effs := a.Step(obs)
		s.opts.Metrics.BMCRetries(n.Kind, a.retried-retried) // a re-send the machine decided
		retried = a.retried
		var next *Observation
		for _, e := range effs {
			switch e.Kind {
			case EffEmit:
				s.emitPower(ctx, n.ID, e.Event)
			case EffFinish:
				return result{Final: e.Final}
			case EffRead:
				p, err := s.readPower(ctx, n)
				o := Observation{Kind: ObsPower, Power: p}
				if err != nil {
					o.Power, o.Err = schemas.PowerUnknown, err.Error()
				}
				next = &o
			case EffIssue, EffUnissue, EffCheck:
				var res []string
				var err error
				switch e.Kind {
				case EffIssue:
					if err := s.awaitInrush(ctx, n, e.Cmd, e.Force); err != nil {
						return result{abandon: err}
					}
					res, err = s.store.workerOp(ctx, n.ID, lease, task, s.opts.Clock(), "step", e.Note, string(e.Cmd), boolArg(e.Force))
				case EffUnissue:
					res, err = s.store.workerOp(ctx, n.ID, lease, task, s.opts.Clock(), "unissue")
				default:
					res, err = s.store.workerOp(ctx, n.ID, lease, task, s.opts.Clock(), "progress", e.Pct, e.Note, boolArg(e.Phase))
				}
				if err != nil {
					return result{abandon: err}
				}
				if len(res) > 3 && res[3] == "1" {
					// A boot override waits: a step boundary, no command
					// in flight: apply it now, in order (boot.lua).
					if err := s.applyBoot(ctx, n, lease, log); err != nil {
						return result{abandon: err}
					}
				}
				next = &Observation{Kind: ObsChecked, Cancelling: res[1] == "1", Next: nextTarget(res, 2)}
			case EffSend:
				next = s.send(ctx, n, e.Cmd, log)
			case EffSleep:
				// A retry's backoff comes as a range: the jitter is drawn
				// here, so the machine stays pure.
				d := e.Sleep
				if e.SleepMin > 0 {
					d = retry.Draw(e.SleepMin, e.Sleep, nil)
				}
				_ = retry.Sleep(ctx, d)
				next = &Observation{Kind: ObsWoke}
			}
		}
		if ctx.Err() != nil {
			return result{abandon: ctx.Err()}
		}
		if next == nil {
			return result{abandon: fmt.Errorf("node %s: action state machine stopped without finishing", n.ID)}
		}
		next.Now = s.opts.Clock()
		obs = *next
	}
}

// send sends one command to the BMC and classifies its answer. The action
// owns the retries of its commands: the backend gets a budget of one
// attempt (internal/retry), so it does not re-send the command itself.
func (s *Service) send(ctx context.Context, n *node, cmd schemas.ResetType, log *slog.Logger) *Observation {
	cctx, cancel := context.WithTimeout(retry.WithBudget(ctx, 1), s.opts.CallTimeout)
	n.call.Lock()
	var (
		confirmed bool
		err       error
	)
	if c, ok := n.Backend.(backends.Confirmer); ok {
		confirmed, err = c.ResetConfirmed(cctx, cmd)
	} else {
		err = n.Backend.Reset(cctx, cmd)
	}
	n.call.Unlock()
	cancel()
	switch {
	case err == nil:
		return &Observation{Kind: ObsSent, Sent: SendAccepted, Confirmed: confirmed}
	case errors.Is(err, backends.ErrNoAnswer):
		// The backends wrap ErrNoAnswer whenever the command may have
		// reached the BMC; anything else (a deadline included) means it
		// surely was not carried out.
		log.WarnContext(ctx, "BMC did not answer the command in time; settling it by reading the power state", "command", cmd, "err", err)
		return &Observation{Kind: ObsSent, Sent: SendNoAnswer, Err: err.Error()}
	}
	log.WarnContext(ctx, "BMC command failed", "command", cmd, "err", err)
	return &Observation{Kind: ObsSent, Sent: SendRefused, Err: err.Error()}
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
