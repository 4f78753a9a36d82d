package simulator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// Errors a Machine returns, wrapped with the machine id and details.
var (
	ErrUnsupportedResetType = errors.New("unsupported ResetType")
	ErrSimulatedFailure     = errors.New("simulated failure")
	ErrPowerOnRefused       = errors.New("power-on refused")
	ErrInvalidBoot          = errors.New("invalid boot override")
	ErrClosed               = errors.New("machine closed")
)

// RefusedError is a power-on refused by the RefuseOnWithin fault. It wraps
// ErrPowerOnRefused.
type RefusedError struct {
	ID         string        // machine id
	Reason     string        // why, in words
	RetryAfter time.Duration // when a retry could succeed, if nothing else happens
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s: %v: %s", e.ID, ErrPowerOnRefused, e.Reason)
}

func (e *RefusedError) Unwrap() error { return ErrPowerOnRefused }

// commandLogSize is how many commands Status reports.
const commandLogSize = 1000

// MachineConfig configures one simulated machine's power state machine.
type MachineConfig struct {
	DelayMin, DelayMax time.Duration // each power transition takes a random duration in [min,max]; 0,0 = instant
	CommandLatency     time.Duration // how long the BMC takes to answer a power command (default 0); see Machine.Reset
	InitialPower       string        // "On" or "Off" (default "Off")
	ResetTypes         []string      // ResetTypes offered; default DefaultResetTypes()
	Faults             Faults
	Seed               uint64 // seeds the machine's random source; 0 picks a random seed
}

// Command is one entry of a machine's command log.
type Command struct {
	Seq      int       `json:"Seq"`
	Time     time.Time `json:"Time"`     // when the machine answered
	Protocol string    `json:"Protocol"` // "redfish" now; "ipmi", "amt" later
	Action   string    `json:"Action"`   // ResetType name, or "SetBoot"; AMT adds the wire value: "On (2)"
	Result   string    `json:"Result"`   // "accepted", "failed: ...", "ignored", "refused: ..."
	// RequestID is the X-Request-Id of the request that carried the
	// command (Redfish), so a test can follow a request into the BMC.
	RequestID string `json:"RequestId,omitempty"`
}

// Boot is the boot source override of a machine.
type Boot struct {
	Target  string `json:"BootSourceOverrideTarget"`
	Enabled string `json:"BootSourceOverrideEnabled"`
	Mode    string `json:"BootSourceOverrideMode"`
}

// Allowable values of the Boot properties (ComputerSystem BootSource,
// BootSourceOverrideEnabled, BootSourceOverrideMode).
var (
	bootTargets = []string{"None", "Pxe", "Floppy", "Cd", "Usb", "Hdd", "BiosSetup",
		"Utilities", "Diags", "UefiShell", "UefiTarget", "SDCard", "UefiHttp"}
	bootEnabledValues = []string{"Disabled", "Once", "Continuous"}
	bootModes         = []string{"Legacy", "UEFI"}
)

// BootTargets returns the BootSourceOverrideTarget values a machine accepts.
func BootTargets() []string { return slices.Clone(bootTargets) }

// Status is a snapshot of a machine.
type Status struct {
	ID            string    `json:"Id"`
	PowerState    string    `json:"PowerState"` // On, Off, PoweringOn, PoweringOff
	Boot          Boot      `json:"Boot"`
	Commands      []Command `json:"Commands"`     // the last 1000, oldest first
	CommandCount  int       `json:"CommandCount"` // total
	InFlight      int       `json:"InFlight"`
	MaxInFlight   int       `json:"MaxInFlight"`   // largest number of power commands ever in flight at once
	PowerOnCount  int       `json:"PowerOnCount"`  // transitions into On
	PowerOffCount int       `json:"PowerOffCount"` // transitions into Off
	Faults        Faults    `json:"Faults"`
	// CommandLatency is how long the machine takes to answer a power
	// command, in JSON integer nanoseconds.
	CommandLatency time.Duration `json:"CommandLatency"`
}

// Outcome is how a power command that reached a machine ended.
type Outcome struct {
	// Err says why the command was not carried out: a fault, a refusal, a
	// done context, or the machine closing.
	Err error
	// Superseded: the command was accepted, but a later command (or
	// SetPower) took over before its transition settled.
	Superseded bool
}

