package redfish

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/internal/redact"
	"github.com/fishgate/fishgate/schemas"
)

// apiError is an error that renders as a Redfish error response
// (DSP0266 §9.7): an HTTP status and Base registry messages.
type apiError struct {
	status     int
	msgs       []schemas.Message
	detail     string // replaces the top-level message when set
	retryAfter int    // seconds; 0 = no Retry-After header
	header     http.Header
}

func (e *apiError) Error() string {
	if e.detail != "" {
		return e.detail
	}
	return e.msgs[0].Message
}

func newError(status int, msgs ...schemas.Message) *apiError {
	return &apiError{status: status, msgs: msgs}
}

func (e *apiError) withDetail(d string) *apiError { e.detail = d; return e }

func notFound(kind, name string) *apiError {
	return newError(http.StatusNotFound, schemas.Base(schemas.MsgResourceNotFound, kind, name))
}

func unavailable(seconds int, detail string) *apiError {
	e := newError(http.StatusServiceUnavailable, schemas.Base(schemas.MsgServiceTemporarilyUnavailable, strconv.Itoa(seconds)))
	e.retryAfter = seconds
	return e.withDetail(detail)
}

// unavailableBecause is unavailable for a problem the client should see
// wherever it looks: detail is added to the message of the MessageId too
// (sushy, so Ironic, reports that one rather than the top-level message).
func unavailableBecause(seconds int, detail string) *apiError {
	e := unavailable(seconds, detail)
	e.msgs[0].Message += " " + detail
	return e
}

func unauthorized() *apiError {
	e := newError(http.StatusUnauthorized, schemas.Base(schemas.MsgNoValidSession))
	e.header = http.Header{"WWW-Authenticate": {`Basic realm="fishgate"`}}
	return e
}

// writeError renders err. Anything that is not an apiError or an echo
// HTTPError becomes a 503 (a dependency failed); the gateway never answers 500.
func (s *Server) writeError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var ae *apiError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &he):
		ae = fromEchoError(he, c.Request().URL.Path)
	default:
		ae = unavailable(5, err.Error())
	}
	if ae.status >= 500 {
		ae = s.scrubbed(ae, c)
	}
	body := schemas.NewError(ae.msgs...)
	if ae.detail != "" {
		body.Error.Message = ae.detail
	}
	h := c.Response().Header()
	for k, v := range ae.header {
		h[k] = v
	}
	if ae.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(ae.retryAfter))
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(ae.status)
		return
	}
	c.JSON(ae.status, body)
}

// scrubbed is a server-side error as the client may see it (issue 10: error
// bodies revealed the Redis address and BMC URLs). Its texts come from
// errors of Redis, the BMCs and the network, which name addresses, URLs and
// sometimes credentials: those are logged in full under a reference, and
// the body keeps the text with them replaced, plus the reference.
func (s *Server) scrubbed(ae *apiError, c echo.Context) *apiError {
	ref := newRef()
	full := ae.Error()
	s.log.WarnContext(c.Request().Context(), "request failed", "status", ae.status, "ref", ref, "method", c.Request().Method,
		"path", c.Request().URL.Path, "user", principalOf(c).User, "remote", c.RealIP(), "err", full)
	out := *ae
	hint := " (reference " + ref + ": the gateway's log has the details)"
	out.detail = redact.Text(full) + hint
	out.msgs = make([]schemas.Message, len(ae.msgs))
	for i, m := range ae.msgs {
		m.Message = redact.Text(m.Message)
		args := make([]string, len(m.MessageArgs))
		for j, a := range m.MessageArgs {
			args[j] = redact.Text(a)
		}
		m.MessageArgs = args
		out.msgs[i] = m
	}
	return &out
}

// newRef is a short random reference that ties an error body to its log line.
func newRef() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func fromEchoError(he *echo.HTTPError, path string) *apiError {
	switch he.Code {
	case http.StatusNotFound:
		return newError(http.StatusNotFound, schemas.Base(schemas.MsgResourceMissingAtURI, path))
	case http.StatusMethodNotAllowed:
		return newError(http.StatusMethodNotAllowed, schemas.Base(schemas.MsgOperationNotAllowed))
	case http.StatusRequestEntityTooLarge:
		return newError(http.StatusRequestEntityTooLarge, schemas.Base(schemas.MsgPayloadTooLarge))
	case http.StatusUnauthorized:
		return unauthorized()
	case http.StatusForbidden:
		return newError(http.StatusForbidden, schemas.Base(schemas.MsgInsufficientPrivilege))
	case http.StatusUnsupportedMediaType, http.StatusBadRequest:
		return newError(he.Code, schemas.Base(schemas.MsgMalformedJSON))
	}
	if he.Code >= 500 {
		return unavailable(5, "internal failure")
	}
	return newError(he.Code, schemas.Base(schemas.MsgGeneralError))
}
