package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/demo"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/simulator"
)

// Simulated power transitions take a little time so that the transitional
// states (PoweringOn, PoweringOff) are really crossed, but stay well under a
// second so the package runs quickly.
const (
	delayMin = 20 * time.Millisecond
	delayMax = 120 * time.Millisecond
	// powerTimeout bounds every wait for a power state: the gateway verifies
	// a Reset within a second or so with the delays above.
	powerTimeout = 15 * time.Second
)

// lockedBuffer collects the demo's log lines; it is written by background
// goroutines and read once the demo has stopped.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDemo runs a demo with n nodes on free loopback ports until the test
// ends, and returns once the gateway answers. The demo's log is printed when
// the test fails.
func startDemo(t *testing.T, n int) *demo.Demo {
	t.Helper()
	return startDemoWith(t, n, nil)
}

// startDemoWith is startDemo with the options tune adjusts.
func startDemoWith(t *testing.T, n int, tune func(*demo.Options)) *demo.Demo {
	t.Helper()
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	o := demo.Options{
		Listen: "127.0.0.1:0", SimListen: "127.0.0.1:0", Nodes: n,
		DelayMin: delayMin, DelayMax: delayMax, Logger: logger,
	}
	if tune != nil {
		tune(&o)
	}
	d, err := demo.Start(ctx, o)
	if err != nil {
		cancel()
		t.Fatalf("demo.Start: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("demo.Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("demo did not stop within 20s")
		}
		if t.Failed() {
			t.Logf("demo log:\n%s", logs.String())
		}
	})
	// Serve reads every node before it serves; the listener is bound already,
	// so a request waits in the backlog until then.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, _, _ := do(t, http.MethodGet, d.URL()+"/redfish/v1", nil, nil)
		if st == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway at %s did not answer within 20s (last status %d)", d.URL(), st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

var httpClient = &http.Client{Timeout: 15 * time.Second}

// do sends one request and returns status, headers and body. A transport
// error is reported as status 0 (callers assert on the status).
func do(t testing.TB, method, url string, body any, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal request body: %v", err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("new request %s %s: %v", method, url, err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Logf("%s %s: %v", method, url, err)
		return 0, nil, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, b
}

// basic returns the Authorization header for HTTP Basic.
func basic(d *demo.Demo) map[string]string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(d.User, d.Pass)
	return map[string]string{"Authorization": req.Header.Get("Authorization")}
}

// getJSON GETs url with Basic auth, requires 200 and decodes the body.
func getJSON(t *testing.T, d *demo.Demo, url string) map[string]any {
	t.Helper()
	st, _, b := do(t, http.MethodGet, url, nil, basic(d))
	if st != http.StatusOK {
		t.Fatalf("GET %s: status %d, body %s", url, st, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("GET %s: body is not a JSON object: %v\n%s", url, err, b)
	}
	return m
}

// gatewayPower reads PowerState of a system as the gateway shows it.
func gatewayPower(t *testing.T, d *demo.Demo, node string) string {
	t.Helper()
	s, _ := getJSON(t, d, d.URL()+"/redfish/v1/Systems/"+node)["PowerState"].(string)
	return s
}

// waitFor is testkit.WaitFor.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	testkit.WaitFor(t, timeout, what, cond)
}

// machine returns the simulated machine of node.
func machine(t *testing.T, d *demo.Demo, node string) *simulator.Machine {
	t.Helper()
	n, ok := d.Fleet.Node(node)
	if !ok {
		t.Fatalf("simulator has no node %s", node)
	}
	return n.Machine()
}

// waitMachine waits until the simulated machine of node is in state.
func waitMachine(t *testing.T, d *demo.Demo, node, state string) {
	t.Helper()
	m := machine(t, d, node)
	waitFor(t, powerTimeout, node+" machine "+state, func() (bool, string) {
		ps := m.PowerState()
		return ps == state, ps
	})
}

// waitGateway waits until the gateway shows node's PowerState as state.
func waitGateway(t *testing.T, d *demo.Demo, node, state string) {
	t.Helper()
	waitFor(t, powerTimeout, node+" gateway PowerState "+state, func() (bool, string) {
		ps := gatewayPower(t, d, node)
		return ps == state, ps
	})
}

// accepted counts the commands named action that the machine accepted.
func accepted(st simulator.Status, action string) int {
	n := 0
	for _, c := range st.Commands {
		if c.Action == action && c.Result == "accepted" {
			n++
		}
	}
	return n
}

// needTool skips the test when a required external tool is unusable, or
// fails it when CI is set (the CI image must have every tool).
func needTool(t *testing.T, name string, check func() error) {
	t.Helper()
	if err := check(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s unavailable (CI is set): %v", name, err)
		}
		t.Skipf("%s unavailable: %v", name, err)
	}
}

// run runs a command with a timeout and returns stdout, stderr and its error.
func run(t *testing.T, timeout time.Duration, name string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	// Loopback only: a proxy from the environment must not be used.
	cmd.Env = append(os.Environ(), "NO_PROXY=*", "no_proxy=*", "HTTP_PROXY=", "http_proxy=", "HTTPS_PROXY=", "https_proxy=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// messageIDs lists the MessageIds of a Redfish error body.
func messageIDs(body []byte) []string {
	var e struct {
		Error struct {
			Code string `json:"code"`
			Info []struct {
				MessageID string `json:"MessageId"`
			} `json:"@Message.ExtendedInfo"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return nil
	}
	var ids []string
	for _, i := range e.Error.Info {
		ids = append(ids, i.MessageID)
	}
	return ids
}
