// Package serializer owns every node's power actions and the gateway's view
// of each node (DESIGN.md §4-§6). Reads are answered from the node view it
// keeps; writes (Reset, boot override) go through it to the node's backend,
// one BMC call at a time per node.
//
// This is the direct form: a Reset is sent to the BMC as it arrives (one at a
// time per node) and its outcome is verified in the background. The Redis
// admission (now/next slots, coalescing, tasks) replaces Reset's inside.
package serializer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/schemas"
)

// ErrNodeNotFound is returned for a node id the gateway does not manage.
var ErrNodeNotFound = errors.New("node not found")

// Node is one managed machine and the backend that drives its BMC.
type Node struct {
	ID      string
	Name    string
	Backend backends.Backend
}

// View is what the gateway knows of a node, as the northbound API renders it.
type View struct {
	ID         string
	Name       string
	PowerState schemas.PowerState
	Boot       schemas.BootOverride
	Caps       backends.Capabilities
	CapsKnown  bool
	// Health is OK, Warning (the last BMC call failed) or Critical (the BMC
	// has not answered since start-up).
	Health    string
	LastError string
	Updated   time.Time
}

// Options tunes the service. Zero values take the documented defaults.
type Options struct {
	// SyncInterval is how often every node's power state is re-read (default 30s).
	SyncInterval time.Duration
	// SyncConcurrency bounds the BMC reads of one sync sweep (default 16).
	SyncConcurrency int
	// CallTimeout bounds one BMC call (default 20s).
	CallTimeout time.Duration
	// VerifyTimeout bounds the wait for a Reset's target state (default 60s;
	// graceful actions get 10x, as Ironic allows 600 s for soft actions).
	VerifyTimeout time.Duration
	// VerifyInterval is the first pause between power-state reads while
	// verifying (default 250ms, doubling up to 2s).
	VerifyInterval time.Duration
	Logger         *slog.Logger
}

func (o *Options) defaults() {
	if o.SyncInterval == 0 {
		o.SyncInterval = 30 * time.Second
	}
	if o.SyncConcurrency == 0 {
		o.SyncConcurrency = 16
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = 20 * time.Second
	}
	if o.VerifyTimeout == 0 {
		o.VerifyTimeout = 60 * time.Second
	}
	if o.VerifyInterval == 0 {
		o.VerifyInterval = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

type node struct {
	Node
	call sync.Mutex // one BMC call at a time for this node

	mu   sync.RWMutex
	view View
}

// Service manages the nodes. Build it with New, then Start it.
type Service struct {
	opts  Options
	nodes map[string]*node // fixed after New
	ids   []string

	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// New builds a service over nodes. Node ids must be unique and non-empty.
func New(nodes []Node, opts Options) (*Service, error) {
	opts.defaults()
	s := &Service{opts: opts, nodes: make(map[string]*node, len(nodes))}
	for _, n := range nodes {
		if n.ID == "" {
			return nil, errors.New("serializer: node with empty id")
		}
		if _, dup := s.nodes[n.ID]; dup {
			return nil, fmt.Errorf("serializer: duplicate node id %q", n.ID)
		}
		name := n.Name
		if name == "" {
			name = n.ID
		}
		n.Name = name
		s.nodes[n.ID] = &node{Node: n, view: View{ID: n.ID, Name: name, Health: "Critical", LastError: "not read yet"}}
		s.ids = append(s.ids, n.ID)
	}
	sort.Strings(s.ids)
	return s, nil
}

// Start reads every node once (bounded concurrency) and starts the periodic
// power sync. It returns after the first sweep.
func (s *Service) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.sweep(ctx, true)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.opts.SyncInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.sweep(ctx, false)
			}
		}
	}()
}

