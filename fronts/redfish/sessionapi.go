package redfish

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/schemas"
)

func (s *Server) getSessionService(c echo.Context) error {
	sc := scopeOf(c)
	return send(c, http.StatusOK, schemas.SessionService{
		Resource:       schemas.Resource{ODataID: sc.url("/SessionService"), ODataType: schemas.TypeSessionService, ID: "SessionService", Name: "Session Service"},
		ServiceEnabled: true,
		SessionTimeout: int(s.sessions.IdleTimeout() / time.Second),
		Sessions:       schemas.Link{ODataID: sc.url("/SessionService/Sessions")},
		Status:         schemas.Status{State: "Enabled", Health: "OK"},
	})
}

func renderSession(sc scope, sess Session) schemas.Session {
	return schemas.Session{
		Resource:    schemas.Resource{ODataID: sc.url("/SessionService/Sessions/" + sess.ID), ODataType: schemas.TypeSession, ID: sess.ID, Name: "Session " + sess.ID},
		UserName:    sess.User,
		CreatedTime: sess.Created.Format(time.RFC3339),
		SessionType: "Redfish",
	}
}

// visible reports whether the principal may see or end sess: administrators
// see every session, others their own.
func visible(p principal, sess Session) bool {
	return p.Role == RoleAdministrator || p.User == sess.User
}

func (s *Server) getSessions(c echo.Context) error {
	sc := scopeOf(c)
	all, err := s.sessions.List(c.Request().Context())
	if err != nil {
		return unavailable(5, err.Error())
	}
	p := principalOf(c)
	var m []schemas.Link
	for _, sess := range all {
		if visible(p, sess) {
			m = append(m, schemas.Link{ODataID: sc.url("/SessionService/Sessions/" + sess.ID)})
		}
	}
	return send(c, http.StatusOK, schemas.NewCollection(sc.url("/SessionService/Sessions"), schemas.TypeSessionColl, "Session Collection", m))
}

// postSession logs in (DSP0266 §13.3.4): 201, X-Auth-Token and Location.
func (s *Server) postSession(c echo.Context) error {
	body, err := readBody(c, s.maxBody)
	if err != nil {
		return err
	}
	var p struct {
		UserName *string `json:"UserName"`
		Password *string `json:"Password"`
		// Accepted and ignored: some clients send these (Redfish Session v1_x).
		Context     *string `json:"Context"`
		SessionType *string `json:"SessionType"`
	}
	if err := decodeStrict(body, &p, decodeKind{}); err != nil {
		return err
	}
	if p.UserName == nil {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyMissing, "UserName"))
	}
	if p.Password == nil {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyMissing, "Password"))
	}
	a, err := s.authenticate(c, *p.UserName, *p.Password)
	if err != nil {
		return err
	}
	ctx, cancel := authContext(c)
	defer cancel()
	sess, token, err := s.sessions.Create(ctx, a.User, a.Role, a.fingerprint())
	if errors.Is(err, ErrTooManySessions) {
		e := newError(http.StatusServiceUnavailable, schemas.Base(schemas.MsgSessionLimitExceeded)).
			withDetail("user " + a.User + " has " + strconv.Itoa(s.accounts.Policy().MaxSessionsPerUser) + " sessions open; log out of one (DELETE its session) or wait for one to expire")
		e.retryAfter = 60
		return e
	}
	if err != nil {
		return unavailable(5, "session store unavailable")
	}
	s.log.InfoContext(c.Request().Context(), "login", "user", a.User, "session", sess.ID, "remote", c.RealIP())
	s.audit(c.Request().Context(), AuditEntry{Action: "login", User: a.User, Session: sess.ID, Remote: c.RealIP(), Outcome: "201 session created"})
	sc := scopeOf(c)
	h := c.Response().Header()
	h.Set("X-Auth-Token", token)
	h.Set("Location", sc.url("/SessionService/Sessions/"+sess.ID))
	return send(c, http.StatusCreated, renderSession(sc, sess))
}

func (s *Server) session(c echo.Context) (Session, error) {
	sess, err := s.sessions.Get(c.Request().Context(), c.Param("id"))
	if errors.Is(err, ErrNoSession) || (err == nil && !visible(principalOf(c), sess)) {
		return Session{}, notFound("Session", c.Param("id"))
	}
	if err != nil {
		return Session{}, unavailable(5, err.Error())
	}
	return sess, nil
}

func (s *Server) getSession(c echo.Context) error {
	sess, err := s.session(c)
	if err != nil {
		return err
	}
	return send(c, http.StatusOK, renderSession(scopeOf(c), sess))
}

func (s *Server) deleteSession(c echo.Context) error {
	sess, err := s.session(c)
	if err != nil {
		return err
	}
	if err := s.sessions.Delete(c.Request().Context(), sess.ID); err != nil && !errors.Is(err, ErrNoSession) {
		return unavailable(5, "session store unavailable")
	}
	s.audit(c.Request().Context(), auditOf(c, "logout", "session "+sess.ID+" of "+sess.User, "204"))
	return c.NoContent(http.StatusNoContent)
}
