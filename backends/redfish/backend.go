// Package redfish drives a BMC that speaks Redfish
// (docs/architecture.md#backends), through the gofish client. Code that also
// imports the northbound fronts/redfish names this one rfbackend.
//
// One Backend holds one session with one BMC. The session is created on the
// first call, reused by every later call (HTTP keep-alive on), and created
// again once when the BMC answers 401 (session expired or deleted). A Backend
// is safe for use by several goroutines; its HTTP requests to the BMC go one
// at a time (gofish's MaxConcurrentRequests default of 1, kind to small BMCs),
// and a caller waiting for its turn still honours its ctx.
//
// The system's Reset action (target and ResetTypes) is read once per session
// and refreshed by every Capabilities call; PowerState, Boot and SetBoot
// read the system each time.
//
// A Reset is POSTed once: it is sent again only after a 401 (the BMC did not
// act on it) or by gofish after a 412 (likewise). When the POST may have
// reached the BMC and no answer came (Timeout or ctx ran out, the connection
// broke), or the task the BMC started (202) could not be followed to its
// end, the BMC may have carried the command out: the error wraps
// backends.ErrNoAnswer, and the caller settles it by reading the power
// state.
package redfish

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stmcginnis/gofish"
	rf "github.com/stmcginnis/gofish/schemas"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/internal/requestid"
	"github.com/fishgate/fishgate/schemas"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultTaskPoll     = 200 * time.Millisecond
	DefaultTaskPollMax  = 5 * time.Second
	defaultLogoutBudget = 5 * time.Second
)

// Config says how to reach one BMC.
type Config struct {
	// Endpoint is the BMC's base URL, "https://10.0.0.5" or
	// "http://127.0.0.1:41234"; the service root is Endpoint+"/redfish/v1".
	Endpoint string
	// User and Password log in to the BMC's SessionService.
	User, Password string
	// Insecure skips TLS certificate verification.
	Insecure bool
	// SystemID selects the ComputerSystem: "/redfish/v1/Systems/1" or "1".
	// Empty means the first member of /redfish/v1/Systems.
	SystemID string
	// Timeout bounds every HTTP request, in addition to the caller's ctx.
	// Default DefaultTimeout (30s).
	Timeout time.Duration
	// TaskPoll is the first wait between two polls of a BMC task after a 202;
	// it doubles after each poll up to TaskPollMax. A Retry-After header from
	// the BMC takes precedence. Defaults DefaultTaskPoll and DefaultTaskPollMax.
	TaskPoll, TaskPollMax time.Duration
	// Logger receives the backend's logs; default slog.Default().
	Logger *slog.Logger
}

// ErrAuthentication is wrapped by errors returned when the BMC refuses the
// configured credentials.
var ErrAuthentication = errors.New("BMC refused the credentials")

// ErrTaskFailed is wrapped by Reset's error when the BMC accepted the command
// (202) but the task it started ended in Exception, Killed or Cancelled.
var ErrTaskFailed = errors.New("BMC task failed")

// errClosed is returned by calls made after Close.
var errClosed = errors.New("backend closed")

// Backend is a backends.Backend for one Redfish BMC.
type Backend struct {
	cfg      Config
	endpoint string // cfg.Endpoint without trailing slash
	log      *slog.Logger
	http     *http.Client

	// login serialises logins: a one-slot semaphore rather than a mutex so
	// that a caller waiting for another caller's login still honours its ctx.
	login chan struct{}

	mu     sync.Mutex // guards the fields below; never held during I/O
	client *gofish.APIClient
	gen    uint64 // incremented at each login
	closed bool
	system string     // resolved ComputerSystem path, "" until known
	reset  *resetInfo // cached Reset action of the system, nil until known

	// beforeBootPatch, when set (by tests only), runs between SetBoot's GET
	// and its PATCH.
	beforeBootPatch func()
}

var _ backends.Backend = (*Backend)(nil)

