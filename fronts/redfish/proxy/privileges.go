package proxy

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// The Redfish privilege model (DSP0266 §13.4, DSP8011): an operation on a
// resource needs the privileges the privilege registry lists for the
// resource's type (its entity) and the HTTP method; a role is a set of
// privileges.

// Privileges of the predefined roles (DSP0266 §13.4.4, Role.AssignedPrivileges).
const (
	PrivLogin               = "Login"
	PrivConfigureManager    = "ConfigureManager"
	PrivConfigureUsers      = "ConfigureUsers"
	PrivConfigureComponents = "ConfigureComponents"
	PrivConfigureSelf       = "ConfigureSelf"
)

// RolePrivileges returns the privileges of a predefined role
// (Administrator, Operator, ReadOnly); none for any other name.
func RolePrivileges(role string) []string {
	switch role {
	case "Administrator":
		return []string{PrivLogin, PrivConfigureManager, PrivConfigureUsers, PrivConfigureSelf, PrivConfigureComponents}
	case "Operator":
		return []string{PrivLogin, PrivConfigureSelf, PrivConfigureComponents}
	case "ReadOnly":
		return []string{PrivLogin, PrivConfigureSelf}
	}
	return nil
}

// Caller is who sends a pass-through request, as the router authenticated
// them. The router puts it in the request's context (WithCaller); a request
// without one is refused.
type Caller struct {
	// User is the gateway account, and Remote the client's address as the
	// router trusts it (empty: the socket's), for the audit log.
	User, Remote string
	// Privileges are those of the account's role (see RolePrivileges).
	// ConfigureSelf does not carry over: the BMC is reached with the
	// gateway's own BMC account, so no resource there is the caller's own.
	Privileges []string
	// MaxBodyBytes bounds the request body (the gateway's max_body_bytes):
	// a larger one is 413 and never reaches the BMC. 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
}

type callerKey struct{}

// WithCaller returns ctx carrying c for the pass-through.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

func callerOf(r *http.Request) (Caller, bool) {
	c, ok := r.Context().Value(callerKey{}).(Caller)
	return c, ok
}

// privilegeRegistryJSON is the part of the DMTF privilege registry
// (Redfish_1.8.0_PrivilegeRegistry.json) the pass-through applies: the
// Mappings of the entities of entityTrees, copied unchanged. The gateway
// never reads the DMTF schema folder at run time;
// TestPrivilegeTableMatchesRegistry checks this copy against the registry
// (and -update-privileges rewrites it from there).
//
//go:embed privilege_registry.json
var privilegeRegistryJSON []byte

// registryExtract is the embedded file.
type registryExtract struct {
	Source   string             `json:"Source"`
	Mappings []privilegeMapping `json:"Mappings"`
}

// privilegeMapping is one entity of the registry. An operation is allowed
// when the caller holds every privilege of any one of its alternatives.
// PropertyOverrides are not applied: the pass-through does not look into
// bodies, and the registry's only one (ManagerAccount.Password by
// ConfigureSelf) would only allow more.
type privilegeMapping struct {
	Entity               string                `json:"Entity"`
	OperationMap         operationMap          `json:"OperationMap"`
	SubordinateOverrides []subordinateOverride `json:"SubordinateOverrides,omitempty"`
	PropertyOverrides    []json.RawMessage     `json:"PropertyOverrides,omitempty"`
}

type operationMap map[string][]struct {
	Privilege []string `json:"Privilege"`
}

// subordinateOverride applies to the entity when it lies below Targets, in
// that order, in the resource tree (EthernetInterface below a Manager needs
// ConfigureManager to change, below a System ConfigureComponents).
type subordinateOverride struct {
	Targets      []string     `json:"Targets"`
	OperationMap operationMap `json:"OperationMap"`
}

// privilegeTable is the embedded registry by entity; read-only.
var privilegeTable = func() map[string]privilegeMapping {
	var x registryExtract
	if err := json.Unmarshal(privilegeRegistryJSON, &x); err != nil {
		panic("proxy: embedded privilege registry: " + err.Error())
	}
	t := make(map[string]privilegeMapping, len(x.Mappings))
	for _, m := range x.Mappings {
		t[m.Entity] = m
	}
	return t
}()

// unknownRead and unknownWrite are what a path the gateway cannot map to
// an entity needs: reading it Login, changing it ConfigureManager (the
// most a BMC's configuration needs short of its accounts: an unknown
// resource is treated as part of the BMC).
var (
	unknownRead  = [][]string{{PrivLogin}}
	unknownWrite = [][]string{{PrivConfigureManager}}
)

// required returns the privilege alternatives an operation needs.
func required(ep entityPath, method string) [][]string {
	if method == http.MethodOptions {
		method = http.MethodGet
	}
	unknown := unknownWrite
	if reads(method) {
		unknown = unknownRead
	}
	m, ok := privilegeTable[ep.entity]
	if !ok {
		return unknown
	}
	ops := m.OperationMap[method]
	ancestors := ep.chain[:max(len(ep.chain)-1, 0)]
	best := -1
	for _, o := range m.SubordinateOverrides {
		if alts, ok := o.OperationMap[method]; ok && len(o.Targets) > best && subsequence(o.Targets, ancestors) {
			ops, best = alts, len(o.Targets)
		}
	}
	if len(ops) == 0 {
		return unknown
	}
	out := make([][]string, len(ops))
	for i, p := range ops {
		out[i] = p.Privilege
	}
	return out
}

// subsequence reports whether targets appear in chain in that order.
func subsequence(targets, chain []string) bool {
	i := 0
	for _, c := range chain {
		if i < len(targets) && c == targets[i] {
			i++
		}
	}
	return i == len(targets)
}

// allowed reports whether have holds every privilege of one alternative.
// ConfigureSelf is never held through the pass-through (see Caller).
func allowed(have []string, alts [][]string) bool {
	for _, alt := range alts {
		ok := len(alt) > 0
		for _, p := range alt {
			if p == PrivConfigureSelf || !slices.Contains(have, p) {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// describeAlternatives renders alternatives for a message: "A", "A and B",
// "A, or B".
func describeAlternatives(alts [][]string) string {
	s := make([]string, len(alts))
	for i, a := range alts {
		s[i] = strings.Join(a, " and ")
	}
	return strings.Join(s, ", or ")
}

// describeEntity names what a path leads to, for a message.
func describeEntity(ep entityPath) string {
	switch {
	case ep.entity == "":
		return "a resource the gateway does not know (treated as part of the BMC)"
	case ep.isAction:
		return fmt.Sprintf("an action of a %s", ep.entity)
	}
	return "a " + ep.entity
}
