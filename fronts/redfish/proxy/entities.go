package proxy

import "strings"

// The Redfish resource types (the entities of the privilege registry,
// DSP8011) of the paths below a node's System, Manager and Chassis, as the
// DMTF schemas (DSP8010) lay them out: which navigation property of which
// resource leads to which type. It is what the gateway knows of the BMC's
// tree without asking it: a path it does not know is "unknown", and unknown
// is treated strictly (see decide).

// entityNode is one step of the tree: a resource or collection type, or a
// plain property that only leads further (Boot, HTTPS).
type entityNode struct {
	entity   string                 // registry entity; "" for a property
	children map[string]*entityNode // by lower-case segment
	member   *entityNode            // a collection's members
	settings bool                   // "Settings"/"SD" is this resource's settings object (@Redfish.Settings)
}

// child is one named navigation property of a node.
type child struct {
	name string
	node *entityNode
}

// resource is a resource type with its navigation properties. A resource
// that is not one of the three roots may have a settings object.
func resource(entity string, kids ...child) *entityNode {
	n := &entityNode{entity: entity, settings: true, children: map[string]*entityNode{}}
	for _, k := range kids {
		n.children[strings.ToLower(k.name)] = k.node
	}
	return n
}

// root is the node's System, Manager or Chassis: no settings object is
// known (a System's pending settings hold its Boot, see decide).
func root(entity string, kids ...child) *entityNode {
	n := resource(entity, kids...)
	n.settings = false
	return n
}

// collection is a collection type whose members are member.
func collection(entity string, member *entityNode) *entityNode {
	return &entityNode{entity: entity, member: member}
}

// property is a property of its parent that is a path step, not a resource.
func property(kids ...child) *entityNode {
	n := resource("", kids...)
	n.settings = false
	return n
}

func at(name string, n *entityNode) child { return child{name, n} }

// coll is the common shape: a collection named <member>Collection of plain
// resources named <member> with kids.
func coll(member string, kids ...child) *entityNode {
	return collection(member+"Collection", resource(member, kids...))
}

func certificates() *entityNode { return coll("Certificate") }

func logServices() *entityNode {
	return coll("LogService", at("Entries", coll("LogEntry")))
}

func ethernetInterfaces() *entityNode {
	return coll("EthernetInterface", at("VLANs", coll("VLanNetworkInterface")))
}

func ports() *entityNode { return coll("Port", at("Metrics", resource("PortMetrics"))) }

func processors() *entityNode {
	return coll("Processor",
		at("ProcessorMetrics", resource("ProcessorMetrics")),
		at("SubProcessors", collection("ProcessorCollection", resource("Processor"))),
		at("OperatingConfigs", coll("OperatingConfig")),
		at("Ports", ports()),
	)
}

func memory() *entityNode {
	return coll("Memory", at("MemoryMetrics", resource("MemoryMetrics")))
}

func memoryDomains() *entityNode {
	return coll("MemoryDomain", at("MemoryChunks", collection("MemoryChunksCollection", resource("MemoryChunks"))))
}

func pcieDevices() *entityNode {
	return coll("PCIeDevice", at("PCIeFunctions", coll("PCIeFunction")))
}

func fabricAdapters() *entityNode { return coll("FabricAdapter", at("Ports", ports())) }

func drives() *entityNode { return coll("Drive", at("Metrics", resource("DriveMetrics"))) }

func storage() *entityNode {
	return coll("Storage",
		at("Drives", drives()),
		at("Volumes", coll("Volume")),
		at("Controllers", coll("StorageController")),
		at("StorageControllers", coll("StorageController")),
	)
}

func virtualMedia() *entityNode { return coll("VirtualMedia") }

