package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
)

// What `fishgate wait` and `power --wait` show while they wait: on a
// terminal one status line, redrawn as events come and every second
// (states seen, elapsed time, the node's PowerState, the task's state,
// PercentComplete and phase); elsewhere, or with --quiet, nothing. On a
// timeout they say what they saw last, terminal or not.

// seen is what a wait knows of its node and task.
type seen struct {
	power   string // the node's PowerState
	task    string // the task followed, or the node's running (last) one
	state   schemas.TaskState
	percent int
	phase   string // the task's last message
}

// statusLine is the terminal's line for w after elapsed.
func statusLine(w *watch, s seen, elapsed time.Duration) string {
	var parts []string
	if w.task == "" {
		p := "node " + w.node + ": waiting for " + w.waitingFor()
		if w.next > 0 {
			p += " (seen " + w.progress() + ")"
		}
		parts = append(parts, p)
		if s.power != "" {
			parts = append(parts, "PowerState "+s.power)
		}
		if s.task != "" {
			parts = append(parts, taskPart(s))
		}
	} else {
		parts = append(parts, taskPart(s))
		if s.power != "" {
			parts = append(parts, "PowerState "+s.power)
		}
	}
	return strings.Join(parts, " | ") + " | " + elapsed.Round(time.Second).String()
}

// taskPart is "task ID State N%: phase" with what is known.
func taskPart(s seen) string {
	p := "task " + s.task
	if s.state != "" {
		p += " " + string(s.state)
	}
	if s.percent > 0 {
		p += fmt.Sprintf(" %d%%", s.percent)
	}
	if s.phase != "" {
		p += ": " + s.phase
	}
	return p
}

// timeoutReport is what a timed-out wait says: the last power state and
// task state seen.
func timeoutReport(w *watch, s seen, elapsed time.Duration) string {
	power := s.power
	if power == "" {
		power = "unknown"
	}
	msg := "timed out after " + elapsed.Round(time.Millisecond).String() + ": "
	if w.task == "" {
		msg += fmt.Sprintf("node %s: PowerState %s, waiting for %s", w.node, power, w.waitingFor())
		if w.next > 0 {
			msg += " (seen " + w.progress() + ")"
		}
		if s.task == "" {
			return msg + "; no task running"
		}
		return msg + "; " + taskPart(s)
	}
	msg += taskPart(s)
	if node, ok := serializer.TaskNode(w.task); ok {
		msg += fmt.Sprintf("; node %s: PowerState %s", node, power)
	}
	return msg
}

// waitingFor is the states not seen yet.
func (w *watch) waitingFor() string { return strings.Join(w.states[w.next:], ",") }

// eventSeen updates s with what an event of w's stream tells: a power
// state of the node, or a change of the task.
func eventSeen(s *seen, w *watch, r schemas.EventRecord) {
	key := r.MessageID[strings.LastIndexByte(r.MessageID, '.')+1:]
	if st, ok := eventState[key]; ok {
		s.power = st
		return
	}
	id := ""
	if r.OriginOfCondition != nil {
		_, id, _ = strings.Cut(r.OriginOfCondition.ODataID, "/TaskService/Tasks/")
	}
	if id == "" || (w.task != "" && id != w.task) {
		return
	}
	if id != s.task {
		*s = seen{power: s.power, task: id}
	}
	switch key {
	case schemas.MsgTaskStarted.Key():
		s.state = schemas.TaskStateRunning
	case schemas.MsgTaskProgressChanged.Key():
		if len(r.MessageArgs) > 1 {
			if p, err := strconv.Atoi(r.MessageArgs[1]); err == nil {
				s.percent = p
			}
		}
	case schemas.MsgTaskCompletedOK.Key(), schemas.MsgTaskCompletedWarning.Key():
		s.state, s.percent = schemas.TaskStateCompleted, 100
	case schemas.MsgTaskAborted.Key():
		s.state = schemas.TaskStateException
	case schemas.MsgTaskCancelled.Key():
		s.state = schemas.TaskStateCancelled
	}
}

