package redfish

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"

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
}

func (a Account) checkPassword(pw string) bool {
	if strings.HasPrefix(a.Password, "$2a$") || strings.HasPrefix(a.Password, "$2b$") || strings.HasPrefix(a.Password, "$2y$") {
		return bcrypt.CompareHashAndPassword([]byte(a.Password), []byte(pw)) == nil
	}
	return subtle.ConstantTimeCompare([]byte(a.Password), []byte(pw)) == 1
}

// principal is who made a request.
type principal struct {
	User    string
	Role    string
	Session string // session id when authenticated by X-Auth-Token
}

const ctxPrincipal = "fishgate.principal"

func principalOf(c echo.Context) principal {
	p, _ := c.Get(ctxPrincipal).(principal)
	return p
}

// authenticate checks user/password against the configured accounts.
func (s *Server) authenticate(user, pw string) (Account, bool) {
	a, ok := s.accounts[user]
	if !ok {
		// spend comparable time on unknown users
		subtle.ConstantTimeCompare([]byte(pw), []byte(pw))
		return Account{}, false
	}
	return a, a.checkPassword(pw)
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
		if rest == "/redfish/v1/SessionService/Sessions" && req.Method == http.MethodPost {
			return next(c)
		}
		if tok := req.Header.Get("X-Auth-Token"); tok != "" {
			sess, err := s.sessions.Lookup(req.Context(), tok)
			if errors.Is(err, ErrNoSession) {
				return unauthorized()
			}
			if err != nil {
				return unavailable(5, "session store unavailable: "+err.Error())
			}
			c.Set(ctxPrincipal, principal{User: sess.User, Role: sess.Role, Session: sess.ID})
			return next(c)
		}
		if user, pw, ok := req.BasicAuth(); ok {
			a, ok := s.authenticate(user, pw)
			if !ok {
				s.log.Info("authentication failed", "user", user, "remote", c.RealIP())
				return unauthorized()
			}
			c.Set(ctxPrincipal, principal{User: a.User, Role: a.Role})
			return next(c)
		}
		return unauthorized()
	}
}

// requireRole refuses the request unless the principal's role is one of roles.
func requireRole(c echo.Context, roles ...string) error {
	p := principalOf(c)
	for _, r := range roles {
		if p.Role == r {
			return nil
		}
	}
	return newError(http.StatusForbidden, schemas.Base("InsufficientPrivilege"))
}

// canOperate is the ConfigureComponents privilege (Reset, Boot).
func canOperate(c echo.Context) error {
	return requireRole(c, RoleAdministrator, RoleOperator)
}

func withTimeout(c echo.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request().Context(), requestTimeout)
}
