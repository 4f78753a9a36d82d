package redfish

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
)

func (s *Server) getTaskService(c echo.Context) error {
	sc := scopeOf(c)
	return send(c, http.StatusOK, schemas.TaskService{
		Resource:                        schemas.Resource{ODataID: sc.url("/TaskService"), ODataType: schemas.TypeTaskService, ID: "TaskService", Name: "Task Service"},
		ServiceEnabled:                  true,
		CompletedTaskOverWritePolicy:    "Oldest",
		LifeCycleEventOnTaskStateChange: true,
		DateTime:                        time.Now().UTC().Format(time.RFC3339),
		Tasks:                           schemas.Link{ODataID: sc.url("/TaskService/Tasks")},
		Status:                          schemas.Status{State: "Enabled", Health: "OK"},
	})
}

func (s *Server) getTasks(c echo.Context) error {
	sc := scopeOf(c)
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	// The bulk tasks (few, serializer.BulkKeep at most) come first, then
	// the nodes' tasks; the page is cut from the two in that order.
	bulk := s.bulkTaskLinks(c)
	m := slices.Clone(bulk[min(p.skip, len(bulk)):min(p.skip+p.top, len(bulk))])
	rest := page{skip: max(0, p.skip-len(bulk)), top: p.top - len(m)}
	var (
		ids   []string
		total int
	)
	if sc.node == "" && sc.sees == nil {
		// Every node's tasks: a page of the fleet-wide index.
		ids, total, err = s.nodes.TaskPage(ctx, rest.skip, rest.top)
	} else {
		// A scope that sees some nodes: their own listings, merged, whole
		// (the count is of them all).
		ids, err = s.nodes.TaskIDs(ctx, sc.nodeIDs(s.nodes), scopedTaskLimit)
		ids, total = rest.cut(ids)
	}
	if err != nil {
		return unavailable(2, err.Error())
	}
	for _, id := range ids {
		m = append(m, schemas.Link{ODataID: sc.url("/TaskService/Tasks/" + id)})
	}
	return send(c, http.StatusOK, p.collection(sc.url("/TaskService/Tasks"), schemas.TypeTaskColl, "Task Collection", m, len(bulk)+total))
}

// task loads the task named by :task within scope.
func (s *Server) task(c echo.Context) (serializer.TaskRecord, error) {
	id := c.Param("task")
	sc := scopeOf(c)
	if node, ok := serializer.TaskNode(id); !ok || !sc.visible(node) {
		return serializer.TaskRecord{}, notFound("Task", id)
	}
	t, err := s.nodes.Task(c.Request().Context(), id)
	if errors.Is(err, serializer.ErrTaskNotFound) {
		return t, notFound("Task", id)
	}
	if err != nil {
		return t, unavailable(2, err.Error())
	}
	return t, nil
}

