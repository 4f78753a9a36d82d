package redfish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
)

// Bulk power (docs/architecture.md#bulk-power): Aggregate.Reset and
// AggregationService.Reset answer 202 with one parent Task whose SubTasks
// are the nodes' parts; the serializer's Bulk stores and drives it.

// BulkPower is what the API needs from the serializer's bulk requests.
type BulkPower interface {
	Create(ctx context.Context, req serializer.BulkRequest) (serializer.BulkRecord, error)
	Get(ctx context.Context, id string) (serializer.BulkRecord, error)
	IDs(ctx context.Context, limit int) ([]string, error)
	Nodes(ctx context.Context, id string, skip, top int) ([]string, int, error)
	Sub(ctx context.Context, id, node string) (serializer.SubTask, error)
	Cancel(ctx context.Context, id string) (serializer.BulkCancel, error)
}

const (
	aggregateReset   = "Aggregate.Reset"
	aggregationReset = "AggregationService.Reset"
)

// addAggregationRoutes registers the AggregationService, its Aggregates and
// the bulk tasks' routes. They exist in the aggregate view only: a node's
// own view (/bmc/<node>, or its own address) is one BMC, which aggregates
// nothing.
func (s *Server) addAggregationRoutes(e *echo.Echo) {
	const agg = "/redfish/v1/AggregationService"
	for _, r := range []struct {
		method, path string
		h            echo.HandlerFunc
	}{
		{http.MethodGet, agg, s.getAggregationService},
		{http.MethodPost, agg + "/Actions/" + aggregationReset, s.postAggregationReset},
		{http.MethodGet, agg + "/Aggregates", s.getAggregates},
		{http.MethodPost, agg + "/Aggregates", s.postAggregate},
		{http.MethodPost, agg + "/Aggregates/Members", s.postAggregate},
		{http.MethodGet, agg + "/Aggregates/:agg", s.getAggregate},
		{http.MethodDelete, agg + "/Aggregates/:agg", s.deleteAggregate},
		{http.MethodPost, agg + "/Aggregates/:agg/Actions/Aggregate.AddElements", s.postAddElements},
		{http.MethodPost, agg + "/Aggregates/:agg/Actions/Aggregate.RemoveElements", s.postRemoveElements},
		{http.MethodPost, agg + "/Aggregates/:agg/Actions/" + aggregateReset, s.postAggregateReset},
		{http.MethodGet, "/redfish/v1/TaskService/Tasks/:task/SubTasks", s.getSubTasks},
		{http.MethodGet, "/redfish/v1/TaskService/Tasks/:task/SubTasks/:sub", s.getSubTask},
	} {
		e.Add(r.method, r.path, r.h, s.aggregateOnly, s.authMiddleware)
	}
}

func nowMillis() int64 { return time.Now().UnixMilli() }

// bulkParams are the parameters of both Reset actions.
type bulkParams struct {
	ResetType                    *string   `json:"ResetType"`
	BatchSize                    *int      `json:"BatchSize"`
	DelayBetweenBatchesInSeconds *int      `json:"DelayBetweenBatchesInSeconds"`
	TargetURIs                   *linkList `json:"TargetURIs"`
}

// check validates the parameters common to both actions.
func (p bulkParams) check(action string) (schemas.ResetType, int, time.Duration, error) {
	if p.ResetType == nil {
		return "", 0, 0, newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterMissing, action, "ResetType"))
	}
	rt, err := schemas.ParseResetType(*p.ResetType)
	if err != nil {
		return "", 0, 0, newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterValueNotInList, *p.ResetType, "ResetType", action))
	}
	batch := 0
	if p.BatchSize != nil {
		if *p.BatchSize < 1 {
			return "", 0, 0, newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterValueOutOfRange, strconv.Itoa(*p.BatchSize), "BatchSize", action)).
				withDetail(fmt.Sprintf("BatchSize %d: give at least 1 (or leave it out: every node in one batch)", *p.BatchSize))
		}
		batch = *p.BatchSize
	}
	var delay time.Duration
	if p.DelayBetweenBatchesInSeconds != nil {
		d := *p.DelayBetweenBatchesInSeconds
		if d < 0 || d > 86400 {
			return "", 0, 0, newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterValueOutOfRange, strconv.Itoa(d), "DelayBetweenBatchesInSeconds", action)).
				withDetail(fmt.Sprintf("DelayBetweenBatchesInSeconds %d: give 0 to 86400", d))
		}
		delay = time.Duration(d) * time.Second
	}
	return rt, batch, delay, nil
}

