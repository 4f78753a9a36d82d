package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fishgate/fishgate/schemas"
)

// The client side of `fishgate wait` and `fishgate power`: a small Redfish
// client of the gateway (Basic authentication) and its SSE stream.

// clientFlags are the connection flags of the client commands.
type clientFlags struct {
	url, user, password string
	insecure            bool
	timeout             time.Duration
}

func (f *clientFlags) register(cmd *cobra.Command, timeout time.Duration) {
	fl := cmd.Flags()
	fl.StringVar(&f.url, "url", envOr("FISHGATE_URL", "http://127.0.0.1:8000"), "gateway base URL ($FISHGATE_URL)")
	fl.StringVar(&f.user, "user", os.Getenv("FISHGATE_USER"), "user name ($FISHGATE_USER)")
	fl.StringVar(&f.password, "password", os.Getenv("FISHGATE_PASSWORD"), "password ($FISHGATE_PASSWORD)")
	fl.BoolVar(&f.insecure, "insecure", false, "do not verify the gateway's TLS certificate")
	fl.DurationVar(&f.timeout, "timeout", timeout, "give up after this long (exit 1)")
	// A flag error is exit 3: 1 and 2 are outcomes of the wait.
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return exitCode{code: exitError, err: err} })
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Exit codes of wait and power.
const (
	exitOK      = 0 // the state or outcome waited for was seen
	exitTimeout = 1 // --timeout passed first
	exitFailed  = 2 // the node or task reported a failure
	exitError   = 3 // bad arguments, unknown node or task, refused request, gateway unreachable
)

func fail(format string, a ...any) error {
	return exitCode{code: exitError, err: fmt.Errorf(format, a...)}
}

type apiClient struct {
	base       string
	user, pass string
	hc         *http.Client // requests
	stream     *http.Client // the SSE stream: no overall timeout
}

func (f *clientFlags) client() (*apiClient, error) {
	u, err := url.Parse(f.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fail("--url: %q is not an http:// or https:// URL", f.url)
	}
	if f.user == "" {
		return nil, fail("--user (or $FISHGATE_USER) is required")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if f.insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for with --insecure
	}
	return &apiClient{
		base: strings.TrimSuffix(f.url, "/"), user: f.user, pass: f.password,
		hc:     &http.Client{Transport: tr, Timeout: 30 * time.Second},
		stream: &http.Client{Transport: tr},
	}, nil
}

// apiError is a Redfish error answer.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.status, e.msg) }

func errorOf(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body schemas.ErrorBody
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &body) == nil && body.Error.Message != "" {
		msg = body.Error.Message
	}
	return &apiError{status: resp.StatusCode, msg: msg}
}

// do sends a request and decodes a 2xx JSON answer into out.
func (c *apiClient) do(ctx context.Context, method, path string, in, out any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(c.user, c.pass)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp, errorOf(resp)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp, nil
}

// powerState reads a node's PowerState.
func (c *apiClient) powerState(ctx context.Context, node string) (string, error) {
	var sys struct{ PowerState string }
	if _, err := c.do(ctx, http.MethodGet, "/redfish/v1/Systems/"+url.PathEscape(node), nil, &sys); err != nil {
		return "", err
	}
	return sys.PowerState, nil
}

// task is what the client reads of a Task.
type task struct {
	ID         string            `json:"Id"`
	TaskState  schemas.TaskState `json:"TaskState"`
	TaskStatus string            `json:"TaskStatus"`
	Messages   []schemas.Message `json:"Messages"`
	// PercentComplete as the gateway reports it.
	PercentComplete int `json:"PercentComplete"`
}

func (t task) terminal() bool {
	return t.TaskState.Terminal()
}

// summary is the task's last message, for humans.
func (t task) summary() string {
	if n := len(t.Messages); n > 0 {
		return t.Messages[n-1].Message
	}
	return ""
}

func (c *apiClient) task(ctx context.Context, id string) (task, error) {
	var t task
	_, err := c.do(ctx, http.MethodGet, "/redfish/v1/TaskService/Tasks/"+url.PathEscape(id), nil, &t)
	return t, err
}

// reset posts a ComputerSystem.Reset and returns its task.
func (c *apiClient) reset(ctx context.Context, node, resetType string) (task, error) {
	var t task
	_, err := c.do(ctx, http.MethodPost, "/redfish/v1/Systems/"+url.PathEscape(node)+"/Actions/ComputerSystem.Reset",
		map[string]string{"ResetType": resetType}, &t)
	return t, err
}

// openEvents opens the SSE stream with a $filter, resuming after lastID
// when set. It returns once the gateway has answered: from then on no
// event is missed.
func (c *apiClient) openEvents(ctx context.Context, filter, lastID string) (*http.Response, error) {
	u := c.base + "/redfish/v1/EventService/SSE"
	if filter != "" {
		u += "?" + url.Values{"$filter": {filter}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(c.user, c.pass)
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, errorOf(resp)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		return nil, fmt.Errorf("the gateway answered %s, not an event stream", ct)
	}
	return resp, nil
}

// refused reports whether err is an answer that retrying will not change.
func refused(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.status >= 400 && ae.status < 500 && ae.status != http.StatusTooManyRequests
}
