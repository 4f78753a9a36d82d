package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/app/gateway"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/simulator"
)

// The operator page's tests (ui_test.go) drive Debian's chromium through
// chromedp against gateways in this process: two replicas on one Redis
// behind a small reverse proxy of the test's, which the browser sees as
// one URL.

const (
	uiAdmin, uiAdminPass   = "admin", "admin-pw-1"
	uiViewer, uiViewerPass = "viewer", "viewer-pw-1"
	// uiTimeout bounds every wait on the page.
	uiTimeout = 30 * time.Second
)

// uiEnv is a fleet of simulated BMCs, two gateway replicas sharing one
// Redis, and the proxy in front of them.
type uiEnv struct {
	fleet    *simulator.Fleet
	replicas []string // the replicas' base URLs
	proxy    *replicaProxy
	url      string // the proxy's base URL: what the browser uses
}

// startUIEnv runs nodes simulated Redfish BMCs (node1..nodeN, Off) behind
// two replicas and the proxy, until the test ends.
func startUIEnv(t *testing.T, nodes int) *uiEnv {
	t.Helper()
	fleet := simulator.NewFleet(discardLogger())
	t.Cleanup(func() { fleet.Close() })
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.TLS.Disabled = true
	cfg.RedisURL = "redis://" + testkit.MiniRedis(t).Options().Addr + "/0"
	cfg.SyncInterval = config.Duration(time.Hour) // the page learns of changes by events, not by the sweep
	cfg.Accounts = []config.Account{
		{User: uiAdmin, Password: uiAdminPass, Role: "Administrator"},
		{User: uiViewer, Password: uiViewerPass, Role: "ReadOnly"},
	}
	for i := 1; i <= nodes; i++ {
		id := fmt.Sprintf("node%d", i)
		sn, err := fleet.Add(simulator.NodeSpec{ID: id, Machine: simulator.MachineConfig{DelayMin: delayMin, DelayMax: delayMax, InitialPower: "Off"}})
		if err != nil {
			t.Fatal(err)
		}
		n := config.Node{ID: id, Backend: "redfish", Address: sn.URL(), User: "admin", Password: "password"}
		if i == 5 {
			n.Policy = "reject" // a second, different request while one runs is refused (the refusal subtest)
		}
		cfg.Nodes = append(cfg.Nodes, n)
	}
	env := &uiEnv{fleet: fleet}
	logs := &lockedBuffer{}
	for i := range 2 {
		log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", i)
		env.replicas = append(env.replicas, startReplica(t, cfg, log))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway logs:\n%s", logs.String())
		}
	})
	env.proxy = newReplicaProxy(t, env.replicas)
	env.url = env.proxy.url
	return env
}

// startReplica serves one gateway of cfg until the test ends and returns
// its URL once it is ready.
func startReplica(t testing.TB, cfg config.Config, log *slog.Logger) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g, err := gateway.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("gateway.New: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("gateway.Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("gateway did not stop within 20s")
		}
	})
	waitFor(t, 20*time.Second, "replica "+g.URL()+" ready", func() (bool, string) {
		st, _, body := do(t, http.MethodGet, g.URL()+"/readyz", nil, nil)
		return st == http.StatusOK, fmt.Sprintf("%d %s", st, body)
	})
	return g.URL()
}

// replicaProxy sends each request to the replicas in turn (one URL for
// two gateways, as a load balancer would). It can cut the SSE streams
// passing through it and refuse new ones until resumed.
type replicaProxy struct {
	url     string
	next    atomic.Uint64
	served  []atomic.Int64 // requests per replica
	mu      sync.Mutex
	streams map[*http.Request]context.CancelFunc
	refuse  bool
	// lastEventIDs are the Last-Event-ID headers of the SSE requests seen.
	lastEventIDs []string
	// sseReplica is the replica that serves the latest SSE stream.
	sseReplica int
}

func newReplicaProxy(t *testing.T, replicas []string) *replicaProxy {
	p := &replicaProxy{served: make([]atomic.Int64, len(replicas)), streams: map[*http.Request]context.CancelFunc{}}
	targets := make([]*url.URL, len(replicas))
	for i, r := range replicas {
		targets[i], _ = url.Parse(r)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			i := int(p.next.Add(1) % uint64(len(targets)))
			p.served[i].Add(1)
			if isSSE(r.In) {
				p.mu.Lock()
				p.sseReplica = i
				p.mu.Unlock()
			}
			r.SetURL(targets[i])
			r.Out.Host = r.In.Host
		},
		FlushInterval: -1, // SSE: every write at once
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isSSE(r) {
			rp.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		r = r.WithContext(ctx)
		p.mu.Lock()
		p.lastEventIDs = append(p.lastEventIDs, r.Header.Get("Last-Event-ID"))
		if p.refuse {
			p.mu.Unlock()
			cancel()
			http.Error(w, "cut by the test", http.StatusBadGateway)
			return
		}
		p.streams[r] = cancel
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			delete(p.streams, r)
			p.mu.Unlock()
			cancel()
		}()
		rp.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p.url = "http://" + ln.Addr().String()
	return p
}

