// Package amt drives an Intel AMT machine (docs/architecture.md#backends) over
// WS-Management: SOAP 1.2 over HTTP (port 16992) or HTTPS (16993) at /wsman,
// with HTTP Digest authentication (github.com/icholy/digest).
//
//	PowerState    Enumerate CIM_AssociatedPowerManagementService (optimized:
//	              one request) → PowerState, AvailableRequestedPowerStates
//	Reset         CIM_PowerManagementService.RequestPowerStateChange with the
//	              host's CIM_ComputerSystem ("ManagedSystem") as ManagedElement
//	SetBoot       CIM_BootConfigSetting.ChangeBootOrder (the boot source),
//	              then CIM_BootService.SetBootConfigRole (IsNextSingleUse),
//	              as MAAS does before a power-on
//	Capabilities  the ResetTypes of AvailableRequestedPowerStates
//
// ResetType mapping (power.go): On 2, PowerCycle 5, ForceOff 8, ForceRestart
// 10, Nmi 11; GracefulShutdown 12 and GracefulRestart 14 only when AMT
// offers them (they need the OS). ForceOn and PushPowerButton have no AMT
// value.
//
// AMT often fails the first time: every operation is retried (Retries,
// with a jittered, doubling pause from RetryBackoff: internal/retry),
// within the caller's ctx. A power command's attempts take from the
// attempt budget its ctx carries, if any: the serializer grants one per
// attempt of the action, which owns the retries of power commands, so a
// flaky AMT gets retries+1 ForceOffs in all, not that many times 1+Retries.
// Reads are bounded by 1+Retries per call and the call's deadline. A
// request that surely did not reach AMT (nothing was written: the
// connection could not be made), a fault AMT blames on itself (s:Receiver),
// HTTP 5xx and transient ReturnValues (2 failed, 4097 invalid state
// transition, 4099 busy, ...) are retried; a refused request (s:Sender
// faults, ReturnValue 1 not supported or 5 invalid parameter) and refused
// credentials are not. A read whose answer was lost is sent again.
//
// A power command whose answer was lost is never sent again: when the
// request may have reached AMT and no usable answer came (Timeout or ctx
// ran out, the connection broke, the answer is not one; ReturnValue 3,
// "cannot complete within timeout period"), or when the job it started
// (4096) could not be followed to its end, AMT may have carried it out (a
// slow AMT answers late; a second PowerCycle is a second cycle): Reset's
// error wraps backends.ErrNoAnswer and the caller settles it by reading the
// power state. ReturnValue 4096 (job started) is followed by polling the
// CIM_ConcreteJob until it ends.
//
// Requests: the Digest challenge and the ManagedSystem reference are
// cached, so after the first call a power read is one HTTP request and a
// Reset one request (plus the job polls when AMT answers 4096; plus one read
// for a graceful type not seen offered yet). Requests counts them.
//
// A Backend is safe for concurrent use; its requests go to AMT one at a
// time.
package amt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icholy/digest"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/internal/requestid"
	"github.com/fishgate/fishgate/internal/retry"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/wire/wsman"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultRetries      = 3
	DefaultRetryBackoff = 500 * time.Millisecond
	DefaultTimeout      = 20 * time.Second
	DefaultPoll         = 250 * time.Millisecond
	maxBackoff          = 10 * time.Second
	maxPoll             = 2 * time.Second
)

