package gateway

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/fronts/redfish"
)

// A reload (SIGHUP, docs/architecture.md#signals) applies the
// configuration file read again to the running replica: its accounts,
// its nodes, the admission policies and the TLS certificate. Running
// actions go on: a node whose BMC settings changed gets a new backend
// between two BMC calls (serializer.SetBackend), a removed node is
// removed as a runtime source is (its running action ends first). What
// the file sets otherwise (listen, redis, lease_ttl, ...) takes effect at
// the next start only: the reload names it. A file that does not load,
// or a change that cannot be applied (a backend that cannot be built, a
// certificate that does not parse, Redis down while hashing a new
// password) is refused whole: nothing changes.
//
// Each replica reloads its own file; replicas sharing a Redis are
// expected to be given the same file, and differ until each has reloaded.
// A node removed by one replica's reload is retired in Redis, so the
// others refuse new work for it too until their own file drops or
// re-adds it.

// Change is one difference a reload applied (or, Restart, found but left
// for the next start).
type Change struct {
	What string   // "account added", "node changed", "admission changed", ...
	ID   string   // the account's user or the node's id ("" for the others)
	Keys []string // the fields that changed, by their YAML names; never a value
	// Restart: the change takes effect at the next start only.
	Restart bool
}

func (c Change) String() string {
	s := c.What
	if c.ID != "" {
		s += " " + c.ID
	}
	if len(c.Keys) > 0 {
		s += " (" + strings.Join(c.Keys, ", ") + ")"
	}
	if c.Restart {
		s += ": takes effect after a restart"
	}
	return s
}

// diffAccounts lists the accounts added, removed and changed.
func diffAccounts(old, new []config.Account) []Change {
	byUser := func(as []config.Account) map[string]config.Account {
		m := make(map[string]config.Account, len(as))
		for _, a := range as {
			m[a.User] = a
		}
		return m
	}
	o, n := byUser(old), byUser(new)
	var out []Change
	for _, u := range sortedKeys(n) {
		b := n[u]
		a, ok := o[u]
		if !ok {
			out = append(out, Change{What: "account added", ID: u})
			continue
		}
		var keys []string
		if a.Password != b.Password {
			keys = append(keys, "password")
		}
		if roleOf(a) != roleOf(b) {
			keys = append(keys, "role")
		}
		if !slices.Equal(a.Nodes, b.Nodes) {
			keys = append(keys, "nodes")
		}
		if keys != nil {
			out = append(out, Change{What: "account changed", ID: u, Keys: keys})
		}
	}
	for _, u := range sortedKeys(o) {
		if _, ok := n[u]; !ok {
			out = append(out, Change{What: "account removed", ID: u})
		}
	}
	return out
}

func roleOf(a config.Account) string {
	if a.Role == "" {
		return redfish.RoleAdministrator
	}
	return a.Role
}

// nodeKeys sorts a node's fields by what a change of them takes.
var (
	// backendKeys are the BMC settings: a change replaces the backend.
	backendKeys = []string{"backend", "address", "user", "password", "insecure", "system_id", "cipher_suite", "ipmi_interface"}
	// ipmiKeys are the node's IPMI front: a change restarts it.
	ipmiKeys = []string{"ipmi_listen", "ipmi_user", "ipmi_password", "ipmi_allow_v15", "bmc_address"}
	// settingsKeys are the serializer's settings of the node.
	settingsKeys = []string{"name", "reassert_desired", "soft_off_fallback"}
)

// nodeChanges lists the fields, by YAML name, in which a and b differ.
func nodeChanges(a, b config.Node) []string {
	return changedFields(reflect.ValueOf(a), reflect.ValueOf(b))
}

// changedFields lists the YAML names of the fields in which two structs
// of one type differ.
func changedFields(a, b reflect.Value) []string {
	var out []string
	for i := range a.NumField() {
		f := a.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, name)
		}
	}
	return out
}

// diffNodes lists the nodes added, removed and changed.
func diffNodes(old, new []config.Node) []Change {
	o, n := nodesByID(old), nodesByID(new)
	var out []Change
	for _, id := range sortedKeys(n) {
		a, ok := o[id]
		switch keys := nodeChanges(a, n[id]); {
		case !ok:
			out = append(out, Change{What: "node added", ID: id})
		case len(keys) > 0:
			out = append(out, Change{What: "node changed", ID: id, Keys: keys})
		}
	}
	for _, id := range sortedKeys(o) {
		if _, ok := n[id]; !ok {
			out = append(out, Change{What: "node removed", ID: id})
		}
	}
	return out
}