func isSSE(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/EventService/SSE") }

// cut ends every SSE stream passing through and refuses new ones until
// resume; it returns how many it ended.
func (p *replicaProxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = true
	n := len(p.streams)
	for _, cancel := range p.streams {
		cancel()
	}
	return n
}

func (p *replicaProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = false
}

func (p *replicaProxy) streamsOpen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.streams)
}

func (p *replicaProxy) seenLastEventIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lastEventIDs...)
}

func (p *replicaProxy) streamReplica() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sseReplica
}

// chromiumPath finds Debian's chromium: absent, the test is skipped, or
// fails when CI is set.
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found and CI is set (Debian package chromium)")
	}
	t.Skip("chromium not found (Debian package chromium); skipping the browser tests")
	return ""
}

// newBrowser starts one headless chromium for the test; each tab() is a
// page of its own with its own sessionStorage.
func newBrowser(t testing.TB) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-gpu", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // chromium refuses to run as root in its sandbox
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	return bctx
}

// page is one browser tab on the operator page.
type page struct {
	t   testing.TB
	ctx context.Context
	dir string // screenshots
}

// tab opens a new tab; JavaScript exceptions on it fail the test.
func tab(t testing.TB, browser context.Context, shots string) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			t.Errorf("JavaScript exception on the page: %s", exceptionText(e.ExceptionDetails))
		}
	}); err != nil {
		t.Fatal(err)
	}
	return &page{t: t, ctx: ctx, dir: shots}
}

// do runs actions, failing the test on error.
func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, uiTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.shot("failed")
		p.t.Fatalf("%s: %v", what, err)
	}
}

// click clicks the first visible element sel matches, once there is one,
// in one turn of the page's JavaScript: lists the page draws again as
// events arrive cannot swap the element between finding and clicking it.
func (p *page) click(what, sel string) {
	p.t.Helper()
	p.waitJS(what, fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e || e.offsetParent === null) return false; e.click(); return true; })()`, sel))
}

// set gives a form field a value as a user would, with its input and
// change events.
func (p *page) set(sel, value string) {
	p.t.Helper()
	got := eval[string](p, fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q;
		e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); return e.value; })()`, sel, value))
	if got != value {
		p.shot("failed")
		p.t.Fatalf("%s: value %q, want %q", sel, got, value)
	}
}

// eval evaluates a JavaScript expression (a promise is awaited).
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, uiTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until the JavaScript expression is truthy on the page.
func (p *page) waitJS(what, expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, uiTimeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(uiTimeout), chromedp.WithPollingInterval(20*time.Millisecond)))
	if err != nil {
		p.shot("failed")
		state, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 3000)`))
		p.t.Fatalf("waiting for %s (%s): %v\npage text:\n%s", what, expr, err, state)
	}
}

// shot saves a screenshot of the page as <dir>/<test>-<name>.png.
func (p *page) shot(name string) string {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			p.t.Logf("screenshot %s: %v", name, err)
		}
		return ""
	}
	f := filepath.Join(p.dir, strings.NewReplacer("/", "_", " ", "_").Replace(p.t.Name())+"-"+name+".png")
	if err := os.WriteFile(f, png, 0o644); err != nil {
		p.t.Errorf("screenshot: %v", err)
	}
	return f
}

// screenshotDir is where the test's screenshots go: the
// FISHGATE_SCREENSHOTS directory, or a temporary one of the test.
func screenshotDir(t testing.TB) string {
	dir := os.Getenv("FISHGATE_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("FISHGATE_SCREENSHOTS: %v", err)
	}
	return dir
}

// login opens the page and logs in as user.
func (p *page) login(base, user, pass string) {
	p.t.Helper()
	p.do("open the login page", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible("#login-user"))
	p.do("log in as "+user,
		chromedp.SendKeys("#login-user", user),
		chromedp.SendKeys("#login-password", pass),
		chromedp.Click("#login-submit"),
		chromedp.WaitVisible("#fleet"),
	)
}

// rowField is the text of a field of node's row in the fleet list.
func rowField(node, cls string) string {
	return fmt.Sprintf(`(() => { const r = [...document.querySelectorAll('#rows .row')].find((r) => !r.hidden && r.dataset.node === %q); return r ? r.querySelector('.%s').textContent : ''; })()`, node, cls)
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d.Exception != nil && d.Exception.Description != "" {
		return d.Exception.Description
	}
	return fmt.Sprintf("%s at %s:%d", d.Text, d.URL, d.LineNumber)
}