// Config says how to reach one AMT.
type Config struct {
	// Endpoint is AMT's address: "http://10.0.0.5:16992", "https://amt7:16993"
	// or a bare host ("10.0.0.5", meaning http on 16992). The path defaults
	// to /wsman.
	Endpoint string
	// User and Password are AMT's Digest credentials (AMT's admin user is
	// "admin").
	User, Password string
	// Insecure skips TLS certificate verification (AMT's certificates are
	// often self-signed).
	Insecure bool
	// CAFile is a PEM file of CA certificates to verify AMT's TLS
	// certificate with, instead of the system's.
	CAFile string
	// Retries is how many times a failed operation is tried again. Default
	// DefaultRetries (3); negative means none.
	Retries int
	// RetryBackoff is the ceiling of the pause before the first retry; it
	// doubles at each retry, up to 10s, and each pause is drawn between
	// half of its ceiling and all of it. A retry whose pause would outlast
	// the ctx is not made. Default DefaultRetryBackoff (500ms).
	RetryBackoff time.Duration
	// Timeout bounds every HTTP request, besides the caller's ctx. Default
	// DefaultTimeout (20s).
	Timeout time.Duration
	// Poll is the first pause between two reads of a CIM_ConcreteJob (after
	// ReturnValue 4096) or of the power state (ConfirmTimeout); it doubles
	// up to 2s. Default DefaultPoll (250ms).
	Poll time.Duration
	// ConfirmTimeout, when positive, makes Reset of On, ForceOff and
	// GracefulShutdown wait until AMT reports the target power state, up to
	// this long per attempt: an attempt AMT accepted but did not carry out
	// (AMT ignores commands now and then) is retried, and fails with
	// ErrNotConfirmed. 0, the default, returns once AMT accepted the
	// command (the gateway's serializer verifies the state itself).
	ConfirmTimeout time.Duration
	// Logger receives the backend's logs; default slog.Default().
	Logger *slog.Logger
}

// Errors the backend returns, wrapped with the endpoint and the operation.
var (
	// ErrAuthentication: AMT answered 401 to the configured credentials.
	ErrAuthentication = errors.New("AMT refused the credentials (HTTP 401)")
	// ErrUnknownPowerState: AMT reported a PowerState that is neither on nor off.
	ErrUnknownPowerState = errors.New("unknown power state")
	// ErrJobFailed: AMT started a job for the command (4096) that ended
	// Terminated, Killed or in Exception.
	ErrJobFailed = errors.New("AMT job failed")
	// ErrNotConfirmed: AMT accepted the command but the machine did not
	// reach the target within ConfirmTimeout.
	ErrNotConfirmed = errors.New("AMT accepted the command but the machine did not reach the target")
	errClosed       = errors.New("backend closed")
)

// Backend is a backends.Backend for one Intel AMT.
type Backend struct {
	cfg      Config
	endpoint string // the /wsman URL
	log      *slog.Logger
	client   *wsmanClient
	base     *http.Transport
	requests atomic.Uint64

	mu        sync.Mutex // guards the fields below; never held during I/O
	closed    bool
	managed   *wsman.EPR // the host's CIM_ComputerSystem, once found
	available []int      // AvailableRequestedPowerStates of the last read
	offered   []int      // every value AMT ever offered (AMT narrows the list to the current state)
	boot      schemas.BootOverride
}

var _ backends.Backend = (*Backend)(nil)

// New checks cfg and returns a Backend. It does no I/O.
func New(cfg Config) (*Backend, error) {
	endpoint, err := wsmanURL(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = DefaultRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = DefaultRetryBackoff
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = requestid.Logger(cfg.Logger)
	tlsConf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: cfg.Insecure, //nolint:gosec // operator's choice, per BMC
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("amt backend: CA file: %w", err)
		}
		tlsConf.RootCAs = x509.NewCertPool()
		if !tlsConf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("amt backend: CA file %s: no PEM certificate in it", cfg.CAFile)
		}
	}
	b := &Backend{
		cfg:      cfg,
		endpoint: endpoint,
		log:      cfg.Logger.With("backend", "amt", "endpoint", endpoint),
		boot:     schemas.BootOverride{Target: "None", Enabled: "Disabled"},
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
	b.base = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          1,
		MaxIdleConnsPerHost:   1,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		TLSClientConfig:       tlsConf,
	}
	b.client = &wsmanClient{
		url: endpoint,
		http: &http.Client{
			Timeout: cfg.Timeout,
			Transport: &digest.Transport{
				Username:  cfg.User,
				Password:  cfg.Password,
				Transport: countingTransport{next: b.base, n: &b.requests},
			},
		},
		slot: make(chan struct{}, 1),
	}
	return b, nil
}

