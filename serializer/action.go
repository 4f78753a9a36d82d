package serializer

import (
	"fmt"
	"strings"
	"time"

	"github.com/fishgate/fishgate/internal/retry"
	"github.com/fishgate/fishgate/schemas"
)

// This file is the execution of one power action as a pure state machine, in
// the style of etcd-io/raft's Step
// (docs/decisions/0002-pure-state-machines.md): Step takes what was observed
// (a BMC answer, a power reading, a timer, the node's slots) and returns the
// effects the driver must perform (send a command, read the power state,
// sleep, record progress, emit an event, finish the task). No I/O, no clock:
// time comes with each observation. worker.go performs the effects;
// testdata/action holds transcripts of it.
//
// The rules it encodes (docs/architecture.md#actions, README "Power actions"):
//   - A phase's command is sent once per attempt. A command refused by the
//     BMC is retried after a backoff with jitter. Retries is the action's
//     budget of re-sends, shared by its phases: an action sends at most
//     one command per phase plus Retries, in all. It is the only layer
//     that re-sends a power command (the driver grants the backend one
//     attempt per Send; see internal/retry). A command whose answer
//     did not come may have been carried out: it is settled by reading the
//     BMC, never re-sent blindly; only when the reads show the target was
//     not reached is it sent again.
//   - A phase is done when the BMC shows its target. A restart needs
//     evidence that it happened (the node seen outside On, or the BMC's own
//     task confirming it); without evidence it ends Completed with Warning.
//   - A soft off is bounded by SoftOffTimeout and never re-sent; then it
//     fails or is forced off (SoftOffFallback).
//   - Cancellation is looked at between every two reads and every two
//     phases. A command already sent is left to settle first. A composite
//     restart whose off phase took the node Off still powers it back On
//     unless the action waiting next wants it Off.
//   - A holder that takes over an action whose command was sent reads the
//     BMC before anything else and continues from that phase.

// ActionConfig is the timing and retry rules of execution.
type ActionConfig struct {
	Retries         int           // re-sends of a command, in all, per action
	RetryBackoff    time.Duration // ceiling of the first retry's pause (internal/retry)
	VerifyTimeout   time.Duration // forced actions: time to reach the target per attempt
	VerifyInterval  time.Duration // first pause between reads, doubling up to 2 s
	SoftOffTimeout  time.Duration // a soft off's time to reach Off
	SoftCancelGrace time.Duration // a cancelled soft off's time to reach Off
	SoftOffFallback string        // "fail" (default) or "force"
	// RestartEvidence is how long after a forced restart was sent the node
	// is watched for its Off phase once it reads On.
	RestartEvidence time.Duration
}

// ObservationKind says what an Observation reports.
type ObservationKind int

const (
	ObsBegin   ObservationKind = iota // the action starts (or is taken over)
	ObsPower                          // a power reading (Effect Read)
	ObsSent                           // the BMC's answer to a command (Effect Send)
	ObsChecked                        // the node's slots, after Issue, Unissue or Check
	ObsWoke                           // a Sleep ended
)

// SendResult is the BMC's answer to a command.
type SendResult int

const (
	SendAccepted SendResult = iota // the BMC took the command
	SendRefused                    // the BMC refused it: nothing is under way
	SendNoAnswer                   // no answer in time: it may have been carried out
)

// Observation is what the driver saw.
type Observation struct {
	Kind ObservationKind
	Now  time.Time
	// ObsBegin: a previous holder sent IssuedCmd at IssuedAt without
	// confirming it (Interrupted).
	Interrupted bool
	IssuedCmd   schemas.ResetType
	IssuedAt    time.Time
	// ObsBegin, ObsChecked: the action is being cancelled (DELETE, or
	// superseded), and what the action waiting next wants (PowerUnknown:
	// nothing waits, or it has no steady target).
	Cancelling bool
	Next       schemas.PowerState
	// ObsPower: the reading, or Err.
	Power schemas.PowerState
	// ObsSent: the answer; Confirmed when the BMC itself reported the
	// command carried out to its end (a Redfish BMC's task).
	Sent      SendResult
	Confirmed bool
	Err       string
}

// EffectKind names what the driver must do.
type EffectKind int

