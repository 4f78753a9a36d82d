package serializer

import (
	"fmt"
	"strings"
	"time"

	"github.com/fishgate/fishgate/schemas"
)

// The pure part of a bulk power request (docs/architecture.md#bulk-power):
// how a node's part of it is written in Redis, which nodes form a batch,
// and how the parent task ends. bulk.go does the I/O.

// BulkRequest is one bulk power request: a ResetType for many nodes, in
// batches.
type BulkRequest struct {
	Nodes []string
	Reset schemas.ResetType
	// BatchSize is how many nodes are admitted at once (0: all of them).
	BatchSize int
	// Delay is the pause between the end of one batch (every node's
	// action finished) and the admission of the next.
	Delay time.Duration
	// Aggregate names the Aggregate the request came through ("" for
	// AggregationService.Reset's TargetURIs).
	Aggregate string
	// Req describes who asked, for the nodes' command logs.
	Req string
}

// BulkRecord is a parent task as stored.
type BulkRecord struct {
	ID        string
	Reset     schemas.ResetType
	BatchSize int
	Delay     time.Duration
	Aggregate string
	Total     int
	// Done counts the nodes whose part has ended; Completed, Warned (of
	// the Completed, with a Warning), Failed (Exception) and Cancelled
	// how.
	Done, Completed, Warned, Failed, Cancelled int
	// Batches is how many batches have been admitted.
	Batches int
	State   schemas.TaskState
	Status  string
	Reason  string
	// CancelRequested: a DELETE of the parent was accepted.
	CancelRequested     bool
	Created, Start, End time.Time
}

// Percent is the share of nodes whose part has ended.
func (r BulkRecord) Percent() int {
	if r.Total == 0 {
		return 100
	}
	return r.Done * 100 / r.Total
}

// Terminal reports whether the parent task has ended.
func (r BulkRecord) Terminal() bool { return r.State.Terminal() }

// subPhase is where a node's part of a bulk request is.
type subPhase byte

const (
	subPending   subPhase = 0   // its batch has not come
	subAdmitting subPhase = 'A' // claimed: its admission is being sent (Task: the id it gets if one is created)
	subAdmitted  subPhase = 'T' // admitted: it follows the node's task Task
	subFinished  subPhase = 'F' // ended: State, Status, Reason
)

// sub is a node's part of a bulk request, as stored in the parent's subs
// hash: "<phase>|<task>|<outcome>|<state>|<status>|<reason>".
type sub struct {
	Phase   subPhase
	Task    string
	Outcome Outcome           // admitted: how its admission went
	State   schemas.TaskState // finished
	Status  string            // finished: OK, Warning, Critical
	Reason  string
}

func (s sub) encode() string {
	return strings.Join([]string{string(rune(s.Phase)), s.Task, string(s.Outcome), string(s.State), s.Status, s.Reason}, "|")
}

func decodeSub(v string) sub {
	if v == "" {
		return sub{}
	}
	f := strings.SplitN(v, "|", 6)
	for len(f) < 6 {
		f = append(f, "")
	}
	return sub{Phase: subPhase(f[0][0]), Task: f[1], Outcome: Outcome(f[2]), State: schemas.TaskState(f[3]), Status: f[4], Reason: f[5]}
}

// finishedAs is the sub s once its node task ended as t did.
func finishedAs(s sub, t TaskRecord) sub {
	return sub{Phase: subFinished, Task: t.ID, Outcome: s.Outcome, State: t.State, Status: taskHealth(t.Status), Reason: t.Reason}
}

// failed is the sub of a node that could not take part, and why.
func failed(why string) sub {
	return sub{Phase: subFinished, State: schemas.TaskStateException, Status: "Critical", Reason: why}
}

// cancelledBeforeStart is the sub of a node whose batch had not come when
// the parent was cancelled.
func cancelledBeforeStart(parent string) sub {
	return sub{Phase: subFinished, State: schemas.TaskStateCancelled, Status: "OK",
		Reason: "cancelled before its batch began (DELETE of " + parent + ")"}
}

// taskHealth is a task record's status as a Task's TaskStatus.
func taskHealth(st string) string {
	switch st {
	case "Warning", "Critical":
		return st
	}
	return "OK"
}

// refusalReason says why a node refused its part, as its sub-task shows.
func refusalReason(node string, a Admission) string {
	switch a.Refusal {
	case RefusedBusy:
		return "refused: node " + node + " is busy with another power action and its policy (reject) refuses a different one"
	case RefusedFlipFlop:
		return fmt.Sprintf("refused: node %s has had too many conflicting power changes in a short time (flip-flop guard); retry in %d s",
			node, max(1, int((a.RetryAfter+time.Second-1)/time.Second)))
	case RefusedQueueFull:
		return "refused: node " + node + " has a full queue of power actions"
	}
	return "refused: " + string(a.Refusal)
}

// batches splits n nodes into batches of size (0: one batch): the bounds
// [from, to) of batch i.
func batchBounds(n, size, i int) (from, to int) {
	if size <= 0 {
		size = max(n, 1)
	}
	return i * size, min((i+1)*size, n)
}

// batchCount is how many batches n nodes make.
func batchCount(n, size int) int {
	if size <= 0 || n == 0 {
		return min(n, 1)
	}
	return (n + size - 1) / size
}

// bulkFinal is how a parent ends once every node's part has: Cancelled
// when it was cancelled, Exception when a node's part failed, Completed
// otherwise (with a Warning when a node's part ended Cancelled, by a later
// request, or Completed with a Warning).
func bulkFinal(r BulkRecord) (state schemas.TaskState, status, reason string) {
	counts := fmt.Sprintf("%d of %d nodes completed, %d failed, %d cancelled", r.Completed, r.Total, r.Failed, r.Cancelled)
	switch {
	case r.CancelRequested:
		return schemas.TaskStateCancelled, "OK", "cancelled: " + counts
	case r.Failed > 0:
		return schemas.TaskStateException, "Critical", counts
	case r.Cancelled > 0 || r.Warned > 0:
		return schemas.TaskStateCompleted, "Warning", counts
	}
	return schemas.TaskStateCompleted, "OK", counts
}
