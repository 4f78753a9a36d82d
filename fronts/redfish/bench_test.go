package redfish_test

import (
	"bytes"
	"context"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/fishgate/fishgate/app/demo"
)

// The GET ComputerSystem benchmarks run in process (httptest recorder, no
// sockets): the gateway's handler with HTTP Basic and with a session token,
// and a bare echo handler that checks Basic the same cheap way and answers
// the gateway's bytes and headers. `go run ./cmd/fgbench` measures the same
// over HTTP. None of these asserts a time.

// benchEnv is a served demo and the reference answer for benchPath.
type benchEnv struct {
	d    *demo.Demo
	h    http.Handler
	path string
	body []byte
	hdr  http.Header
}

// benchCopiedHeaders are the response headers the baseline replays.
var benchCopiedHeaders = []string{"Content-Type", "ETag", "OData-Version", "Cache-Control"}

func startBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := demo.Start(ctx, demo.Options{Listen: "127.0.0.1:0", SimListen: "127.0.0.1:0", Nodes: 8, Instant: true, Logger: log})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	b.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			b.Error("demo did not stop within 20s")
		}
	})
	// Serve reads every node before it serves: once it answers over HTTP,
	// the views are the steady-state ones.
	env := &benchEnv{d: d, h: d.Gateway.Handler(), path: "/redfish/v1/Systems/" + demo.NodeID(1, 8)}
	cl := &http.Client{Timeout: 2 * time.Second}
	defer cl.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := cl.Get(d.URL() + "/redfish/v1")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("gateway did not answer within 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rec := env.do(env.basicRequest())
	if rec.Code != http.StatusOK {
		b.Fatalf("GET %s: %d %s", env.path, rec.Code, rec.Body)
	}
	env.body = bytes.Clone(rec.Body.Bytes())
	env.hdr = http.Header{}
	for _, k := range benchCopiedHeaders {
		env.hdr.Set(k, rec.Header().Get(k))
	}
	return env
}

func (e *benchEnv) do(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

func (e *benchEnv) basicRequest() *http.Request {
	req := httptest.NewRequest(http.MethodGet, e.path, nil)
	req.SetBasicAuth(e.d.User, e.d.Pass)
	return req
}

// tokenRequest logs in through the handler and returns a GET with the token.
func (e *benchEnv) tokenRequest(b *testing.B) *http.Request {
	b.Helper()
	login := httptest.NewRequest(http.MethodPost, "/redfish/v1/SessionService/Sessions",
		strings.NewReader(`{"UserName":"`+e.d.User+`","Password":"`+e.d.Pass+`"}`))
	login.Header.Set("Content-Type", "application/json")
	rec := e.do(login)
	tok := rec.Header().Get("X-Auth-Token")
	if rec.Code != http.StatusCreated || tok == "" {
		b.Fatalf("create session: %d %s", rec.Code, rec.Body)
	}
	req := httptest.NewRequest(http.MethodGet, e.path, nil)
	req.Header.Set("X-Auth-Token", tok)
	return req
}

// baseline is a bare echo handler: BasicAuth middleware with a constant-time
// compare, one route, the gateway's bytes and headers.
func (e *benchEnv) baseline() http.Handler {
	ec := echo.New()
	user, pass := e.d.User, e.d.Pass
	ec.Use(middleware.BasicAuth(func(u, p string, _ echo.Context) (bool, error) {
		return subtle.ConstantTimeCompare([]byte(u), []byte(user))&subtle.ConstantTimeCompare([]byte(p), []byte(pass)) == 1, nil
	}))
	body, hdr := e.body, e.hdr
	ec.GET("/redfish/v1/Systems/:id", func(c echo.Context) error {
		h := c.Response().Header()
		for _, k := range benchCopiedHeaders[1:] {
			h.Set(k, hdr.Get(k))
		}
		return c.Blob(http.StatusOK, hdr.Get("Content-Type"), body)
	})
	return ec
}

// loop serves req with h until b.Loop ends, checking every status and
// length, and the bytes and headers of the last response.
func (e *benchEnv) loop(b *testing.B, h http.Handler, req *http.Request) {
	b.Helper()
	b.ReportAllocs()
	var rec *httptest.ResponseRecorder
	for b.Loop() {
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Body.Len() != len(e.body) {
			b.Fatalf("GET %s: %d, %d bytes (want 200, %d bytes): %s", e.path, rec.Code, rec.Body.Len(), len(e.body), rec.Body)
		}
	}
	if !bytes.Equal(rec.Body.Bytes(), e.body) {
		b.Fatalf("body differs from the reference:\n%s\nwant\n%s", rec.Body, e.body)
	}
	for _, k := range benchCopiedHeaders {
		if got := rec.Header().Get(k); got != e.hdr.Get(k) {
			b.Fatalf("header %s = %q, want %q", k, got, e.hdr.Get(k))
		}
	}
}

// BenchmarkGetSystem is GET /redfish/v1/Systems/node01 through the gateway
// handler with HTTP Basic.
func BenchmarkGetSystem(b *testing.B) {
	e := startBenchEnv(b)
	e.loop(b, e.h, e.basicRequest())
}

// BenchmarkGetSystemSessionToken is the same with X-Auth-Token (a session
// lookup in the embedded Redis per request).
func BenchmarkGetSystemSessionToken(b *testing.B) {
	e := startBenchEnv(b)
	e.loop(b, e.h, e.tokenRequest(b))
}

// BenchmarkGetSystemBaseline is a bare echo handler giving the same bytes.
func BenchmarkGetSystemBaseline(b *testing.B) {
	e := startBenchEnv(b)
	e.loop(b, e.baseline(), e.basicRequest())
}
