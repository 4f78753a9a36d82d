package redfish

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// MetricsPath is where the Prometheus metrics are served.
const MetricsPath = "/metrics"

// addMetricsRoute serves GET /metrics from the server's Metrics on e,
// behind the Redfish authentication when auth (any account may scrape).
func (s *Server) addMetricsRoute(e *echo.Echo, auth bool) {
	h := echo.WrapHandler(s.metrics.Handler())
	if auth {
		e.GET(MetricsPath, h, s.authMiddleware)
		return
	}
	e.GET(MetricsPath, h)
}

// MetricsHandler serves /metrics alone, for a listener of its own
// (config metrics.listen): the same access log, request counts and, when
// auth, the same logins as the API; anything else is a Redfish 404.
func (s *Server) MetricsHandler(auth bool) http.Handler {
	e := s.newEcho()
	e.Use(s.accessLog, s.recoverMiddleware)
	s.addMetricsRoute(e, auth)
	return e
}

// SSEClients is the number of SSE streams open on this server.
func (s *Server) SSEClients() int {
	s.sse.mu.Lock()
	defer s.sse.mu.Unlock()
	return s.sse.total
}