func (s *Server) postAggregateReset(c echo.Context) error {
	if err := canOperate(c); err != nil {
		return err
	}
	a, err := s.aggregateOf(c)
	if err != nil {
		return err
	}
	body, err := readBody(c, s.maxBody)
	if err != nil {
		return err
	}
	var p struct {
		ResetType                    *string `json:"ResetType"`
		BatchSize                    *int    `json:"BatchSize"`
		DelayBetweenBatchesInSeconds *int    `json:"DelayBetweenBatchesInSeconds"`
	}
	if err := decodeStrict(body, &p, decodeKind{action: aggregateReset}); err != nil {
		return err
	}
	rt, batch, delay, err := bulkParams{ResetType: p.ResetType, BatchSize: p.BatchSize, DelayBetweenBatchesInSeconds: p.DelayBetweenBatchesInSeconds}.check(aggregateReset)
	if err != nil {
		return err
	}
	sc := scopeOf(c)
	for _, n := range a.Nodes {
		if !sc.visible(n) {
			return newError(http.StatusForbidden, schemas.Base(schemas.MsgInsufficientPrivilege)).
				withDetail("aggregate " + a.ID + " holds Systems this account may not operate")
		}
	}
	if len(a.Nodes) == 0 {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterValueError, "ResetType", aggregateReset)).
			withDetail("aggregate " + a.ID + " has no elements: nothing to reset")
	}
	return s.startBulk(c, serializer.BulkRequest{Nodes: a.Nodes, Reset: rt, BatchSize: batch, Delay: delay, Aggregate: a.ID},
		sc.url("/AggregationService/Aggregates/"+a.ID+"/Actions/"+aggregateReset), body)
}

func (s *Server) postAggregationReset(c echo.Context) error {
	if err := canOperate(c); err != nil {
		return err
	}
	body, err := readBody(c, s.bulkBodyBytes())
	if err != nil {
		return err
	}
	var p bulkParams
	if err := decodeStrict(body, &p, decodeKind{action: aggregationReset}); err != nil {
		return err
	}
	if p.TargetURIs == nil {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterMissing, aggregationReset, "TargetURIs"))
	}
	if len(*p.TargetURIs) == 0 {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterValueError, "TargetURIs", aggregationReset)).
			withDetail("TargetURIs is empty: name at least one System")
	}
	rt, batch, delay, err := p.check(aggregationReset)
	if err != nil {
		return err
	}
	nodes, err := s.systemsOf(c, *p.TargetURIs, "TargetURIs", aggregationReset)
	if err != nil {
		return err
	}
	return s.startBulk(c, serializer.BulkRequest{Nodes: nodes, Reset: rt, BatchSize: batch, Delay: delay},
		scopeOf(c).url("/AggregationService/Actions/"+aggregationReset), body)
}

// startBulk creates the parent task and answers 202 with its monitor, as
// a single Reset does.
func (s *Server) startBulk(c echo.Context, req serializer.BulkRequest, target string, body []byte) error {
	if s.bulk == nil {
		return unavailable(5, "bulk power is not enabled on this gateway")
	}
	p := principalOf(c)
	req.Req = "user=" + p.User + " remote=" + c.RealIP()
	ctx, cancel := withTimeout(c)
	defer cancel()
	rec, err := s.bulk.Create(ctx, req)
	if err != nil {
		return unavailable(2, err.Error())
	}
	s.log.Info("bulk reset admitted", "task", rec.ID, "reset", req.Reset, "nodes", rec.Total, "batch", req.BatchSize, "delay", req.Delay, "user", p.User)
	s.audit(ctx, auditOf(c, "bulk-reset", target, "accepted "+rec.ID).with(fmt.Sprintf("ResetType=%s nodes=%d BatchSize=%d Delay=%s", req.Reset, rec.Total, req.BatchSize, req.Delay)))
	sc := scopeOf(c)
	c.Response().Header().Set("Location", sc.url("/TaskService/TaskMonitors/"+rec.ID))
	return send(c, http.StatusAccepted, renderBulk(sc, rec, target, string(body)))
}

