package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	sse "github.com/tmaxmax/go-sse"

	"github.com/fishgate/fishgate/internal/retry"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
)

// watch decides a wait (docs/architecture.md#events): it is given what the
// gateway showed when the wait began, then the events that follow, and says
// when the wait is over and with which exit code. It does no I/O.
//
// For a node it waits for a sequence of power states (Off,On): each
// ResourcePoweredOff/ResourcePoweredOn/ResourcePoweringOn/ResourcePoweringOff
// event of the node's System that is the next state wanted moves it on;
// other states do not set it back. Only the first state of the sequence may
// already hold when the wait begins (the System's PowerState then); the
// others must be seen happen. A failure of the node (ResourceErrorsDetected
// on its System, or TaskAborted of one of its tasks) ends the wait with 2.
//
// For a task it waits for the task's end: Completed is 0, Exception or
// Cancelled is 2.
type watch struct {
	node   string
	states []string // wanted, in order
	next   int      // index of the next state wanted
	task   string
}

// verdict is the end of a wait; done false means: keep waiting.
type verdict struct {
	done bool
	code int
	why  string
}

var waitStates = map[string]string{ // --state value (lower case) -> PowerState
	"on": "On", "off": "Off", "poweringon": "PoweringOn", "poweringoff": "PoweringOff",
}

// eventState is the power state a ResourceEvent announces.
var eventState = map[string]string{
	schemas.MsgResourcePoweredOn.Key(): "On", schemas.MsgResourcePoweredOff.Key(): "Off",
	schemas.MsgResourcePoweringOn.Key(): "PoweringOn", schemas.MsgResourcePoweringOff.Key(): "PoweringOff",
}

func parseStates(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		st, ok := waitStates[strings.ToLower(strings.TrimSpace(p))]
		if !ok {
			return nil, fmt.Errorf("--state: %q is not On, Off, PoweringOn or PoweringOff", p)
		}
		out = append(out, st)
	}
	return out, nil
}

func (w *watch) filter() string {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	if w.task != "" {
		return "OriginResource eq " + q("/redfish/v1/TaskService/Tasks/"+w.task)
	}
	return "OriginResource eq " + q("/redfish/v1/Systems/"+w.node) + " or MessageId eq 'TaskEvent." + schemas.MsgTaskAborted.Key() + "'"
}

func (w *watch) progress() string { return strings.Join(w.states[:w.next], ",") }

// startPower takes the node's PowerState when the wait began.
func (w *watch) startPower(ps string) verdict {
	if w.next == 0 && len(w.states) > 0 && ps == w.states[0] {
		w.next = 1
	}
	return w.reached()
}

func (w *watch) reached() verdict {
	if w.next == len(w.states) {
		return verdict{done: true, code: exitOK, why: fmt.Sprintf("node %s: %s", w.node, w.progress())}
	}
	return verdict{}
}

// startTask takes the task as it was when the wait began.
func (w *watch) startTask(t task) verdict {
	if !t.terminal() {
		return verdict{}
	}
	return taskEnd(w.task, t.TaskState, t.summary())
}

func taskEnd(id string, state schemas.TaskState, msg string) verdict {
	why := fmt.Sprintf("task %s: %s", id, state)
	if msg != "" {
		why += ": " + msg
	}
	if state == schemas.TaskStateCompleted {
		return verdict{done: true, code: exitOK, why: why}
	}
	return verdict{done: true, code: exitFailed, why: why}
}

// event takes one event record.
func (w *watch) event(r schemas.EventRecord) verdict {
	key := r.MessageID[strings.LastIndexByte(r.MessageID, '.')+1:]
	origin := ""
	if r.OriginOfCondition != nil {
		origin = r.OriginOfCondition.ODataID
	}
	if rest, ok := strings.CutPrefix(origin, "/bmc/"); ok { // --url of a per-node view
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			origin = rest[i:]
		}
	}
	if w.task != "" {
		if origin != "/redfish/v1/TaskService/Tasks/"+w.task {
			return verdict{}
		}
		switch key {
		case schemas.MsgTaskCompletedOK.Key(), schemas.MsgTaskCompletedWarning.Key():
			return taskEnd(w.task, schemas.TaskStateCompleted, r.Message)
		case schemas.MsgTaskAborted.Key():
			return taskEnd(w.task, schemas.TaskStateException, r.Message)
		case schemas.MsgTaskCancelled.Key():
			return taskEnd(w.task, schemas.TaskStateCancelled, r.Message)
		}
		return verdict{}
	}
	if id, ok := strings.CutPrefix(origin, "/redfish/v1/TaskService/Tasks/"); ok {
		if n, _ := serializer.TaskNode(id); n == w.node && key == schemas.MsgTaskAborted.Key() {
			return verdict{done: true, code: exitFailed, why: fmt.Sprintf("node %s: task %s failed: %s", w.node, id, r.Message)}
		}
		return verdict{}
	}
	if origin != "/redfish/v1/Systems/"+w.node {
		return verdict{}
	}
	if key == schemas.MsgResourceErrorsDetected.Key() {
		return verdict{done: true, code: exitFailed, why: fmt.Sprintf("node %s reported a failure: %s", w.node, r.Message)}
	}
	if st, ok := eventState[key]; ok && w.next < len(w.states) && st == w.states[w.next] {
		w.next++
	}
	return w.reached()
}

// follow runs a wait, showing its progress on ui (waitprogress.go); a
// timeout says what was seen last.
func (c *apiClient) follow(ctx context.Context, w *watch, ui *waitUI, stderr io.Writer) verdict {
	rctx, stop := context.WithCancel(ctx)
	refreshed := make(chan struct{})
	go func() {
		defer close(refreshed)
		ui.refreshEvery(rctx, c, w, time.Second)
	}()
	v := c.followEvents(ctx, w, ui, stderr)
	stop()
	<-refreshed // no line is drawn after done
	ui.done()
	if v.code == exitTimeout {
		v = ui.timedOut(c, w)
	}
	return v
}