// wsmanURL turns Config.Endpoint into the URL of AMT's WS-Man service.
func wsmanURL(endpoint string) (string, error) {
	if endpoint == "" {
		return "", errors.New("amt backend: no endpoint")
	}
	if !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("amt backend: endpoint %q: want http(s)://host[:port]", endpoint)
	}
	if u.Port() == "" {
		port := "16992"
		if u.Scheme == "https" {
			port = "16993"
		}
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/wsman"
	}
	return u.String(), nil
}

// Requests returns how many HTTP requests the backend has sent, Digest
// challenges (401) included.
func (b *Backend) Requests() uint64 { return b.requests.Load() }

// Close drops idle connections; later calls fail.
func (b *Backend) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.base.CloseIdleConnections()
	return nil
}

func (b *Backend) errorf(op string, err error) error {
	return fmt.Errorf("amt %s: %s: %w", b.endpoint, op, err)
}

func (b *Backend) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// ---- power ----

// powerStatus is what CIM_AssociatedPowerManagementService says.
type powerStatus struct {
	state     int
	available []int
}

// readPower reads the power association once, and remembers what AMT
// offers.
func (b *Backend) readPower(ctx context.Context) (powerStatus, error) {
	items, err := b.client.enumerate(ctx, wsman.URIPowerAssociation, false)
	if err != nil {
		return powerStatus{}, err
	}
	for i := range items {
		it := &items[i]
		if it.XMLName.Local != "CIM_AssociatedPowerManagementService" {
			continue
		}
		st := powerStatus{}
		if st.state, err = intChild(it, "PowerState"); err != nil {
			return powerStatus{}, &transportError{err: err, sent: true}
		}
		for _, c := range it.Children {
			if c.XMLName.Local == "AvailableRequestedPowerStates" {
				var v int
				if _, err := fmt.Sscan(c.Text(), &v); err == nil {
					st.available = append(st.available, v)
				}
			}
		}
		b.mu.Lock()
		b.available = st.available
		for _, v := range st.available {
			if !slices.Contains(b.offered, v) {
				b.offered = append(b.offered, v)
			}
		}
		b.mu.Unlock()
		return st, nil
	}
	return powerStatus{}, &transportError{err: errors.New("no CIM_AssociatedPowerManagementService instance"), sent: true}
}

// PowerState reads the machine's power state.
func (b *Backend) PowerState(ctx context.Context) (schemas.PowerState, error) {
	var st powerStatus
	err := b.retry(ctx, "read power state", true, func(ctx context.Context) error {
		var err error
		st, err = b.readPower(ctx)
		return err
	})
	if err != nil {
		return schemas.PowerUnknown, b.errorf("read power state", err)
	}
	ps, err := ReadPowerState(st.state)
	if err != nil {
		return schemas.PowerUnknown, b.errorf("read power state", err)
	}
	return ps, nil
}

// Capabilities reads AvailableRequestedPowerStates and reports the
// ResetTypes of every value AMT has offered since New (AMT narrows the list
// to what the current state allows: a machine that is off offers little).
func (b *Backend) Capabilities(ctx context.Context) (backends.Capabilities, error) {
	err := b.retry(ctx, "read capabilities", true, func(ctx context.Context) error {
		_, err := b.readPower(ctx)
		return err
	})
	if err != nil {
		return backends.Capabilities{}, b.errorf("read capabilities", err)
	}
	b.mu.Lock()
	offered := slices.Clone(b.offered)
	b.mu.Unlock()
	return backends.Capabilities{ResetTypes: ResetTypesOffered(offered), BootTargets: slices.Clone(bootTargets)}, nil
}

// managedSystem returns the host's CIM_ComputerSystem reference, finding
// it (EnumerateEPR) the first time.
func (b *Backend) managedSystem(ctx context.Context) (wsman.EPR, error) {
	b.mu.Lock()
	cached := b.managed
	b.mu.Unlock()
	if cached != nil {
		return *cached, nil
	}
	items, err := b.client.enumerate(ctx, wsman.URIComputerSystem, true)
	if err != nil {
		return wsman.EPR{}, err
	}
	for i := range items {
		if ref, ok := wsman.ReadEPR(&items[i]); ok && ref.Get("Name") == managedSystemName {
			b.mu.Lock()
			b.managed = &ref
			b.mu.Unlock()
			return ref, nil
		}
	}
	return wsman.EPR{}, &transportError{err: fmt.Errorf("no CIM_ComputerSystem named %s among %d", managedSystemName, len(items)), sent: true}
}

