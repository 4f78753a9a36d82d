package serializer

import (
	"context"
	"time"

	"github.com/fishgate/fishgate/schemas"
)

// Event is something the serializer reports: a power change of a node or a
// task's progress (docs/architecture.md#events). Message is a registry message
// (ResourceEvent or TaskEvent); Origin names the resource it is about.
type Event struct {
	Time    time.Time
	Node    string
	Task    string // set for task events
	Message schemas.Message
	// Origin is the resource path under the service root: "/Systems/<node>"
	// or "/TaskService/Tasks/<task>".
	Origin string
}

// Emitter receives the serializer's events. Emit must not block for long;
// a failure is logged by the emitter and never stops an action.
type Emitter interface {
	Emit(ctx context.Context, e Event)
}

type noEmitter struct{}

func (noEmitter) Emit(context.Context, Event) {}

func (s *Service) emitPower(ctx context.Context, node string, key schemas.ResourceEventMessage) {
	s.opts.Events.Emit(ctx, Event{Time: s.opts.Clock(), Node: node, Origin: "/Systems/" + node,
		Message: schemas.ResourceEvent(key, node)})
}

func (s *Service) emitTask(ctx context.Context, node, task string, msg schemas.Message) {
	s.opts.Events.Emit(ctx, Event{Time: s.opts.Clock(), Node: node, Task: task, Origin: "/TaskService/Tasks/" + task, Message: msg})
}

// emitFinish reports how a task ended and, for a failure, a node event so
// that waiters stop waiting (docs/architecture.md#events).
func (s *Service) emitFinish(ctx context.Context, node, task string, r result) {
	key, ok := r.State.EndMessage(r.Status)
	if !ok {
		key = schemas.MsgTaskAborted
	}
	m := schemas.TaskEvent(key, task)
	if r.Reason != "" {
		m.Message += " " + r.Reason
	}
	if r.State == schemas.TaskStateCompleted {
		switch r.Observed {
		case schemas.PowerOn:
			s.emitPower(ctx, node, schemas.MsgResourcePoweredOn)
		case schemas.PowerOff:
			s.emitPower(ctx, node, schemas.MsgResourcePoweredOff)
		}
	}
	if r.State == schemas.TaskStateException {
		fail := schemas.ResourceEvent(schemas.MsgResourceErrorsDetected, "PowerState", "PowerActionFailed")
		fail.Message += " " + r.Reason
		s.opts.Events.Emit(ctx, Event{Time: s.opts.Clock(), Node: node, Task: task, Origin: "/Systems/" + node, Message: fail})
	}
	s.emitTask(ctx, node, task, m)
}
