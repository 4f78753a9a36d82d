package redfish

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
)

const resetAction = "ComputerSystem.Reset"

// defaultBootTargets are offered when the BMC did not say which it supports.
var defaultBootTargets = []string{"None", "Pxe", "Hdd", "Cd", "BiosSetup", "Usb"}

// getSystems serves the Systems collection a page at a time. With
// $expand (below) the page's members are the Systems themselves, so that
// a client that shows the whole fleet (the operator page, fronts/ui) reads
// 1,000 nodes in one request instead of in 1,000.
func (s *Server) getSystems(c echo.Context) error {
	sc := scopeOf(c)
	p, err := pageOf(c)
	if err != nil {
		return err
	}
	expand, err := expandOf(c)
	if err != nil {
		return err
	}
	ids := sc.nodeIDs(s.nodes)
	total := len(ids)
	ids = ids[min(p.skip, total):min(p.skip+p.top, total)]
	m := make([]schemas.Link, 0, len(ids))
	for _, id := range ids {
		m = append(m, schemas.Link{ODataID: sc.url("/Systems/" + id)})
	}
	coll := p.collection(sc.url("/Systems"), schemas.TypeComputerSystemColl, "Computer System Collection", m, total)
	if expand == "" {
		return send(c, http.StatusOK, coll)
	}
	if coll.NextLink != "" {
		coll.NextLink += "&$expand=" + url.QueryEscape(expand)
	}
	systems := make([]schemas.ComputerSystem, 0, len(ids))
	for _, id := range ids {
		if v, err := s.nodes.View(id); err == nil { // one removed meanwhile is left out
			systems = append(systems, s.renderSystem(sc, v))
		}
	}
	return send(c, http.StatusOK, expandedCollection{Collection: coll, Members: systems})
}

// expandedCollection is a collection page whose members are inline.
type expandedCollection struct {
	schemas.Collection
	Members []schemas.ComputerSystem `json:"Members"`
}

// expandOf reads $expand (DSP0266 §7.3.3) of the Systems collection: "."
// or "*", optionally with $levels=1, expands the members (a System's own
// links are to its Manager, Chassis and logs, which are not expanded).
// Deeper levels answer 501; anything else 400. It returns "" when the
// request does not ask for expansion.
func expandOf(c echo.Context) (string, error) {
	raw := c.QueryParam("$expand")
	if raw == "" {
		return "", nil
	}
	what, levels, hasLevels := strings.Cut(raw, "(")
	if what != "." && what != "*" {
		return "", newError(http.StatusBadRequest, schemas.Base(schemas.MsgQueryParameterValueFormatError, raw, "$expand")).
			withDetail("$expand must be . or *, optionally with ($levels=1)")
	}
	if hasLevels {
		n, ok := strings.CutPrefix(strings.TrimSuffix(levels, ")"), "$levels=")
		l, err := strconv.Atoi(n)
		if !ok || !strings.HasSuffix(levels, ")") || err != nil || l < 1 {
			return "", newError(http.StatusBadRequest, schemas.Base(schemas.MsgQueryParameterValueFormatError, raw, "$expand")).
				withDetail("$expand: $levels must be a positive integer, as in .($levels=1)")
		}
		if l > 1 {
			return "", newError(http.StatusNotImplemented, schemas.Base(schemas.MsgQueryNotSupported)).
				withDetail("$expand: only one level ($levels=1) is supported")
		}
	}
	return raw, nil
}

func powerPtr(p schemas.PowerState) *schemas.PowerState {
	if p == schemas.PowerUnknown {
		return nil
	}
	return &p
}

func bootTargets(v serializer.View) []string {
	if len(v.Caps.BootTargets) > 0 {
		return v.Caps.BootTargets
	}
	return defaultBootTargets
}

func bootModes(v serializer.View) []string {
	if len(v.Caps.BootModes) > 0 {
		return v.Caps.BootModes
	}
	return schemas.BootModes
}

