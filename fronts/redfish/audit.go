package redfish

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
)

// The audit log (issue 10): every power action, boot change, pass-through
// write, account change, login success and failure, with the user, the
// session, the client's address (the socket's, or what a trusted proxy
// says), the front (Redfish or IPMI) and the outcome. It is one Redis
// stream shared by the replicas, served as the gateway manager's Audit
// LogService; each node's power actions are served from its command log
// (the serializer's) as the System's PowerActions LogService.

const (
	auditStream = "fg:{audit}:stream"
	auditMaxLen = 100000
	// GatewayManager is the Manager id of the gateway itself.
	GatewayManager = "fishgate"
	logPageSize    = 100
)

// AuditEntry is one audited event.
type AuditEntry struct {
	Action  string // login, login-failed, reset, boot, passthrough-write, account-create, ...
	User    string
	Session string
	Remote  string
	Front   string // Redfish or IPMI
	Target  string // URI or node
	Outcome string // what happened: "202 started", "401", ...
	Detail  string
}

// audit records e; a Redis failure is logged, never fails the request.
func (s *Server) audit(ctx context.Context, e AuditEntry) {
	if e.Front == "" {
		e.Front = "Redfish"
	}
	err := s.redis.XAdd(ctx, &redis.XAddArgs{Stream: auditStream, MaxLen: auditMaxLen, Approx: true, Values: []any{
		"action", e.Action, "user", e.User, "session", e.Session, "remote", e.Remote, "front", e.Front,
		"target", e.Target, "outcome", e.Outcome, "detail", e.Detail,
	}}).Err()
	if err != nil {
		s.log.WarnContext(ctx, "audit record not written", "err", err, "action", e.Action, "user", e.User)
	}
}

// with adds a detail.
func (e AuditEntry) with(detail string) AuditEntry {
	e.Detail = detail
	return e
}

// auditOf fills an AuditEntry with who made request c.
func auditOf(c echo.Context, action, target, outcome string) AuditEntry {
	p := principalOf(c)
	return AuditEntry{Action: action, User: p.User, Session: p.Session, Remote: c.RealIP(), Target: target, Outcome: outcome}
}

// canReadAudit: the audit log is the gateway's (ConfigureManager).
func canReadAudit(c echo.Context) error { return requireRole(c, RoleAdministrator) }

func (s *Server) getGatewayLogServices(c echo.Context) error {
	if err := canReadAudit(c); err != nil {
		return err
	}
	sc := scopeOf(c)
	base := sc.url("/Managers/" + GatewayManager + "/LogServices")
	return send(c, http.StatusOK, schemas.NewCollection(base, schemas.TypeLogServiceColl, "Log Services", []schemas.Link{{ODataID: base + "/Audit"}}))
}

func (s *Server) getAuditService(c echo.Context) error {
	if err := canReadAudit(c); err != nil {
		return err
	}
	base := scopeOf(c).url("/Managers/" + GatewayManager + "/LogServices/Audit")
	return send(c, http.StatusOK, schemas.NewLogService(base, "Audit", "Audit log: logins, power actions, boot changes, pass-through writes, account changes"))
}

// getAuditEntries serves the audit stream newest first, a page at a time
// (Members@odata.nextLink with $skiptoken = the last entry's id).
func (s *Server) getAuditEntries(c echo.Context) error {
	if err := canReadAudit(c); err != nil {
		return err
	}
	base := scopeOf(c).url("/Managers/" + GatewayManager + "/LogServices/Audit/Entries")
	return s.serveLogPage(c, auditStream, base, auditEntry)
}

// serveLogPage serves a stream newest first, a page at a time
// (Members@odata.nextLink with $skiptoken = the last entry's id).
func (s *Server) serveLogPage(c echo.Context, stream, base string, render func(string, redis.XMessage) schemas.LogEntry) error {
	from := "+"
	if tok := c.QueryParam("$skiptoken"); tok != "" {
		from = "(" + tok
	}
	xs, total, err := s.logPage(c.Request().Context(), stream, from)
	if err != nil {
		return unavailable(2, "log unavailable")
	}
	return sendLogPage(c, base, xs, total, render)
}

