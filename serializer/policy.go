package serializer

import (
	"fmt"
	"time"

	"github.com/fishgate/fishgate/schemas"
)

// This file is the admission policy (docs/architecture.md#admission) as a
// pure function: no I/O, no clock. admit.lua applies the same decisions
// atomically in Redis; the transcripts in testdata/admission run against both
// and must agree.

// Policy names how a node treats a request that arrives while it is busy.
type Policy string

const (
	// PolicyNowNext: one action running ("now") and one waiting ("next");
	// identical requests coalesce, a later one replaces the waiting one, and
	// one that outranks the running action cancels it.
	PolicyNowNext Policy = "now-next"
	// PolicyQueue: a bounded FIFO behind the running action.
	PolicyQueue Policy = "queue"
	// PolicySupersede: every different request cancels the running one.
	PolicySupersede Policy = "supersede"
	// PolicyReject: a busy node refuses different requests (409).
	PolicyReject Policy = "reject"
)

// Policies lists the valid policies.
var Policies = []Policy{PolicyNowNext, PolicyQueue, PolicySupersede, PolicyReject}

// ParsePolicy validates a policy name.
func ParsePolicy(s string) (Policy, error) {
	for _, p := range Policies {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown policy %q (want now-next, queue, supersede or reject)", s)
}

// Precedence ranks ResetTypes: a request outranks the running action when
// its rank is higher. Types not listed rank 0.
type Precedence map[schemas.ResetType]int

// DefaultPrecedence: ForceOff > GracefulShutdown > the rest.
func DefaultPrecedence() Precedence {
	return Precedence{schemas.ResetForceOff: 2, schemas.ResetGracefulShutdown: 1}
}

// Rules are the per-node admission settings.
type Rules struct {
	Policy     Policy
	Precedence Precedence
	// QueueMax bounds the waiting actions of PolicyQueue (default 8).
	QueueMax int
	// FlipLimit conflicting changes (a request that cancels or replaces
	// another) within FlipWindow are allowed; the next is refused with
	// Retry-After. FlipLimit 0 turns the guard off.
	FlipLimit  int
	FlipWindow time.Duration
}

// DefaultRules: now-next, default precedence, queue of 8, and at most 10
// conflicting changes per node per minute: the default configuration's
// admission section (app/config's tests check they agree), for tests and
// tools that use the Store without a configuration.
func DefaultRules() Rules {
	return Rules{Policy: PolicyNowNext, Precedence: DefaultPrecedence(), QueueMax: 8, FlipLimit: 10, FlipWindow: time.Minute}
}

// Slot is an action in a node's now or waiting slots.
type Slot struct {
	Task string
	Type schemas.ResetType
}

// Slots is what a node is doing: the running action (Now, empty Task when
// idle; Cancelling once aborted or superseded) and the waiting ones (at most
// one for now-next and supersede, QueueMax for queue).
type Slots struct {
	Now        Slot
	Cancelling bool
	Waiting    []Slot
}

// Outcome is what an admission decided.
type Outcome string

const (
	Started   Outcome = "started"   // the request became now; a worker runs it
	Queued    Outcome = "queued"    // the request waits behind now
	Coalesced Outcome = "coalesced" // the request joined an existing task
	Refused   Outcome = "refused"
)

// Refusal says why a request was refused.
type Refusal string

const (
	RefusedBusy      Refusal = "busy"       // reject policy: 409
	RefusedFlipFlop  Refusal = "flip-flop"  // too many conflicting changes: 429
	RefusedQueueFull Refusal = "queue-full" // queue policy bound: 429
)

// Decision is the result of Admit: the new slots, what happened to the
// request, and which tasks end because of it.
type Decision struct {
	Outcome Outcome
	Task    string // the request's task: new, or the one it joined
	Refusal Refusal
	// CancelNow: the running action is superseded (Cancelling).
	CancelNow bool
	// Dropped are waiting tasks that end Cancelled at once (superseded).
	Dropped []string
	// Conflict: the request cancelled or replaced another (counts toward
	// the flip-flop guard).
	Conflict bool
	Slots    Slots
}

// Admit decides what happens to a request of type r, whose new task id would
// be task, given the node's slots, its rules, and how many conflicting
// changes the node saw within the flip window.
func Admit(s Slots, rules Rules, r schemas.ResetType, task string, recentFlips int) Decision {
	d := Decision{Slots: s}
	d.Slots.Waiting = append([]Slot(nil), s.Waiting...)
	busy := s.Now.Task != ""
	nowLive := busy && !s.Cancelling
	in := Slot{Task: task, Type: r}

	// Idle: the request runs at once (a stale waiting slot cannot exist
	// while idle; drop any defensively).
	if !busy {
		d.Outcome, d.Task = Started, task
		d.Slots = Slots{Now: in}
		d.Dropped = taskIDs(s.Waiting)
		return d
	}

	switch rules.Policy {
	case PolicyQueue:
		// Coalesce only with the request that would run last.
		if n := len(s.Waiting); n > 0 {
			if s.Waiting[n-1].Type == r {
				return coalesce(d, s.Waiting[n-1].Task)
			}
		} else if nowLive && s.Now.Type == r {
			return coalesce(d, s.Now.Task)
		}
		max := rules.QueueMax
		if max <= 0 {
			max = 8
		}
		if len(s.Waiting) >= max {
			return refuse(d, RefusedQueueFull)
		}
		d.Outcome, d.Task = Queued, task
		d.Slots.Waiting = append(d.Slots.Waiting, in)
		return d

	case PolicyReject:
		if nowLive && s.Now.Type == r {
			return coalesce(d, s.Now.Task)
		}
		return refuse(d, RefusedBusy)
	}

	// now-next and supersede.
	if len(s.Waiting) > 0 && s.Waiting[0].Type == r {
		return coalesce(d, s.Waiting[0].Task)
	}
	if nowLive && s.Now.Type == r {
		// The running action already gives what the request asks; anything
		// waiting behind it would undo that, so it is superseded.
		if len(s.Waiting) > 0 && rules.FlipLimit > 0 && recentFlips >= rules.FlipLimit {
			return refuse(d, RefusedFlipFlop)
		}
		d = coalesce(d, s.Now.Task)
		d.Dropped = taskIDs(s.Waiting)
		d.Conflict = len(d.Dropped) > 0
		d.Slots.Waiting = nil
		return d
	}
	cancelNow := nowLive && (rules.Policy == PolicySupersede || rules.Precedence[r] > rules.Precedence[s.Now.Type])
	conflict := cancelNow || len(s.Waiting) > 0
	if conflict && rules.FlipLimit > 0 && recentFlips >= rules.FlipLimit {
		return refuse(d, RefusedFlipFlop)
	}
	d.Outcome, d.Task = Queued, task
	d.CancelNow = cancelNow
	d.Slots.Cancelling = s.Cancelling || cancelNow
	d.Dropped = taskIDs(s.Waiting)
	d.Slots.Waiting = []Slot{in}
	d.Conflict = conflict
	return d
}

func coalesce(d Decision, task string) Decision {
	d.Outcome, d.Task = Coalesced, task
	return d
}

func refuse(d Decision, why Refusal) Decision {
	d.Outcome, d.Refusal = Refused, why
	return d
}

func taskIDs(slots []Slot) []string {
	var ids []string
	for _, s := range slots {
		ids = append(ids, s.Task)
	}
	return ids
}

// Finish is the worker ending the running action: the first waiting action
// (if any) becomes now. It returns the new slots.
func Finish(s Slots) Slots {
	if len(s.Waiting) == 0 {
		return Slots{}
	}
	return Slots{Now: s.Waiting[0], Waiting: append([]Slot(nil), s.Waiting[1:]...)}
}

// CancelResult is what a DELETE of a task did.
type CancelResult string

const (
	CancelDropped    CancelResult = "dropped"    // it was waiting: Cancelled at once
	CancelCancelling CancelResult = "cancelling" // it is running: stops at the next step boundary
	CancelAlready    CancelResult = "already"    // it was already being cancelled
	CancelNotActive  CancelResult = "finished"   // not in the slots: finished (or unknown)
)

// Cancel applies a DELETE of task to the slots.
func Cancel(s Slots, task string) (Slots, CancelResult) {
	if s.Now.Task == task && task != "" {
		if s.Cancelling {
			return s, CancelAlready
		}
		s.Cancelling = true
		s.Waiting = append([]Slot(nil), s.Waiting...)
		return s, CancelCancelling
	}
	for i, w := range s.Waiting {
		if w.Task == task {
			out := s
			out.Waiting = append(append([]Slot(nil), s.Waiting[:i]...), s.Waiting[i+1:]...)
			return out, CancelDropped
		}
	}
	return s, CancelNotActive
}

// Desired is the power state the node should end in given its slots: the
// target of the last action that will run, or ok=false when the slots say
// nothing (idle, or only actions without a steady target).
func Desired(s Slots) (schemas.PowerState, bool) {
	for i := len(s.Waiting) - 1; i >= 0; i-- {
		if t, ok := s.Waiting[i].Type.Target(); ok {
			return t, true
		}
	}
	if s.Now.Task != "" && !s.Cancelling {
		return s.Now.Type.Target()
	}
	return schemas.PowerUnknown, false
}
