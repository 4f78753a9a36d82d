// Package wsman holds the WS-Management wire definitions (DMTF DSP0226) that
// the AMT backend and the AMT simulator share: the namespaces, action and
// resource URIs, and the reading of a message into an element tree with its
// namespaces resolved, so that any prefix choice of the other side works.
//
// The envelopes each side writes stay with that side: the backend encodes
// requests, the simulator responses, each with its own fixed prefixes.
package wsman

import (
	"encoding/xml"
	"fmt"
	"strings"
)

// XML namespaces (DSP0226 Annex A) and resource URI prefixes.
const (
	NSSOAP   = "http://www.w3.org/2003/05/soap-envelope"
	NSWSA    = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
	NSWSMan  = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
	NSWSEN   = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
	NSWXF    = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
	NSWSMID  = "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"
	CIMBase  = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
	AMTBase  = "http://intel.com/wbem/wscim/1/amt-schema/1/"
	AnonRole = NSWSA + "/role/anonymous"
)

// WS-Man actions (DSP0226 §7-§8, WS-Transfer, WS-Enumeration).
const (
	ActionGet        = NSWXF + "/Get"
	ActionPut        = NSWXF + "/Put"
	ActionEnumerate  = NSWSEN + "/Enumerate"
	ActionPull       = NSWSEN + "/Pull"
	ActionRelease    = NSWSEN + "/Release"
	ActionWSAFault   = NSWSA + "/fault"
	ActionWSManFault = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
)

// Resource URIs of the CIM and AMT classes used for power and boot control
// (DSP1027 power state management, DSP1012 boot control).
const (
	URIComputerSystem   = CIMBase + "CIM_ComputerSystem"
	URIPowerService     = CIMBase + "CIM_PowerManagementService"
	URIPowerAssociation = CIMBase + "CIM_AssociatedPowerManagementService"
	URIBootService      = CIMBase + "CIM_BootService"
	URIBootConfig       = CIMBase + "CIM_BootConfigSetting"
	URIBootSource       = CIMBase + "CIM_BootSourceSetting"
	URIConcreteJob      = CIMBase + "CIM_ConcreteJob"
	URIBootSettingData  = AMTBase + "AMT_BootSettingData"
)

// ContentType is the media type of SOAP 1.2 (RFC 3902).
const ContentType = "application/soap+xml;charset=UTF-8"

// Node is any XML element, decoded with its namespaces resolved.
type Node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	CharData string     `xml:",chardata"`
	Children []Node     `xml:",any"`
}

// Child returns the first child named space:local ("" space matches any).
func (n *Node) Child(space, local string) *Node {
	if n == nil {
		return nil
	}
	for i := range n.Children {
		c := &n.Children[i]
		if c.XMLName.Local == local && (space == "" || c.XMLName.Space == space) {
			return c
		}
	}
	return nil
}

// Text returns the trimmed character data of n ("" for nil).
func (n *Node) Text() string {
	if n == nil {
		return ""
	}
	return strings.TrimSpace(n.CharData)
}

// Attr returns the value of the attribute local, in any namespace (clients
// write Selector's Name both plain and as wsman:Name).
func (n *Node) Attr(local string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// Selector is one key of a CIM instance (DSP0226 §7.3 Selector).
type Selector struct{ Name, Value string }

// EPR is an endpoint reference to a CIM instance (DSP0226 §5.1): its
// class's resource URI and its keys.
type EPR struct {
	ResourceURI string
	Selectors   []Selector
}

// Lookup returns the value of selector name, and whether it is there.
func (e EPR) Lookup(name string) (string, bool) {
	for _, s := range e.Selectors {
		if s.Name == name {
			return s.Value, true
		}
	}
	return "", false
}

// Get returns the value of selector name ("" when it is not there).
func (e EPR) Get(name string) string {
	v, _ := e.Lookup(name)
	return v
}

// String names the instance for messages: its class and its keys.
func (e EPR) String() string {
	var b strings.Builder
	b.WriteString(e.ResourceURI[strings.LastIndex(e.ResourceURI, "/")+1:])
	for _, s := range e.Selectors {
		fmt.Fprintf(&b, " %s=%q", s.Name, s.Value)
	}
	return b.String()
}

// ReadSelectors reads a wsman:SelectorSet element.
func ReadSelectors(set *Node) []Selector {
	if set == nil {
		return nil
	}
	var out []Selector
	for _, s := range set.Children {
		if s.XMLName.Space == NSWSMan && s.XMLName.Local == "Selector" {
			out = append(out, Selector{Name: s.Attr("Name"), Value: s.Text()})
		}
	}
	return out
}

// ReadEPR reads an endpoint reference given as the children of n
// (wsa:Address, wsa:ReferenceParameters), or wrapped in a
// wsa:EndpointReference child. ok is false when n holds none, or one
// without a resource URI.
func ReadEPR(n *Node) (ref EPR, ok bool) {
	if inner := n.Child(NSWSA, "EndpointReference"); inner != nil {
		n = inner
	}
	rp := n.Child(NSWSA, "ReferenceParameters")
	if rp == nil {
		return EPR{}, false
	}
	ref = EPR{
		ResourceURI: rp.Child(NSWSMan, "ResourceURI").Text(),
		Selectors:   ReadSelectors(rp.Child(NSWSMan, "SelectorSet")),
	}
	return ref, ref.ResourceURI != ""
}