// New checks cfg and returns a Backend. It does no I/O: the session is
// opened by the first call.
func New(cfg Config) (*Backend, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("redfish backend: endpoint %q: want http(s)://host[:port]", cfg.Endpoint)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.TaskPoll <= 0 {
		cfg.TaskPoll = DefaultTaskPoll
	}
	if cfg.TaskPollMax <= 0 {
		cfg.TaskPollMax = DefaultTaskPollMax
	}
	if cfg.TaskPollMax < cfg.TaskPoll {
		cfg.TaskPollMax = cfg.TaskPoll
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	endpoint := strings.TrimRight(cfg.Endpoint, "/")
	b := &Backend{
		cfg:      cfg,
		endpoint: endpoint,
		log:      requestid.Logger(cfg.Logger).With("backend", "redfish", "endpoint", endpoint),
		http:     newHTTPClient(cfg),
		login:    make(chan struct{}, 1),
	}
	if cfg.SystemID != "" {
		b.system = systemPathOf(cfg.SystemID)
	}
	return b, nil
}

// newHTTPClient builds the one HTTP client of a Backend. We configure the
// transport ourselves and tell gofish not to touch it (NoModifyTransport):
// gofish would otherwise rewrite its fields at every login, while other
// goroutines use it.
func newHTTPClient(cfg Config) *http.Client {
	dialer := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       idleConnTimeout,
		TLSHandshakeTimeout:   cfg.Timeout,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig: &tls.Config{
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: cfg.Insecure, //nolint:gosec // operator's choice, per BMC
		},
	}
	// The BMC is told which gateway request caused each of its requests.
	// The timeout is ours rather than http.Client.Timeout: the client
	// cannot tell its own timeout from the caller's deadline behind a
	// wrapped transport, and says only "context deadline exceeded".
	return &http.Client{Transport: timeoutTransport{requestid.Transport(tr), cfg.Timeout}}
}

// timeoutTransport bounds each request, from sending it to the end of its
// body, by d, and names the bound in the error when it ran out.
type timeoutTransport struct {
	http.RoundTripper
	d time.Duration
}

