// Package ipmi drives a BMC over IPMI LAN (docs/architecture.md#backends)
// with go-ipmi's client: RMCP+ ("lanplus", IPMI v2.0, the default) or IPMI
// v1.5 ("lan"). Its vocabulary (chassis commands, boot flags) is wire/ipmi,
// shared with the IPMI servers; it imports no server code.
//
//	PowerState     Get Chassis Status (IPMI v2.0 §28.2): On or Off
//	Reset          Chassis Control (§28.3):
//	                 On, ForceOn      power up
//	                 ForceOff         power down
//	                 GracefulShutdown soft shutdown (ACPI)
//	                 ForceRestart     hard reset
//	                 PowerCycle       power cycle
//	                 Nmi              diagnostic interrupt
//	Boot, SetBoot  Get/Set System Boot Options (§28.12, §28.13), boot flags
//	               (parameter 5): Pxe, Hdd, Cd, BiosSetup, Diags, Floppy or
//	               None; Once or Continuous; UEFI or Legacy
//
// Capabilities advertises On, ForceOff, GracefulShutdown, ForceRestart,
// PowerCycle and Nmi: ForceOn is accepted but not advertised, since IPMI has
// one power-on command and offering both would suggest a difference.
// GracefulRestart and PushPowerButton have no IPMI command.
//
// # Sessions
//
// A Backend has one go-ipmi client (go-ipmi's client is not safe for
// concurrent use), used by one call at a time; a caller waiting for its turn
// still honours its ctx. The session is opened by the first call, reused by
// the next ones and closed by Close. It is also closed, and opened again by
// the next call, after an exchange went unanswered or its ctx ended
// mid-exchange, and when it is SessionMaxAge old: go-ipmi's client starts a
// keep-alive goroutine on every session that, 30 s later, would use the
// client concurrently with our calls.
//
// # Deadlines and retries
//
// Every call returns by its ctx's deadline, even if go-ipmi does not: the
// exchange runs aside and its client is discarded once it ends. The next
// call on the Backend waits until it has ended (the one-slot semaphore is
// released by the exchange's goroutine, not by the caller).
//
// A read or boot setting whose exchange gets no answer within Timeout is
// retried up to Retries times, with a jittered pause from RetryBackoff
// doubling between tries (internal/retry), on a new session; so is any
// call whose session setup failed (nothing else was sent) or that the BMC
// answered "node busy" (C0h: it did not take the request).
//
// A Reset's Chassis Control, once sent, is never sent again unless the BMC
// answered "node busy", and then only within the attempt budget its ctx
// carries (retry.WithBudget): the serializer grants one attempt per
// attempt of the action, which owns the retries of power commands, so
// under it a command is sent once per call. If no answer comes within
// Timeout, if the answer is unusable or C3h ("response unavailable"), or
// if ctx ends while the exchange is under way, the BMC may have carried
// the command out (a slow BMC answers late; a repeated power cycle is a
// second cycle), so the error wraps backends.ErrNoAnswer and the caller
// settles it by reading the power state. go-ipmi's client does not
// retransmit on its own: it is built with WithRetry(0), one datagram per
// exchange.
package ipmi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	wire "github.com/fishgate/fishgate/wire/ipmi"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/internal/requestid"
	"github.com/fishgate/fishgate/internal/retry"
	"github.com/fishgate/fishgate/schemas"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultPort          = 623
	DefaultTimeout       = 2 * time.Second
	DefaultRetries       = 2
	DefaultRetryBackoff  = 250 * time.Millisecond
	DefaultSessionMaxAge = 20 * time.Second
	// maxSessionAge stays clear of go-ipmi's keep-alive tick (30 s).
	maxSessionAge = 25 * time.Second
	// closeBudget bounds the Close Session sent when a session is retired.
	closeBudget = time.Second
)

// Interfaces.
const (
	Lanplus = "lanplus" // RMCP+, IPMI v2.0
	Lan     = "lan"     // IPMI v1.5
)

// Config says how to reach one BMC.
type Config struct {
	// Host is the BMC's address (IP or name). Required.
	Host string
	// Port is the BMC's UDP port (default 623).
	Port int
	// User and Password are the BMC account; it needs Operator privilege
	// or more. The session asks for Administrator.
	User, Password string
	// CipherSuite is the RMCP+ cipher suite id (3 and 17 are the common
	// ones); 0 takes the strongest the BMC lists in Get Channel Cipher
	// Suites (one more exchange per session).
	CipherSuite int
	// Interface is "lanplus" (default) or "lan" (IPMI v1.5).
	Interface string
	// Timeout bounds the wait for one answer from the BMC (default 2s).
	Timeout time.Duration
	// Retries is how often an unanswered exchange is tried again (default
	// 2; negative for none). See the package comment for what is retried.
	Retries int
	// RetryBackoff is the ceiling of the first pause before a retry,
	// doubling; each pause is drawn between half its ceiling and all of it
	// (default 250ms).
	RetryBackoff time.Duration
	// SessionMaxAge is how long one session is reused (default 20s, at
	// most 25s).
	SessionMaxAge time.Duration
	// Logger receives the backend's logs; default slog.Default().
	Logger *slog.Logger
}