// resetTypes is what the Reset action advertises: what the node's BMC
// supports (sushy refuses client-side anything not listed).
func resetTypes(v serializer.View) []schemas.ResetType {
	if v.CapsKnown {
		return v.Caps.ResetTypes
	}
	return []schemas.ResetType{}
}

func (s *Server) renderSystem(sc scope, v serializer.View) schemas.ComputerSystem {
	boot := schemas.Boot{
		BootSourceOverrideTarget:         v.Boot.Target,
		BootSourceOverrideTargetAllowed:  bootTargets(v),
		BootSourceOverrideEnabled:        v.Boot.Enabled,
		BootSourceOverrideEnabledAllowed: schemas.BootEnabledValues,
		BootSourceOverrideMode:           v.Boot.Mode,
		BootSourceOverrideModeAllowed:    bootModes(v),
	}
	if boot.BootSourceOverrideTarget == "" {
		boot.BootSourceOverrideTarget = "None"
	}
	if boot.BootSourceOverrideEnabled == "" {
		boot.BootSourceOverrideEnabled = "Disabled"
	}
	sys := schemas.ComputerSystem{
		Resource:    schemas.Resource{ODataID: sc.url("/Systems/" + v.ID), ODataType: schemas.TypeComputerSystem, ID: v.ID, Name: v.Name},
		SystemType:  "Physical",
		PowerState:  powerPtr(v.PowerState),
		Boot:        boot,
		Status:      schemas.Status{State: "Enabled", Health: systemHealth(v)},
		LogServices: &schemas.Link{ODataID: sc.url("/Systems/" + v.ID + "/LogServices")},
		Links: schemas.SystemLinks{
			ManagedBy: []schemas.Link{{ODataID: sc.url("/Managers/" + v.ID)}},
			Chassis:   []schemas.Link{{ODataID: sc.url("/Chassis/" + v.ID)}},
		},
		Actions: schemas.SystemActions{Reset: schemas.ResetAction{
			Target:          sc.url("/Systems/" + v.ID + "/Actions/" + resetAction),
			AllowableResets: resetTypes(v),
		}},
	}
	oem := renderNodeState(sc, v)
	if a := s.nodeAddress(v.ID); a != "" {
		oem["BmcAddress"] = a
	}
	sys.Oem = map[string]any{"Fishgate": oem}
	return sys
}

func (s *Server) getSystem(c echo.Context) error {
	v, err := s.view(c, "ComputerSystem")
	if err != nil {
		return err
	}
	return sendTagged(c, http.StatusOK, s.renderSystem(scopeOf(c), v), s.systemETag(v))
}

// systemPatch is the writable part of a ComputerSystem.
type systemPatch struct {
	Boot *struct {
		BootSourceOverrideTarget  *string `json:"BootSourceOverrideTarget"`
		BootSourceOverrideEnabled *string `json:"BootSourceOverrideEnabled"`
		BootSourceOverrideMode    *string `json:"BootSourceOverrideMode"`
	} `json:"Boot"`
}

