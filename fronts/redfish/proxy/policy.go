package proxy

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/fishgate/fishgate/schemas"
)

// verdict is what the pass-through does with one request: forward it
// (status 0), or answer status with a Redfish error.
type verdict struct {
	status int
	msg    schemas.Message
	detail string // the error's top-level message
	allow  string // the Allow header of a 405
}

func (v verdict) forward() bool { return v.status == 0 }

// powerActions change the node's power state. They go through the
// serializer (docs/architecture.md#one-command-per-node), never around it:
// the gateway's own ComputerSystem.Reset is the only way.
var powerActions = []string{"ComputerSystem.Reset", "Chassis.Reset", "PowerSupply.Reset"}

// powerAction returns the power action named by any decoded segment
// (without case, with or without '#'), or "".
func powerAction(segs []string) string {
	for _, s := range segs {
		for _, a := range powerActions {
			if strings.EqualFold(strings.TrimPrefix(s, "#"), a) {
				return a
			}
		}
	}
	return ""
}

// reads are the methods that change nothing on the BMC.
func reads(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// decide is the pass-through's decision about a request that resolve
// accepted. It is pure. A write (any method but GET, HEAD, OPTIONS):
//
//   - naming a power action anywhere in its path (ComputerSystem.Reset,
//     Chassis.Reset, PowerSupply.Reset) is refused with 400
//     ActionNotSupported;
//   - to an action of the System or of the Chassis itself
//     (Systems/<node>/Actions/..., Chassis/<node>/Actions/..., OEM actions
//     included) likewise: they change power or boot, and only the gateway's
//     own ComputerSystem.Reset goes through the serializer;
//   - to a path directly below the System or the Chassis that is none of
//     their known sub-resources (their pending settings object, "Settings"
//     or "Pending", holds Boot; "Oem/..." may hold anything) is refused
//     with 405 OperationNotAllowed: the System's Boot is changed by a PATCH
//     of the gateway's own System, which is serialized with power actions.
//
// Then any request, read or write, needs the privileges the Redfish
// privilege registry lists for its entity and method (see required and
// entityTrees): have must hold them, or it is refused with 403
// InsufficientPrivilege. Operators so change through the pass-through what
// an Operator may change on a BMC (Bios, Storage, a System's
// EthernetInterfaces, ...), and not the BMC itself (Manager actions,
// NetworkProtocol, VirtualMedia, the Manager's EthernetInterfaces and
// LogServices, accounts), which needs ConfigureManager or ConfigureUsers:
// the BMC account the gateway uses may do all of that.
func decide(rt *route, method string, have []string) verdict {
	ci := collectionIndex(rt.collection)
	ep := walk(ci, rt.segs)
	if !reads(method) {
		if v := refuseWrite(rt, ep); !v.forward() {
			return v
		}
	}
	if alts := required(ep, method); !allowed(have, alts) {
		return verdict{status: http.StatusForbidden, msg: schemas.Base(schemas.MsgInsufficientPrivilege),
			detail: fmt.Sprintf("%s of %s needs the privilege %s (Redfish privilege registry); this account has %s.",
				method, describeEntity(ep), describeAlternatives(alts), describeHeld(have))}
	}
	return verdict{}
}

// describeHeld lists the privileges a caller holds through the
// pass-through, for a message.
func describeHeld(have []string) string {
	var h []string
	for _, p := range have {
		if p != PrivConfigureSelf {
			h = append(h, p)
		}
	}
	if len(h) == 0 {
		return "none"
	}
	return strings.Join(h, ", ")
}

// refuseWrite applies the power and boot rules of decide to a write.
func refuseWrite(rt *route, ep entityPath) verdict {
	if a := powerAction(rt.segs); a != "" {
		return verdict{status: http.StatusBadRequest, msg: schemas.Base(schemas.MsgActionNotSupported, a),
			detail: fmt.Sprintf("The action %s is not passed through to the BMC: power goes through the ComputerSystem.Reset action of the gateway's System.", a)}
	}
	if rt.collection == "Managers" {
		return verdict{}
	}
	what := "System"
	if rt.collection == "Chassis" {
		what = "Chassis"
	}
	if ep.isAction && ep.depth == 0 {
		a := ep.action
		if a == "" {
			a = "Actions"
		}
		return verdict{status: http.StatusBadRequest, msg: schemas.Base(schemas.MsgActionNotSupported, a),
			detail: fmt.Sprintf("The action %s of the %s is not passed through to the BMC: it could change the node's power or boot outside the gateway's serialization; use the ComputerSystem.Reset action and PATCH of the gateway's System.", a, what)}
	}
	if ep.entity == "" && ep.depth == 0 {
		return verdict{status: http.StatusMethodNotAllowed, msg: schemas.Base(schemas.MsgOperationNotAllowed), allow: "GET, HEAD",
			detail: fmt.Sprintf("%s is not a known resource of the %s and is not changed through the gateway: it could change the node's power or boot outside the gateway's serialization (the System's Boot is changed by PATCH of the gateway's System).", rt.segs[0], what)}
	}
	return verdict{}
}

// collectionIndex is the index of a collection name in collections.
func collectionIndex(name string) int {
	for i, c := range collections {
		if c == name {
			return i
		}
	}
	panic("proxy: unknown collection " + name)
}
