package simulator

import (
	"encoding/xml"
	"fmt"
	"strings"
)

// The XML layer of the AMT front: WS-Management (DMTF DSP0226) messages in
// SOAP 1.2 envelopes with WS-Addressing 2004/08, WS-Enumeration and
// WS-Transfer 2004/09, as Intel AMT speaks them.
//
// Requests are decoded into a generic element tree (xmlNode), so that any
// prefix choice of a client works (iamt, openwsman as MAAS runs it, and
// fishgate's backend all pick different ones). Responses are encoded from
// structs whose element names carry fixed prefixes declared on the Envelope,
// the way AMT writes them.

// XML namespaces (DSP0226 Annex A) and resource URI prefixes.
const (
	nsSOAP   = "http://www.w3.org/2003/05/soap-envelope"
	nsWSA    = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
	nsWSMan  = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
	nsWSEN   = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
	nsWXF    = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
	nsWSMID  = "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"
	cimBase  = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
	amtBase  = "http://intel.com/wbem/wscim/1/amt-schema/1/"
	anonRole = nsWSA + "/role/anonymous"
)

// WS-Man actions (DSP0226 §7-§8, WS-Transfer, WS-Enumeration).
const (
	actionGet        = nsWXF + "/Get"
	actionPut        = nsWXF + "/Put"
	actionEnumerate  = nsWSEN + "/Enumerate"
	actionPull       = nsWSEN + "/Pull"
	actionRelease    = nsWSEN + "/Release"
	actionWSAFault   = nsWSA + "/fault"
	actionWSManFault = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
)

// soapContentType is the media type of SOAP 1.2 (RFC 3902).
const soapContentType = "application/soap+xml;charset=UTF-8"

// xmlNode is any XML element, decoded with its namespaces resolved.
type xmlNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []xmlNode  `xml:",any"`
}