// bulkTask loads the parent named by :task (only in the aggregate view,
// and for accounts that see every node: it speaks for all of them).
func (s *Server) bulkTask(c echo.Context) (serializer.BulkRecord, error) {
	id := c.Param("task")
	sc := scopeOf(c)
	if s.bulk == nil || sc.node != "" || !serializer.IsBulkID(id) {
		return serializer.BulkRecord{}, notFound("Task", id)
	}
	rec, err := s.bulk.Get(c.Request().Context(), id)
	if errors.Is(err, serializer.ErrBulkNotFound) {
		return rec, notFound("Task", id)
	}
	if err != nil {
		return rec, unavailable(2, err.Error())
	}
	if len(principalOf(c).Nodes) > 0 {
		nodes, _, err := s.bulk.Nodes(c.Request().Context(), id, 0, 0)
		if err != nil {
			return rec, unavailable(2, err.Error())
		}
		for _, n := range nodes {
			if !sc.visible(n) {
				return rec, notFound("Task", id)
			}
		}
	}
	return rec, nil
}

// bulkTarget is the action a parent task came from.
func bulkTarget(sc scope, rec serializer.BulkRecord) string {
	if rec.Aggregate != "" {
		return sc.url("/AggregationService/Aggregates/" + rec.Aggregate + "/Actions/" + aggregateReset)
	}
	return sc.url("/AggregationService/Actions/" + aggregationReset)
}

