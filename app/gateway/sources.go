package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/backends"
	amtbackend "github.com/fishgate/fishgate/backends/amt"
	ipmibackend "github.com/fishgate/fishgate/backends/ipmi"
	rfbackend "github.com/fishgate/fishgate/backends/redfish"
	"github.com/fishgate/fishgate/fronts/redfish"
	"github.com/fishgate/fishgate/internal/marks"
	"github.com/fishgate/fishgate/serializer"
)

// Runtime sources (docs/architecture.md#runtime-enrolment): BMCs enrolled
// over the AggregationService are records in Redis, one per node, shared
// by every replica. Each replica applies them to its own node set
// (serializer Add, SetBackend, Remove), its pass-through proxies and IPMI
// fronts: at start, on the pub/sub hint a change publishes, and on a
// rescan (twice a second it reads one counter, and reloads the records
// when it moved) in case a hint was lost. Passwords are sealed (sealed.go).

const (
	sourcesKey        = "fg:{sources}:records" // hash: node id -> sourceRecord (JSON)
	sourcesVersionKey = "fg:{sources}:version" // counter: incremented by every change
	sourcesChannel    = "fg:sources"           // published: the id of a changed source
	// sourcesAddrsKey: hash, node address -> the runtime source's node id
	// that claimed it (one enrolment per address, over every replica).
	sourcesAddrsKey = "fg:{sources}:addresses"
	sourcesRescan   = 500 * time.Millisecond
	probeTimeout    = 5 * time.Second
	// removalTimeout bounds one attempt to remove a node (its running
	// action must end); a later rescan tries again.
	removalTimeout = 10 * time.Minute
	// deleteWait is how long a DELETE waits for the removal before
	// answering 202.
	deleteWait = 20 * time.Second
)