// Machine is one simulated machine: its power state machine, boot override,
// faults and command log. It is safe for concurrent use.
type Machine struct {
	id         string
	delayMin   time.Duration
	delayMax   time.Duration
	resetTypes []string
	closed     chan struct{}
	wg         sync.WaitGroup // ResetAsync goroutines

	mu            sync.Mutex
	isClosed      bool
	rng           *rand.Rand
	state         string
	boot          Boot
	faults        Faults
	gate          chan struct{} // non-nil while Hold holds power commands
	pause         chan struct{} // non-nil while HoldTransitions holds transitions
	latency       time.Duration // CommandLatency
	log           []Command
	seq           int
	inFlight      int
	maxInFlight   int
	powerOnCount  int
	powerOffCount int
	lastOff       time.Time // when the machine last entered Off through a transition

	// The transition under way: steps[idx] is the current step. gen
	// invalidates timers of transitions that were interrupted.
	steps []step
	idx   int
	gen   uint64
	timer *time.Timer
	owner *command // the command whose transition is under way
}

// command is an accepted power command whose transition is under way.
type command struct {
	notify func(Outcome) // may be nil; called with m.mu held, must not block
}

// NewMachine returns a machine in cfg.InitialPower (default Off).
func NewMachine(id string, cfg MachineConfig) *Machine {
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	types := slices.Clone(cfg.ResetTypes)
	if len(types) == 0 {
		types = DefaultResetTypes()
	}
	state := PowerOff
	if cfg.InitialPower == PowerOn {
		state = PowerOn
	}
	return &Machine{
		id:         id,
		delayMin:   max(cfg.DelayMin, 0),
		delayMax:   max(cfg.DelayMax, 0),
		latency:    max(cfg.CommandLatency, 0),
		resetTypes: types,
		closed:     make(chan struct{}),
		rng:        rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		state:      state,
		boot:       Boot{Target: "None", Enabled: "Disabled", Mode: "UEFI"},
		faults:     cfg.Faults,
	}
}

// ID returns the machine's id.
func (m *Machine) ID() string { return m.id }

// PowerState returns On, Off, PoweringOn or PoweringOff.
func (m *Machine) PowerState() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// ResetTypes returns the ResetTypes the machine offers.
func (m *Machine) ResetTypes() []string { return slices.Clone(m.resetTypes) }

// Boot returns the boot source override.
func (m *Machine) Boot() Boot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.boot
}

// SetCommandLatency changes how long the machine takes to answer the power
// commands that arrive from now on (negative means 0).
func (m *Machine) SetCommandLatency(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.latency = max(d, 0)
}

// SetFaults replaces the machine's faults.
func (m *Machine) SetFaults(f Faults) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faults = f
}

// Reset sends the power command resetType, as protocol ("redfish", ...). It
// returns once the machine answered (after CommandLatency and Faults.Hang),
// not when the transition finished. Errors: ErrUnsupportedResetType,
// ErrSimulatedFailure, ErrPowerOnRefused (a *RefusedError), ErrClosed, or ctx's error while the
// machine hangs; all wrapped with the machine id.
//
// CommandLatency is the BMC at work: a done ctx (the client gave up) does
// not shorten it, and the command is carried out after it all the same, as
// a slow BMC does; only Close ends it. Faults.Hang is a BMC stuck before
// acting: a done ctx ends it and the command is not carried out.
func (m *Machine) Reset(ctx context.Context, protocol, resetType string) error {
	return m.resetAs(ctx, protocol, resetType, resetType)
}

// resetAs is Reset, logged with action as the command log's Action: a
// front's own name for the command, e.g. AMT's "On (2)".
func (m *Machine) resetAs(ctx context.Context, protocol, resetType, action string) error {
	if err := m.arrive(ctx, protocol, resetType, action, false); err != nil {
		return err
	}
	return m.answer(ctx, protocol, resetType, action, nil)
}