// Errors a Backend wraps.
var (
	// ErrAuthentication: the BMC refused the user name or password.
	ErrAuthentication = errors.New("BMC refused the credentials")
	// ErrNoAnswer: an exchange other than a Reset's command got no
	// (usable) answer in time: a read, a boot setting, session setup. A
	// Reset whose command got none wraps backends.ErrNoAnswer instead.
	ErrNoAnswer = errors.New("BMC did not answer")
	errClosed   = errors.New("backend closed")
)

// Backend is a backends.Backend for one IPMI BMC.
type Backend struct {
	cfg  Config
	addr string // host:port, for errors and logs
	log  *slog.Logger

	// sem lets one call at a time use the client: a one-slot semaphore, so
	// that waiting honours ctx. The fields below are owned by its holder.
	sem  chan struct{}
	cl   *client.Client
	born time.Time
	gen  uint64 // incremented at each session

	mu     sync.Mutex // guards closed
	closed bool
	done   chan struct{} // closed by Close
	bg     sync.WaitGroup
}

var _ backends.Backend = (*Backend)(nil)

// New checks cfg and returns a Backend. It does no I/O.
func New(cfg Config) (*Backend, error) {
	if cfg.Host == "" {
		return nil, errors.New("ipmi backend: Host is required")
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("ipmi backend %s: port %d out of range", cfg.Host, cfg.Port)
	}
	switch cfg.Interface {
	case "":
		cfg.Interface = Lanplus
	case Lanplus, Lan:
	default:
		return nil, fmt.Errorf("ipmi backend %s: interface %q: want lanplus or lan", cfg.Host, cfg.Interface)
	}
	if cfg.CipherSuite < 0 || cfg.CipherSuite > 255 {
		return nil, fmt.Errorf("ipmi backend %s: cipher suite %d out of range", cfg.Host, cfg.CipherSuite)
	}
	if cfg.CipherSuite != 0 {
		if _, _, _, ok := types.GetCipherSuiteAlgorithms(types.CipherSuiteID(cfg.CipherSuite)); !ok {
			return nil, fmt.Errorf("ipmi backend %s: unknown cipher suite %d", cfg.Host, cfg.CipherSuite)
		}
	}
	if len(cfg.User) > 16 {
		return nil, fmt.Errorf("ipmi backend %s: user name longer than 16 bytes", cfg.Host)
	}
	if len(cfg.Password) > 20 {
		return nil, fmt.Errorf("ipmi backend %s: password longer than 20 bytes", cfg.Host)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
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
	if cfg.SessionMaxAge <= 0 {
		cfg.SessionMaxAge = DefaultSessionMaxAge
	}
	cfg.SessionMaxAge = min(cfg.SessionMaxAge, maxSessionAge)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	return &Backend{
		cfg:  cfg,
		addr: addr,
		log:  requestid.Logger(cfg.Logger).With("backend", "ipmi", "bmc", addr),
		sem:  make(chan struct{}, 1),
		done: make(chan struct{}),
	}, nil
}

// SplitAddress parses a BMC address as configured: "host", "host:port",
// "[v6addr]:port" or "ipmi://host[:port]"; port 0 means DefaultPort.
func SplitAddress(addr string) (host string, port int, err error) {
	a := strings.TrimPrefix(addr, "ipmi://")
	if a == "" || strings.ContainsAny(a, "/?#@") {
		return "", 0, fmt.Errorf("ipmi address %q: want host or host:port", addr)
	}
	if h, p, err := net.SplitHostPort(a); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || h == "" {
			return "", 0, fmt.Errorf("ipmi address %q: bad port", addr)
		}
		return h, n, nil
	}
	if strings.Count(a, ":") > 1 && !strings.HasPrefix(a, "[") { // a bare IPv6 address
		return a, 0, nil
	}
	if strings.ContainsAny(a, ":[]") {
		return "", 0, fmt.Errorf("ipmi address %q: want host or host:port", addr)
	}
	return a, 0, nil
}