const (
	EffRead    EffectKind = iota // read the power state: ObsPower
	EffIssue                     // record that Cmd is about to be sent: ObsChecked
	EffSend                      // send Cmd to the BMC: ObsSent
	EffUnissue                   // record that nothing is under way: ObsChecked
	EffCheck                     // record progress, read the slots: ObsChecked
	EffSleep                     // wait: ObsWoke
	EffEmit                      // emit a ResourceEvent (no observation)
	EffFinish                    // end the task (no observation)
)

// Effect is one thing the driver does. Each Step returns at most one
// effect that yields an observation, and it is the last one.
type Effect struct {
	Kind  EffectKind
	Cmd   schemas.ResetType // Issue, Send
	Note  string            // Issue, Check: the task's progress note
	Phase bool              // Check: Note is a phase message the task keeps
	Force bool              // Issue: record it although the action is being cancelled (powering back On)
	Pct   int               // Check
	Sleep time.Duration     // Sleep: the pause, or the ceiling of a jittered one
	// SleepMin, when not zero, makes a Sleep jittered: the driver draws the
	// pause from [SleepMin, Sleep] (a retry's backoff, retry.Draw). The
	// machine stays pure; the randomness is the driver's.
	SleepMin time.Duration
	Event    schemas.ResourceEventMessage // Emit: the ResourceEvent message
	Final    Final                        // Finish
}

// Final is how a task ends.
type Final struct {
	State          schemas.TaskState
	Status, Reason string
	Observed       schemas.PowerState
	// DesiredIsObserved: the node's desired state becomes what was observed
	// (a cancelled action).
	DesiredIsObserved bool
}

type actionMode int

const (
	modeBefore actionMode = iota
	modeIssue
	modeSend
	modeUnissue
	modeBackoff
	modeBackoffCheck
	modeVerifySleep
	modeVerifyRead
	modeVerifyCheck
	modePhaseCheck
	modeSettleRead
	modeSettleSleep
	modeFinalRead
	modeDone
)

// settleThen is what follows a settle.
type settleThen int

const (
	thenCancel settleThen = iota // end Cancelled (or restore power first)
	thenResume                   // a taken-over action: decide from the reading
)

// Action is the state of one running action.
type Action struct {
	cfg    ActionConfig
	typ    schemas.ResetType
	native []schemas.ResetType

	mode    actionMode
	now     time.Time
	phases  []Phase
	idx     int
	attempt int // sends of the current phase's command
	retried int // re-sends by the action, all phases (budget: cfg.Retries)
	// sentAt: the current phase's command may be under way since then
	// (zero: nothing unsettled).
	sentAt     time.Time
	deadline   time.Time // the current wait ends
	evidenceBy time.Time // a restart that reads On without Off seen is accepted then
	pause      time.Duration
	last       schemas.PowerState
	sawOff     bool
	fromOff    bool // a restart phase that began with the node Off
	confirmed  bool // the BMC confirmed the command itself
	noAnswer   bool
	sentAny    bool
	tookOff    bool // a phase of this action took the node Off
	lastErr    string
	done       []string // messages of finished phases
	warnings   []string
	recovered  bool
	cancelled  bool // cancellation seen
	next       schemas.PowerState
	restoring  bool
	settleWant schemas.PowerState
	then       settleThen
}

// NewAction starts the state machine of an action of type typ on a node
// whose BMC offers native (empty: not known, the type is sent as is).
func NewAction(cfg ActionConfig, typ schemas.ResetType, native []schemas.ResetType) *Action {
	if cfg.SoftOffFallback == "" {
		cfg.SoftOffFallback = "fail"
	}
	return &Action{cfg: cfg, typ: typ, native: native}
}