// ResetAsync is Reset for fronts that report progress (Redfish tasks). It
// returns at once: with an error if resetType is unsupported or the machine
// is closed; else with a channel that receives exactly one Outcome when the
// command has ended: refused or failed (Outcome.Err, the error Reset would
// have returned), settled (zero Outcome: the transition reached its steady
// state, or the command needed none or was ignored), or superseded.
//
// ctx bounds only the wait before the machine answers, as for Reset.
func (m *Machine) ResetAsync(ctx context.Context, protocol, resetType string) (<-chan Outcome, error) {
	return m.resetAsyncAs(ctx, protocol, resetType, resetType)
}

// resetAsyncAs is ResetAsync, logged with action as the command log's Action.
func (m *Machine) resetAsyncAs(ctx context.Context, protocol, resetType, action string) (<-chan Outcome, error) {
	if err := m.arrive(ctx, protocol, resetType, action, true); err != nil {
		return nil, err
	}
	ch := make(chan Outcome, 1)
	go func() {
		defer m.wg.Done()
		err := m.answer(ctx, protocol, resetType, action, func(o Outcome) { ch <- o })
		if err != nil {
			ch <- Outcome{Err: err}
		}
	}()
	return ch, nil
}

// arrive admits a power command: it refuses unsupported types at once and
// counts the others in flight. With async, it also registers a goroutine.
func (m *Machine) arrive(ctx context.Context, protocol, resetType, action string, async bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.isClosed {
		return fmt.Errorf("%s: %w", m.id, ErrClosed)
	}
	if !slices.Contains(m.resetTypes, resetType) || !knownResetType(resetType) {
		m.recordReq(requestIDOf(ctx), protocol, action, "refused: "+ErrUnsupportedResetType.Error())
		return fmt.Errorf("%s: %w %q", m.id, ErrUnsupportedResetType, resetType)
	}
	m.inFlight++
	m.maxInFlight = max(m.maxInFlight, m.inFlight)
	if async {
		m.wg.Add(1)
	}
	return nil
}

// answer waits CommandLatency (whatever ctx does), then Hang (or until ctx
// is done), then decides the command's fate. notify (may be nil) is called
// once with the Outcome if answer returns nil.
func (m *Machine) answer(ctx context.Context, protocol, resetType, action string, notify func(Outcome)) error {
	m.mu.Lock()
	latency, hang := m.latency, m.faults.Hang
	m.mu.Unlock()
	waitErr := m.sleep(context.WithoutCancel(ctx), latency)
	if waitErr == nil {
		waitErr = m.sleep(ctx, hang)
	}
	if waitErr == nil {
		waitErr = m.held(ctx)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.isClosed {
		m.inFlight--
		return fmt.Errorf("%s: %w", m.id, ErrClosed)
	}
	if waitErr != nil {
		m.inFlight--
		m.recordReq(requestIDOf(ctx), protocol, action, "failed: "+waitErr.Error())
		return fmt.Errorf("%s: %s: %w", m.id, resetType, waitErr)
	}
	if m.faults.FailFirst > 0 {
		m.faults.FailFirst--
		m.inFlight--
		left := m.faults.FailFirst
		m.recordReq(requestIDOf(ctx), protocol, action, fmt.Sprintf("failed: %v (%d left)", ErrSimulatedFailure, left))
		return fmt.Errorf("%s: %w (%d left)", m.id, ErrSimulatedFailure, left)
	}
	if m.faults.Ignore {
		m.inFlight--
		m.recordReq(requestIDOf(ctx), protocol, action, "ignored")
		if notify != nil {
			notify(Outcome{})
		}
		return nil
	}
	steps, err := plan(m.state, resetType, m.delay(), m.faults.NeverFinishSoftOff)
	if err != nil { // unreachable: arrive checked the type
		m.inFlight--
		m.recordReq(requestIDOf(ctx), protocol, action, "refused: "+err.Error())
		return fmt.Errorf("%s: %w: %w", m.id, ErrUnsupportedResetType, err)
	}
	if within := m.faults.RefuseOnWithin; within > 0 && startsPowerOn(steps) {
		var refused *RefusedError
		if m.state == PowerPoweringOff {
			refused = &RefusedError{ID: m.id, Reason: "power-off still under way", RetryAfter: within}
		} else if since := time.Since(m.lastOff); !m.lastOff.IsZero() && since < within {
			refused = &RefusedError{ID: m.id, RetryAfter: within - since,
				Reason: fmt.Sprintf("%v after power-off, RefuseOnWithin %v", since.Round(time.Millisecond), within)}
		}
		if refused != nil {
			m.inFlight--
			m.recordReq(requestIDOf(ctx), protocol, action, fmt.Sprintf("refused: %v: %s", ErrPowerOnRefused, refused.Reason))
			return refused
		}
	}
	m.recordReq(requestIDOf(ctx), protocol, action, "accepted")
	if len(steps) == 0 {
		m.inFlight--
		if notify != nil {
			notify(Outcome{})
		}
		return nil
	}
	m.stopTransition(Outcome{Superseded: true})
	m.owner = &command{notify: notify}
	m.steps, m.idx = steps, -1
	m.advance()
	return nil
}

// advance moves to the next step of the transition, through every step with
// no dwell, and arms a timer for the next one or settles. m.mu is held.
func (m *Machine) advance() {
	for {
		m.idx++
		s := m.steps[m.idx]
		m.enter(s.State)
		if m.idx == len(m.steps)-1 {
			m.settle()
			return
		}
		if s.Dwell > 0 {
			gen := m.gen
			m.timer = time.AfterFunc(s.Dwell, func() { m.onTimer(gen) })
			return
		}
	}
}

func (m *Machine) onTimer(gen uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.isClosed || gen != m.gen || m.steps == nil {
		return // an interrupted transition's timer
	}
	if p := m.pause; p != nil {
		// held by HoldTransitions: the step ends when released
		go func() {
			select {
			case <-p:
				m.onTimer(gen)
			case <-m.closed:
			}
		}()
		return
	}
	m.timer = nil
	m.advance()
}

// HoldTransitions keeps every power transition where it stands (PoweringOn,
// PoweringOff, ...) once its current step's time is up, until release is
// called: a machine that is slow for exactly as long as a test needs. A
// command that interrupts a held transition still does. release may be
// called more than once.
func (m *Machine) HoldTransitions() (release func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pause == nil {
		m.pause = make(chan struct{})
	}
	p := m.pause
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			if m.pause == p {
				m.pause = nil
			}
			m.mu.Unlock()
			close(p)
		})
	}
}