func nodesByID(ns []config.Node) map[string]config.Node {
	m := make(map[string]config.Node, len(ns))
	for _, n := range ns {
		m[n.ID] = n
	}
	return m
}

// reloadable are the top-level settings a reload applies; tls is applied
// in part (tls.cert and tls.key).
var reloadable = []string{"accounts", "nodes", "admission"}

// diffRest lists the admission change and the settings that a reload
// does not apply.
func diffRest(old, new config.Config) []Change {
	var out []Change
	if keys := changedFields(reflect.ValueOf(old.Admission), reflect.ValueOf(new.Admission)); keys != nil {
		out = append(out, Change{What: "admission changed", Keys: prefixed("admission.", keys)})
	}
	// TLS: the certificate files may change; the rest needs a restart.
	ot, nt := old.TLS, new.TLS
	if ot.Cert != "" && nt.Cert != "" {
		ot.Cert, ot.Key, nt.Cert, nt.Key = "", "", "", ""
	}
	var later []string
	for _, k := range changedFields(reflect.ValueOf(old), reflect.ValueOf(new)) {
		switch {
		case slices.Contains(reloadable, k):
		case k == "tls":
			later = append(later, prefixed("tls.", changedFields(reflect.ValueOf(ot), reflect.ValueOf(nt)))...)
		default:
			later = append(later, k)
		}
	}
	if later != nil {
		out = append(out, Change{What: "settings changed", Keys: later, Restart: true})
	}
	return out
}