// putSourceScript changes one record if it still is what the caller read
// (ARGV[2]; "" = absent), to ARGV[3] ("" = delete), and tells the replicas.
var putSourceScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (cur or '') ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 1
`)

// sourceRecord is a runtime source as stored. Node's Password and
// IPMIPassword are always empty here: they are stored sealed.
type sourceRecord struct {
	Node         config.Node `json:"node"`
	Password     string      `json:"password"`
	IPMIPassword string      `json:"ipmi_password,omitempty"`
	Removing     bool        `json:"removing,omitempty"`
}

// appliedSource is a runtime source in effect on this replica.
type appliedSource struct {
	raw      string      // the record as read
	node     config.Node // with its passwords
	removing bool
}

// sources implements redfish.Sources for one replica.
type sources struct {
	rdb        redis.UniversalClient
	seal       *sealer // nil without secrets_key_file
	cmu        sync.RWMutex
	config     map[string]config.Node // the configuration file's nodes (under cmu; a reload replaces it)
	nodes      *serializer.Service
	proxies    *proxies
	ipmi       *ipmiFronts
	addrs      *nodeAddrs    // the nodes' own addresses (nodeaddr.go)
	fronts     config.Fronts // the address pool runtime sources take from
	newBackend func(config.Node, *slog.Logger) (backends.Backend, error)
	admission  config.Admission
	log        *slog.Logger

	mu       sync.Mutex // guards applied, removals, version; applies run under it
	applied  map[string]*appliedSource
	removals map[string]chan struct{} // removal in progress here: closed when done
	version  int64                    // of the records last loaded in full
	ctx      context.Context          // background removals; ended by watch's end
	stop     context.CancelFunc
}

// newSources loads the runtime sources from Redis and adds their nodes to
// the serializer, before it starts. A record that cannot be used (Redis
// down, a password that does not decrypt) is logged and left for the
// watch to retry.
func newSources(ctx context.Context, g *Gateway, newBackend func(config.Node, *slog.Logger) (backends.Backend, error)) (*sources, error) {
	s := &sources{rdb: g.redis.Client, config: map[string]config.Node{}, nodes: g.nodes, proxies: g.proxies, ipmi: g.ipmi, addrs: g.addrs, fronts: g.cfg.Fronts,
		newBackend: newBackend, admission: g.cfg.Admission, log: g.log.With("component", "sources"), applied: map[string]*appliedSource{}, removals: map[string]chan struct{}{}}
	s.ctx, s.stop = context.WithCancel(context.Background())
	key, err := g.cfg.SecretsKey()
	if err != nil {
		return nil, fmt.Errorf("secrets_key_file: %w", err)
	}
	if key != nil {
		if s.seal, err = newSealer(key); err != nil {
			return nil, err
		}
	}
	for _, n := range g.cfg.Nodes {
		s.config[n.ID] = n
	}
	if err := s.reload(ctx, false); err != nil {
		s.log.Warn("runtime sources not loaded yet; retrying in the background", "err", err)
	}
	return s, nil
}

// watch follows the records until ctx ends.
func (s *sources) watch(ctx context.Context) {
	defer s.stop()
	// The subscriber only marks the source; this loop reads it (a burst
	// of enrolments must not stop the subscriber reading: internal/marks).
	sub := s.rdb.Subscribe(ctx, sourcesChannel)
	defer sub.Close()
	changed := marks.New[string]()
	subDone := marks.Drain(ctx, sub.Channel(), changed.Mark)
	defer func() { <-subDone }()
	t := time.NewTicker(sourcesRescan)
	defer t.Stop()
	s.rescan(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-subDone:
			return // the client was closed
		case <-changed.Wake():
			for id, ok := changed.Next(); ok && ctx.Err() == nil; id, ok = changed.Next() {
				s.refreshOne(ctx, id)
			}
		case <-t.C:
			s.rescan(ctx)
		}
	}
}

// rescan reloads every record when the version moved, and retries the
// removals no replica finished.
func (s *sources) rescan(ctx context.Context) {
	if err := s.reload(ctx, true); err != nil && ctx.Err() == nil {
		s.log.Warn("rescan of runtime sources failed", "err", err)
	}
}

// reload reads the version and, if it changed (or always when onlyChanged
// is false), every record, and applies them.
func (s *sources) reload(ctx context.Context, onlyChanged bool) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := s.rdb.Get(rctx, sourcesVersionKey).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	s.mu.Lock()
	same := v == s.version
	s.mu.Unlock()
	if onlyChanged && same {
		s.retryOrphanRemovals(ctx)
		return nil
	}
	all, err := s.rdb.HGetAll(rctx, sourcesKey).Result()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, raw := range all {
		s.applyLocked(id, raw)
	}
	for id := range s.applied {
		if _, ok := all[id]; !ok {
			s.applyLocked(id, "")
		}
	}
	s.version = v
	return nil
}

// retryOrphanRemovals finishes removals that no replica holds: a record
// marked removing whose node is not managed here (every replica restarted
// meanwhile) goes once the node has no running action.
func (s *sources) retryOrphanRemovals(ctx context.Context) {
	s.mu.Lock()
	var ids []string
	for id, a := range s.applied {
		if a.removing && s.removals[id] == nil {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.refreshOne(ctx, id)
	}
}

// refreshOne re-reads one record and applies it.
func (s *sources) refreshOne(ctx context.Context, id string) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	raw, err := s.rdb.HGet(rctx, sourcesKey, id).Result()
	if errors.Is(err, redis.Nil) {
		raw, err = "", nil
	}
	if err != nil {
		s.log.Warn("read runtime source", "node", id, "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyLocked(id, raw)
}

// applyLocked makes this replica's node set follow record raw of node id
// ("" = no record). s.mu is held.
func (s *sources) applyLocked(id, raw string) {
	cur := s.applied[id]
	if raw == "" {
		if cur != nil {
			s.startRemovalLocked(id, "")
		}
		return
	}
	if cur != nil && cur.raw == raw {
		if cur.removing && s.removals[id] == nil {
			s.startRemovalLocked(id, raw) // an earlier attempt gave up
		}
		return
	}
	var rec sourceRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil || rec.Node.ID != id {
		s.log.Error("runtime source record unreadable; ignored", "node", id, "err", err)
		return
	}
	if rec.Removing {
		if cur == nil {
			// not managed here (a replica that started during the
			// removal): still shown, and removed like the others
			cur = &appliedSource{node: rec.Node}
			s.applied[id] = cur
		}
		cur.raw, cur.removing = raw, true
		if s.removals[id] == nil {
			s.startRemovalLocked(id, raw)
		}
		return
	}
	n, err := s.unsealed(rec)
	if err != nil {
		s.log.Error("runtime source not applied", "node", id, "err", err)
		return
	}
	if _, inConfig := s.fromConfig(id); inConfig {
		s.log.Error("runtime source has the id of a node of the configuration file; ignored", "node", id)
		return
	}
	if cur != nil && cur.removing {
		return // a removal in progress ends first; the next rescan applies the new record
	}
	b, err := s.newBackend(n, s.log)
	if err != nil {
		s.log.Error("runtime source not applied", "node", id, "err", err)
		return
	}
	if cur == nil {
		if err := s.nodes.Add(serializerNode(n, b, s.admission)); err != nil {
			b.Close()
			s.log.Error("runtime source not applied", "node", id, "err", err)
			return
		}
		s.log.Info("node enrolled", "node", id, "backend", n.Backend, "host", hostOf(n.Address))
	} else {
		old, err := s.nodes.SetBackend(id, b)
		if err != nil {
			b.Close()
			s.log.Error("runtime source change not applied", "node", id, "err", err)
			return
		}
		go old.Close() // a logout from the BMC: not under s.mu
		s.log.Info("node's BMC settings changed", "node", id, "backend", n.Backend, "host", hostOf(n.Address))
	}
	s.proxies.set(id, b)
	s.setAddress(n)
	if cur == nil || ipmiChanged(cur.node, n) {
		if err := s.ipmi.start(n, s.nodes); err != nil {
			s.log.Error("IPMI front of a runtime node not started", "node", id, "err", err)
		}
	}
	s.applied[id] = &appliedSource{raw: raw, node: n}
}

// startRemovalLocked removes node id from this replica in the background
// (serializer Remove: its running action ends first), then forgets its
// proxy and IPMI front and, when raw is the record marked removing,
// deletes the record. s.mu is held.
func (s *sources) startRemovalLocked(id, raw string) {
	if s.removals[id] != nil {
		return
	}
	done := make(chan struct{})
	s.removals[id] = done
	if a := s.applied[id]; a != nil {
		a.removing = true
	}
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(s.ctx, removalTimeout)
		defer cancel()
		err := s.nodes.Remove(ctx, id)
		if err == nil && raw != "" {
			err = s.waitIdleElsewhere(ctx, id)
		}
		if err == nil && raw != "" {
			err = s.put(ctx, id, raw, "")
			if errors.Is(err, errSourceChanged) {
				err = nil // another replica finished it, or the record changed: the rescan sees which
			}
		}
		if err == nil && raw != "" {
			s.releaseAddress(ctx, id)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.removals, id)
		if err != nil {
			s.log.Warn("node removal not finished; retried at the next rescan", "node", id, "err", err)
			return
		}
		s.proxies.drop(id)
		s.ipmi.stop(id)
		s.addrs.remove(id)
		if a := s.applied[id]; a != nil && (a.raw == raw || raw == "") {
			delete(s.applied, id)
		}
		s.version = -1 // a record of this id posted meanwhile waited for this: the next rescan applies it
		s.log.Info("node removed", "node", id)
	}()
}

// waitIdleElsewhere waits until node id has no running action and no
// boot override pending in Redis: a replica that does not manage the node
// (Remove returned at once) must not delete its record while another
// replica still runs its last action.
func (s *sources) waitIdleElsewhere(ctx context.Context, id string) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := s.nodes.Store().State(ctx, id)
		if err == nil && st.Slots.Now.Task == "" && !st.BootPending {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// errSourceChanged: the record is not what the caller read.
var errSourceChanged = errors.New("the source changed meanwhile")

// put replaces record id if it still is old ("" = absent) by new ("" =
// delete).
func (s *sources) put(ctx context.Context, id, old, new string) error {
	ok, err := putSourceScript.Run(ctx, s.rdb, []string{sourcesKey, sourcesVersionKey}, id, old, new, sourcesChannel).Int()
	if err != nil {
		return err
	}
	if ok == 0 {
		return errSourceChanged
	}
	return nil
}

// unsealed is rec's node with its passwords.
func (s *sources) unsealed(rec sourceRecord) (config.Node, error) {
	n := rec.Node
	if s.seal == nil {
		return n, errors.New("this replica has no secrets_key_file, so it cannot read the BMC password (every replica needs the same key)")
	}
	var err error
	if n.Password, err = s.seal.open(n.ID, "password", rec.Password); err != nil {
		return n, err
	}
	if n.IPMIPassword, err = s.seal.open(n.ID, "ipmi_password", rec.IPMIPassword); err != nil {
		return n, err
	}
	return n, nil
}

// sealed is n as a record to store.
func (s *sources) sealed(n config.Node) (string, error) {
	rec := sourceRecord{Node: n}
	var err error
	if rec.Password, err = s.seal.seal(n.ID, "password", n.Password); err != nil {
		return "", err
	}
	if rec.IPMIPassword, err = s.seal.seal(n.ID, "ipmi_password", n.IPMIPassword); err != nil {
		return "", err
	}
	rec.Node.Password, rec.Node.IPMIPassword = "", ""
	b, err := json.Marshal(rec)
	return string(b), err
}

// fromConfig is node id of the configuration file, if it is one.
func (s *sources) fromConfig(id string) (config.Node, bool) {
	s.cmu.RLock()
	defer s.cmu.RUnlock()
	n, ok := s.config[id]
	return n, ok
}

// setConfig follows a configuration reload: its nodes are the
// configuration's sources, and adm the admission that runtime sources
// with a policy of their own build their rules on. A runtime source whose
// rules came from the old admission gets the new one.
func (s *sources) setConfig(nodes []config.Node, adm config.Admission) {
	m := make(map[string]config.Node, len(nodes))
	for _, n := range nodes {
		m[n.ID] = n
	}
	s.cmu.Lock()
	s.config = m
	s.cmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.admission = adm
	for id, a := range s.applied {
		if a.node.Policy != "" && !a.removing {
			if err := s.nodes.SetRules(id, serializerNode(a.node, nil, adm).Rules); err != nil {
				s.log.Warn("runtime source's admission rules not changed", "node", id, "err", err)
			}
		}
	}
}

// isRuntime reports whether node id is a runtime source applied here.
func (s *sources) isRuntime(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied[id] != nil
}

// List is every source: the configuration's, then the runtime ones.
func (s *sources) List() []redfish.Source {
	s.mu.Lock()
	out := make([]redfish.Source, 0, len(s.config)+len(s.applied))
	for _, a := range s.applied {
		out = append(out, toSource(a.node, false, a.removing))
	}
	s.mu.Unlock()
	s.cmu.RLock()
	for _, n := range s.config {
		out = append(out, toSource(n, true, false))
	}
	s.cmu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Get is one source.
func (s *sources) Get(id string) (redfish.Source, bool) {
	if n, ok := s.fromConfig(id); ok {
		return toSource(n, true, false), true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.applied[id]; a != nil {
		return toSource(a.node, false, a.removing), true
	}
	return redfish.Source{}, false
}

// toSource renders node n as the front shows it (no password).
func toSource(n config.Node, fromConfig, removing bool) redfish.Source {
	str := func(v string) *string { return &v }
	b := func(v bool) *bool { return &v }
	return redfish.Source{
		ID: n.ID, Backend: n.Backend, HostName: n.Address, UserName: n.User,
		FromConfiguration: fromConfig, Removing: removing,
		Options: redfish.SourceOptions{
			NodeID: str(n.ID), Name: str(n.Name), SystemID: str(n.SystemID), Insecure: b(n.Insecure),
			Policy: str(n.Policy), SoftOffFallback: str(n.SoftOffFallback), ReassertDesired: b(n.ReassertDesired),
			CipherSuite: &n.CipherSuite, IPMIInterface: str(n.IPMIInterface), IPMIListen: str(n.IPMIListen),
			IPMIUser: str(n.IPMIUser), IPMIAllowV15: b(n.IPMIAllowV15), BMCAddress: str(addrString(n.BMCAddress)),
		},
	}
}

// newSourceID names a source posted without Oem/Fishgate/NodeId.
func newSourceID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "bmc-" + hex.EncodeToString(b)
}

// Create enrols a BMC: checked as a node of the configuration file is,
// its credentials tried on the BMC (a refusal is an error; a BMC that
// does not answer is enrolled, and shows Critical until it does), then
// stored and applied here at once; the other replicas follow within a
// second.
func (s *sources) Create(ctx context.Context, spec redfish.SourceSpec) (redfish.Source, error) {
	if s.seal == nil {
		return redfish.Source{}, redfish.ErrNoSecretsKey
	}
	for _, req := range []struct {
		prop string
		v    any
	}{{"Links/ConnectionMethod", spec.Backend}, {"HostName", spec.HostName}, {"UserName", spec.UserName}, {"Password", spec.Password}} {
		if p, ok := req.v.(*string); ok && p == nil {
			return redfish.Source{}, &redfish.SourcePropertyError{Property: req.prop, Problem: "required", Kind: redfish.PropertyMissing}
		}
	}
	n := config.Node{Backend: *spec.Backend, Address: *spec.HostName, User: *spec.UserName, Password: *spec.Password}
	applyOptions(&n, spec.Options)
	if n.ID == "" && spec.Options.NodeID == nil {
		n.ID = newSourceID()
	}
	if err := nodeProblem(n); err != nil {
		return redfish.Source{}, err
	}
	if _, ok := s.fromConfig(n.ID); ok {
		return redfish.Source{}, &redfish.SourceExistsError{NodeID: n.ID}
	}
	if err := s.probe(ctx, n); err != nil {
		return redfish.Source{}, err
	}
	var err error
	if n.BMCAddress, err = s.claimAddress(ctx, n.ID, spec.Options.BMCAddress); err != nil {
		return redfish.Source{}, err
	}
	raw, err := s.sealed(n)
	if err != nil {
		s.releaseAddress(ctx, n.ID)
		return redfish.Source{}, err
	}
	if cur, err := s.rdb.HGet(ctx, sourcesKey, n.ID).Result(); err == nil && cur != "" {
		return redfish.Source{}, &redfish.SourceExistsError{NodeID: n.ID}
	}
	// A node of this id removed earlier left its keys marked retired.
	if err := s.nodes.Reinstate(ctx, n.ID); err != nil {
		return redfish.Source{}, err
	}
	if err := s.put(ctx, n.ID, "", raw); err != nil {
		s.releaseAddress(ctx, n.ID)
		if errors.Is(err, errSourceChanged) {
			return redfish.Source{}, &redfish.SourceExistsError{NodeID: n.ID}
		}
		return redfish.Source{}, err
	}
	s.mu.Lock()
	s.applyLocked(n.ID, raw)
	s.mu.Unlock()
	s.waitRead(ctx, n.ID)
	return toSource(n, false, false), nil
}

// waitRead waits a little for this replica's first read of a new node,
// so that the POST's answer shows its health and a Reset sent to this
// replica right after it finds the node's capabilities.
func (s *sources) waitRead(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if v, err := s.nodes.View(id); err != nil || v.Read() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Update changes a runtime source's BMC settings: address, credentials,
// and the options that only the backend or the IPMI front use.
func (s *sources) Update(ctx context.Context, id string, spec redfish.SourceSpec) (redfish.Source, error) {
	if _, ok := s.fromConfig(id); ok {
		return redfish.Source{}, redfish.ErrSourceReadOnly
	}
	if s.seal == nil {
		return redfish.Source{}, redfish.ErrNoSecretsKey
	}
	s.mu.Lock()
	a := s.applied[id]
	s.mu.Unlock()
	if a == nil || a.removing {
		return redfish.Source{}, redfish.ErrSourceNotFound
	}
	n := a.node
	o := spec.Options
	fixed := []struct {
		prop    string
		given   bool
		changed bool
	}{
		{"Links/ConnectionMethod", spec.Backend != nil, spec.Backend != nil && *spec.Backend != n.Backend},
		{"Oem/Fishgate/NodeId", o.NodeID != nil, o.NodeID != nil && *o.NodeID != n.ID},
		{"Oem/Fishgate/Name", o.Name != nil, o.Name != nil && *o.Name != n.Name},
		{"Oem/Fishgate/Policy", o.Policy != nil, o.Policy != nil && *o.Policy != n.Policy},
		{"Oem/Fishgate/SoftOffFallback", o.SoftOffFallback != nil, o.SoftOffFallback != nil && *o.SoftOffFallback != n.SoftOffFallback},
		{"Oem/Fishgate/ReassertDesired", o.ReassertDesired != nil, o.ReassertDesired != nil && *o.ReassertDesired != n.ReassertDesired},
		{"Oem/Fishgate/BmcAddress", o.BMCAddress != nil, o.BMCAddress != nil && *o.BMCAddress != addrString(n.BMCAddress)},
	}
	for _, f := range fixed {
		if f.changed {
			return redfish.Source{}, &redfish.SourcePropertyError{Property: f.prop, Kind: redfish.PropertyNotWritable,
				Problem: "fixed once the source is created (it shapes the node's admission and identity): delete the source and create it again to change it"}
		}
	}
	if spec.HostName != nil {
		n.Address = *spec.HostName
	}
	if spec.UserName != nil {
		n.User = *spec.UserName
	}
	if spec.Password != nil {
		n.Password = *spec.Password
	}
	applyOptions(&n, o)
	if err := nodeProblem(n); err != nil {
		return redfish.Source{}, err
	}
	if n.Address != a.node.Address || n.User != a.node.User || n.Password != a.node.Password {
		if err := s.probe(ctx, n); err != nil {
			return redfish.Source{}, err
		}
	}
	raw, err := s.sealed(n)
	if err != nil {
		return redfish.Source{}, err
	}
	if err := s.put(ctx, id, a.raw, raw); err != nil {
		if errors.Is(err, errSourceChanged) {
			return redfish.Source{}, fmt.Errorf("source %s: %w; read it again and retry", id, err)
		}
		return redfish.Source{}, err
	}
	s.mu.Lock()
	s.applyLocked(id, raw)
	s.mu.Unlock()
	return toSource(n, false, false), nil
}

// Delete marks the source removing (every replica stops admitting for
// the node and ends its waiting actions), then waits a while for the
// removal: done=false when the node's running action outlasts the wait;
// the removal then ends with it.
func (s *sources) Delete(ctx context.Context, id string) (bool, error) {
	if _, ok := s.fromConfig(id); ok {
		return false, redfish.ErrSourceReadOnly
	}
	raw, err := s.rdb.HGet(ctx, sourcesKey, id).Result()
	if errors.Is(err, redis.Nil) {
		return false, redfish.ErrSourceNotFound
	}
	if err != nil {
		return false, err
	}
	var rec sourceRecord
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return false, fmt.Errorf("source %s: unreadable record: %w", id, err)
	}
	if !rec.Removing {
		rec.Removing = true
		b, _ := json.Marshal(rec)
		if err := s.put(ctx, id, raw, string(b)); err != nil {
			return false, err
		}
		raw = string(b)
	}
	s.mu.Lock()
	s.applyLocked(id, raw)
	done := s.removals[id]
	s.mu.Unlock()
	if done == nil {
		return true, nil
	}
	wait, cancel := context.WithTimeout(ctx, deleteWait)
	defer cancel()
	select {
	case <-done:
	case <-wait.Done():
		return false, nil
	}
	s.mu.Lock()
	_, still := s.applied[id]
	s.mu.Unlock()
	return !still, nil
}

// probe tries n's credentials on its BMC: a refusal is an error; no
// answer is not (the source is created and shows Critical).
func (s *sources) probe(ctx context.Context, n config.Node) error {
	b, err := s.newBackend(n, s.log)
	if err != nil {
		return &redfish.SourcePropertyError{Property: "HostName", Value: n.Address, Problem: err.Error()}
	}
	defer b.Close()
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	_, err = b.PowerState(pctx)
	if errors.Is(err, rfbackend.ErrAuthentication) || errors.Is(err, ipmibackend.ErrAuthentication) || errors.Is(err, amtbackend.ErrAuthentication) {
		return &redfish.SourceCredentialsError{HostName: n.Address, Err: err}
	}
	if err != nil {
		s.log.Info("enrolled BMC does not answer yet", "node", n.ID, "host", hostOf(n.Address), "err", err)
	}
	return nil
}

// applyOptions sets the options given in o on n.
func applyOptions(n *config.Node, o redfish.SourceOptions) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	setb := func(dst *bool, v *bool) {
		if v != nil {
			*dst = *v
		}
	}
	set(&n.ID, o.NodeID)
	set(&n.Name, o.Name)
	set(&n.SystemID, o.SystemID)
	setb(&n.Insecure, o.Insecure)
	set(&n.Policy, o.Policy)
	set(&n.SoftOffFallback, o.SoftOffFallback)
	setb(&n.ReassertDesired, o.ReassertDesired)
	if o.CipherSuite != nil {
		n.CipherSuite = *o.CipherSuite
	}
	set(&n.IPMIInterface, o.IPMIInterface)
	set(&n.IPMIListen, o.IPMIListen)
	set(&n.IPMIUser, o.IPMIUser)
	set(&n.IPMIPassword, o.IPMIPassword)
	setb(&n.IPMIAllowV15, o.IPMIAllowV15)
}

// sourceProperty is the Redfish property of a node field of the
// configuration file.
var sourceProperty = map[string]string{
	"id": "Oem/Fishgate/NodeId", "name": "Oem/Fishgate/Name", "backend": "Links/ConnectionMethod",
	"address": "HostName", "user": "UserName", "password": "Password",
	"policy": "Oem/Fishgate/Policy", "soft_off_fallback": "Oem/Fishgate/SoftOffFallback",
	"system_id": "Oem/Fishgate/SystemId", "cipher_suite": "Oem/Fishgate/CipherSuite",
	"ipmi_interface": "Oem/Fishgate/IpmiInterface", "ipmi_listen": "Oem/Fishgate/IpmiListen",
	"ipmi_user": "Oem/Fishgate/IpmiUser", "ipmi_password": "Oem/Fishgate/IpmiPassword",
}

// nodeProblem checks n as the configuration file's nodes are checked
// (config.Node.Problems) and names the first problem by its Redfish
// property.
func nodeProblem(n config.Node) error {
	ps := n.Problems()
	if n.Password == "" {
		ps = append(ps, config.NodeProblem{Field: "password", Problem: "required"})
	}
	if len(ps) == 0 {
		return nil
	}
	p := ps[0]
	prop := sourceProperty[p.Field]
	if prop == "" {
		prop = "Oem/Fishgate/" + p.Field
	}
	e := &redfish.SourcePropertyError{Property: prop, Problem: p.Problem, Value: fieldValue(n, p.Field)}
	switch {
	case p.Problem == "required":
		e.Kind = redfish.PropertyMissing
	case p.Field == "policy" || p.Field == "soft_off_fallback" || p.Field == "ipmi_interface":
		e.Kind = redfish.PropertyNotInList
	}
	return e
}

// fieldValue is the value of a node field for an error message; secrets
// are not repeated.
func fieldValue(n config.Node, field string) string {
	switch field {
	case "id":
		return n.ID
	case "address":
		return n.Address
	case "user":
		return n.User
	case "policy":
		return n.Policy
	case "soft_off_fallback":
		return n.SoftOffFallback
	case "ipmi_interface":
		return n.IPMIInterface
	case "ipmi_listen":
		return n.IPMIListen
	case "cipher_suite":
		return strconv.Itoa(n.CipherSuite)
	case "backend":
		return n.Backend
	}
	return "(hidden)"
}

// ipmiChanged reports whether a node's IPMI front settings differ.
func ipmiChanged(a, b config.Node) bool {
	return a.IPMIListen != b.IPMIListen || a.BMCAddress != b.BMCAddress || a.IPMIUser != b.IPMIUser || a.IPMIPassword != b.IPMIPassword || a.IPMIAllowV15 != b.IPMIAllowV15
}

// hostOf is an address with any password in it hidden, for logs.
func hostOf(addr string) string {
	if u, err := url.Parse(addr); err == nil && u.User != nil {
		return u.Redacted()
	}
	return addr
}