// resetCommands are the ResetTypes advertised, in Redfish order.
var resetCommands = []schemas.ResetType{
	schemas.ResetOn, schemas.ResetForceOff, schemas.ResetGracefulShutdown,
	schemas.ResetForceRestart, schemas.ResetNmi, schemas.ResetPowerCycle,
}

// Capabilities reports what IPMI can do; it does no I/O.
func (b *Backend) Capabilities(ctx context.Context) (backends.Capabilities, error) {
	return backends.Capabilities{
		ResetTypes:  append([]schemas.ResetType(nil), resetCommands...),
		BootTargets: wire.RedfishBootTargets(),
		BootModes:   []string{"Legacy", "UEFI"},
	}, nil
}

// PowerState reads Get Chassis Status.
func (b *Backend) PowerState(ctx context.Context) (schemas.PowerState, error) {
	var on bool
	err := b.call(ctx, "power state", false, func(ctx context.Context, c *client.Client) error {
		st, err := c.GetChassisStatus(ctx)
		if err == nil {
			on = st.PowerIsOn
		}
		return err
	})
	if err != nil {
		return schemas.PowerUnknown, err
	}
	if on {
		return schemas.PowerOn, nil
	}
	return schemas.PowerOff, nil
}

// Reset sends the Chassis Control command for r (see the package comment).
// Types without one are refused with backends.ErrUnsupported, unsent.
func (b *Backend) Reset(ctx context.Context, r schemas.ResetType) error {
	cmd, ok := wire.CommandFor(string(r))
	if !ok {
		return fmt.Errorf("ipmi %s: reset %s: %w", b.addr, r, backends.ErrUnsupported)
	}
	// IPMI has no field for it: the request that caused the command is
	// named in the log (ctx's request id).
	b.log.InfoContext(ctx, "sending chassis control", "reset", r, "command", cmd)
	return b.call(ctx, "reset "+string(r), true, func(ctx context.Context, c *client.Client) error {
		_, err := c.ChassisControl(ctx, chassis.ChassisControl(cmd))
		return err
	})
}

// Boot reads the boot flags (Get System Boot Options, parameter 5).
func (b *Backend) Boot(ctx context.Context) (schemas.BootOverride, error) {
	var cur wire.Boot
	err := b.call(ctx, "read boot override", false, func(ctx context.Context, c *client.Client) error {
		var err error
		cur, err = readBoot(ctx, c)
		return err
	})
	if err != nil {
		return schemas.BootOverride{}, err
	}
	target, enabled, mode := cur.Redfish()
	return schemas.BootOverride{Target: target, Enabled: enabled, Mode: mode}, nil
}

// SetBoot writes the boot flags. Empty fields of o keep the BMC's current
// values (read first). Like Ironic's ipmitool driver, it first asks the BMC
// not to clear the override after 60 s without a power command (parameter 3
// bit 3), and wraps the write in "set in progress" / "set complete"
// (parameter 0); BMCs that lack these parameters are written all the same.
func (b *Backend) SetBoot(ctx context.Context, o schemas.BootOverride) error {
	return b.call(ctx, "set boot override", false, func(ctx context.Context, c *client.Client) error {
		var cur wire.Boot
		if o.Target == "" || o.Enabled == "" || o.Mode == "" {
			var err error
			if cur, err = readBoot(ctx, c); err != nil {
				return err
			}
		}
		next, err := cur.WithRedfish(o.Target, o.Enabled, o.Mode)
		if err != nil {
			return fmt.Errorf("%w: %w", backends.ErrUnsupported, err)
		}
		// Best effort, as described above: a BMC that answers with an
		// error lacks the parameter; one that does not answer fails the
		// call at once.
		if err := answered(c.SetSystemBootOptionsParamFor(ctx, &types.BootOptionParam_BMCBootFlagValidBitClear{
			DontClearOnCommandReceivedTimeout: true,
		})); err != nil {
			return err
		}
		if err := answered(c.SetBootParamSetInProgress(ctx, types.SetInProgress_SetInProgress)); err != nil {
			return err
		}
		err = c.SetSystemBootOptionsParamFor(ctx, &types.BootOptionParam_BootFlags{
			BootFlagsValid:     next.Device != wire.BootNoOverride,
			Persist:            next.Persistent,
			BIOSBootType:       types.BIOSBootType(next.EFI),
			BootDeviceSelector: types.BootDeviceSelector(next.Device),
		})
		if done := answered(c.SetBootParamSetInProgress(ctx, types.SetInProgress_SetComplete)); err == nil {
			err = done
		}
		return err
	})
}