func (s *Server) patchSystem(c echo.Context) error {
	if err := canOperate(c); err != nil {
		return err
	}
	v, err := s.view(c, "ComputerSystem")
	if err != nil {
		return err
	}
	sc := scopeOf(c)
	body, err := readBody(c, s.maxBody)
	if err != nil {
		return err
	}
	var p systemPatch
	if err := decodeStrict(body, &p, decodeKind{patch: true}); err != nil {
		return err
	}
	if err := ifMatch(c, s.systemETag(v)); err != nil {
		return err
	}
	if p.Boot == nil {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyMissing, "Boot"))
	}
	// Until the BMC has been read, what it accepts is not known: a value
	// outside the Redfish enums is still the client's mistake (400), any
	// other has to wait (503).
	targets, modes := bootTargets(v), bootModes(v)
	if !v.CapsKnown {
		targets, modes = schemas.BootTargets, schemas.BootModes
	}
	var b schemas.BootOverride
	check := func(val *string, name string, allowed []string, dst *string) error {
		if val == nil {
			return nil
		}
		if !slices.Contains(allowed, *val) {
			return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyValueNotInList, *val, name))
		}
		*dst = *val
		return nil
	}
	if err := errors.Join(
		check(p.Boot.BootSourceOverrideTarget, "BootSourceOverrideTarget", targets, &b.Target),
		check(p.Boot.BootSourceOverrideEnabled, "BootSourceOverrideEnabled", schemas.BootEnabledValues, &b.Enabled),
		check(p.Boot.BootSourceOverrideMode, "BootSourceOverrideMode", modes, &b.Mode),
	); err != nil {
		var ae *apiError
		errors.As(err, &ae)
		return ae
	}
	if b == (schemas.BootOverride{}) {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyMissing, "Boot/BootSourceOverrideTarget"))
	}
	if !v.CapsKnown {
		return capsUnknown(v, "a boot override")
	}
	ctx, cancel := withTimeout(c)
	defer cancel()
	if err := s.nodes.SetBoot(ctx, v.ID, b); err != nil {
		s.audit(ctx, auditOf(c, "boot", v.ID, "failed").with(err.Error()))
		return s.nodeError(c.Request().Context(), err, v.ID)
	}
	s.audit(ctx, auditOf(c, "boot", v.ID, "applied").with(fmt.Sprintf("target=%s enabled=%s mode=%s", b.Target, b.Enabled, b.Mode)))
	v, err = s.nodes.View(v.ID)
	if err != nil {
		return notFound("ComputerSystem", v.ID)
	}
	return sendTagged(c, http.StatusOK, s.renderSystem(sc, v), s.systemETag(v))
}

func (s *Server) postReset(c echo.Context) error {
	if err := canOperate(c); err != nil {
		return err
	}
	v, err := s.view(c, "ComputerSystem")
	if err != nil {
		return err
	}
	body, err := readBody(c, s.maxBody)
	if err != nil {
		return err
	}
	var p struct {
		ResetType *string `json:"ResetType"`
	}
	if err := decodeStrict(body, &p, decodeKind{action: resetAction}); err != nil {
		return err
	}
	if p.ResetType == nil {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterMissing, resetAction, "ResetType"))
	}
	rt, err := schemas.ParseResetType(*p.ResetType)
	if err != nil {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterValueNotInList, *p.ResetType, "ResetType", resetAction))
	}
	if !v.CapsKnown {
		return capsUnknown(v, "a power action")
	}
	if !slices.Contains(resetTypes(v), rt) {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterValueNotInList, *p.ResetType, "ResetType", resetAction))
	}
	ctx, cancel := withTimeout(c)
	defer cancel()
	p0 := principalOf(c)
	a, err := s.nodes.Reset(ctx, v.ID, rt, "user="+p0.User+" remote="+c.RealIP()+" agent="+c.Request().UserAgent())
	if err != nil {
		if errors.Is(err, serializer.ErrUnsupportedReset) {
			return newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterValueNotInList, *p.ResetType, "ResetType", resetAction))
		}
		return s.nodeError(c.Request().Context(), err, v.ID)
	}
	s.log.InfoContext(c.Request().Context(), "reset admitted", "node", v.ID, "reset", rt, "outcome", a.Outcome, "task", a.Task, "refusal", a.Refusal, "user", p0.User)
	outcome := string(a.Outcome) + " " + a.Task
	if a.Outcome == serializer.Refused {
		outcome = "refused: " + string(a.Refusal)
	}
	s.audit(ctx, auditOf(c, "reset", v.ID, outcome).with("ResetType="+string(rt)))
	switch a.Refusal {
	case serializer.RefusedBusy:
		return newError(http.StatusConflict, schemas.Base(schemas.MsgResourceInUse), schemas.Base(schemas.MsgActionParameterValueConflict, "ResetType", string(rt))).
			withDetail("node " + v.ID + " is busy with another power action and its policy refuses a different one; retry when it is done")
	case serializer.RefusedFlipFlop:
		secs := max(1, int((a.RetryAfter+time.Second-1)/time.Second))
		e := newError(http.StatusTooManyRequests, schemas.Base(schemas.MsgResourceInUse)).
			withDetail("node " + v.ID + " has had too many conflicting power changes in a short time (flip-flop guard); retry in " + strconv.Itoa(secs) + " s")
		e.retryAfter = secs
		return e
	case serializer.RefusedQueueFull:
		e := newError(http.StatusTooManyRequests, schemas.Base(schemas.MsgResourceInUse)).withDetail("node " + v.ID + " has a full queue of power actions")
		e.retryAfter = 5
		return e
	}
	t, err := s.nodes.Task(ctx, a.Task)
	if err != nil {
		return unavailable(2, err.Error())
	}
	sc := scopeOf(c)
	c.Response().Header().Set("Location", sc.url("/TaskService/TaskMonitors/"+a.Task))
	return send(c, http.StatusAccepted, renderTask(sc, t))
}