// enter sets the power state, counting transitions into On and Off.
func (m *Machine) enter(state string) {
	prev := m.state
	m.state = state
	switch {
	case state == PowerOn && prev != PowerOn:
		m.powerOnCount++
	case state == PowerOff && prev != PowerOff:
		m.powerOffCount++
		m.lastOff = time.Now()
	}
}

// settle ends the transition in its steady state: its command is no longer
// in flight.
func (m *Machine) settle() {
	m.steps, m.timer = nil, nil
	m.gen++
	if o := m.owner; o != nil {
		m.owner = nil
		m.inFlight--
		if o.notify != nil {
			o.notify(Outcome{})
		}
	}
}

// stopTransition abandons the transition under way, if any, where it stands;
// its command ends with outcome o.
func (m *Machine) stopTransition(o Outcome) {
	if m.timer != nil {
		m.timer.Stop()
		m.timer = nil
	}
	m.gen++
	m.steps = nil
	if c := m.owner; c != nil {
		m.owner = nil
		m.inFlight--
		if c.notify != nil {
			c.notify(o)
		}
	}
}

// delay draws a transition time from [delayMin, delayMax]. m.mu is held.
func (m *Machine) delay() time.Duration {
	if m.delayMax <= m.delayMin {
		return m.delayMin
	}
	return m.delayMin + time.Duration(m.rng.Int64N(int64(m.delayMax-m.delayMin)+1))
}

// sleep waits d, or until ctx is done or the machine closes.
func (m *Machine) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-m.closed:
		return ErrClosed
	}
}

// Hold makes the machine keep every power command it receives from now on
// in flight, unanswered, until release is called: a BMC that is stuck for
// exactly as long as a test needs, where Faults.Hang would be a guess at
// how long the test takes. A held command ends like one under Hang: a
// done ctx ends it and the command is not carried out. release may be
// called more than once; the commands held go on in the order they came.
func (m *Machine) Hold() (release func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gate == nil {
		m.gate = make(chan struct{})
	}
	g := m.gate
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			if m.gate == g {
				m.gate = nil
			}
			m.mu.Unlock()
			close(g)
		})
	}
}