func msTime(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

// taskStatus maps a stored status to Resource.Health.
func taskStatus(st string) string {
	switch st {
	case "Warning", "Critical":
		return st
	}
	return "OK"
}

func renderTask(sc scope, t serializer.TaskRecord) schemas.Task {
	var msgs []schemas.Message
	if t.Start != 0 {
		msgs = append(msgs, schemas.TaskEvent(schemas.MsgTaskStarted, t.ID))
	}
	// every command sent and every phase done, as it happened
	for _, step := range t.Steps {
		pct, what := serializer.TaskStep(step)
		m := schemas.TaskEvent(schemas.MsgTaskProgressChanged, t.ID, strconv.Itoa(pct))
		m.Message += " " + what
		msgs = append(msgs, m)
	}
	var final schemas.Message
	if key, ok := t.State.EndMessage(t.Status); ok {
		final = schemas.TaskEvent(key, t.ID)
	}
	if final.MessageID != "" {
		if t.Reason != "" {
			final.Resolution = t.Reason
			final.Message += " " + t.Reason
		}
		msgs = append(msgs, final)
	} else if t.Reason != "" || t.Note != "" {
		m := schemas.TaskEvent(schemas.MsgTaskProgressChanged, t.ID, strconv.Itoa(t.Percent))
		if note := strings.TrimSpace(t.Reason + " " + t.Note); note != "" {
			m.Message += " " + note
		}
		msgs = append(msgs, m)
	}
	if msgs == nil {
		msgs = []schemas.Message{}
	}
	sys := sc.url("/Systems/" + t.Node)
	oem := map[string]any{
		"System":      schemas.Link{ODataID: sys},
		"ResetType":   t.Type,
		"JoinedCount": t.Joined,
		"CreatedTime": msTime(t.Created),
	}
	if t.RequestID != "" {
		oem["RequestId"] = t.RequestID // the X-Request-Id of the request that created it
	}
	return schemas.Task{
		Resource:        schemas.Resource{ODataID: sc.url("/TaskService/Tasks/" + t.ID), ODataType: schemas.TypeTask, ID: t.ID, Name: "Reset " + t.Node + " " + string(t.Type)},
		TaskState:       t.State,
		TaskStatus:      taskStatus(t.Status),
		StartTime:       msTime(t.Start),
		EndTime:         msTime(t.End),
		PercentComplete: t.Percent,
		TaskMonitor:     sc.url("/TaskService/TaskMonitors/" + t.ID),
		Messages:        msgs,
		Payload: schemas.TaskPayload{
			HTTPOperation: "POST",
			TargetURI:     sys + "/Actions/" + resetAction,
			JSONBody:      `{"ResetType":"` + string(t.Type) + `"}`,
			HTTPHeaders:   []string{},
		},
		Oem: map[string]any{"Fishgate": oem},
	}
}

// taskAllow is the Allow header of a GET of a Task or its task monitor.
// DSP0266 (12.2, asynchronous operations): a service that can cancel a task
// "shall have DELETE in the Allow header for the task monitor"; and (8.1)
// Allow on a GET lists "the other allowable operations for this resource".
// So: DELETE while the task is waiting or running, GET once it has ended
// (DELETE of a finished task is a 409). It is exactly "DELETE", not
// "GET, DELETE": python3-sushy's TaskMonitor.cancellable is
// allow.upper() == 'DELETE' (Debian's 4.3, and upstream's). A 405 on these URIs lists
// the methods of the route (GET, DELETE) as DSP0266 asks of a 405.
func taskAllow(t serializer.TaskRecord) string {
	if t.Terminal() {
		return http.MethodGet
	}
	return http.MethodDelete
}

func (s *Server) getTask(c echo.Context) error {
	if serializer.IsBulkID(c.Param("task")) {
		return s.getBulkTask(c, false)
	}
	t, err := s.task(c)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Allow", taskAllow(t))
	return send(c, http.StatusOK, renderTask(scopeOf(c), t))
}

// getTaskMonitor answers 202 with the Task while it runs and 200 with the
// finished Task when done (DSP0266 12.2); Allow says whether it can still
// be cancelled (taskAllow).
func (s *Server) getTaskMonitor(c echo.Context) error {
	if serializer.IsBulkID(c.Param("task")) {
		return s.getBulkTask(c, true)
	}
	t, err := s.task(c)
	if err != nil {
		return err
	}
	sc := scopeOf(c)
	c.Response().Header().Set("Allow", taskAllow(t))
	if !t.Terminal() {
		c.Response().Header().Set("Location", sc.url("/TaskService/TaskMonitors/"+t.ID))
		c.Response().Header().Set("Retry-After", "1")
		return send(c, http.StatusAccepted, renderTask(sc, t))
	}
	return send(c, http.StatusOK, renderTask(sc, t))
}

// deleteTask aborts a task (docs/architecture.md#cancellation): waiting →
// Cancelled at once; running → Cancelling, Cancelled at the next step
// boundary; finished → 409.
func (s *Server) deleteTask(c echo.Context) error {
	if err := canOperate(c); err != nil {
		return err
	}
	if serializer.IsBulkID(c.Param("task")) {
		return s.deleteBulkTask(c)
	}
	t, err := s.task(c)
	if err != nil {
		return err
	}
	res, err := s.nodes.CancelTask(c.Request().Context(), t.ID)
	if errors.Is(err, serializer.ErrTaskNotFound) {
		return notFound("Task", t.ID)
	}
	if err != nil {
		return unavailable(2, err.Error())
	}
	if res == serializer.CancelNotActive {
		return newError(http.StatusConflict, schemas.Base(schemas.MsgResourceCannotBeDeleted)).
			withDetail("task " + t.ID + " has already finished (" + string(t.State) + "); only a waiting or running task can be cancelled")
	}
	t, err = s.task(c)
	if err != nil {
		return err
	}
	s.log.InfoContext(c.Request().Context(), "task cancel requested", "task", t.ID, "result", res, "user", principalOf(c).User)
	return send(c, http.StatusOK, renderTask(scopeOf(c), t))
}