// capsRetryAfter is the Retry-After, in seconds, of a request refused
// because the node's BMC has not been read yet: the power sync reads such a
// node again at each sweep.
const capsRetryAfter = 10

// capsUnknown is the answer to a request the node cannot take before the
// gateway has read its BMC (unreachable since start-up, login failing, ...):
// 503 naming the BMC's problem, never a 400 that blames the client. The
// problem is in the message of the MessageId too.
func capsUnknown(v serializer.View, what string) *apiError {
	why := v.LastError
	if why == "" {
		why = "not read yet"
	}
	return unavailableBecause(capsRetryAfter, fmt.Sprintf(
		"node %s: the gateway has not been able to read its BMC yet (%s), so it cannot take %s; retry in %d s",
		v.ID, why, what, capsRetryAfter))
}

// nodeError maps a serializer error to a Redfish error: the BMC failing is
// a 502 with its text, never a 500.
func (s *Server) nodeError(ctx context.Context, err error, id string) error {
	switch {
	case errors.Is(err, serializer.ErrNodeNotFound):
		return notFound("ComputerSystem", id)
	case errors.Is(err, serializer.ErrUnavailable):
		return unavailable(2, err.Error())
	case errors.Is(err, serializer.ErrBMC):
		s.log.WarnContext(ctx, "BMC call failed", "node", id, "err", err)
		return newError(http.StatusBadGateway, schemas.Base(schemas.MsgGeneralError)).withDetail(err.Error())
	}
	return unavailable(5, err.Error())
}

func (s *Server) getManagers(c echo.Context) error {
	sc := scopeOf(c)
	var m []schemas.Link
	for _, id := range sc.nodeIDs(s.nodes) {
		m = append(m, schemas.Link{ODataID: sc.url("/Managers/" + id)})
	}
	if sc.node == "" {
		// the gateway's own Manager (its audit log)
		m = append(m, schemas.Link{ODataID: sc.url("/Managers/" + GatewayManager)})
	}
	return send(c, http.StatusOK, schemas.NewCollection(sc.url("/Managers"), schemas.TypeManagerColl, "Manager Collection", m))
}

func (s *Server) getManager(c echo.Context) error {
	v, err := s.view(c, "Manager")
	if err != nil {
		return err
	}
	sc := scopeOf(c)
	return send(c, http.StatusOK, schemas.Manager{
		Resource:    schemas.Resource{ODataID: sc.url("/Managers/" + v.ID), ODataType: schemas.TypeManager, ID: v.ID, Name: "BMC of " + v.Name},
		ManagerType: "BMC",
		Status:      schemas.Status{State: "Enabled", Health: v.Health},
		Links: schemas.ManagerLinks{
			ManagerForServers: []schemas.Link{{ODataID: sc.url("/Systems/" + v.ID)}},
			ManagerForChassis: []schemas.Link{{ODataID: sc.url("/Chassis/" + v.ID)}},
		},
		Oem: s.managerOem(v.ID),
	})
}

func (s *Server) getChassisCollection(c echo.Context) error {
	sc := scopeOf(c)
	var m []schemas.Link
	for _, id := range sc.nodeIDs(s.nodes) {
		m = append(m, schemas.Link{ODataID: sc.url("/Chassis/" + id)})
	}
	return send(c, http.StatusOK, schemas.NewCollection(sc.url("/Chassis"), schemas.TypeChassisColl, "Chassis Collection", m))
}