// held waits while Hold holds power commands.
func (m *Machine) held(ctx context.Context) error {
	m.mu.Lock()
	g := m.gate
	m.mu.Unlock()
	if g == nil {
		return nil
	}
	select {
	case <-g:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-m.closed:
		return ErrClosed
	}
}

// record appends to the command log. m.mu is held.
func (m *Machine) record(protocol, action, result string) {
	m.recordReq("", protocol, action, result)
}

// recordReq is record with the id of the request that carried the command.
func (m *Machine) recordReq(requestID, protocol, action, result string) {
	m.seq++
	m.log = append(m.log, Command{Seq: m.seq, Time: time.Now(), Protocol: protocol, Action: action, Result: result, RequestID: requestID})
	if len(m.log) >= 2*commandLogSize {
		m.log = slices.Clone(m.log[len(m.log)-commandLogSize:])
	}
}

// SetBoot sets the boot source override. Empty fields of b keep their
// current value. Values outside the allowable ones are refused with
// ErrInvalidBoot. Faults do not apply; the change is logged as "SetBoot".
func (m *Machine) SetBoot(protocol string, b Boot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.isClosed {
		return fmt.Errorf("%s: %w", m.id, ErrClosed)
	}
	if err := validateBoot(b); err != nil {
		m.record(protocol, "SetBoot", "refused: "+err.Error())
		return fmt.Errorf("%s: %w", m.id, err)
	}
	if b.Target != "" {
		m.boot.Target = b.Target
	}
	if b.Enabled != "" {
		m.boot.Enabled = b.Enabled
	}
	if b.Mode != "" {
		m.boot.Mode = b.Mode
	}
	m.record(protocol, "SetBoot", "accepted")
	return nil
}

func validateBoot(b Boot) error {
	var problems []string
	check := func(prop, v string, allowed []string) {
		if v != "" && !slices.Contains(allowed, v) {
			problems = append(problems, fmt.Sprintf("%s %q not one of %v", prop, v, allowed))
		}
	}
	check("BootSourceOverrideTarget", b.Target, bootTargets)
	check("BootSourceOverrideEnabled", b.Enabled, bootEnabledValues)
	check("BootSourceOverrideMode", b.Mode, bootModes)
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidBoot, strings.Join(problems, "; "))
	}
	return nil
}

// SetPower jumps to On or Off at once, for test setup: it stops any
// transition (its command ends superseded), is not logged, changes neither
// power counter and forgets the last power-off (RefuseOnWithin). Other
// states are ignored.
func (m *Machine) SetPower(state string) {
	if state != PowerOn && state != PowerOff {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopTransition(Outcome{Superseded: true})
	m.state = state
	m.lastOff = time.Time{}
}

// Status returns a snapshot of the machine.
func (m *Machine) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Status{
		ID:            m.id,
		PowerState:    m.state,
		Boot:          m.boot,
		Commands:      append([]Command{}, m.log[max(0, len(m.log)-commandLogSize):]...),
		CommandCount:  m.seq,
		InFlight:      m.inFlight,
		MaxInFlight:   m.maxInFlight,
		PowerOnCount:  m.powerOnCount,
		PowerOffCount: m.powerOffCount,
		Faults:        m.faults,

		CommandLatency: m.latency,
	}
}

// Close stops the machine's timers and ends pending commands with
// ErrClosed. Later commands fail with ErrClosed. It waits for ResetAsync
// goroutines to finish.
func (m *Machine) Close() {
	m.mu.Lock()
	if !m.isClosed {
		m.isClosed = true
		close(m.closed)
		m.stopTransition(Outcome{Err: fmt.Errorf("%s: %w", m.id, ErrClosed)})
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// requestIDKey carries the X-Request-Id a front received into the
// machine's command log.
type requestIDKey struct{}

// withRequestID returns ctx carrying a received request id.
func withRequestID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, requestIDKey{}, id)
}

func requestIDOf(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