// followEvents opens the event stream, then reads the starting point (so
// that nothing that happens after it is missed), then feeds events to w
// until a verdict or ctx's end. A dropped stream is resumed with
// Last-Event-ID.
func (c *apiClient) followEvents(ctx context.Context, w *watch, ui *waitUI, stderr io.Writer) verdict {
	lastID, first := "", true
	// Reconnects pause as every retry loop does (internal/retry: doubling
	// from 200 ms up to 5 s, jittered); an event received starts over.
	reconnect, retries := retry.Policy{Base: 200 * time.Millisecond, Cap: 5 * time.Second}, 0
	for {
		resp, err := c.openEvents(ctx, w.filter(), lastID)
		if err != nil {
			if v, ok := ended(ctx); ok {
				return v
			}
			if first || refused(err) {
				return verdict{done: true, code: exitError, why: "event stream: " + err.Error()}
			}
			ui.done()
			fmt.Fprintf(stderr, "fishgate: event stream: %v; reconnecting\n", err)
			retries++
			_ = retry.Sleep(ctx, reconnect.Delay(retries))
			continue
		}
		if first {
			first = false
			var v verdict
			if w.task != "" {
				var t task
				if t, err = c.task(ctx, w.task); err == nil {
					ui.update(w, func(s *seen) { *s = taskSeen(*s, t) })
					v = w.startTask(t)
				}
			} else {
				var ps string
				if ps, err = c.powerState(ctx, w.node); err == nil {
					ui.update(w, func(s *seen) { s.power = ps })
					v = w.startPower(ps)
				}
			}
			if err != nil {
				resp.Body.Close()
				if v, ok := ended(ctx); ok {
					return v
				}
				return verdict{done: true, code: exitError, why: err.Error()}
			}
			if v.done {
				resp.Body.Close()
				return v
			}
		}
		for ev, err := range sse.Read(resp.Body, &sse.ReadConfig{MaxEventSize: 1 << 20}) {
			if err != nil {
				break
			}
			lastID = ev.LastEventID
			if ev.Data == "" {
				continue // the stream's opening position
			}
			var body schemas.Event
			if json.Unmarshal([]byte(ev.Data), &body) != nil {
				continue
			}
			for _, r := range body.Events {
				ui.update(w, func(s *seen) { eventSeen(s, w, r) })
				if v := w.event(r); v.done {
					resp.Body.Close()
					return v
				}
			}
			retries = 0
		}
		resp.Body.Close()
		if v, ok := ended(ctx); ok {
			return v
		}
		retries++
		_ = retry.Sleep(ctx, reconnect.Delay(retries))
	}
}

// ended turns the end of ctx into a verdict: the timeout is 1.
func ended(ctx context.Context) (verdict, bool) {
	switch err := ctx.Err(); {
	case errors.Is(err, context.DeadlineExceeded):
		return verdict{done: true, code: exitTimeout, why: "timed out"}, true
	case err != nil:
		return verdict{done: true, code: exitError, why: "interrupted"}, true
	}
	return verdict{}, false
}

// finish prints a verdict and turns it into the command's result.
func finish(cmd *cobra.Command, v verdict) error {
	if v.code == exitOK {
		fmt.Fprintln(cmd.OutOrStdout(), v.why)
		return nil
	}
	return exitCode{code: v.code, err: errors.New(v.why)}
}

func waitCmd() *cobra.Command {
	var (
		f            clientFlags
		node, states string
		taskID       string
		quiet        bool
	)
	cmd := &cobra.Command{
		Use:   "wait --node ID --state Off,On | --task ID",
		Short: "Block until a node shows a sequence of power states, or a task ends",
		Long: `wait follows the gateway's event stream (no polling) until:

  --node ID --state S1,S2,...  the node shows the power states S1, S2, ... in that
                               order (On, Off, PoweringOn, PoweringOff). Only S1 may
                               already hold when the wait begins; the others must be
                               seen happen.
  --task ID                    the task ends.

On a terminal (stderr) one status line shows the states seen, the node's
PowerState, its running task's TaskState, PercentComplete and phase, and the
time waited; elsewhere, or with --quiet, only the outcome is printed. On a
timeout it prints the last PowerState and task state seen.

Exit codes: 0 seen (task Completed); 1 --timeout passed; 2 the node reported a
failure (a task of the node aborted after its retries) or the task ended in
Exception or Cancelled; 3 bad arguments, unknown node or task, or the gateway
refused or could not be reached.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fail("unexpected arguments %q", args)
			}
			w := &watch{node: node, task: taskID}
			switch {
			case (node == "") == (taskID == ""):
				return fail("give either --node (with --state) or --task")
			case node != "":
				var err error
				if w.states, err = parseStates(states); err != nil {
					return fail("%v", err)
				}
			case states != "":
				return fail("--state goes with --node, not --task")
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			return finish(cmd, c.follow(ctx, w, newWaitUI(cmd.ErrOrStderr(), quiet), cmd.ErrOrStderr()))
		},
	}
	f.register(cmd, 10*time.Minute)
	cmd.Flags().StringVar(&node, "node", "", "node id")
	cmd.Flags().StringVar(&states, "state", "", "power states to wait for, in order (On, Off, PoweringOn, PoweringOff)")
	cmd.Flags().StringVar(&taskID, "task", "", "task id to wait for")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress line, even on a terminal")
	return cmd
}
