package serializer

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/backends"
)

// The node set changes at runtime: a BMC enrolled over the
// AggregationService is Added on every replica, a removed one Removed
// (docs/architecture.md#runtime-enrolment). Lookups take a read lock on a
// map, so a request costs the same with 10 or 10,000 nodes; the sorted id
// list is rebuilt by Add and Remove, not by readers.

// ErrNodeRemoved is returned for a node whose removal has begun: it admits
// nothing more. It is an ErrNodeNotFound for callers that do not care.
var ErrNodeRemoved = fmt.Errorf("%w: it is being removed", ErrNodeNotFound)

// refusedRemoved is admit.lua's refusal for a retired node; Reset turns it
// into ErrNodeRemoved, so it is no Refusal a client sees.
const refusedRemoved Refusal = "removed"

var (
	//go:embed lua/retire.lua
	luaRetire    string
	retireScript = script(luaRetire)
)

// newNode checks n and builds its state.
func (s *Service) newNode(n Node) (*node, error) {
	if n.ID == "" {
		return nil, errors.New("serializer: node with empty id")
	}
	if n.Backend == nil {
		return nil, fmt.Errorf("serializer: node %s has no backend", n.ID)
	}
	if n.Name == "" {
		n.Name = n.ID
	}
	n.Backend = s.metered(n.Backend, n.Kind)
	nd := &node{Node: n, changed: make(chan struct{}),
		view: View{ID: n.ID, Name: n.Name, Kind: n.Kind, Health: "Critical", LastError: notReadYet}}
	nd.setRules(n.Rules, s.rules.Load())
	nd.settings.Store(&nodeSettings{reassert: n.Reassert, softOffFallback: n.SoftOffFallback})
	return nd, nil
}

// metered is b with its calls counted in the service's metrics, when it
// has any (backends.Metered).
func (s *Service) metered(b backends.Backend, kind string) backends.Backend {
	if s.opts.Metrics == nil {
		return b
	}
	return backends.Metered(b, kind, s.opts.Metrics)
}

// nodeSettings are the settings of a node that a reload may change.
type nodeSettings struct {
	reassert        bool
	softOffFallback string
}

// SetSettings changes node id's name, Reassert and SoftOffFallback (a
// configuration reload). An action running keeps the soft-off fallback
// it began with; the ResetTypes offered are read again (a fallback of
// force offers the graceful ones on a BMC without a soft off).
func (s *Service) SetSettings(id, name string, reassert bool, softOffFallback string) error {
	n, ok := s.lookup(id)
	if !ok || n.removing.Load() {
		return fmt.Errorf("node %s: %w", id, ErrNodeNotFound)
	}
	if name == "" {
		name = id
	}
	n.mu.Lock()
	n.view.Name = name
	n.mu.Unlock()
	n.settings.Store(&nodeSettings{reassert: reassert, softOffFallback: softOffFallback})
	if s.started.Load() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.refresh(s.ctx, n, true)
		}()
	}
	return nil
}

// setRules makes own the node's rules, or defaults when own is nil.
// Service.mu is held (or the node is not shared yet).
func (n *node) setRules(own, defaults *Rules) {
	r := defaults
	if own != nil {
		c := *own
		r = &c
	}
	n.ownRules = own != nil
	n.rules.Store(r)
}

// SetRules changes node id's admission rules to r, or to the service's
// defaults when r is nil (a configuration reload). Admissions from now on
// follow them; what was admitted stays as it is.
func (s *Service) SetRules(id string, r *Rules) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[id]
	if !ok {
		return fmt.Errorf("node %s: %w", id, ErrNodeNotFound)
	}
	n.setRules(r, s.rules.Load())
	return nil
}

// SetDefaultRules changes the default admission rules: the nodes without
// rules of their own, and those added later, follow them.
func (s *Service) SetDefaultRules(r Rules) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules.Store(&r)
	for _, n := range s.nodes {
		if !n.ownRules {
			n.rules.Store(&r)
		}
	}
}

// notReadYet is the LastError of a node whose BMC has not been read.
const notReadYet = "not read yet"

// Read reports whether the node's BMC has been read, or tried and failed,
// since the node was added.
func (v View) Read() bool { return v.CapsKnown || v.LastError != notReadYet }

// lookup finds a managed node.
func (s *Service) lookup(id string) (*node, bool) {
	s.mu.RLock()
	n, ok := s.nodes[id]
	s.mu.RUnlock()
	return n, ok
}

// snapshot is every managed node, in id order, as of now.
func (s *Service) snapshot() []*node {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*node, len(s.ids))
	for i, id := range s.ids {
		out[i] = s.nodes[id]
	}
	return out
}

// IDs lists the managed node ids, sorted. The slice is not changed
// afterwards (Add and Remove make a new one).
func (s *Service) IDs() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ids
}

