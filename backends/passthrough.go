package backends

import "context"

// PassThrough is implemented by backends whose BMC speaks Redfish: the
// gateway forwards the node's Redfish resources it does not render itself
// (the rest of the System, Manager and Chassis subtrees) to that BMC,
// through fronts/redfish/proxy. A backend that does not implement it has
// no pass-through: those resources answer 404.
type PassThrough interface {
	// PassThroughTarget says where the node's Redfish resources are on its
	// BMC and how to reach them. It may ask the BMC (the resource paths),
	// so it takes a context with a deadline; the gateway calls it once per
	// node, on the first pass-through request, and again after an error.
	PassThroughTarget(ctx context.Context) (RedfishTarget, error)
}

// RedfishTarget is what the pass-through proxy needs of a node's Redfish BMC.
type RedfishTarget struct {
	// Endpoint is the BMC's base URL, "https://10.0.0.5" or
	// "http://127.0.0.1:41234", without path.
	Endpoint string
	// User and Password are the BMC account the proxy sends (HTTP Basic)
	// in place of the client's credentials.
	User, Password string
	// Insecure skips TLS certificate verification of the BMC.
	Insecure bool
	// SystemPath, ManagerPath and ChassisPath are the BMC's own paths of
	// the node's ComputerSystem and of the Manager and Chassis it links to;
	// an empty one means the BMC has none (that subtree answers 404).
	SystemPath, ManagerPath, ChassisPath string
}