// Step advances the machine by one observation.
func (a *Action) Step(o Observation) []Effect {
	if !o.Now.IsZero() {
		a.now = o.Now
	}
	if o.Kind == ObsChecked || o.Kind == ObsBegin {
		if o.Cancelling {
			a.next = o.Next
		}
	}
	if o.Kind == ObsChecked && o.Cancelling && !a.restoring && a.mode != modeDone {
		// Every ObsChecked is a step boundary: cancellation is looked at
		// there (a cancelled restart powering the node back On goes on).
		return a.cancel()
	}
	switch {
	case o.Kind == ObsBegin:
		return a.begin(o)
	case a.mode == modeBefore && o.Kind == ObsPower:
		var before schemas.PowerState
		if o.Err == "" {
			before = o.Power
			a.last = o.Power
		}
		ph, err := Plan(a.typ, a.native, before, a.cfg.SoftOffFallback == "force")
		if err != nil {
			return a.finish(schemas.TaskStateException, "Critical", err.Error(), a.last, false)
		}
		if a.typ == schemas.ResetPushPowerButton && before == schemas.PowerUnknown && !nativeHas(a.native, a.typ) {
			return a.finish(schemas.TaskStateException, "Critical", "PushPowerButton: the power state could not be read ("+o.Err+"); an emulated button press needs it", a.last, false)
		}
		a.phases = ph
		return a.startPhase(0)
	case a.mode == modeIssue && o.Kind == ObsChecked:
		a.mode = modeSend
		return []Effect{{Kind: EffSend, Cmd: a.phase().Cmd}}
	case a.mode == modeSend && o.Kind == ObsSent:
		return a.sent(o)
	case a.mode == modeUnissue && o.Kind == ObsChecked:
		return a.retry()
	case a.mode == modeBackoff && o.Kind == ObsWoke:
		a.mode = modeBackoffCheck
		return []Effect{{Kind: EffCheck, Pct: a.pct(0), Note: "retrying " + a.phase().String()}}
	case a.mode == modeBackoffCheck && o.Kind == ObsChecked:
		return a.issue()
	case a.mode == modeVerifySleep && o.Kind == ObsWoke:
		a.mode = modeVerifyRead
		return []Effect{{Kind: EffRead}}
	case a.mode == modeVerifyRead && o.Kind == ObsPower:
		return a.verifyRead(o)
	case a.mode == modeVerifyCheck && o.Kind == ObsChecked:
		return a.verifyWait()
	case a.mode == modePhaseCheck && o.Kind == ObsChecked:
		return a.startPhase(a.idx + 1)
	case a.mode == modeSettleRead && o.Kind == ObsPower:
		return a.settleRead(o)
	case a.mode == modeSettleSleep && o.Kind == ObsWoke:
		a.mode = modeSettleRead
		return []Effect{{Kind: EffRead}}
	case a.mode == modeFinalRead && o.Kind == ObsPower:
		if o.Err == "" {
			a.last = o.Power
		}
		return a.finish(schemas.TaskStateException, "Critical", a.lastErr, a.last, false)
	}
	// An observation the machine did not ask for: a driver bug. End the
	// task rather than guess.
	return a.finish(schemas.TaskStateException, "Critical", fmt.Sprintf("internal error: unexpected observation %d in mode %d", o.Kind, a.mode), a.last, false)
}

func nativeHas(native []schemas.ResetType, r schemas.ResetType) bool {
	for _, x := range native {
		if x == r {
			return true
		}
	}
	return false
}

func (a *Action) phase() Phase { return a.phases[a.idx] }

func (a *Action) begin(o Observation) []Effect {
	if !o.Interrupted {
		if o.Cancelling {
			a.cancelled = true
			a.settle(schemas.PowerUnknown, a.cfg.VerifyTimeout, thenCancel)
			a.lastErr = "cancelled before it started"
			return []Effect{{Kind: EffRead}}
		}
		a.mode = modeBefore
		return []Effect{{Kind: EffRead}}
	}
	// A previous holder sent a command and could not confirm it: find its
	// phase, let it settle, and decide from what the BMC shows.
	a.recovered = true
	a.phases, _ = Plan(a.typ, a.native, schemas.PowerUnknown, a.cfg.SoftOffFallback == "force")
	a.idx = -1
	for i, p := range a.phases {
		if p.Cmd == o.IssuedCmd || (o.IssuedCmd == "" && i == 0) {
			a.idx = i
			break
		}
	}
	if a.idx < 0 {
		a.phases, a.idx = []Phase{phaseOf(o.IssuedCmd)}, 0
	}
	a.sentAt = o.IssuedAt
	if a.sentAt.IsZero() {
		a.sentAt = a.now
	}
	a.sentAny = true
	a.attempt = 1
	if a.phase().Want == schemas.PowerOff && !a.phase().Restart {
		a.tookOff = true
	}
	if o.Cancelling {
		return a.cancel()
	}
	want, limit := a.inFlight()
	a.settle(want, limit, thenResume)
	return []Effect{{Kind: EffRead}}
}

