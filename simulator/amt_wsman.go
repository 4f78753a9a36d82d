package simulator

import (
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/fishgate/fishgate/wire/wsman"
)

// The XML layer of the AMT front: WS-Management (DMTF DSP0226) messages in
// SOAP 1.2 envelopes with WS-Addressing 2004/08, WS-Enumeration and
// WS-Transfer 2004/09, as Intel AMT speaks them.
//
// Requests are decoded into a generic element tree (wsman.Node), so that any
// prefix choice of a client works (iamt, openwsman as MAAS runs it, and
// fishgate's backend all pick different ones). Responses are encoded from
// structs whose element names carry fixed prefixes declared on the Envelope,
// the way AMT writes them.

// request is a decoded WS-Man request.
type request struct {
	Action      string
	MessageID   string
	ResourceURI string
	Selectors   []wsman.Selector // header SelectorSet
	Body        *wsman.Node      // first child of s:Body, nil when empty
}

// parseRequest decodes a SOAP 1.2 envelope.
func parseRequest(body []byte) (request, error) {
	var env wsman.Node
	if err := xml.Unmarshal(body, &env); err != nil {
		return request{}, fmt.Errorf("not well-formed XML: %w", err)
	}
	if env.XMLName.Space != wsman.NSSOAP || env.XMLName.Local != "Envelope" {
		return request{}, fmt.Errorf("root element {%s}%s is not a SOAP 1.2 Envelope", env.XMLName.Space, env.XMLName.Local)
	}
	h := env.Child(wsman.NSSOAP, "Header")
	if h == nil {
		return request{}, fmt.Errorf("no SOAP Header")
	}
	r := request{
		Action:      h.Child(wsman.NSWSA, "Action").Text(),
		MessageID:   h.Child(wsman.NSWSA, "MessageID").Text(),
		ResourceURI: h.Child(wsman.NSWSMan, "ResourceURI").Text(),
		Selectors:   wsman.ReadSelectors(h.Child(wsman.NSWSMan, "SelectorSet")),
	}
	if b := env.Child(wsman.NSSOAP, "Body"); b != nil && len(b.Children) > 0 {
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
func eprKids(ref wsman.EPR) []xel {
	sels := make([]xel, len(ref.Selectors))
	for i, s := range ref.Selectors {
		sels[i] = xel{XMLName: xml.Name{Local: "w:Selector"},
			Attrs: []xml.Attr{{Name: xml.Name{Local: "Name"}, Value: s.Name}}, Text: s.Value}
	}
	return []xel{
		elText("a:Address", wsman.AnonRole),
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
	env := responseEnvelope{NSS: wsman.NSSOAP, NSA: wsman.NSWSA, NSW: wsman.NSWSMan, NSN: wsman.NSWSEN}
	env.Header = responseHeader{
		To:          wsman.AnonRole,
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
	action := wsman.ActionWSManFault
	if strings.HasPrefix(f.Subcode, "a:") {
		action = wsman.ActionWSAFault
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