// bulkBody is the request body a parent task shows in its Payload.
func bulkBody(rec serializer.BulkRecord) string {
	m := map[string]any{"ResetType": rec.Reset}
	if rec.BatchSize > 0 {
		m["BatchSize"] = rec.BatchSize
	}
	if rec.Delay > 0 {
		m["DelayBetweenBatchesInSeconds"] = int(rec.Delay / time.Second)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func timeOf(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func renderBulk(sc scope, rec serializer.BulkRecord, target, body string) schemas.Task {
	if target == "" {
		target = bulkTarget(sc, rec)
	}
	if body == "" {
		body = bulkBody(rec)
	}
	msgs := []schemas.Message{}
	if !rec.Start.IsZero() {
		msgs = append(msgs, schemas.TaskEvent(schemas.MsgTaskStarted, rec.ID))
	}
	progress := schemas.TaskEvent(schemas.MsgTaskProgressChanged, rec.ID, strconv.Itoa(rec.Percent()))
	progress.Message += fmt.Sprintf(" %d of %d nodes done (%d completed, %d failed, %d cancelled); %d batches begun.",
		rec.Done, rec.Total, rec.Completed, rec.Failed, rec.Cancelled, rec.Batches)
	msgs = append(msgs, progress)
	if key, ok := rec.State.EndMessage(rec.Status); ok {
		final := schemas.TaskEvent(key, rec.ID)
		final.Message += " " + rec.Reason
		msgs = append(msgs, final)
	}
	name := fmt.Sprintf("Reset %d nodes %s", rec.Total, rec.Reset)
	if rec.Aggregate != "" {
		name = "Reset aggregate " + rec.Aggregate + " " + string(rec.Reset)
	}
	return schemas.Task{
		Resource:        schemas.Resource{ODataID: sc.url("/TaskService/Tasks/" + rec.ID), ODataType: schemas.TypeTask, ID: rec.ID, Name: name},
		TaskState:       rec.State,
		TaskStatus:      taskStatus(rec.Status),
		StartTime:       timeOf(rec.Start),
		EndTime:         timeOf(rec.End),
		PercentComplete: rec.Percent(),
		TaskMonitor:     sc.url("/TaskService/TaskMonitors/" + rec.ID),
		Messages:        msgs,
		Payload:         schemas.TaskPayload{HTTPOperation: "POST", TargetURI: target, JSONBody: body, HTTPHeaders: []string{}},
		SubTasks:        &schemas.Link{ODataID: sc.url("/TaskService/Tasks/" + rec.ID + "/SubTasks")},
		Oem: map[string]any{"Fishgate": map[string]any{
			"ResetType": rec.Reset, "Nodes": rec.Total, "Done": rec.Done, "Completed": rec.Completed,
			"Failed": rec.Failed, "Cancelled": rec.Cancelled, "BatchesBegun": rec.Batches,
			"BatchSize": rec.BatchSize, "DelayBetweenBatchesInSeconds": int(rec.Delay / time.Second),
			"CreatedTime": timeOf(rec.Created),
		}},
	}
}

// bulkAllow is the Allow header of a parent task (taskAllow's rules).
func bulkAllow(rec serializer.BulkRecord) string {
	if rec.Terminal() {
		return http.MethodGet
	}
	return http.MethodDelete
}

func (s *Server) getBulkTask(c echo.Context, monitor bool) error {
	rec, err := s.bulkTask(c)
	if err != nil {
		return err
	}
	sc := scopeOf(c)
	c.Response().Header().Set("Allow", bulkAllow(rec))
	if monitor && !rec.Terminal() {
		c.Response().Header().Set("Location", sc.url("/TaskService/TaskMonitors/"+rec.ID))
		c.Response().Header().Set("Retry-After", "1")
		return send(c, http.StatusAccepted, renderBulk(sc, rec, "", ""))
	}
	return send(c, http.StatusOK, renderBulk(sc, rec, "", ""))
}

// deleteBulkTask cancels what has not started of a parent: nodes whose
// batch has not come end Cancelled at once, admitted node tasks still
// waiting are cancelled by the driver, running ones end on their own.
func (s *Server) deleteBulkTask(c echo.Context) error {
	if err := canOperate(c); err != nil {
		return err
	}
	rec, err := s.bulkTask(c)
	if err != nil {
		return err
	}
	res, err := s.bulk.Cancel(c.Request().Context(), rec.ID)
	if errors.Is(err, serializer.ErrBulkNotFound) {
		return notFound("Task", rec.ID)
	}
	if err != nil {
		return unavailable(2, err.Error())
	}
	if res == serializer.BulkCancelFinished {
		return newError(http.StatusConflict, schemas.Base(schemas.MsgResourceCannotBeDeleted)).
			withDetail("task " + rec.ID + " has already finished (" + string(rec.State) + "); only a waiting or running task can be cancelled")
	}
	s.audit(c.Request().Context(), auditOf(c, "bulk-cancel", rec.ID, string(res)))
	if rec, err = s.bulkTask(c); err != nil {
		return err
	}
	return send(c, http.StatusOK, renderBulk(scopeOf(c), rec, "", ""))
}

// subTaskPage is how many sub-tasks a page of a SubTasks collection holds.
const subTaskPage = 1000

// pagedCollection is a collection page: Members@odata.count counts them
// all, Members@odata.nextLink names the next page (DSP0266 §7.3.4).
type pagedCollection struct {
	schemas.Collection
	NextLink string `json:"Members@odata.nextLink,omitempty"`
}

// getSubTasks lists a parent's sub-tasks in batch order, subTaskPage at a
// time ($skiptoken: the position of the first).
func (s *Server) getSubTasks(c echo.Context) error {
	rec, err := s.bulkTask(c)
	if err != nil {
		return err
	}
	skip := 0
	if tok := c.QueryParam("$skiptoken"); tok != "" {
		if skip, err = strconv.Atoi(tok); err != nil || skip < 0 {
			return newError(http.StatusBadRequest, schemas.Base(schemas.MsgQueryParameterValueFormatError, tok, "$skiptoken"))
		}
	}
	nodes, total, err := s.bulk.Nodes(c.Request().Context(), rec.ID, skip, subTaskPage)
	if err != nil {
		return unavailable(2, err.Error())
	}
	sc := scopeOf(c)
	base := sc.url("/TaskService/Tasks/" + rec.ID + "/SubTasks")
	m := make([]schemas.Link, len(nodes))
	for i, n := range nodes {
		m[i] = schemas.Link{ODataID: base + "/" + n}
	}
	page := pagedCollection{Collection: schemas.NewCollection(base, schemas.TypeTaskColl, "Sub-tasks of "+rec.ID, m)}
	page.MembersCount = total
	if skip+len(nodes) < total {
		page.NextLink = base + "?$skiptoken=" + strconv.Itoa(skip+len(nodes))
	}
	return send(c, http.StatusOK, page)
}

func (s *Server) getSubTask(c echo.Context) error {
	rec, err := s.bulkTask(c)
	if err != nil {
		return err
	}
	node := c.Param("sub")
	st, err := s.bulk.Sub(c.Request().Context(), rec.ID, node)
	if errors.Is(err, serializer.ErrBulkNotFound) {
		return notFound("Task", rec.ID+"/SubTasks/"+node)
	}
	if err != nil {
		return unavailable(2, err.Error())
	}
	return send(c, http.StatusOK, renderSubTask(scopeOf(c), rec, st))
}

// renderSubTask is a node's part of a parent: the node's own task (its
// messages, percent and times) once admitted, else where it waits or why
// it did not take part.
func renderSubTask(sc scope, rec serializer.BulkRecord, st serializer.SubTask) schemas.Task {
	id := sc.url("/TaskService/Tasks/" + rec.ID + "/SubTasks/" + st.Node)
	sys := sc.url("/Systems/" + st.Node)
	var t schemas.Task
	if st.Record != nil {
		t = renderTask(sc, *st.Record)
		t.Oem["Fishgate"].(map[string]any)["NodeTask"] = schemas.Link{ODataID: sc.url("/TaskService/Tasks/" + st.Task)}
		t.Oem["Fishgate"].(map[string]any)["Admission"] = st.Outcome
	} else {
		t = schemas.Task{
			TaskMonitor: sc.url("/TaskService/TaskMonitors/" + rec.ID),
			Messages:    []schemas.Message{},
			Payload: schemas.TaskPayload{HTTPOperation: "POST", TargetURI: sys + "/Actions/" + resetAction,
				JSONBody: `{"ResetType":"` + string(rec.Reset) + `"}`, HTTPHeaders: []string{}},
			Oem: map[string]any{"Fishgate": map[string]any{"System": schemas.Link{ODataID: sys}, "ResetType": rec.Reset}},
		}
		if st.State.Terminal() {
			t.PercentComplete = 100
		}
	}
	t.Resource = schemas.Resource{ODataID: id, ODataType: schemas.TypeTask, ID: st.Node,
		Name: "Reset " + st.Node + " " + string(rec.Reset) + " (" + rec.ID + ")"}
	t.TaskState, t.TaskStatus = st.State, taskStatus(st.Status)
	t.Oem["Fishgate"].(map[string]any)["Batch"] = st.Batch + 1
	if st.Reason != "" {
		t.Oem["Fishgate"].(map[string]any)["Reason"] = st.Reason
	}
	if st.Record == nil && st.Reason != "" {
		key := schemas.MsgTaskProgressChanged
		switch st.State {
		case schemas.TaskStateException:
			key = schemas.MsgTaskAborted
		case schemas.TaskStateCancelled:
			key = schemas.MsgTaskCancelled
		}
		var m schemas.Message
		if key == schemas.MsgTaskProgressChanged {
			m = schemas.TaskEvent(key, st.Node, "0")
		} else {
			m = schemas.TaskEvent(key, st.Node)
		}
		m.Message += " " + st.Reason
		m.Resolution = st.Reason
		t.Messages = append(t.Messages, m)
	}
	return t
}

// bulkTaskLinks are the Tasks collection's members that are parent tasks
// (the newest serializer.BulkKeep), for accounts that see every node in
// the aggregate view.
func (s *Server) bulkTaskLinks(c echo.Context) []schemas.Link {
	sc := scopeOf(c)
	if s.bulk == nil || sc.node != "" || len(principalOf(c).Nodes) > 0 {
		return nil
	}
	ids, err := s.bulk.IDs(c.Request().Context(), serializer.BulkKeep)
	if err != nil {
		s.log.Warn("bulk tasks not listed", "err", err)
		return nil
	}
	m := make([]schemas.Link, 0, len(ids))
	for _, id := range ids {
		m = append(m, schemas.Link{ODataID: sc.url("/TaskService/Tasks/" + id)})
	}
	return m
}