// inFlight is what the current phase's sent command is waited for before
// anything else is sent, and for how much longer.
func (a *Action) inFlight() (schemas.PowerState, time.Duration) {
	p := a.phase()
	since := a.now.Sub(a.sentAt)
	switch {
	case p.Soft && !p.Restart:
		// A soft off reads On on BMCs without transitional states: a
		// short grace to finish before anything else is sent.
		return schemas.PowerOff, max(min(a.cfg.SoftCancelGrace, a.cfg.SoftOffTimeout)-since, a.cfg.VerifyInterval)
	case p.Restart && p.Soft:
		return schemas.PowerOn, max(a.cfg.SoftCancelGrace-since, a.cfg.VerifyInterval)
	case p.Want != schemas.PowerUnknown:
		return p.Want, max(a.cfg.VerifyTimeout-since, a.cfg.VerifyInterval)
	}
	return schemas.PowerUnknown, a.cfg.VerifyInterval
}

func (a *Action) settle(want schemas.PowerState, limit time.Duration, then settleThen) {
	a.settleWant, a.then = want, then
	a.deadline = a.now.Add(limit)
	a.pause = a.cfg.VerifyInterval
	a.mode = modeSettleRead
}

func (a *Action) settleRead(o Observation) []Effect {
	if o.Err == "" {
		a.last = o.Power
	}
	steady := a.last == schemas.PowerOn || a.last == schemas.PowerOff
	reached := o.Err == "" && ((a.settleWant == schemas.PowerUnknown && steady) || (a.settleWant != schemas.PowerUnknown && a.last == a.settleWant))
	if !reached && a.now.Before(a.deadline) {
		a.mode = modeSettleSleep
		d := a.pause
		a.pause = min(a.pause*2, time.Second)
		return []Effect{{Kind: EffSleep, Sleep: d}}
	}
	if a.then == thenResume {
		return a.resume(o.Err)
	}
	return a.cancelled2()
}

// resume decides what a taken-over action does once its command settled.
func (a *Action) resume(readErr string) []Effect {
	p := a.phase()
	switch {
	case readErr != "" && a.last == schemas.PowerUnknown:
		a.lastErr = "interrupted by a gateway restart; the power state could not be read: " + readErr
		return a.retry()
	case p.Restart && a.last == schemas.PowerOn:
		return a.finish(schemas.TaskStateCompleted, "Warning", "interrupted by a gateway restart after "+string(p.Cmd)+" was sent; the node is On, not restarted again", a.last, false)
	case p.Want == schemas.PowerUnknown:
		return a.finish(schemas.TaskStateCompleted, "Warning", "interrupted by a gateway restart after "+string(p.Cmd)+" was sent; not re-sent (it may have been carried out)", a.last, false)
	case a.last == p.Want:
		a.sentAt = time.Time{}
		a.done = append(a.done, fmt.Sprintf("%s: %s confirmed after recovery", p.Cmd, p.Want))
		return a.phaseDone(fmt.Sprintf("interrupted by a gateway restart; confirmed %s after recovery", p.Want))
	}
	a.sentAt = time.Time{}
	a.lastErr = fmt.Sprintf("interrupted by a gateway restart; the node did not reach %s (last seen %s)", p.Want, orUnknown(a.last))
	return a.retry()
}

// startPhase begins phase i (or finishes after the last).
func (a *Action) startPhase(i int) []Effect {
	if i >= len(a.phases) {
		return a.success()
	}
	a.idx, a.attempt = i, 0
	a.sawOff, a.confirmed, a.noAnswer = false, false, false
	p := a.phase()
	// A restart of a node that is Off powers it on: reaching On is the
	// evidence.
	a.fromOff = p.Restart && a.last == schemas.PowerOff
	a.sawOff = a.fromOff
	if !p.Restart && p.Want != schemas.PowerUnknown && a.last == p.Want {
		a.done = append(a.done, fmt.Sprintf("already %s", p.Want))
		if i+1 >= len(a.phases) {
			return a.success()
		}
		return a.startPhase(i + 1)
	}
	var effs []Effect
	switch {
	case a.fromOff:
		effs = append(effs, Effect{Kind: EffEmit, Event: schemas.MsgResourcePoweringOn})
	case p.Restart || p.Want == schemas.PowerOff:
		effs = append(effs, Effect{Kind: EffEmit, Event: schemas.MsgResourcePoweringOff})
	case p.Want == schemas.PowerOn:
		effs = append(effs, Effect{Kind: EffEmit, Event: schemas.MsgResourcePoweringOn})
	}
	return append(effs, a.issue()...)
}