// Add starts managing a node (enrolled at runtime). Once the service runs,
// the node is read at once and any work waiting for it in Redis is picked
// up. Its id must be new; a node still being removed counts as present.
func (s *Service) Add(n Node) error {
	if s.ctx.Err() != nil {
		return errors.New("serializer: closed")
	}
	nd, err := s.newNode(n)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if _, dup := s.nodes[n.ID]; dup {
		s.mu.Unlock()
		return fmt.Errorf("serializer: duplicate node id %q", n.ID)
	}
	s.nodes[n.ID] = nd
	nd.setRules(n.Rules, s.rules.Load()) // the defaults may have changed since newNode
	i, _ := slices.BinarySearch(s.ids, n.ID)
	s.ids = slices.Insert(slices.Clip(s.ids), i, n.ID) // a new array: readers keep theirs
	s.mu.Unlock()
	if s.started.Load() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.refresh(s.ctx, nd, true)
			if s.refreshState(nd) {
				s.kick(nd)
			}
		}()
	}
	return nil
}

// Reinstate lets node ids that were removed be admitted again: Remove
// leaves a node's keys marked retired in Redis (so that a replica slow to
// remove it admits nothing), and a new enrolment of the same id clears
// the mark before any replica Adds it; so does a start or a reload whose
// configuration file has the node (app/gateway). One round trip.
func (s *Service) Reinstate(ctx context.Context, ids ...string) error {
	_, err := s.opts.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.HDel(ctx, nodeKeys(id).Slots, "retired")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reinstate %d nodes: %w: %w", len(ids), ErrUnavailable, err)
	}
	return nil
}

// Remove stops managing a node. New admissions are refused at once, on
// this replica and, through Redis (retire.lua), on every other; waiting
// actions end Cancelled; Remove then waits until the running action has
// ended (on whichever replica runs it) and any boot override is applied,
// so that no task is left unfinished, and forgets the node and closes
// its backend. It returns early with ctx's error (the node stays, refusing
// work, and a later Remove finishes the job). Removing an unknown node
// does nothing.
func (s *Service) Remove(ctx context.Context, id string) error {
	n, ok := s.lookup(id)
	if !ok {
		return nil
	}
	n.removing.Store(true)
	res, err := s.store.run.Run(ctx, retireScript, nodeKeys(id).forScripts(), id, s.opts.Clock().UnixMilli()).StringSlice()
	if err != nil {
		return fmt.Errorf("node %s: retire: %w: %w", id, ErrUnavailable, err)
	}
	if len(res) > 1 {
		s.opts.Logger.Info("node removal: waiting actions cancelled", "node", id, "tasks", res[1:])
	}
	// The running action ends on its lease holder, which publishes each
	// step (n.changed); the ticker covers a missed message.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		busy := s.refreshState(n)
		if !busy {
			break
		}
		n.mu.RLock()
		changed := n.changed
		n.mu.RUnlock()
		select {
		case <-changed:
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("node %s: removal waits for its running action: %w", id, ctx.Err())
		}
	}
	s.mu.Lock()
	if s.nodes[id] == n {
		delete(s.nodes, id)
		s.ids = slices.DeleteFunc(slices.Clone(s.ids), func(x string) bool { return x == id })
	}
	s.mu.Unlock()
	// The node's worker on this replica, if any, stops at its next look
	// (runActions): wait for it, so that it cannot take up work of a node
	// enrolled again under this id with a backend about to be closed.
	n.gone.Store(true)
	for n.isWorking() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("node %s: removal waits for its worker: %w", id, ctx.Err())
		}
	}
	// A sweep read may still hold the BMC.
	n.call.Lock()
	err = n.Backend.Close()
	n.call.Unlock()
	s.opts.Logger.Info("node removed", "node", id)
	if err != nil {
		return fmt.Errorf("node %s: close backend: %w", id, err)
	}
	return nil
}

// isWorking reports whether the node's worker goroutine runs.
func (n *node) isWorking() bool {
	n.wmu.Lock()
	defer n.wmu.Unlock()
	return n.working
}

// SetBackend replaces a node's backend (new credentials or address): no
// BMC call is in flight on this replica while it changes, and its
// capabilities are read again (the old ones serve until then). It returns the old backend for the caller
// to close.
func (s *Service) SetBackend(id string, b backends.Backend) (backends.Backend, error) {
	n, ok := s.lookup(id)
	if !ok || n.removing.Load() {
		return nil, fmt.Errorf("node %s: %w", id, ErrNodeNotFound)
	}
	b = s.metered(b, n.Kind)
	n.call.Lock()
	old := n.Backend
	n.Backend = b
	n.call.Unlock()
	if s.started.Load() {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.refresh(s.ctx, n, true)
		}()
	}
	return old, nil
}