func (t timeoutTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(r.Context(), t.d)
	resp, err := t.RoundTripper.RoundTrip(r.WithContext(ctx))
	if err != nil {
		expired := ctx.Err() == context.DeadlineExceeded && r.Context().Err() == nil
		cancel()
		if expired {
			return nil, fmt.Errorf("BMC request Timeout (%s) exceeded: %w", t.d, err)
		}
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// CloseIdleConnections passes http.Client.CloseIdleConnections on.
func (t timeoutTransport) CloseIdleConnections() {
	if c, ok := t.RoundTripper.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// cancelOnClose releases a request's timeout when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// idleConnTimeout is how long a connection to the BMC is kept open unused:
// long enough for the polls of a running action (every 2 s at most) to
// reuse it, shorter than the power sync's interval, so that a gateway of
// 10,000 nodes does not hold 10,000 idle connections between its reads
// (each costs about 25 KiB here: buffers and two goroutines).
const idleConnTimeout = 5 * time.Second

// systemPathOf turns a Config.SystemID into the ComputerSystem's URI path.
func systemPathOf(id string) string {
	if u, err := url.Parse(id); err == nil && u.IsAbs() {
		id = u.RequestURI()
	}
	if strings.HasPrefix(id, "/") {
		return strings.TrimRight(id, "/")
	}
	return "/redfish/v1/Systems/" + id
}

// errorf wraps err with the endpoint and the operation, so every error of
// this package names the BMC it comes from.
func (b *Backend) errorf(op string, err error) error {
	return fmt.Errorf("redfish %s: %s: %w", b.endpoint, op, err)
}

// PowerState reads ComputerSystem.PowerState.
func (b *Backend) PowerState(ctx context.Context) (schemas.PowerState, error) {
	var ps schemas.PowerState
	err := b.do(ctx, func(c *gofish.APIClient) error {
		sys, err := b.getSystem(c)
		if err != nil {
			return err
		}
		ps = powerState(sys.PowerState)
		return nil
	})
	if err != nil {
		return schemas.PowerUnknown, b.errorf("read power state", err)
	}
	return ps, nil
}

// Reset posts ComputerSystem.Reset with ResetType r. A type the BMC does not
// advertise is refused with backends.ErrUnsupported, without sending. If the
// BMC answers 202 with a task, Reset follows the task until it ends (bounded
// by ctx) and returns its failure, wrapping ErrTaskFailed. A command whose
// outcome is unknown (no answer to the POST, or the task not followed to its
// end) wraps backends.ErrNoAnswer (see the package comment).
func (b *Backend) Reset(ctx context.Context, r schemas.ResetType) error {
	_, err := b.ResetConfirmed(ctx, r)
	return err
}

// ResetConfirmed is Reset, and reports whether the BMC itself confirmed
// the command carried out to its end: it answered with a task, followed
// here until it completed (backends.Confirmer).
func (b *Backend) ResetConfirmed(ctx context.Context, r schemas.ResetType) (bool, error) {
	op := "reset " + string(r)
	var task *rf.TaskMonitorInfo
	err := b.do(ctx, func(c *gofish.APIClient) error {
		ri, err := b.resetAction(c)
		if err != nil {
			return err
		}
		if ri.target == "" {
			return fmt.Errorf("system has no #ComputerSystem.Reset action: %w", backends.ErrUnsupported)
		}
		if !ri.supports(r) {
			return fmt.Errorf("ResetType %s not in %v: %w", r, ri.types, backends.ErrUnsupported)
		}
		body := struct{ ResetType rf.ResetType }{rf.ResetType(r)}
		// wrote: the last attempt to send the POST began writing it.
		var wrote atomic.Bool
		post := c.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			GetConn:      func(string) { wrote.Store(false) },
			WroteHeaders: func() { wrote.Store(true) },
		}))
		resp, ti, err := rf.PostWithTask(post, ri.target, body, nil, false)
		rf.DeferredCleanupHTTPResponse(resp)
		task = ti
		if err != nil {
			err = fmt.Errorf("POST %s: %w", ri.target, err)
			if status(err) == 0 && wrote.Load() {
				return lostAnswer(err) // the BMC may have it
			}
			return err
		}
		return nil
	})
	if err != nil {
		return false, b.errorf(op, err)
	}
	b.log.DebugContext(ctx, "reset sent", "reset_type", string(r), "async", task != nil)
	if task == nil {
		return false, nil
	}
	if err := b.followTask(ctx, task); err != nil {
		if !errors.Is(err, ErrTaskFailed) {
			err = lostAnswer(err) // accepted, outcome unknown
		}
		return false, b.errorf(op, err)
	}
	return true, nil
}

// lostAnswer is the error of a command whose outcome is unknown: it may have
// been carried out.
func lostAnswer(err error) error {
	return fmt.Errorf("%w: %w", backends.ErrNoAnswer, err)
}

// Boot reads the boot source override of the system.
func (b *Backend) Boot(ctx context.Context) (schemas.BootOverride, error) {
	var bo schemas.BootOverride
	err := b.do(ctx, func(c *gofish.APIClient) error {
		sys, err := b.getSystem(c)
		if err != nil {
			return err
		}
		bo = schemas.BootOverride{
			Target:  string(sys.Boot.BootSourceOverrideTarget),
			Enabled: string(sys.Boot.BootSourceOverrideEnabled),
			Mode:    string(sys.Boot.BootSourceOverrideMode),
		}
		return nil
	})
	if err != nil {
		return schemas.BootOverride{}, b.errorf("read boot override", err)
	}
	return bo, nil
}