// answered drops an error that is the BMC's answer (a completion code),
// keeping the others (no answer, ctx done).
func answered(err error) error {
	var re *types.ResponseError
	if errors.As(err, &re) {
		return nil
	}
	return err
}

func readBoot(ctx context.Context, c *client.Client) (wire.Boot, error) {
	flags := &types.BootOptionParam_BootFlags{}
	if err := c.GetSystemBootOptionsParamFor(ctx, flags); err != nil {
		return wire.Boot{}, err
	}
	b := wire.Boot{Persistent: flags.Persist, EFI: bool(flags.BIOSBootType)}
	if flags.BootFlagsValid {
		b.Device = wire.BootDevice(flags.BootDeviceSelector)
	}
	return b, nil
}

// Close closes the session, if any. Later calls fail.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.done)
	b.mu.Unlock()
	// Wait for the call in progress, then retire its session.
	b.sem <- struct{}{}
	b.retire()
	<-b.sem
	b.bg.Wait()
	return nil
}

func (b *Backend) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// call runs op (one or more exchanges) on a session, with the retries of the
// package comment, and returns by ctx's deadline. command says that op is
// one exchange of a power command, which is never sent twice.
func (b *Backend) call(ctx context.Context, what string, command bool, op func(context.Context, *client.Client) error) error {
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return b.errorf(what, ctx.Err())
	}
	if b.isClosed() {
		<-b.sem
		return b.errorf(what, errClosed)
	}
	// The work runs aside so that we return by ctx's deadline whatever
	// go-ipmi does; it keeps the semaphore until it has really ended, so
	// the next call never overlaps it.
	opCtx, cancel := context.WithCancel(ctx)
	var sent atomic.Bool // the command's exchange has begun
	result := make(chan error, 1)
	go func() {
		defer func() { <-b.sem }()
		defer cancel()
		result <- b.run(opCtx, command, &sent, op)
	}()
	var err error
	select {
	case err = <-result:
	case <-ctx.Done():
		select {
		case err = <-result: // it ended meanwhile: its own outcome
		default:
			cancel()
			err = ctx.Err()
			if sent.Load() {
				err = lostAnswer(err)
			}
		}
	}
	if err != nil {
		return b.errorf(what, err)
	}
	return nil
}

func (b *Backend) errorf(what string, err error) error {
	return fmt.Errorf("ipmi %s: %s: %w", b.addr, what, err)
}

// lostAnswer is the error of a command that was sent and got no usable
// answer: it may have been carried out.
func lostAnswer(err error) error {
	return fmt.Errorf("%w, not re-sent: %w", backends.ErrNoAnswer, err)
}

// withCtxErr makes err say that ctx ended, if it did. go-ipmi reads until
// ctx's deadline at the latest, and may report only that no answer came,
// an instant before ctx itself says it is done.
func withCtxErr(ctx context.Context, err error) error {
	cerr := ctx.Err()
	if d, ok := ctx.Deadline(); cerr == nil && ok && !time.Now().Before(d) {
		cerr = context.DeadlineExceeded
	}
	if cerr == nil || errors.Is(err, cerr) {
		return err
	}
	return fmt.Errorf("%w: %w", cerr, err)
}

// run is call's work, with the semaphore held. For a command, sent is set
// while a command exchange may have reached the BMC. The retries are
// internal/retry's (a jittered, doubling pause from RetryBackoff, at most
// 1+Retries attempts); a command's attempts also take from the budget its
// ctx carries (under the serializer: one per attempt of the action).
func (b *Backend) run(ctx context.Context, command bool, sent *atomic.Bool, op func(context.Context, *client.Client) error) error {
	p := retry.Policy{
		Base: b.cfg.RetryBackoff, Attempts: b.cfg.Retries + 1, Command: command,
		Sleep: retry.SleepOr(b.done, errClosed),
		OnRetry: func(attempt int, err error, pause time.Duration) {
			b.log.Debug("IPMI call failed, retrying", "attempt", attempt, "pause", pause, "err", err)
		},
	}
	return p.Do(ctx, func(int) error {
		c, err := b.session(ctx)
		if err != nil {
			// Nothing but session setup was sent: always safe to retry,
			// unless the BMC refused us or the caller gave up.
			err = withCtxErr(ctx, err)
			if errors.Is(err, ErrAuthentication) || ctx.Err() != nil {
				return retry.Stop(err)
			}
			return err
		}
		sent.Store(command)
		err = op(ctx, c)
		if err == nil {
			return nil
		}
		var re *types.ResponseError
		if errors.As(err, &re) {
			// The BMC answered, with an error.
			switch re.CompletionCode() {
			case types.CodeNodeBusy:
				// It did not take the request: safe to send again.
				sent.Store(false)
				return err
			case types.CodeProcessTimeout:
				// "Response unavailable": a command may have been
				// carried out.
				if command {
					return retry.Stop(lostAnswer(err))
				}
				return err
			}
			return retry.Stop(err)
		}
		// No (usable) answer, or the caller gave up mid-exchange: the
		// exchange may still be running inside go-ipmi, or the session
		// may be gone with a BMC reboot; it is not used again.
		b.retire()
		err = withCtxErr(ctx, err)
		switch {
		case command:
			return retry.Stop(lostAnswer(err))
		case ctx.Err() != nil:
			return retry.Stop(err)
		}
		return fmt.Errorf("%w: %w", ErrNoAnswer, err)
	})
}

