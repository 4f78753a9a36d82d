package main

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	fgconfig "github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/app/demo"
)

// endpoints is what the servers side hands the load side: one line of JSON
// on the serve process's standard output.
type endpoints struct {
	Gateway  string `json:"gateway"`  // base URL of the fishgate demo
	Baseline string `json:"baseline"` // base URL of the bare echo server
	Path     string `json:"path"`     // the measured resource
	User     string `json:"user"`
	Pass     string `json:"pass"`
	PID      int    `json:"pid"`
}

// reference is the response the gateway gives for the measured resource;
// the baseline replays it byte for byte.
type reference struct {
	body    []byte
	headers http.Header // Content-Type, ETag, OData-Version, Cache-Control
}

// copiedHeaders are the gateway response headers the baseline replays. Date
// and Content-Length are written by net/http for both servers alike.
var copiedHeaders = []string{echo.HeaderContentType, "ETag", "OData-Version", "Cache-Control"}

// servers is a running demo gateway and baseline in this process.
type servers struct {
	ep     endpoints
	ref    reference
	cancel context.CancelFunc
	done   chan error // the demo's Serve result
	base   *http.Server
}

// startServers starts the demo (embedded Redis, nodes simulated BMCs, the
// gateway) and, once the gateway answers, the baseline that serves the
// gateway's bytes. Everything listens on 127.0.0.1 with a free port.
func startServers(ctx context.Context, nodes int, logw io.Writer) (*servers, error) {
	ctx, cancel := context.WithCancel(ctx)
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := demo.Start(ctx, demo.Options{
		Listen: "127.0.0.1:0", SimListen: "127.0.0.1:0",
		Nodes: nodes, Instant: true, Logger: log,
		// The load comes from one client: its connections are not capped
		// below the workers' (-concurrency up to 1024).
		Tune: func(c *fgconfig.Config) { c.Limits.MaxConnections, c.Limits.MaxConnectionsPerClient = 4096, 4096 },
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start demo: %w", err)
	}
	s := &servers{cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- d.Serve(ctx) }()
	s.ep = endpoints{
		Gateway: d.URL(), Path: "/redfish/v1/Systems/" + demo.NodeID(1, nodes),
		User: d.User, Pass: d.Pass, PID: os.Getpid(),
	}
	// Serve reads every node before it serves: wait until it answers.
	if s.ref, err = waitReference(ctx, s.ep); err != nil {
		s.close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.close()
		return nil, fmt.Errorf("baseline listen: %w", err)
	}
	s.base = &http.Server{
		Handler:           baselineHandler(s.ref, s.ep.User, s.ep.Pass),
		ReadHeaderTimeout: 10 * time.Second, // as the gateway's http.Server
		IdleTimeout:       120 * time.Second,
	}
	go s.base.Serve(ln)
	s.ep.Baseline = "http://" + ln.Addr().String()
	return s, nil
}

// close stops the baseline and the demo and waits (bounded) for the demo.
func (s *servers) close() error {
	if s.base != nil {
		s.base.Close()
	}
	s.cancel()
	select {
	case err := <-s.done:
		return err
	case <-time.After(20 * time.Second):
		return errors.New("demo did not stop within 20s")
	}
}

// baselineHandler is the bare comparison: echo, its BasicAuth middleware
// with a constant-time compare of user and password (what the gateway does
// for a plain-text account), and one route that writes the gateway's bytes
// and headers. Both sides thus pay routing, auth and the same HTTP framing;
// the difference is the gateway's own work (middleware, node view, render,
// JSON, ETag).
func baselineHandler(ref reference, user, pass string) http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Use(middleware.BasicAuth(func(u, p string, _ echo.Context) (bool, error) {
		okU := subtle.ConstantTimeCompare([]byte(u), []byte(user))
		okP := subtle.ConstantTimeCompare([]byte(p), []byte(pass))
		return okU&okP == 1, nil
	}))
	ct := ref.headers.Get(echo.HeaderContentType)
	e.GET("/redfish/v1/Systems/:id", func(c echo.Context) error {
		h := c.Response().Header()
		for _, k := range copiedHeaders {
			if k != echo.HeaderContentType {
				if v := ref.headers.Get(k); v != "" {
					h.Set(k, v)
				}
			}
		}
		return c.Blob(http.StatusOK, ct, ref.body)
	})
	return e
}

// waitReference polls the gateway (at most 60 s) until the measured
// resource answers 200, and returns that response.
func waitReference(ctx context.Context, ep endpoints) (reference, error) {
	cl := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer cl.CloseIdleConnections()
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ref, err := fetch(ctx, cl, ep.Gateway+ep.Path, func(r *http.Request) { r.SetBasicAuth(ep.User, ep.Pass) })
		if err == nil {
			return ref, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return reference{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return reference{}, fmt.Errorf("gateway did not answer within 60s: %w", last)
}

// fetch GETs url and returns its body and the copied headers; anything but
// 200 is an error.
func fetch(ctx context.Context, cl *http.Client, url string, auth func(*http.Request)) (reference, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return reference{}, err
	}
	auth(req)
	resp, err := cl.Do(req)
	if err != nil {
		return reference{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return reference{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return reference{}, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	h := http.Header{}
	for _, k := range copiedHeaders {
		if v := resp.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	return reference{body: body, headers: h}, nil
}

// serveMain is the hidden `fgbench serve` subcommand: the servers side when
// load runs in another process. It prints its endpoints as one JSON line
// and serves until its standard input closes (the parent ended or is done),
// a signal arrives, or -lifetime passes.
func serveMain(args []string) int {
	fs := flag.NewFlagSet("fgbench serve", flag.ContinueOnError)
	nodes := fs.Int("nodes", 8, "simulated nodes")
	lifetime := fs.Duration("lifetime", 30*time.Minute, "exit after this long whatever happens")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()
	s, err := startServers(ctx, *nodes, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fgbench serve:", err)
		return 1
	}
	line, _ := json.Marshal(s.ep)
	w := bufio.NewWriter(os.Stdout)
	w.Write(append(line, '\n'))
	w.Flush()
	go func() {
		io.Copy(io.Discard, os.Stdin) // returns when the parent closes it or dies
		cancel()
	}()
	<-ctx.Done()
	if err := s.close(); err != nil {
		fmt.Fprintln(os.Stderr, "fgbench serve:", err)
		return 1
	}
	return 0
}