func (a *Action) issue() []Effect {
	a.attempt++
	a.mode = modeIssue
	note := fmt.Sprintf("%s attempt %d", a.typ, a.attempt)
	if len(a.phases) > 1 || a.phase().Cmd != a.typ {
		note = fmt.Sprintf("%s phase %d/%d: %s attempt %d", a.typ, a.idx+1, len(a.phases), a.phase(), a.attempt)
	}
	if a.restoring {
		note = "cancelled after its off phase: powering back On: " + string(a.phase().Cmd)
	}
	return []Effect{{Kind: EffIssue, Cmd: a.phase().Cmd, Note: note, Force: a.restoring}}
}

func (a *Action) sent(o Observation) []Effect {
	p := a.phase()
	switch o.Sent {
	case SendRefused:
		a.lastErr = o.Err
		if !a.sentAt.IsZero() {
			// An earlier command of this phase may still be under way:
			// the issued mark stays; retry decides.
			return a.retry()
		}
		a.mode = modeUnissue
		return []Effect{{Kind: EffUnissue}}
	case SendNoAnswer:
		a.noAnswer = true
		a.lastErr = o.Err
	}
	a.sentAt, a.sentAny = a.now, true
	a.confirmed = o.Confirmed
	if p.Want == schemas.PowerOff && !p.Restart {
		a.tookOff = true
	}
	if p.Want == schemas.PowerUnknown {
		// Nothing to verify (Nmi, a button press from an unknown state).
		a.sentAt = time.Time{}
		if a.noAnswer {
			return a.finish(schemas.TaskStateCompleted, "Warning", fmt.Sprintf("%s sent; the BMC did not answer in time, so it may or may not have been carried out; not re-sent (%s)", p.Cmd, o.Err), a.last, false)
		}
		a.done = append(a.done, string(p.Cmd)+" accepted by the BMC")
		return a.phaseDone("")
	}
	limit := a.verifyLimit(p)
	a.deadline = a.now.Add(limit)
	window := a.cfg.RestartEvidence
	if p.Soft {
		window = a.cfg.SoftOffTimeout
	}
	a.evidenceBy = a.now.Add(window)
	a.pause = a.cfg.VerifyInterval
	return a.verifyWait()
}

// verifyLimit is how long phase p may take to reach its target.
func (a *Action) verifyLimit(p Phase) time.Duration {
	switch {
	case p.Restart && p.Soft:
		return a.cfg.SoftOffTimeout + a.cfg.VerifyTimeout
	case p.Restart:
		return a.cfg.RestartEvidence + a.cfg.VerifyTimeout
	case p.Soft:
		return a.cfg.SoftOffTimeout
	}
	return a.cfg.VerifyTimeout
}

// verifyWait sleeps before the next read, or ends the wait at its deadline.
func (a *Action) verifyWait() []Effect {
	if !a.now.Before(a.deadline) {
		return a.timedOut()
	}
	d := min(a.pause, a.deadline.Sub(a.now))
	if p := a.phase(); p.Restart && a.last == schemas.PowerOn && !a.sawOff && a.evidenceBy.After(a.now) {
		d = min(d, a.evidenceBy.Sub(a.now))
	}
	a.pause = min(a.pause*2, 2*time.Second)
	a.mode = modeVerifySleep
	return []Effect{{Kind: EffSleep, Sleep: d}}
}

func (a *Action) verifyRead(o Observation) []Effect {
	p := a.phase()
	var effs []Effect
	if o.Err == "" {
		a.last = o.Power
		if p.Restart && o.Power == schemas.PowerOff && !a.sawOff {
			// A restart seen going through Off: tell waiters (Off, then On).
			effs = append(effs, Effect{Kind: EffEmit, Event: schemas.MsgResourcePoweredOff}, Effect{Kind: EffEmit, Event: schemas.MsgResourcePoweringOn})
		}
		if p.Restart && o.Power != schemas.PowerOn {
			a.sawOff = true
		}
		if o.Power == p.Want {
			if !p.Restart || a.sawOff || a.confirmed {
				a.sentAt = time.Time{}
				return append(effs, a.confirm()...)
			}
			if !a.now.Before(a.evidenceBy) {
				a.sentAt = time.Time{}
				a.warnings = append(a.warnings, fmt.Sprintf("the node was not seen going through Off after %s and the BMC gives no other evidence: it may not have restarted", p.Cmd))
				return append(effs, a.confirm()...)
			}
		}
	}
	a.mode = modeVerifyCheck
	note := "waiting for " + string(p.Want)
	if p.Restart && a.last == schemas.PowerOn && !a.sawOff {
		note = "waiting for evidence of the restart (the node going through Off)"
	}
	return append(effs, Effect{Kind: EffCheck, Pct: a.pct(a.fraction()), Note: note})
}

