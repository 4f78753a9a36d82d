package redfish

import (
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/internal/requestid"
)

// accessLog gives the request its id (requestid: the client's
// X-Request-Id when valid, else a new one; kept when an outer handler gave
// one), answers it in X-Request-Id, and logs one line when the request is
// done: method, route template (never the path or query string as sent,
// which may carry node names a caller may not see, or tokens), status,
// duration, user and client address. Every other log record of the
// request carries the same request_id (the server's logger reads it from
// the context). The request is counted in the server's metrics by the
// same route template.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		r := c.Request()
		id := requestid.From(r.Context())
		if id == "" {
			id = requestid.Accept(r)
			r = r.WithContext(requestid.With(r.Context(), id))
			c.SetRequest(r)
		}
		c.Response().Header().Set(requestid.Header, id)
		if err := next(c); err != nil {
			// Answer the error now, so that the line has its status.
			c.Error(err)
		}
		route := c.Path()
		if route == "" || route == "/*" {
			route = "(no route)"
		}
		took := time.Since(start)
		s.metrics.HTTPRequest(route, r.Method, c.Response().Status, took)
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
			slog.String("method", r.Method), slog.String("route", route),
			slog.Int("status", c.Response().Status), slog.Duration("duration", took),
			slog.String("user", principalOf(c).User), slog.String("remote", c.RealIP()))
		return nil
	}
}