// Reset sends RequestPowerStateChange with the PowerState value of r. It
// returns once AMT accepted it (ReturnValue 0, or its job Completed), or,
// with ConfirmTimeout, once AMT reports the target state.
func (b *Backend) Reset(ctx context.Context, r schemas.ResetType) error {
	value, graceful, ok := PowerStateValue(r)
	op := fmt.Sprintf("%s (RequestPowerStateChange %d)", r, value)
	if !ok {
		return b.errorf(string(r), fmt.Errorf("%w: AMT has no PowerState for ResetType %s", backends.ErrUnsupported, r))
	}
	if graceful {
		if err := b.checkOffered(ctx, value); err != nil {
			return b.errorf(op, err)
		}
	}
	if err := b.retry(ctx, "find the ManagedSystem", true, func(ctx context.Context) error {
		_, err := b.managedSystem(ctx)
		return err
	}); err != nil {
		return b.errorf(op, err)
	}
	// WS-Man has no field for it: the request that caused the command is
	// named in the log (ctx's request id).
	b.log.InfoContext(ctx, "sending RequestPowerStateChange", "reset", r, "power_state", value)
	target, steady := r.Target()
	confirm := b.cfg.ConfirmTimeout > 0 && steady && r != schemas.ResetGracefulRestart && r != schemas.ResetForceRestart && r != schemas.ResetPowerCycle
	err := b.retry(ctx, op, false, func(ctx context.Context) error {
		ref, err := b.managedSystem(ctx) // cached, unless a ReturnValue 5 dropped it
		if err != nil {
			return beforeCommand{err} // a read: nothing of the command was sent
		}
		out, rv, err := b.client.invoke(ctx, wsman.URIPowerService, "RequestPowerStateChange", nil,
			powerChangeInput{NSP: wsman.URIPowerService, PowerState: value, ManagedElement: eprParam(ref)})
		var terr *transportError
		if errors.As(err, &terr) && terr.sent {
			return lostAnswer(err)
		}
		if err != nil {
			return err
		}
		switch rv {
		case rvCompleted:
		case rvJobStarted:
			job, ok := wsman.ReadEPR(out.Child("", "Job"))
			if !ok {
				return lostAnswer(errors.New("ReturnValue 4096 without a Job reference"))
			}
			if err := b.waitJob(ctx, job); err != nil {
				if errors.Is(err, ErrJobFailed) {
					return err // AMT says the command was not carried out
				}
				return lostAnswer(err)
			}
		case rvTimeout:
			return lostAnswer(&ReturnValueError{Method: "RequestPowerStateChange", Value: rv})
		default:
			if rv == 5 { // perhaps a stale reference: look it up again next time
				b.mu.Lock()
				b.managed = nil
				b.mu.Unlock()
			}
			return &ReturnValueError{Method: "RequestPowerStateChange", Value: rv}
		}
		if confirm {
			return b.confirm(ctx, target)
		}
		return nil
	})
	if err != nil {
		return b.errorf(op, err)
	}
	return nil
}

