package redfish

import (
	"context"
	"errors"
	"net/http"
	"path"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/schemas"
)

// Roles (the Redfish predefined roles, DSP0266 §13.4).
const (
	RoleAdministrator = "Administrator"
	RoleOperator      = "Operator"
	RoleReadOnly      = "ReadOnly"
)

// Account is a local account of the gateway. Password is either the
// plain text or a bcrypt hash ("$2a$", "$2b$", "$2y$").
type Account struct {
	User     string
	Password string
	Role     string
	// Nodes limits the account to the nodes whose ids match one of these
	// patterns (path.Match: "rack1-*"); empty: every node. Other nodes are
	// invisible to it (404).
	Nodes []string
}

// principal is who made a request.
type principal struct {
	User    string
	Role    string
	Session string   // session id when authenticated by X-Auth-Token
	Nodes   []string // node-id patterns the account is limited to (empty: all)
}

// sees reports whether the principal may see node id.
func (p principal) sees(id string) bool {
	if len(p.Nodes) == 0 {
		return true
	}
	for _, pat := range p.Nodes {
		if ok, _ := path.Match(pat, id); ok {
			return true
		}
	}
	return false
}

const ctxPrincipal = "fishgate.principal"

func principalOf(c echo.Context) principal {
	p, _ := c.Get(ctxPrincipal).(principal)
	return p
}

// authenticate checks user/password against the accounts (AccountStore):
// one bcrypt whether or not the user exists, failures counted toward the
// lockout. It logs a failure with the reason.
func (s *Server) authenticate(c echo.Context, user, pw string) (storedAccount, error) {
	ctx, cancel := authContext(c)
	defer cancel()
	a, err := s.accounts.Authenticate(ctx, user, pw)
	switch {
	case err == nil:
		return a, nil
	case errors.Is(err, ErrLocked), errors.Is(err, errBadCredentials):
		s.log.InfoContext(c.Request().Context(), "authentication failed", "user", user, "remote", c.RealIP(), "why", err)
		s.audit(c.Request().Context(), AuditEntry{Action: "login-failed", User: user, Remote: c.RealIP(), Target: c.Request().URL.Path, Outcome: "401", Detail: err.Error()})
		return a, unauthorized()
	}
	return a, unavailable(5, "account store unavailable")
}

// publicPath reports whether path may be read without authentication
// (DSP0266 §13.3.1: /redfish, the service root, $metadata, odata).
func publicPath(rest string) bool {
	switch rest {
	case "/redfish", "/redfish/v1", "/redfish/v1/$metadata", "/redfish/v1/odata":
		return true
	}
	return false
}

// authMiddleware authenticates by X-Auth-Token (a session) or HTTP Basic.
func (s *Server) authMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		rest := routeRest(c)
		if publicPath(rest) && (req.Method == http.MethodGet || req.Method == http.MethodHead) {
			return next(c)
		}
		// Creating a session is how a client logs in (the body carries the credentials).
		if (rest == "/redfish/v1/SessionService/Sessions" || rest == "/redfish/v1/SessionService/Sessions/Members") && req.Method == http.MethodPost {
			return next(c)
		}
		if tok := req.Header.Get("X-Auth-Token"); tok != "" {
			ctx, cancel := authContext(c)
			sess, err := s.sessions.Lookup(ctx, tok)
			cancel()
			if errors.Is(err, ErrNoSession) {
				return unauthorized()
			}
			if err != nil {
				return unavailable(5, "session store unavailable")
			}
			a, ok := s.accounts.Valid(sess.User, sess.Fingerprint)
			if !ok {
				// the account was removed, disabled, demoted or its password
				// changed since the login: the session is revoked
				s.log.InfoContext(c.Request().Context(), "session revoked: its account changed", "user", sess.User, "session", sess.ID)
				s.sessions.Delete(req.Context(), sess.ID)
				return unauthorized()
			}
			c.Set(ctxPrincipal, principal{User: a.User, Role: a.Role, Session: sess.ID, Nodes: a.Nodes})
			return s.visibleScope(c, next)
		}
		if user, pw, ok := req.BasicAuth(); ok {
			a, err := s.authenticate(c, user, pw)
			if err != nil {
				return err
			}
			c.Set(ctxPrincipal, principal{User: a.User, Role: a.Role, Nodes: a.Nodes})
			return s.visibleScope(c, next)
		}
		return unauthorized()
	}
}

// visibleScope answers 404 for a per-node view (/bmc/<node>/...) of a node
// the principal may not see: to it, the node does not exist.
func (s *Server) visibleScope(c echo.Context, next echo.HandlerFunc) error {
	if n := scopeOf(c).node; n != "" && !principalOf(c).sees(n) {
		return notFound("Manager", n)
	}
	return next(c)
}

// authTimeout bounds the Redis work of authenticating a request: with
// Redis frozen, a login or a request answers 503 at once rather than after
// the client gave up (issue 10: 35-40 s).
const authTimeout = 3 * time.Second

func authContext(c echo.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request().Context(), authTimeout)
}

// requireRole refuses the request unless the principal's role is one of roles.
func requireRole(c echo.Context, roles ...string) error {
	p := principalOf(c)
	for _, r := range roles {
		if p.Role == r {
			return nil
		}
	}
	return newError(http.StatusForbidden, schemas.Base(schemas.MsgInsufficientPrivilege))
}

// canOperate is the ConfigureComponents privilege (Reset, Boot).
func canOperate(c echo.Context) error {
	return requireRole(c, RoleAdministrator, RoleOperator)
}

func withTimeout(c echo.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request().Context(), requestTimeout)
}