// session returns the open session, opening one if there is none or it is
// SessionMaxAge old.
func (b *Backend) session(ctx context.Context) (*client.Client, error) {
	if b.cl != nil && time.Since(b.born) < b.cfg.SessionMaxAge {
		return b.cl, nil
	}
	b.retire()
	c, err := client.NewClient(b.cfg.Host, b.cfg.Port, b.cfg.User, b.cfg.Password)
	if err != nil {
		return nil, err
	}
	c.WithTimeout(b.cfg.Timeout).WithRetry(0)
	if b.cfg.Interface == Lan {
		c.WithInterface(client.InterfaceLan)
	}
	if b.cfg.CipherSuite != 0 {
		c.WithCipherSuiteID(types.CipherSuiteID(b.cfg.CipherSuite))
	}
	if err := c.Connect(ctx); err != nil {
		// go-ipmi opened its socket; close it without another exchange.
		b.closeClient(c, false)
		var re *types.ResponseError
		switch {
		case authFailure(err):
			err = fmt.Errorf("%w: %w", ErrAuthentication, err)
		case ctx.Err() == nil && !errors.As(err, &re):
			err = fmt.Errorf("%w: %w", ErrNoAnswer, err)
		}
		return nil, fmt.Errorf("open session: %w", err)
	}
	b.cl, b.born = c, time.Now()
	b.gen++
	gen := b.gen
	b.log.Debug("session opened", "gen", gen)
	// Close it when it is SessionMaxAge old even if nobody calls.
	b.bg.Go(func() {
		t := time.NewTimer(b.cfg.SessionMaxAge)
		defer t.Stop()
		select {
		case <-t.C:
		case <-b.done:
			return
		}
		select {
		case b.sem <- struct{}{}:
		case <-b.done:
			return
		}
		if b.gen == gen {
			b.retire()
		}
		<-b.sem
	})
	return c, nil
}

// retire closes the current session, if any, in the background.
func (b *Backend) retire() {
	if b.cl == nil {
		return
	}
	c := b.cl
	b.cl = nil
	b.log.Debug("session closed", "gen", b.gen)
	b.closeClient(c, true)
}

// closeClient closes c once and for all, in the background: with a Close
// Session to the BMC when polite, else only its socket. go-ipmi's Close
// must run once per client, and never while an exchange is running on it:
// the caller's op has returned and its ctx is done, so any exchange
// goroutine left behind ends without touching the socket, or holds the
// socket's lock until its read deadline.
func (b *Backend) closeClient(c *client.Client, polite bool) {
	b.bg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeBudget)
		if !polite {
			cancel()
		}
		defer cancel()
		_ = c.Close(ctx)
	})
}

// authFailure reports whether a session setup error is the BMC refusing the
// credentials. go-ipmi formats the per-cipher-suite errors of an RMCP+
// Connect with %v, so their RAKP status survives only as text; its IPMI
// v1.5 Connect wraps with %w.
func authFailure(err error) bool {
	if errors.Is(err, client.ErrRAKPAuthentication) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{
		"RAKP authentication failed", // RAKP 2 or 4 HMAC mismatch: wrong password
		"Unauthorized name",          // RMCP+ status 0Dh: unknown user
		"Invalid integrity check value",
		"Unauthorized role of privilege level",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	// IPMI v1.5 (v1.5 §22.16, §22.17): an unknown user is refused by Get
	// Session Challenge (81h, 82h), a wrong password by Activate Session.
	var re *types.ResponseError
	if errors.As(err, &re) {
		switch {
		case strings.Contains(msg, "ActivateSession failed"):
			return true
		case strings.Contains(msg, "GetSessionChallenge failed"):
			return re.CompletionCode() == 0x81 || re.CompletionCode() == 0x82
		}
	}
	return false
}