func (s *Server) getChassis(c echo.Context) error {
	v, err := s.view(c, "Chassis")
	if err != nil {
		return err
	}
	sc := scopeOf(c)
	return send(c, http.StatusOK, schemas.Chassis{
		Resource:    schemas.Resource{ODataID: sc.url("/Chassis/" + v.ID), ODataType: schemas.TypeChassis, ID: v.ID, Name: "Chassis of " + v.Name},
		ChassisType: "RackMount",
		PowerState:  powerPtr(v.PowerState),
		Status:      schemas.Status{State: "Enabled", Health: v.Health},
		Links: schemas.ChassisLinks{
			ComputerSystems: []schemas.Link{{ODataID: sc.url("/Systems/" + v.ID)}},
			ManagedBy:       []schemas.Link{{ODataID: sc.url("/Managers/" + v.ID)}},
		},
	})
}

// renderNodeState is the Oem.Fishgate extension of a System: why a request
// waits (docs/architecture.md#admission): desired state, the running and
// the queued actions.
func renderNodeState(sc scope, v serializer.View) map[string]any {
	st := v.State
	m := map[string]any{"DesiredPowerState": nil, "RunningTask": nil, "QueuedTasks": []schemas.Link{}}
	if v.Kind != "" {
		m["BackendKind"] = v.Kind // the BMC's protocol: redfish, ipmi or amt
	}
	if v.CapsKnown {
		// per offered ResetType: "native", or how it is emulated
		m["ResetTypes"] = v.Emulation
	}
	if st.Desired != "" {
		m["DesiredPowerState"] = st.Desired
	}
	if st.Slots.Now.Task != "" {
		m["RunningTask"] = map[string]any{"@odata.id": sc.url("/TaskService/Tasks/" + st.Slots.Now.Task), "ResetType": st.Slots.Now.Type, "Cancelling": st.Slots.Cancelling}
	}
	var q []schemas.Link
	for _, w := range st.Slots.Waiting {
		q = append(q, schemas.Link{ODataID: sc.url("/TaskService/Tasks/" + w.Task)})
	}
	if q != nil {
		m["QueuedTasks"] = q
	}
	if v.LastError != "" {
		m["LastError"] = v.LastError
	}
	if st.FailedTask != "" {
		m["LastFailedAction"] = map[string]any{
			"Task":    schemas.Link{ODataID: sc.url("/TaskService/Tasks/" + st.FailedTask)},
			"Message": st.FailedReason,
			"Time":    st.FailedAt.UTC().Format(time.RFC3339),
		}
	}
	return m
}

// systemHealth is the System's Status.Health: the BMC's reachability, and
// Warning while the node's last power action failed (until one completes).
func systemHealth(v serializer.View) string {
	if v.Health == "OK" && v.State.FailedTask != "" {
		return "Warning"
	}
	return v.Health
}

// systemETag is the System's ETag (DSP0266 §7.10): it covers what a client
// reads and writes (power state, boot override, health, offered resets), not
// the volatile Oem.Fishgate bookkeeping of the serializer, so that a task
// finishing between a client's GET and its If-Match PATCH (MAAS, gofish,
// Ironic do this around every power action) does not cause a 412.
func (s *Server) systemETag(v serializer.View) string {
	h := xxhash.New()
	h.WriteString(s.nodeAddress(v.ID))
	for _, s := range []string{v.ID, v.Name, string(v.PowerState), v.Boot.Target, v.Boot.Enabled, v.Boot.Mode, systemHealth(v), v.LastError} {
		h.WriteString(s)
		h.WriteString("\x00")
	}
	for _, r := range v.Caps.ResetTypes {
		h.WriteString(string(r))
	}
	for _, t := range v.Caps.BootTargets {
		h.WriteString(t)
	}
	return fmt.Sprintf(`W/"%016x"`, h.Sum64())
}