func (a *Action) fraction() float64 {
	limit := a.verifyLimit(a.phase())
	if limit <= 0 {
		return 1
	}
	start := a.deadline.Add(-limit)
	return min(1, float64(a.now.Sub(start))/float64(limit))
}

// pct is the task's PercentComplete within phase idx at fraction f.
func (a *Action) pct(f float64) int {
	n := max(len(a.phases), 1)
	return min(90, 10+int(80*(float64(a.idx)+f)/float64(n)))
}

// confirm records a phase that reached its target.
func (a *Action) confirm() []Effect {
	p := a.phase()
	msg := fmt.Sprintf("%s confirmed by the BMC", p.Want)
	if p.Restart {
		switch {
		case a.fromOff:
			msg += " (the node was Off: the restart powered it on)"
		case a.sawOff:
			msg += ", after the node was seen going through Off"
		case a.confirmed:
			msg += ", the BMC reported the restart done"
		}
	}
	if a.attempt > 1 {
		msg += fmt.Sprintf(" after %d attempts", a.attempt)
	}
	if a.noAnswer {
		msg += " (the command got no answer in time and was settled by reading the BMC)"
	}
	if len(a.phases) > 1 {
		a.done = append(a.done, fmt.Sprintf("%s: %s", p.Cmd, msg))
	} else {
		a.done = append(a.done, msg)
	}
	if a.restoring {
		return a.finish(schemas.TaskStateCancelled, "OK", "cancelled after its off phase; powered back On (a cancelled restart never leaves the node Off unless the action waiting next wants it Off); the node is On", a.last, true)
	}
	var effs []Effect
	if p.Want == schemas.PowerOff && a.idx+1 < len(a.phases) {
		effs = append(effs, Effect{Kind: EffEmit, Event: schemas.MsgResourcePoweredOff})
	}
	note := ""
	if len(a.phases) > 1 {
		note = fmt.Sprintf("phase %d/%d done: %s", a.idx+1, len(a.phases), msg)
	}
	return append(effs, a.phaseDone(note)...)
}

// phaseDone ends the current phase: a step boundary where cancellation is
// looked at (composites), or success after the last phase.
func (a *Action) phaseDone(note string) []Effect {
	if a.idx+1 >= len(a.phases) {
		if note != "" && a.recovered && len(a.phases) == 1 {
			a.done = []string{note}
		}
		return a.success()
	}
	a.mode = modePhaseCheck
	return []Effect{{Kind: EffCheck, Pct: a.pct(1), Note: note, Phase: note != ""}}
}

// timedOut handles a verification that reached its deadline.
func (a *Action) timedOut() []Effect {
	p := a.phase()
	if p.Soft && !p.Restart {
		if a.cfg.SoftOffFallback == "force" && nativeHas(a.native, schemas.ResetForceOff) {
			a.warnings = append(a.warnings, fmt.Sprintf("the soft off did not finish within %s; forced off (soft_off_fallback: force)", a.cfg.SoftOffTimeout))
			a.sentAt = time.Time{}
			forced := phaseOf(schemas.ResetForceOff)
			a.phases = append(a.phases[:a.idx+1:a.idx+1], append([]Phase{forced}, a.phases[a.idx+1:]...)...)
			return a.startPhase(a.idx + 1)
		}
		a.lastErr = fmt.Sprintf("%s: the node did not reach Off within %s (soft_off_timeout; last seen %s): the OS did not act on the request; not forced (soft_off_fallback: fail)", p.Cmd, a.cfg.SoftOffTimeout, orUnknown(a.last))
		return a.finish(schemas.TaskStateException, "Critical", a.lastErr, a.last, false)
	}
	if p.Restart && p.Soft {
		a.lastErr = fmt.Sprintf("%s: the node did not come back On within %s (last seen %s)", p.Cmd, a.verifyLimit(p), orUnknown(a.last))
		return a.finish(schemas.TaskStateException, "Critical", a.lastErr, a.last, false)
	}
	a.lastErr = fmt.Sprintf("the node did not reach %s (last seen %s)", p.Want, orUnknown(a.last))
	// The reads settled it: the command did not take effect (in time).
	a.sentAt = time.Time{}
	return a.retry()
}

