package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"time"

	"github.com/fishgate/fishgate/internal/metrics"
)

// registerGauges adds the gauges whose values live elsewhere, read at
// each scrape: the fleet's running and waiting actions (the serializer's
// views, no Redis read), this replica's SSE clients, and the event
// stream's length (one XLEN, bounded by a short timeout).
func (g *Gateway) registerGauges() {
	g.metrics.GaugeFunc("actions_running", "Actions running over the whole fleet, as this replica's views show them (the same on every replica: aggregate with max, not sum).",
		func() float64 { r, _ := g.nodes.ActionCounts(); return float64(r) })
	g.metrics.GaugeFunc("actions_waiting", "Actions waiting behind a running one over the whole fleet, as this replica's views show them (aggregate with max, not sum).",
		func() float64 { _, w := g.nodes.ActionCounts(); return float64(w) })
	g.metrics.GaugeFunc("sse_clients", "SSE event streams open on this replica.",
		func() float64 { return float64(g.api.SSEClients()) })
	g.metrics.GaugeFunc("event_stream_length", "Events held in the event stream in Redis (NaN when Redis did not answer).",
		func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := g.events.StreamLen(ctx)
			if err != nil {
				return math.NaN()
			}
			return float64(n)
		})
}

// Metrics is the gateway's metrics (tests read its registry).
func (g *Gateway) Metrics() *metrics.Metrics { return g.metrics }

// MetricsURL is the URL of /metrics: on the API listener, or on
// metrics.listen's.
func (g *Gateway) MetricsURL() string {
	if g.metricsListener != nil {
		return "http://" + g.metricsListener.Addr().String() + "/metrics"
	}
	return g.URL() + "/metrics"
}

// listenMetrics binds metrics.listen, when set: /metrics is served there
// (plain HTTP) and not on the API listener.
func (g *Gateway) listenMetrics() error {
	addr := g.cfg.Metrics.Listen
	if addr == "" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics.listen %s: %w", addr, err)
	}
	auth := g.cfg.Metrics.RequireAuth()
	if auth && !isLoopback(l.Addr()) {
		g.log.Warn("metrics.listen serves plain HTTP on a non-loopback address with metrics.auth: scrapers' passwords cross the network in clear text", "listen", l.Addr().String())
	}
	g.metricsListener = l
	lim := g.cfg.Limits
	g.metricsServer = &http.Server{
		Handler:           g.api.MetricsHandler(auth),
		ReadHeaderTimeout: time.Duration(lim.ReadHeaderTimeout),
		ReadTimeout:       time.Duration(lim.ReadTimeout),
		WriteTimeout:      time.Duration(lim.WriteTimeout),
		IdleTimeout:       time.Duration(lim.IdleTimeout),
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	return nil
}

// serveMetrics serves metrics.listen's listener until closeMetrics.
func (g *Gateway) serveMetrics() {
	if g.metricsServer == nil {
		return
	}
	go func() {
		if err := g.metricsServer.Serve(g.metricsListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("metrics listener failed", "listen", g.metricsListener.Addr().String(), "err", err)
		}
	}()
}

// closeMetrics stops metrics.listen's server (after the drain: the
// drain's work is still counted and can be scraped).
func (g *Gateway) closeMetrics() {
	if g.metricsServer != nil {
		g.metricsServer.Close()
	}
}