func prefixed(p string, keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = p + k
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// errDraining refuses a reload once the replica drains.
var errDraining = errors.New("the gateway is shutting down")

// Reload applies cfg, the configuration file read again, and returns the
// changes it found, each logged on its own line; the certificate is read
// again whether or not its files changed. On error nothing changed.
func (g *Gateway) Reload(ctx context.Context, cfg config.Config) ([]Change, error) {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	if g.nodes.Draining() {
		return nil, errDraining
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	old := g.cfg
	changes := append(append(diffAccounts(old.Accounts, cfg.Accounts), diffNodes(old.Nodes, cfg.Nodes)...), diffRest(old, cfg)...)
	for _, n := range cfg.Nodes {
		if _, had := nodesByID(old.Nodes)[n.ID]; !had && g.sources.isRuntime(n.ID) {
			return nil, fmt.Errorf("nodes: %q is a source enrolled over the AggregationService; delete that source first", n.ID)
		}
	}
	// Everything that can fail is prepared before anything changes.
	var cert *loadedCert
	if g.certs != nil && !cfg.TLS.Disabled && (cfg.TLS.Cert == "") == (old.TLS.Cert == "") {
		var err error
		if cert, err = g.certs.prepare(ctx, cfg.TLS.Cert, cfg.TLS.Key); err != nil {
			return nil, err
		}
	}
	built := map[string]backends.Backend{}
	closeBuilt := func() {
		for _, b := range built {
			b.Close()
		}
	}
	newByID, oldByID := nodesByID(cfg.Nodes), nodesByID(old.Nodes)
	for _, c := range changes {
		if c.What != "node added" && (c.What != "node changed" || !anyOf(c.Keys, backendKeys)) {
			continue
		}
		b, err := g.sources.newBackend(newByID[c.ID], g.log)
		if err != nil {
			closeBuilt()
			return nil, err
		}
		built[c.ID] = b
	}
	if len(diffAccounts(old.Accounts, cfg.Accounts)) > 0 {
		if err := g.api.SetConfigAccounts(ctx, apiAccounts(cfg.Accounts)); err != nil {
			closeBuilt()
			return nil, err
		}
	}
	// Apply.
	// IPMI fronts that go or move stop first, so that a node can take the
	// node address another one leaves in the same reload (two nodes
	// swapping addresses, a node removed and one added at its address).
	for _, c := range changes {
		if c.What == "node removed" || (c.What == "node changed" && ipmiChanged(oldByID[c.ID], newByID[c.ID])) {
			g.ipmi.stop(c.ID)
		}
	}
	rules := cfg.Admission.Rules()
	g.nodes.SetDefaultRules(rules)
	for _, c := range changes {
		switch c.What {
		case "node added":
			g.addNode(ctx, newByID[c.ID], built[c.ID], cfg.Admission)
			g.addrs.set(c.ID, newByID[c.ID].BMCAddress)
		case "node removed":
			g.removeNode(c.ID)
			g.addrs.remove(c.ID)
		case "node changed":
			g.changeNode(oldByID[c.ID], newByID[c.ID], built[c.ID])
			g.addrs.set(c.ID, newByID[c.ID].BMCAddress)
		}
	}
	for _, n := range cfg.Nodes { // a policy of their own follows the new admission too
		if _, had := oldByID[n.ID]; had {
			if err := g.nodes.SetRules(n.ID, serializerNode(n, nil, cfg.Admission).Rules); err != nil {
				g.log.Warn("reload: node's admission rules not changed", "node", n.ID, "err", err)
			}
		}
	}
	g.sources.setConfig(cfg.Nodes, cfg.Admission)
	if cert != nil {
		g.certs.cfg.Cert, g.certs.cfg.Key = cfg.TLS.Cert, cfg.TLS.Key
		g.certs.present(cert)
		changes = append(changes, Change{What: "TLS certificate reloaded", ID: cert.fingerprint})
	}
	g.cfg.Accounts, g.cfg.Nodes, g.cfg.Admission = cfg.Accounts, cfg.Nodes, cfg.Admission
	if cert != nil {
		g.cfg.TLS.Cert, g.cfg.TLS.Key = cfg.TLS.Cert, cfg.TLS.Key
	}
	for _, c := range changes {
		if c.Restart {
			g.log.Warn("reload: "+c.What+"; takes effect after a restart", "id", c.ID, "settings", strings.Join(c.Keys, ","))
		} else {
			g.log.Info("reload: "+c.What, "id", c.ID, "settings", strings.Join(c.Keys, ","))
		}
	}
	return changes, nil
}

func anyOf(keys, set []string) bool {
	for _, k := range keys {
		if slices.Contains(set, k) {
			return true
		}
	}
	return false
}

func apiAccounts(as []config.Account) []redfish.Account {
	out := make([]redfish.Account, 0, len(as))
	for _, a := range as {
		out = append(out, redfish.Account{User: a.User, Password: a.Password, Role: a.Role, Nodes: a.Nodes})
	}
	return out
}

// addNode starts managing node n of the file, driven by b. A failure is
// logged: the other changes stand.
func (g *Gateway) addNode(ctx context.Context, n config.Node, b backends.Backend, adm config.Admission) {
	// A node of this id removed earlier (by a reload or over the
	// AggregationService) left its keys marked retired.
	if err := g.nodes.Reinstate(ctx, n.ID); err != nil {
		b.Close()
		g.log.Error("reload: node not added", "node", n.ID, "err", err)
		return
	}
	if err := g.nodes.Add(serializerNode(n, b, adm)); err != nil {
		b.Close()
		g.log.Error("reload: node not added", "node", n.ID, "err", err)
		return
	}
	g.proxies.set(n.ID, b)
	if err := g.ipmi.start(n, g.nodes); err != nil {
		g.log.Error("reload: IPMI front of an added node not started", "node", n.ID, "err", err)
	}
}

// removeNode removes node id in the background: waiting actions are
// cancelled, the running one ends first (serializer.Remove).
func (g *Gateway) removeNode(id string) {
	g.removals.Add(1)
	go func() {
		defer g.removals.Done()
		ctx, cancel := context.WithTimeout(g.background, removalTimeout)
		defer cancel()
		if err := g.nodes.Remove(ctx, id); err != nil {
			g.log.Error("reload: node removal not finished; it refuses new work", "node", id, "err", err)
			return
		}
		g.proxies.drop(id)
		g.ipmi.stop(id)
	}()
}

// changeNode applies a change of node o to n: a new backend b (nil when
// the BMC settings are the same), its settings, a new IPMI front.
func (g *Gateway) changeNode(o, n config.Node, b backends.Backend) {
	if anyOf(nodeChanges(o, n), settingsKeys) {
		if err := g.nodes.SetSettings(n.ID, n.Name, n.ReassertDesired, n.SoftOffFallback); err != nil {
			g.log.Error("reload: node's settings not changed", "node", n.ID, "err", err)
		}
	}
	if b != nil {
		old, err := g.nodes.SetBackend(n.ID, b)
		if err != nil {
			b.Close()
			g.log.Error("reload: node's BMC settings not changed", "node", n.ID, "err", err)
		} else {
			go old.Close() // a logout from the BMC; the new backend is in use already
			g.proxies.set(n.ID, b)
		}
	}
	if ipmiChanged(o, n) {
		if err := g.ipmi.start(n, g.nodes); err != nil {
			g.log.Error("reload: node's IPMI front not restarted", "node", n.ID, "err", err)
		}
	}
}