// retry sends the phase's command again after a backoff, or fails when the
// action's retries are used up.
func (a *Action) retry() []Effect {
	if a.retried >= a.cfg.Retries {
		what := string(a.typ)
		if len(a.phases) > 1 {
			what = fmt.Sprintf("%s (phase %d/%d: %s)", a.typ, a.idx+1, len(a.phases), a.phase().Cmd)
		}
		used := ""
		if a.attempt-1 < a.retried {
			used = fmt.Sprintf(" (the action's %d retries are used up)", a.cfg.Retries)
		}
		a.lastErr = fmt.Sprintf("%s failed after %d attempts%s: %s", what, a.attempt, used, a.lastErr)
		if a.restoring {
			a.lastErr = "cancelled after its off phase; powering back On failed: " + a.lastErr
		}
		a.mode = modeFinalRead
		return []Effect{{Kind: EffRead}}
	}
	a.retried++
	a.mode = modeBackoff
	lo, hi := a.retryPolicy().Bounds(a.retried)
	return []Effect{{Kind: EffSleep, Sleep: hi, SleepMin: lo}}
}

// cancel handles a cancellation seen at a step boundary: a command under
// way settles first.
func (a *Action) cancel() []Effect {
	a.cancelled = true
	want, limit := schemas.PowerUnknown, a.cfg.VerifyTimeout
	if !a.sentAt.IsZero() {
		want, limit = a.inFlight()
	}
	a.settle(want, limit, thenCancel)
	return []Effect{{Kind: EffRead}}
}

// cancelled2 ends a cancelled action once the node settled, or first
// powers it back On when its off phase took it Off (the rule above).
func (a *Action) cancelled2() []Effect {
	target, _ := a.typ.Target()
	if a.tookOff && target == schemas.PowerOn && a.last == schemas.PowerOff && a.next != schemas.PowerOff && len(a.phases) > 1 && !a.restoring {
		a.restoring = true
		a.sentAt = time.Time{}
		a.idx, a.attempt = len(a.phases)-1, 0
		a.sawOff, a.confirmed, a.noAnswer = false, false, false
		return append([]Effect{{Kind: EffEmit, Event: schemas.MsgResourcePoweringOn}}, a.issue()...)
	}
	reason := "cancelled"
	if a.lastErr == "cancelled before it started" {
		reason = a.lastErr
	}
	if a.last != schemas.PowerUnknown {
		reason += "; the node is " + string(a.last)
	}
	return a.finish(schemas.TaskStateCancelled, "OK", reason, a.last, true)
}

func (a *Action) success() []Effect {
	status := "OK"
	reason := strings.Join(a.done, "; ")
	if !a.sentAny {
		if t, ok := a.typ.Target(); ok && a.last == t {
			reason = fmt.Sprintf("already %s; no command sent", t)
		}
	} else if len(a.phases) > 1 {
		reason = fmt.Sprintf("%s emulated in %d phases: %s", a.typ, len(a.phases), reason)
	}
	switch {
	case !a.recovered || strings.HasPrefix(reason, "interrupted"):
	case strings.Contains(reason, "after recovery"):
		reason = "interrupted by a gateway restart; " + reason
	default:
		reason = "interrupted by a gateway restart; " + reason + " after recovery"
	}
	if len(a.warnings) > 0 {
		status = "Warning"
		reason += "; warning: " + strings.Join(a.warnings, "; ")
	}
	return a.finish(schemas.TaskStateCompleted, status, reason, a.last, false)
}

func (a *Action) finish(state schemas.TaskState, status, reason string, observed schemas.PowerState, desiredIsObserved bool) []Effect {
	a.mode = modeDone
	return []Effect{{Kind: EffFinish, Final: Final{State: state, Status: status, Reason: reason, Observed: observed, DesiredIsObserved: desiredIsObserved}}}
}

// retryPolicy is the pause rule of the action's retries: from RetryBackoff,
// doubling, at most 30 s, jittered by the driver.
func (a *Action) retryPolicy() retry.Policy {
	return retry.Policy{Base: a.cfg.RetryBackoff, Cap: maxRetryBackoff}
}

// maxRetryBackoff caps the pause between two attempts of an action.
const maxRetryBackoff = 30 * time.Second

func orUnknown(p schemas.PowerState) string {
	if p == "" {
		return "unknown"
	}
	return string(p)
}