// SetBoot PATCHes the system's Boot with the non-empty fields of o. A target
// or mode outside the values the BMC advertises is refused with
// backends.ErrUnsupported, without sending.
func (b *Backend) SetBoot(ctx context.Context, o schemas.BootOverride) error {
	if o == (schemas.BootOverride{}) {
		return nil
	}
	err := b.do(ctx, func(c *gofish.APIClient) error {
		sys, err := b.getSystem(c)
		if err != nil {
			return err
		}
		allowed := bootAllowed(sys)
		if err := allowed.check(o); err != nil {
			return err
		}
		boot := &rf.Boot{
			BootSourceOverrideTarget:  rf.BootSource(o.Target),
			BootSourceOverrideEnabled: rf.BootSourceOverrideEnabled(o.Enabled),
			BootSourceOverrideMode:    rf.BootSourceOverrideMode(o.Mode),
		}
		// No If-Match: the PATCH carries only the caller's values, nothing
		// derived from the GET, so there is no lost update to prevent; and
		// many BMCs compute the system's ETag over the whole body, so it
		// changes with PowerState and a PATCH during a transition would
		// fail with 412. A BMC that insists on If-Match (428 Precondition
		// Required) gets it.
		if b.beforeBootPatch != nil {
			b.beforeBootPatch()
		}
		sys.DisableEtagMatch(true)
		err = sys.SetBoot(boot)
		if status(err) == http.StatusPreconditionRequired {
			sys.DisableEtagMatch(false)
			err = sys.SetBoot(boot)
		}
		return err
	})
	if err != nil {
		return b.errorf(fmt.Sprintf("set boot override %+v", o), err)
	}
	return nil
}

// Capabilities reports the ResetTypes of the system's Reset action (its
// AllowableValues, else its ActionInfo, else DefaultResetTypes) and the
// allowable boot override targets and modes (BMC's values, else
// DefaultBootTargets and no modes).
func (b *Backend) Capabilities(ctx context.Context) (backends.Capabilities, error) {
	var caps backends.Capabilities
	err := b.do(ctx, func(c *gofish.APIClient) error {
		sys, err := b.getSystem(c)
		if err != nil {
			return err
		}
		ri, err := b.readResetAction(sys)
		if err != nil {
			return err
		}
		b.mu.Lock()
		b.reset = ri
		b.mu.Unlock()
		allowed := bootAllowed(sys)
		caps.ResetTypes = append([]schemas.ResetType(nil), ri.types...)
		caps.BootTargets = allowed.targets
		if len(caps.BootTargets) == 0 {
			caps.BootTargets = DefaultBootTargets()
		}
		caps.BootModes = allowed.modes
		return nil
	})
	if err != nil {
		return backends.Capabilities{}, b.errorf("read capabilities", err)
	}
	return caps, nil
}

// Close logs out of the BMC (DELETE of the session) and closes idle
// connections. Calls made after Close fail.
func (b *Backend) Close() error {
	b.mu.Lock()
	c := b.client
	b.client = nil
	b.closed = true
	b.gen++
	b.mu.Unlock()
	defer b.http.CloseIdleConnections()
	if c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(b.cfg.Timeout, defaultLogoutBudget))
	defer cancel()
	if err := logout(ctx, c); err != nil {
		return b.errorf("log out", err)
	}
	b.log.Debug("logged out")
	return nil
}

// powerState maps gofish's PowerState onto ours; anything else is unknown.
func powerState(p rf.PowerState) schemas.PowerState {
	switch p {
	case rf.OnPowerState:
		return schemas.PowerOn
	case rf.OffPowerState:
		return schemas.PowerOff
	case rf.PoweringOnPowerState:
		return schemas.PowerPoweringOn
	case rf.PoweringOffPowerState:
		return schemas.PowerPoweringOff
	case rf.PausedPowerState:
		return schemas.PowerPaused
	}
	return schemas.PowerUnknown
}