// sendLogPage answers a page of entries of a log of total; a full page
// links the next one by its last entry's id.
func sendLogPage(c echo.Context, base string, xs []redis.XMessage, total int, render func(string, redis.XMessage) schemas.LogEntry) error {
	members := make([]schemas.LogEntry, 0, len(xs))
	for _, x := range xs {
		members = append(members, render(base, x))
	}
	next := ""
	if len(xs) == logPageSize {
		next = base + "?$skiptoken=" + xs[len(xs)-1].ID
	}
	return send(c, http.StatusOK, schemas.NewLogEntryCollection(base, members, total, next))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func auditSeverity(action, outcome string) string {
	if action == "login-failed" || (len(outcome) > 0 && outcome[0] == '4') {
		return "Warning"
	}
	return "OK"
}

// streamTime is the time of a Redis stream entry id ("<ms>-<seq>").
func streamTime(id string) time.Time {
	for i := 0; i < len(id); i++ {
		if id[i] == '-' {
			ms, _ := strconv.ParseInt(id[:i], 10, 64)
			return time.UnixMilli(ms).UTC()
		}
	}
	return time.Time{}
}

// PowerActions LogService of a System: its command log.

func (s *Server) getSystemLogServices(c echo.Context) error {
	v, err := s.view(c, "ComputerSystem")
	if err != nil {
		return err
	}
	base := scopeOf(c).url("/Systems/" + v.ID + "/LogServices")
	return send(c, http.StatusOK, schemas.NewCollection(base, schemas.TypeLogServiceColl, "Log Services", []schemas.Link{{ODataID: base + "/PowerActions"}}))
}

func (s *Server) getPowerActionsService(c echo.Context) error {
	v, err := s.view(c, "ComputerSystem")
	if err != nil {
		return err
	}
	base := scopeOf(c).url("/Systems/" + v.ID + "/LogServices/PowerActions")
	return send(c, http.StatusOK, schemas.NewLogService(base, "PowerActions", "Power actions of "+v.ID+": requests (who, from where), admissions and the commands sent to its BMC"))
}

func (s *Server) getPowerActionEntries(c echo.Context) error {
	v, err := s.view(c, "ComputerSystem")
	if err != nil {
		return err
	}
	base := scopeOf(c).url("/Systems/" + v.ID + "/LogServices/PowerActions/Entries")
	xs, err := serializer.NewStore(s.redis).LogEntries(c.Request().Context(), v.ID)
	if err != nil {
		return unavailable(2, "log unavailable")
	}
	total := len(xs)
	if tok := c.QueryParam("$skiptoken"); tok != "" {
		// The page after entry tok: the log is short (serializer.LogMax).
		i := slices.IndexFunc(xs, func(x redis.XMessage) bool { return x.ID == tok })
		xs = xs[i+1:] // an entry gone from the log (-1) starts again from the newest
	}
	return sendLogPage(c, base, xs[:min(len(xs), logPageSize)], total, powerEntry)
}

// getGatewayManager is the gateway's own Manager: it holds the Audit log.
func (s *Server) getGatewayManager(c echo.Context) error {
	sc := scopeOf(c)
	if sc.node != "" {
		return notFound("Manager", GatewayManager)
	}
	return send(c, http.StatusOK, schemas.GatewayManager(sc.url("/Managers/"+GatewayManager), GatewayManager))
}

// logPage reads a page of a stream, newest first, before from ("+": the
// newest), and the stream's length.
func (s *Server) logPage(ctx context.Context, stream, from string) ([]redis.XMessage, int, error) {
	var page *redis.XMessageSliceCmd
	var n *redis.IntCmd
	_, err := s.redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		page = p.XRevRangeN(ctx, stream, from, "-", logPageSize)
		n = p.XLen(ctx, stream)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return page.Val(), int(n.Val()), nil
}

// getLogEntry serves one entry of a stream by its id.
func (s *Server) getLogEntry(c echo.Context, stream, base string, render func(string, redis.XMessage) schemas.LogEntry) error {
	id := c.Param("entry")
	if _, err := strconv.ParseInt(strings.SplitN(id, "-", 2)[0], 10, 64); err != nil || !strings.Contains(id, "-") {
		return notFound("LogEntry", id)
	}
	xs, err := s.redis.XRangeN(c.Request().Context(), stream, id, id, 1).Result()
	if err != nil {
		return unavailable(2, "log unavailable")
	}
	if len(xs) == 0 {
		return notFound("LogEntry", id)
	}
	return send(c, http.StatusOK, render(base, xs[0]))
}

func (s *Server) getAuditEntry(c echo.Context) error {
	if err := canReadAudit(c); err != nil {
		return err
	}
	base := scopeOf(c).url("/Managers/" + GatewayManager + "/LogServices/Audit/Entries")
	return s.getLogEntry(c, auditStream, base, auditEntry)
}

func (s *Server) getPowerActionEntry(c echo.Context) error {
	v, err := s.view(c, "ComputerSystem")
	if err != nil {
		return err
	}
	base := scopeOf(c).url("/Systems/" + v.ID + "/LogServices/PowerActions/Entries")
	xs, err := serializer.NewStore(s.redis).LogEntries(c.Request().Context(), v.ID)
	if err != nil {
		return unavailable(2, "log unavailable")
	}
	id := c.Param("entry")
	i := slices.IndexFunc(xs, func(x redis.XMessage) bool { return x.ID == id })
	if i < 0 {
		return notFound("LogEntry", id)
	}
	return send(c, http.StatusOK, powerEntry(base, xs[i]))
}

// auditEntry renders an audit record.
func auditEntry(base string, x redis.XMessage) schemas.LogEntry {
	v := func(k string) string { s, _ := x.Values[k].(string); return s }
	msg := fmt.Sprintf("%s by %s from %s (%s): %s", v("action"), orDash(v("user")), orDash(v("remote")), v("front"), v("outcome"))
	if t := v("target"); t != "" {
		msg += " on " + t
	}
	if d := v("detail"); d != "" {
		msg += "; " + d
	}
	return schemas.NewLogEntry(base+"/"+x.ID, x.ID, streamTime(x.ID), auditSeverity(v("action"), v("outcome")), msg)
}

// powerEntry renders a record of a node's command log.
func powerEntry(base string, x redis.XMessage) schemas.LogEntry {
	msg := ""
	for _, k := range []string{"event", "type", "task", "command", "note", "state", "reason", "why", "req"} {
		if val, ok := x.Values[k].(string); ok && val != "" {
			msg += k + "=" + val + " "
		}
	}
	sev := "OK"
	if x.Values["event"] == "refused" || x.Values["state"] == string(schemas.TaskStateException) {
		sev = "Warning"
	}
	return schemas.NewLogEntry(base+"/"+x.ID, x.ID, streamTime(x.ID), sev, strings.TrimSpace(msg))
}