// checkOffered makes sure AMT offers value: from the last read when it
// did, else from a new read.
func (b *Backend) checkOffered(ctx context.Context, value int) error {
	b.mu.Lock()
	seen := slices.Contains(b.available, value)
	b.mu.Unlock()
	if seen {
		return nil
	}
	var st powerStatus
	err := b.retry(ctx, "read AvailableRequestedPowerStates", true, func(ctx context.Context) error {
		var err error
		st, err = b.readPower(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if !slices.Contains(st.available, value) {
		return fmt.Errorf("%w: AMT does not offer PowerState %d now (AvailableRequestedPowerStates %v)", backends.ErrUnsupported, value, st.available)
	}
	return nil
}

// waitJob polls a CIM_ConcreteJob until it ends.
func (b *Backend) waitJob(ctx context.Context, job wsman.EPR) error {
	pause := b.cfg.Poll
	for {
		inst, err := b.client.call(ctx, wsman.ActionGet, job.ResourceURI, job.Selectors, nil)
		if err != nil {
			return fmt.Errorf("polling job %s: %w", job, err)
		}
		state, err := intChild(inst, "JobState")
		if err != nil {
			return &transportError{err: fmt.Errorf("polling job %s: %w", job, err), sent: true}
		}
		if done, ok := jobDone(state); done {
			if ok {
				return nil
			}
			return fmt.Errorf("%w: job %s ended in JobState %d: %s", ErrJobFailed, job, state, inst.Child("", "ErrorDescription").Text())
		}
		if err := retry.Sleep(ctx, pause); err != nil {
			return fmt.Errorf("job %s still running (JobState %d): %w", job, state, err)
		}
		pause = min(2*pause, maxPoll)
	}
}

// confirm polls the power state until target, for ConfirmTimeout.
func (b *Backend) confirm(ctx context.Context, target schemas.PowerState) error {
	deadline := time.Now().Add(b.cfg.ConfirmTimeout)
	pause := b.cfg.Poll
	last := "unknown"
	for {
		if st, err := b.readPower(ctx); err == nil {
			ps, err := ReadPowerState(st.state)
			if err == nil && ps == target {
				return nil
			}
			last = fmt.Sprintf("PowerState %d", st.state)
		}
		if time.Now().Add(pause).After(deadline) {
			return fmt.Errorf("%w %s within %v (last read: %s)", ErrNotConfirmed, target, b.cfg.ConfirmTimeout, last)
		}
		if err := retry.Sleep(ctx, pause); err != nil {
			return err
		}
		pause = min(2*pause, maxPoll)
	}
}

// ---- boot ----

// Boot returns the override this backend last set (AMT has no read-back
// of a one-time boot override that clients agree on); {None, Disabled}
// before any.
func (b *Backend) Boot(ctx context.Context) (schemas.BootOverride, error) {
	if b.isClosed() {
		return schemas.BootOverride{}, b.errorf("read boot override", errClosed)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.boot, nil
}

// SetBoot sets the boot source for the next boot: Pxe, Hdd or Cd
// (ChangeBootOrder, then SetBootConfigRole IsNextSingleUse), or none
// (Target None or Enabled Disabled: ChangeBootOrder without a source). AMT
// overrides only the next boot: Enabled Continuous and any Mode are
// refused with backends.ErrUnsupported.
func (b *Backend) SetBoot(ctx context.Context, o schemas.BootOverride) error {
	b.mu.Lock()
	cur := b.boot
	b.mu.Unlock()
	target, enabled := o.Target, o.Enabled
	if target == "" {
		target = cur.Target
	}
	switch {
	case o.Mode != "":
		return b.errorf("set boot override", fmt.Errorf("%w: BootSourceOverrideMode %s (AMT does not choose UEFI or Legacy)", backends.ErrUnsupported, o.Mode))
	case enabled == "Continuous":
		return b.errorf("set boot override", fmt.Errorf("%w: BootSourceOverrideEnabled Continuous (AMT overrides the next boot only)", backends.ErrUnsupported))
	case enabled != "" && enabled != "Once" && enabled != "Disabled":
		return b.errorf("set boot override", fmt.Errorf("%w: BootSourceOverrideEnabled %q", backends.ErrUnsupported, enabled))
	}
	source, known := bootSources[target]
	if target != "None" && !known {
		return b.errorf("set boot override", fmt.Errorf("%w: BootSourceOverrideTarget %q (AMT offers %v)", backends.ErrUnsupported, target, bootTargets))
	}
	clear := target == "None" || enabled == "Disabled"
	op := "set boot override " + target
	if clear {
		op = "clear boot override"
	}
	err := b.retry(ctx, op, true, func(ctx context.Context) error {
		in := changeBootOrderInput{NSP: wsman.URIBootConfig}
		if !clear {
			src := eprParam(wsman.EPR{ResourceURI: wsman.URIBootSource, Selectors: []wsman.Selector{{Name: "InstanceID", Value: source}}})
			in.Source = &src
		}
		if _, rv, err := b.client.invoke(ctx, wsman.URIBootConfig, "ChangeBootOrder", nil, in); err != nil {
			return err
		} else if rv != rvCompleted {
			return &ReturnValueError{Method: "ChangeBootOrder", Value: rv}
		}
		if clear {
			return nil
		}
		cfgRef := wsman.EPR{ResourceURI: wsman.URIBootConfig, Selectors: []wsman.Selector{{Name: "InstanceID", Value: bootConfigID}}}
		_, rv, err := b.client.invoke(ctx, wsman.URIBootService, "SetBootConfigRole", nil,
			setBootConfigRoleInput{NSP: wsman.URIBootService, BootConfigSetting: eprParam(cfgRef), Role: 1})
		if err != nil {
			return err
		}
		if rv != rvCompleted {
			return &ReturnValueError{Method: "SetBootConfigRole", Value: rv}
		}
		return nil
	})
	if err != nil {
		return b.errorf(op, err)
	}
	b.mu.Lock()
	if clear {
		b.boot = schemas.BootOverride{Target: "None", Enabled: "Disabled"}
	} else {
		b.boot = schemas.BootOverride{Target: target, Enabled: "Once"}
	}
	b.mu.Unlock()
	return nil
}

// ---- retries ----

// lostAnswer is the error of a power command that may have reached AMT and
// got no usable answer: it may have been carried out, and is not re-sent.
func lostAnswer(err error) error {
	return fmt.Errorf("%w, not re-sent: %w", backends.ErrNoAnswer, err)
}

// beforeCommand is a failed read made for a command before the command was
// sent: it is retried as a read.
type beforeCommand struct{ err error }

func (e beforeCommand) Error() string { return e.err.Error() }
func (e beforeCommand) Unwrap() error { return e.err }

// retry runs f under the backend's retry policy (internal/retry: a
// jittered backoff from RetryBackoff, at most 1+Retries attempts) until it
// succeeds, fails for good, or ctx ends. idempotent says whether a request
// whose answer was lost may be sent again: true for reads and settings,
// false for power commands. A power command's attempts also take from the
// budget in ctx (retry.WithBudget): under the serializer, which grants one
// per attempt of its own, the backend sends the command once.
func (b *Backend) retry(ctx context.Context, op string, idempotent bool, f func(context.Context) error) error {
	p := retry.Policy{
		Base: b.cfg.RetryBackoff, Cap: maxBackoff, Attempts: b.cfg.Retries + 1, Command: !idempotent,
		OnRetry: func(attempt int, err error, pause time.Duration) {
			b.log.Warn("AMT call failed, retrying", "op", op, "attempt", attempt, "pause", pause, "err", err)
		},
	}
	return p.Do(ctx, func(attempt int) error {
		if b.isClosed() {
			return retry.Stop(errClosed)
		}
		err := f(ctx)
		switch {
		case err == nil:
			if attempt > 1 {
				b.log.Info("AMT call succeeded after retries", "op", op, "attempts", attempt)
			}
		case !retryable(err, idempotent):
			return retry.Stop(err)
		}
		return err
	})
}

// retryable reports whether an operation that failed with err may be tried
// again.
func retryable(err error, idempotent bool) bool {
	var (
		rv    *ReturnValueError
		fault *FaultError
		herr  *HTTPError
		terr  *transportError
		cverr *tls.CertificateVerificationError
		read  beforeCommand
	)
	switch {
	case errors.Is(err, backends.ErrNoAnswer), errors.Is(err, ErrAuthentication), errors.Is(err, errClosed), errors.As(err, &cverr):
		return false
	case errors.As(err, &read):
		return retryable(read.err, true)
	case errors.As(err, &rv):
		return !rv.permanent()
	case errors.As(err, &fault):
		return !fault.sender()
	case errors.As(err, &herr):
		return herr.Status >= 500 || herr.Status == http.StatusTooManyRequests
	case errors.As(err, &terr):
		return !terr.sent || idempotent
	case errors.Is(err, ErrJobFailed), errors.Is(err, ErrNotConfirmed):
		return true
	}
	return idempotent
}