// child returns the first child named space:local ("" space matches any).
func (n *xmlNode) child(space, local string) *xmlNode {
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

// text returns the trimmed character data of n ("" for nil).
func (n *xmlNode) text() string {
	if n == nil {
		return ""
	}
	return strings.TrimSpace(n.Text)
}

// attr returns the value of the attribute local, in any namespace (clients
// write Selector's Name both plain and as wsman:Name).
func (n *xmlNode) attr(local string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// selector is one key of a CIM instance (DSP0226 §7.3 Selector).
type selector struct{ Name, Value string }

// eprRef is an endpoint reference to a CIM instance: its class's resource
// URI and its keys.
type eprRef struct {
	ResourceURI string
	Selectors   []selector
}

// get returns the value of selector name, and whether it is there.
func (e eprRef) get(name string) (string, bool) {
	for _, s := range e.Selectors {
		if s.Name == name {
			return s.Value, true
		}
	}
	return "", false
}

// readSelectors reads a wsman:SelectorSet element.
func readSelectors(set *xmlNode) []selector {
	if set == nil {
		return nil
	}
	var out []selector
	for _, s := range set.Children {
		if s.XMLName.Space == nsWSMan && s.XMLName.Local == "Selector" {
			out = append(out, selector{Name: s.attr("Name"), Value: s.text()})
		}
	}
	return out
}

// readEPR reads an endpoint reference given as the children of n
// (wsa:Address, wsa:ReferenceParameters), or wrapped in a
// wsa:EndpointReference child. ok is false when n holds none.
func readEPR(n *xmlNode) (eprRef, bool) {
	if n == nil {
		return eprRef{}, false
	}
	if inner := n.child(nsWSA, "EndpointReference"); inner != nil {
		n = inner
	}
	rp := n.child(nsWSA, "ReferenceParameters")
	if rp == nil {
		return eprRef{}, false
	}
	return eprRef{
		ResourceURI: rp.child(nsWSMan, "ResourceURI").text(),
		Selectors:   readSelectors(rp.child(nsWSMan, "SelectorSet")),
	}, true
}

// request is a decoded WS-Man request.
type request struct {
	Action      string
	MessageID   string
	ResourceURI string
	Selectors   []selector // header SelectorSet
	Body        *xmlNode   // first child of s:Body, nil when empty
}

// parseRequest decodes a SOAP 1.2 envelope.
func parseRequest(body []byte) (request, error) {
	var env xmlNode
	if err := xml.Unmarshal(body, &env); err != nil {
		return request{}, fmt.Errorf("not well-formed XML: %w", err)
	}
	if env.XMLName.Space != nsSOAP || env.XMLName.Local != "Envelope" {
		return request{}, fmt.Errorf("root element {%s}%s is not a SOAP 1.2 Envelope", env.XMLName.Space, env.XMLName.Local)
	}
	h := env.child(nsSOAP, "Header")
	if h == nil {
		return request{}, fmt.Errorf("no SOAP Header")
	}
	r := request{
		Action:      h.child(nsWSA, "Action").text(),
		MessageID:   h.child(nsWSA, "MessageID").text(),
		ResourceURI: h.child(nsWSMan, "ResourceURI").text(),
		Selectors:   readSelectors(h.child(nsWSMan, "SelectorSet")),
	}
	if b := env.child(nsSOAP, "Body"); b != nil && len(b.Children) > 0 {
		r.Body = &b.Children[0]
	}
	return r, nil
}

// ---- responses ----

// xel is an element to encode: a name with its prefix ("h:PowerState"),
// attributes, text and children.
type xel struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Kids    []xel
}

func el(name string, kids ...xel) xel { return xel{XMLName: xml.Name{Local: name}, Kids: kids} }

func elText(name, text string) xel { return xel{XMLName: xml.Name{Local: name}, Text: text} }

// withNS declares prefix for namespace on e.
func (e xel) withNS(prefix, ns string) xel {
	e.Attrs = append(e.Attrs, xml.Attr{Name: xml.Name{Local: "xmlns:" + prefix}, Value: ns})
	return e
}

// eprKids renders an endpoint reference's contents (wsa:Address,
// wsa:ReferenceParameters), as they appear inside a reference-typed
// property or parameter, or inside wsa:EndpointReference.
func eprKids(ref eprRef) []xel {
	sels := make([]xel, len(ref.Selectors))
	for i, s := range ref.Selectors {
		sels[i] = xel{XMLName: xml.Name{Local: "w:Selector"},
			Attrs: []xml.Attr{{Name: xml.Name{Local: "Name"}, Value: s.Name}}, Text: s.Value}
	}
	return []xel{
		elText("a:Address", anonRole),
		el("a:ReferenceParameters", elText("w:ResourceURI", ref.ResourceURI), el("w:SelectorSet", sels...)),
	}
}

type muText struct {
	MU   string `xml:"s:mustUnderstand,attr"`
	Text string `xml:",chardata"`
}

type responseHeader struct {
	XMLName     xml.Name `xml:"s:Header"`
	To          string   `xml:"a:To"`
	RelatesTo   string   `xml:"a:RelatesTo,omitempty"`
	Action      muText   `xml:"a:Action"`
	MessageID   string   `xml:"a:MessageID"`
	ResourceURI string   `xml:"w:ResourceURI,omitempty"`
}

type responseEnvelope struct {
	XMLName xml.Name `xml:"s:Envelope"`
	NSS     string   `xml:"xmlns:s,attr"`
	NSA     string   `xml:"xmlns:a,attr"`
	NSW     string   `xml:"xmlns:w,attr"`
	NSN     string   `xml:"xmlns:n,attr"`
	Header  responseHeader
	Body    struct {
		Content []xel
	} `xml:"s:Body"`
}

// encodeResponse renders a response envelope with action, relating to the
// request's MessageID.
func encodeResponse(req request, messageID, action string, body ...xel) []byte {
	env := responseEnvelope{NSS: nsSOAP, NSA: nsWSA, NSW: nsWSMan, NSN: nsWSEN}
	env.Header = responseHeader{
		To:          anonRole,
		RelatesTo:   req.MessageID,
		Action:      muText{MU: "true", Text: action},
		MessageID:   messageID,
		ResourceURI: req.ResourceURI,
	}
	env.Body.Content = body
	out, err := xml.Marshal(env)
	if err != nil { // unreachable: every value is a string
		panic(fmt.Sprintf("amt: encoding response: %v", err))
	}
	return append([]byte(xml.Header), out...)
}

// soapFault is a SOAP 1.2 Fault (DSP0226 §14): code s:Sender or s:Receiver,
// a WS-Man or WS-Addressing subcode, and a reason.
type soapFault struct {
	Status  int    // HTTP status: 400 for Sender faults, 500 for Receiver ones
	Code    string // "s:Sender" or "s:Receiver"
	Subcode string // e.g. "w:InvalidSelectors", "a:ActionNotSupported"
	Reason  string
	Detail  string // optional wsman:FaultDetail URI
}

func (f *soapFault) Error() string { return f.Subcode + ": " + f.Reason }

func senderFault(subcode, format string, args ...any) *soapFault {
	return &soapFault{Status: 400, Code: "s:Sender", Subcode: subcode, Reason: fmt.Sprintf(format, args...)}
}

func receiverFault(subcode, format string, args ...any) *soapFault {
	return &soapFault{Status: 500, Code: "s:Receiver", Subcode: subcode, Reason: fmt.Sprintf(format, args...)}
}

// encodeFault renders f as a response to req.
func encodeFault(req request, messageID string, f *soapFault) []byte {
	action := actionWSManFault
	if strings.HasPrefix(f.Subcode, "a:") {
		action = actionWSAFault
	}
	fault := el("s:Fault",
		el("s:Code", elText("s:Value", f.Code), el("s:Subcode", elText("s:Value", f.Subcode))),
		el("s:Reason", xel{XMLName: xml.Name{Local: "s:Text"},
			Attrs: []xml.Attr{{Name: xml.Name{Local: "xml:lang"}, Value: "en-US"}}, Text: f.Reason}),
	)
	if f.Detail != "" {
		fault.Kids = append(fault.Kids, el("s:Detail", elText("w:FaultDetail", f.Detail)))
	}
	req.ResourceURI = ""
	return encodeResponse(req, messageID, action, fault)
}
