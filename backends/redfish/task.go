package redfish

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stmcginnis/gofish"
	rf "github.com/stmcginnis/gofish/schemas"
)

// taskView is the part of a Task resource (Task v1_x) that decides its
// outcome.
type taskView struct {
	ID         string `json:"@odata.id"`
	TaskState  string
	TaskStatus string
	Messages   []struct {
		MessageID string `json:"MessageId"`
		Message   string
	}
}

// outcome says whether the task has ended and, if so, whether it failed.
// Completed is success unless TaskStatus is Critical; Exception, Killed and
// Cancelled are failures; every other state (New, Starting, Running,
// Pending, Suspended, Interrupted, Stopping, Cancelling, Service) means
// "not yet".
func (t taskView) outcome() (done bool, err error) {
	switch rf.TaskState(t.TaskState) {
	case rf.CompletedTaskState:
		if rf.Health(t.TaskStatus) == rf.CriticalHealth {
			return true, t.failure()
		}
		return true, nil
	case rf.ExceptionTaskState, rf.KilledTaskState, rf.CancelledTaskState:
		return true, t.failure()
	}
	return false, nil
}

func (t taskView) failure() error {
	msgs := make([]string, 0, len(t.Messages))
	for _, m := range t.Messages {
		msgs = append(msgs, strings.TrimSpace(m.MessageID+" "+m.Message))
	}
	return fmt.Errorf("task %s ended %s/%s %q: %w", t.ID, t.TaskState, t.TaskStatus, msgs, ErrTaskFailed)
}

func viewOf(t *rf.Task) taskView {
	v := taskView{ID: t.ODataID, TaskState: string(t.TaskState), TaskStatus: string(t.TaskStatus)}
	for _, m := range t.Messages {
		v.Messages = append(v.Messages, struct {
			MessageID string `json:"MessageId"`
			Message   string
		}{m.MessageID, m.Message})
	}
	return v
}

// followTask polls the task a BMC started when it answered 202 (DSP0266
// §"Asynchronous operations"), until the task ends or ctx is done. It polls
// the task monitor (the Location header), or the Task resource when there is
// no monitor, waiting Config.TaskPoll first and doubling up to
// Config.TaskPollMax; a Retry-After from the BMC replaces the wait, capped at
// TaskPollMax. A 401 while polling logs in again, as for any call.
func (b *Backend) followTask(ctx context.Context, ti *rf.TaskMonitorInfo) error {
	monitor := localPath(ti.TaskMonitor)
	taskURI := ""
	if ti.Task != nil {
		v := viewOf(ti.Task)
		taskURI = localPath(v.ID)
		if monitor == "" {
			monitor = localPath(ti.Task.TaskMonitor)
		}
		if done, err := v.outcome(); done {
			return err
		}
	}
	if monitor == "" {
		monitor = taskURI
	}
	if monitor == "" {
		b.log.WarnContext(ctx, "BMC answered 202 without a task monitor or task; taking the command as accepted")
		return nil
	}
	b.log.DebugContext(ctx, "following BMC task", "monitor", monitor, "task", taskURI)

	wait := b.cfg.TaskPoll
	next := wait
	if !ti.RetryAfter.IsZero() {
		next = min(max(time.Until(ti.RetryAfter), 0), b.cfg.TaskPollMax)
	}
	for {
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("following task %s: %w", monitor, ctx.Err())
		case <-t.C:
		}

		var p poll
		err := b.do(ctx, func(c *gofish.APIClient) error {
			var err error
			p, err = pollOnce(c, monitor)
			return err
		})
		if err != nil {
			st := status(err)
			if (st == http.StatusNotFound || st == http.StatusGone) && taskURI != "" && monitor != taskURI {
				// Some services drop the monitor once the task ends; the Task
				// resource still says how it ended.
				b.log.DebugContext(ctx, "task monitor gone; reading the task", "monitor", monitor, "task", taskURI)
				monitor, next = taskURI, 0
				continue
			}
			if st >= 400 && st != http.StatusNotFound && st != http.StatusGone {
				// DSP0266: once done, the monitor answers with the response
				// the operation would have given synchronously: an error
				// status is the operation's failure.
				return fmt.Errorf("task %s: %w: %w", monitor, ErrTaskFailed, err)
			}
			return fmt.Errorf("polling task %s: %w", monitor, err)
		}
		if p.done {
			return p.err
		}
		wait = min(wait*2, b.cfg.TaskPollMax)
		next = wait
		if !p.retryAfter.IsZero() {
			next = min(max(time.Until(p.retryAfter), 0), b.cfg.TaskPollMax)
		}
	}
}

// poll is what one GET of a task monitor or Task said.
type poll struct {
	done       bool
	err        error // the task's failure, when done
	retryAfter time.Time
}

// pollOnce GETs a task monitor or Task resource once. 202 is "still
// running"; 204 is success; 200/201 with a Task body is decided by the
// task's state, and with any other body is the operation's success.
func pollOnce(c *gofish.APIClient, uri string) (poll, error) {
	resp, err := c.Get(uri)
	defer rf.DeferredCleanupHTTPResponse(resp)
	if err != nil {
		return poll{}, err
	}
	var p poll
	if ra, err := rf.ParseRetryAfter(resp.Header.Get("Retry-After")); err == nil {
		p.retryAfter = ra
	}
	switch resp.StatusCode {
	case http.StatusAccepted:
		return p, nil
	case http.StatusNoContent:
		p.done = true
		return p, nil
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return poll{}, err
	}
	var v taskView
	if len(body) == 0 || json.Unmarshal(body, &v) != nil || v.TaskState == "" {
		p.done = true // not a Task: the operation's own response
		return p, nil
	}
	if v.ID == "" {
		v.ID = uri
	}
	p.done, p.err = v.outcome()
	return p, nil
}

// localPath turns a URI the BMC gave (possibly absolute, possibly naming the
// BMC by an address we do not use) into a path on our endpoint.
func localPath(u string) string {
	if u == "" {
		return ""
	}
	if p, err := url.Parse(u); err == nil && p.IsAbs() {
		return p.RequestURI()
	}
	return u
}