// Close stops background work and closes every backend.
func (s *Service) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	var errs []error
	for _, id := range s.ids {
		if err := s.nodes[id].Backend.Close(); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// IDs lists the managed node ids, sorted.
func (s *Service) IDs() []string { return s.ids }

// View returns the node's current view.
func (s *Service) View(id string) (View, error) {
	n, ok := s.nodes[id]
	if !ok {
		return View{}, fmt.Errorf("node %s: %w", id, ErrNodeNotFound)
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.view, nil
}

func (s *Service) sweep(ctx context.Context, full bool) {
	sem := make(chan struct{}, s.opts.SyncConcurrency)
	var wg sync.WaitGroup
	for _, id := range s.ids {
		n := s.nodes[id]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.refresh(ctx, n, full)
		}()
	}
	wg.Wait()
}

// refresh re-reads power state (and, when full or not known yet, the
// capabilities and boot override) of one node.
func (s *Service) refresh(ctx context.Context, n *node, full bool) {
	n.mu.RLock()
	needCaps := full || !n.view.CapsKnown
	n.mu.RUnlock()
	n.call.Lock()
	defer n.call.Unlock()
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	var (
		caps    backends.Capabilities
		boot    schemas.BootOverride
		capsErr error
	)
	if needCaps {
		caps, capsErr = n.Backend.Capabilities(cctx)
		if capsErr == nil {
			boot, capsErr = n.Backend.Boot(cctx)
		}
	}
	ps, err := n.Backend.PowerState(cctx)
	n.mu.Lock()
	defer n.mu.Unlock()
	if needCaps && capsErr == nil {
		n.view.Caps, n.view.Boot, n.view.CapsKnown = caps, boot, true
	}
	if err = errors.Join(err, capsErr); err != nil {
		s.opts.Logger.Warn("power sync failed", "node", n.ID, "err", err)
		n.view.LastError = err.Error()
		if n.view.Health != "Critical" {
			n.view.Health = "Warning"
		}
		return
	}
	n.view.PowerState, n.view.Health, n.view.LastError, n.view.Updated = ps, "OK", "", time.Now()
}

// ErrUnsupportedReset is returned (wrapped) for a ResetType the node's BMC
// does not offer.
var ErrUnsupportedReset = errors.New("reset type not supported by this node")

// ErrBMC wraps a failure reported by, or reaching, the node's BMC.
var ErrBMC = errors.New("BMC error")

// Reset sends reset type r to the node's BMC and verifies in the background
// that the node reaches the target state, updating the view.
func (s *Service) Reset(ctx context.Context, id string, r schemas.ResetType) error {
	n, ok := s.nodes[id]
	if !ok {
		return fmt.Errorf("node %s: %w", id, ErrNodeNotFound)
	}
	n.mu.RLock()
	caps, known := n.view.Caps, n.view.CapsKnown
	n.mu.RUnlock()
	if known && !caps.Supports(r) {
		return fmt.Errorf("node %s: %s: %w", id, r, ErrUnsupportedReset)
	}
	n.call.Lock()
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	err := n.Backend.Reset(cctx, r)
	cancel()
	n.call.Unlock()
	if errors.Is(err, backends.ErrUnsupported) {
		return fmt.Errorf("node %s: %s: %w", id, r, ErrUnsupportedReset)
	}
	if err != nil {
		return fmt.Errorf("node %s: %s: %w: %w", id, r, ErrBMC, err)
	}
	target, ok := r.Target()
	if !ok {
		return nil
	}
	n.mu.Lock()
	if n.view.PowerState != target {
		if target == schemas.PowerOn {
			n.view.PowerState = schemas.PowerPoweringOn
		} else {
			n.view.PowerState = schemas.PowerPoweringOff
		}
	}
	n.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.verify(n, r, target)
	}()
	return nil
}

// verify polls the node's power state until it shows target, with backoff,
// and records what it saw.
func (s *Service) verify(n *node, r schemas.ResetType, target schemas.PowerState) {
	limit := s.opts.VerifyTimeout
	if r == schemas.ResetGracefulShutdown || r == schemas.ResetGracefulRestart {
		limit *= 10
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	pause := s.opts.VerifyInterval
	for {
		select {
		case <-ctx.Done():
			s.opts.Logger.Warn("target state not reached", "node", n.ID, "reset", r, "target", target)
			n.mu.Lock()
			n.view.Health, n.view.LastError = "Warning", fmt.Sprintf("%s: %s not reached within %s", r, target, limit)
			n.mu.Unlock()
			return
		case <-time.After(pause):
		}
		pause = min(pause*2, 2*time.Second)
		n.call.Lock()
		cctx, ccancel := context.WithTimeout(ctx, s.opts.CallTimeout)
		ps, err := n.Backend.PowerState(cctx)
		ccancel()
		n.call.Unlock()
		if err != nil {
			continue
		}
		n.mu.Lock()
		if ps == target {
			n.view.PowerState, n.view.Health, n.view.LastError, n.view.Updated = ps, "OK", "", time.Now()
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
	}
}

// SetBoot sets the node's boot source override.
func (s *Service) SetBoot(ctx context.Context, id string, b schemas.BootOverride) error {
	n, ok := s.nodes[id]
	if !ok {
		return fmt.Errorf("node %s: %w", id, ErrNodeNotFound)
	}
	n.call.Lock()
	defer n.call.Unlock()
	cctx, cancel := context.WithTimeout(ctx, s.opts.CallTimeout)
	defer cancel()
	if err := n.Backend.SetBoot(cctx, b); err != nil {
		return fmt.Errorf("node %s: boot override: %w: %w", id, ErrBMC, err)
	}
	n.mu.Lock()
	if b.Target != "" {
		n.view.Boot.Target = b.Target
	}
	if b.Enabled != "" {
		n.view.Boot.Enabled = b.Enabled
	}
	if b.Mode != "" {
		n.view.Boot.Mode = b.Mode
	}
	n.mu.Unlock()
	return nil
}