// taskSeen is s with a task as read.
func taskSeen(s seen, t task) seen {
	s.task, s.state, s.percent, s.phase = t.ID, t.TaskState, t.PercentComplete, taskPhase(t)
	return s
}

// taskPhase is what the task's last message says of its phase: the note
// that follows a TaskProgressChanged's registry text ("On attempt 1"), or
// the whole of any other message.
func taskPhase(t task) string {
	if len(t.Messages) == 0 {
		return ""
	}
	m := t.Messages[len(t.Messages)-1]
	if strings.HasSuffix(m.MessageID, "."+schemas.MsgTaskProgressChanged.Key()) && len(m.MessageArgs) == 2 {
		std := schemas.TaskEvent(schemas.MsgTaskProgressChanged, m.MessageArgs...).Message
		if note, ok := strings.CutPrefix(m.Message, std); ok {
			return strings.TrimSpace(note)
		}
	}
	return m.Message
}

// waitUI shows a wait's progress. Its methods may be called from the
// stream's loop and the ticker at once.
type waitUI struct {
	out   io.Writer // nil: show nothing (not a terminal, or --quiet)
	start time.Time

	mu    sync.Mutex
	seen  seen
	drawn bool
}

func newWaitUI(stderr io.Writer, quiet bool) *waitUI {
	ui := &waitUI{start: time.Now()}
	if !quiet && isTerminal(stderr) {
		ui.out = stderr
	}
	return ui
}

// update changes what is seen and redraws.
func (ui *waitUI) update(w *watch, f func(*seen)) {
	ui.mu.Lock()
	defer ui.mu.Unlock()
	f(&ui.seen)
	if ui.out != nil {
		// \x1b[K clears what a longer line before left.
		fmt.Fprintf(ui.out, "\r%s\x1b[K", statusLine(w, ui.seen, time.Since(ui.start)))
		ui.drawn = true
	}
}

// done ends the status line, so that what follows starts on a line of its own.
func (ui *waitUI) done() {
	ui.mu.Lock()
	defer ui.mu.Unlock()
	if ui.drawn {
		fmt.Fprintln(ui.out)
		ui.drawn = false
	}
}

func (ui *waitUI) last() seen {
	ui.mu.Lock()
	defer ui.mu.Unlock()
	return ui.seen
}

// refreshEvery reads the node and task every interval and redraws, until
// ctx ends; only on a terminal (the events alone carry neither the phase
// nor, for a node, its running task).
func (ui *waitUI) refreshEvery(ctx context.Context, c *apiClient, w *watch, interval time.Duration) {
	if ui.out == nil {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s := c.current(ctx, w, ui.last())
		ui.update(w, func(cur *seen) {
			if ctx.Err() == nil {
				*cur = s
			}
		})
	}
}

// current reads the node's PowerState and the task's state: w's task, or
// else the node's running task (the last one seen when none runs). What
// cannot be read stays as in s.
func (c *apiClient) current(ctx context.Context, w *watch, s seen) seen {
	node := w.node
	if w.task != "" {
		node, _ = serializer.TaskNode(w.task)
		s.task = w.task
	}
	if node != "" {
		var sys struct {
			PowerState string
			Oem        struct {
				Fishgate struct {
					RunningTask *struct {
						ODataID string `json:"@odata.id"`
					}
				}
			}
		}
		if _, err := c.do(ctx, http.MethodGet, "/redfish/v1/Systems/"+url.PathEscape(node), nil, &sys); err == nil {
			s.power = sys.PowerState
			if rt := sys.Oem.Fishgate.RunningTask; w.task == "" && rt != nil {
				s.task = path.Base(rt.ODataID)
			}
		}
	}
	if s.task != "" {
		if t, err := c.task(ctx, s.task); err == nil {
			s = taskSeen(s, t)
		}
	}
	return s
}

// timedOut is the timeout verdict saying what was seen last: read once
// more (briefly: the wait's own time is up) where the gateway answers.
func (ui *waitUI) timedOut(c *apiClient, w *watch) verdict {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s := c.current(ctx, w, ui.last())
	return verdict{done: true, code: exitTimeout, why: timeoutReport(w, s, time.Since(ui.start))}
}