// entityTrees are the three roots, in the order of collections.
var entityTrees = [len(collections)]*entityNode{
	root("ComputerSystem",
		at("Bios", resource("Bios")),
		at("Boot", property(at("Certificates", certificates()))),
		at("BootOptions", coll("BootOption")),
		at("Certificates", certificates()),
		at("EthernetInterfaces", ethernetInterfaces()),
		at("FabricAdapters", fabricAdapters()),
		at("GraphicsControllers", coll("GraphicsController")),
		at("LogServices", logServices()),
		at("Memory", memory()),
		at("MemoryDomains", memoryDomains()),
		at("NetworkInterfaces", coll("NetworkInterface")),
		at("OperatingSystem", resource("OperatingSystem")),
		at("PCIeDevices", pcieDevices()),
		at("PCIeFunctions", coll("PCIeFunction")),
		at("Processors", processors()),
		at("SecureBoot", resource("SecureBoot",
			at("SecureBootDatabases", coll("SecureBootDatabase",
				at("Certificates", certificates()),
				at("Signatures", coll("Signature")))))),
		at("SimpleStorage", coll("SimpleStorage")),
		at("Storage", storage()),
		at("USBControllers", coll("USBController")),
		at("VirtualMedia", virtualMedia()),
	),
	root("Manager",
		at("Certificates", certificates()),
		at("DedicatedNetworkPorts", ports()),
		at("EthernetInterfaces", ethernetInterfaces()),
		at("HostInterfaces", coll("HostInterface", at("HostEthernetInterfaces", ethernetInterfaces()))),
		at("LogServices", logServices()),
		at("ManagerDiagnosticData", resource("ManagerDiagnosticData")),
		at("NetworkProtocol", resource("ManagerNetworkProtocol",
			at("HTTPS", property(at("Certificates", certificates()))))),
		at("RemoteAccountService", resource("AccountService",
			at("Accounts", coll("ManagerAccount")),
			at("Roles", coll("Role")))),
		at("SecurityPolicy", resource("SecurityPolicy")),
		at("SerialInterfaces", coll("SerialInterface")),
		at("SharedNetworkPorts", ports()),
		at("USBPorts", ports()),
		at("VirtualMedia", virtualMedia()),
	),
	root("Chassis",
		at("Assembly", resource("Assembly")),
		at("Certificates", certificates()),
		at("Controls", coll("Control")),
		at("Drives", drives()),
		at("EnvironmentMetrics", resource("EnvironmentMetrics")),
		at("FabricAdapters", fabricAdapters()),
		at("LeakDetectors", coll("LeakDetector")),
		at("LogServices", logServices()),
		at("MediaControllers", coll("MediaController")),
		at("Memory", memory()),
		at("MemoryDomains", memoryDomains()),
		at("NetworkAdapters", coll("NetworkAdapter",
			at("Metrics", resource("NetworkAdapterMetrics")),
			at("NetworkDeviceFunctions", coll("NetworkDeviceFunction",
				at("Metrics", resource("NetworkDeviceFunctionMetrics")))),
			at("Ports", ports()))),
		at("PCIeDevices", pcieDevices()),
		at("PCIeSlots", resource("PCIeSlots")),
		at("Power", resource("Power")),
		at("PowerSubsystem", resource("PowerSubsystem",
			at("PowerSupplies", coll("PowerSupply", at("Metrics", resource("PowerSupplyMetrics")))),
			at("Batteries", coll("Battery", at("Metrics", resource("BatteryMetrics")))))),
		at("Processors", processors()),
		at("Sensors", coll("Sensor")),
		at("Thermal", resource("Thermal")),
		at("ThermalSubsystem", resource("ThermalSubsystem",
			at("Fans", coll("Fan")),
			at("Heaters", coll("Heater", at("Metrics", resource("HeaterMetrics")))),
			at("ThermalMetrics", resource("ThermalMetrics")),
			at("LeakDetection", resource("LeakDetection", at("LeakDetectors", coll("LeakDetector")))))),
		at("TrustedComponents", coll("TrustedComponent")),
	),
}

// entityPath is where a path below a node's resource leads.
type entityPath struct {
	// entity is the registry entity the request acts on: the resource of
	// the path, or the resource whose action it names; "" when unknown.
	entity string
	// chain is the entities from the root down to entity, entity included
	// (the ancestors are what SubordinateOverrides look at).
	chain []string
	// isAction says the path goes through an "Actions" segment: it names
	// action ("Manager.Reset", "Oem/Hpe/X.Y"; "" for Actions itself) of
	// entity.
	isAction bool
	action   string
	// depth is how many of the segments lead to a known resource below the
	// root: 0 for the root's own actions, and for unknown paths directly
	// below the root.
	depth int
}

// walk follows the decoded segments from the root of collection i. Segment
// names are compared without case: some BMCs route that way.
func walk(i int, segs []string) entityPath {
	n := entityTrees[i]
	ep := entityPath{entity: n.entity, chain: []string{n.entity}}
	unknown := func() entityPath { return entityPath{chain: ep.chain, depth: ep.depth} }
	for k, s := range segs {
		if strings.EqualFold(s, "Actions") {
			if n.entity == "" {
				return unknown() // actions of a property
			}
			ep.entity, ep.isAction, ep.action = n.entity, true, strings.Join(segs[k+1:], "/")
			return ep
		}
		switch next := n.children[strings.ToLower(s)]; {
		case next != nil:
			n = next
		case n.member != nil:
			n = n.member
		case n.settings && (strings.EqualFold(s, "Settings") || strings.EqualFold(s, "SD")):
			ep.depth = k + 1 // the same resource, pending
			continue
		default:
			return unknown()
		}
		if n.entity != "" {
			ep.chain = append(ep.chain, n.entity)
			ep.depth = k + 1
		}
	}
	if n.entity == "" {
		return unknown()
	}
	ep.entity = n.entity
	return ep
}
