package amt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/fishgate/fishgate/wire/wsman"
)

// The WS-Management client: SOAP 1.2 envelopes (DMTF DSP0226) over one HTTP
// client whose transport does Digest (github.com/icholy/digest) and counts
// requests. Requests are encoded from structs whose element names carry the
// prefixes declared on the Envelope; responses are decoded into a generic
// element tree with namespaces resolved, so any prefixes AMT picks work.

// Limits of the client.
const (
	maxResponse = 4 << 20
	maxElements = 32  // per Enumerate/Pull: every class the backend reads fits in one
	maxPulls    = 100 // bound on Pulls of one enumeration
)

// AMT's names of the instances the backend addresses.
const (
	managedSystemName = "ManagedSystem"
	bootConfigID      = "Intel(r) AMT: Boot Configuration 0"
)

// ---- requests ----

type muText struct {
	MU   string `xml:"s:mustUnderstand,attr,omitempty"`
	Text string `xml:",chardata"`
}

func mu(s string) muText { return muText{MU: "true", Text: s} }

type selectorXML struct {
	Name  string `xml:"Name,attr"`
	Value string `xml:",chardata"`
}

type selectorSet struct {
	Selectors []selectorXML `xml:"w:Selector"`
}

type requestHeader struct {
	XMLName          xml.Name     `xml:"s:Header"`
	Action           muText       `xml:"a:Action"`
	To               muText       `xml:"a:To"`
	ResourceURI      muText       `xml:"w:ResourceURI"`
	MessageID        muText       `xml:"a:MessageID"`
	ReplyTo          muText       `xml:"a:ReplyTo>a:Address"`
	OperationTimeout string       `xml:"w:OperationTimeout"`
	SelectorSet      *selectorSet `xml:"w:SelectorSet,omitempty"`
}

type requestEnvelope struct {
	XMLName xml.Name `xml:"s:Envelope"`
	NSS     string   `xml:"xmlns:s,attr"`
	NSA     string   `xml:"xmlns:a,attr"`
	NSW     string   `xml:"xmlns:w,attr"`
	Header  requestHeader
	Body    struct {
		Content any
	} `xml:"s:Body"`
}

// eprXML is an endpoint reference as a parameter's content (DSP0226 §5.1).
type eprXML struct {
	Address     string      `xml:"a:Address"`
	ResourceURI string      `xml:"a:ReferenceParameters>w:ResourceURI"`
	SelectorSet selectorSet `xml:"a:ReferenceParameters>w:SelectorSet"`
}

type enumerateBody struct {
	XMLName     xml.Name  `xml:"n:Enumerate"`
	NSN         string    `xml:"xmlns:n,attr"`
	Optimize    *struct{} `xml:"w:OptimizeEnumeration"`
	MaxElements int       `xml:"w:MaxElements"`
	Mode        string    `xml:"w:EnumerationMode,omitempty"`
}

type pullBody struct {
	XMLName     xml.Name `xml:"n:Pull"`
	NSN         string   `xml:"xmlns:n,attr"`
	Context     string   `xml:"n:EnumerationContext"`
	MaxElements int      `xml:"n:MaxElements"`
}

type powerChangeInput struct {
	XMLName        xml.Name `xml:"p:RequestPowerStateChange_INPUT"`
	NSP            string   `xml:"xmlns:p,attr"`
	PowerState     int      `xml:"p:PowerState"`
	ManagedElement eprXML   `xml:"p:ManagedElement"`
}

type changeBootOrderInput struct {
	XMLName xml.Name `xml:"p:ChangeBootOrder_INPUT"`
	NSP     string   `xml:"xmlns:p,attr"`
	Source  *eprXML  `xml:"p:Source,omitempty"`
}

type setBootConfigRoleInput struct {
	XMLName           xml.Name `xml:"p:SetBootConfigRole_INPUT"`
	NSP               string   `xml:"xmlns:p,attr"`
	BootConfigSetting eprXML   `xml:"p:BootConfigSetting"`
	Role              int      `xml:"p:Role"`
}

// eprParam renders e as a reference-typed parameter.
func eprParam(e wsman.EPR) eprXML {
	x := eprXML{Address: wsman.AnonRole, ResourceURI: e.ResourceURI}
	for _, s := range e.Selectors {
		x.SelectorSet.Selectors = append(x.SelectorSet.Selectors, selectorXML(s))
	}
	return x
}

// ---- responses ----

// intChild reads an integer child property of n (any namespace).
func intChild(n *wsman.Node, local string) (int, error) {
	c := n.Child("", local)
	if c == nil {
		return 0, fmt.Errorf("no %s in %s", local, n.XMLName.Local)
	}
	v, err := strconv.Atoi(c.Text())
	if err != nil {
		return 0, fmt.Errorf("%s %q: not an integer", local, c.Text())
	}
	return v, nil
}

// FaultError is a SOAP fault AMT answered (DSP0226 §14).
type FaultError struct {
	HTTPStatus int
	Code       string // s:Sender (the request is wrong) or s:Receiver (AMT failed)
	Subcode    string // e.g. wsman:InternalError
	Reason     string
}

func (e *FaultError) Error() string {
	return fmt.Sprintf("SOAP fault %s/%s (HTTP %d): %s", e.Code, e.Subcode, e.HTTPStatus, e.Reason)
}

// sender reports whether the fault blames the request (retrying the same
// request cannot help).
func (e *FaultError) sender() bool { return e.Code == "Sender" }

// HTTPError is an answer that is neither a SOAP envelope nor 401.
type HTTPError struct {
	Status int
	Body   string
}

func (e *HTTPError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// transportError is a request that got no (usable) answer. sent is false
// when it surely never reached AMT: nothing of it was written (the
// connection could not be made).
type transportError struct {
	err  error
	sent bool
}

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// ---- the client ----

// countingTransport counts the HTTP requests that go on the wire, 401
// challenges included.
type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Uint64
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.next.RoundTrip(r)
}

// wsmanClient sends WS-Man requests to one endpoint, one at a time.
type wsmanClient struct {
	url  string // ".../wsman"
	http *http.Client
	slot chan struct{} // one request in flight: AMT is a small firmware
}

// call sends one request and returns the first element of the response's
// Body (nil when empty). A fault, an HTTP error or 401 is an error.
func (c *wsmanClient) call(ctx context.Context, action, resourceURI string, selectors []wsman.Selector, body any) (*wsman.Node, error) {
	env := requestEnvelope{NSS: wsman.NSSOAP, NSA: wsman.NSWSA, NSW: wsman.NSWSMan}
	env.Header = requestHeader{
		Action: mu(action), To: mu(c.url), ResourceURI: mu(resourceURI),
		MessageID: mu(newMessageID()), ReplyTo: mu(wsman.AnonRole), OperationTimeout: "PT60S",
	}
	if len(selectors) > 0 {
		env.Header.SelectorSet = &selectorSet{}
		for _, s := range selectors {
			env.Header.SelectorSet.Selectors = append(env.Header.SelectorSet.Selectors, selectorXML(s))
		}
	}
	env.Body.Content = body
	payload, err := xml.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encoding request: %w", err)
	}
	// wrote: the last attempt to send the request (the Digest transport
	// and net/http may make several) began writing it.
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GetConn:      func(string) { wrote.Store(false) },
		WroteHeaders: func() { wrote.Store(true) },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(append([]byte(xml.Header), payload...)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", wsman.ContentType)
	req.Header.Set("User-Agent", "fishgate")

	select {
	case c.slot <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	resp, err := c.http.Do(req)
	if err != nil {
		<-c.slot
		return nil, &transportError{err: err, sent: wrote.Load() && !dialFailed(err)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	<-c.slot
	if err != nil {
		return nil, &transportError{err: fmt.Errorf("reading the answer: %w", err), sent: true}
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, ErrAuthentication
	}
	var envOut wsman.Node
	if xerr := xml.Unmarshal(data, &envOut); xerr != nil || envOut.XMLName.Space != wsman.NSSOAP || envOut.XMLName.Local != "Envelope" {
		if resp.StatusCode != http.StatusOK {
			return nil, &HTTPError{Status: resp.StatusCode, Body: snippet(data)}
		}
		return nil, &transportError{err: fmt.Errorf("answer is not a SOAP envelope: %s", snippet(data)), sent: true}
	}
	var first *wsman.Node
	if b := envOut.Child(wsman.NSSOAP, "Body"); b != nil && len(b.Children) > 0 {
		first = &b.Children[0]
	}
	if first != nil && first.XMLName.Space == wsman.NSSOAP && first.XMLName.Local == "Fault" {
		code := first.Child(wsman.NSSOAP, "Code")
		return nil, &FaultError{
			HTTPStatus: resp.StatusCode,
			Code:       localPart(code.Child(wsman.NSSOAP, "Value").Text()),
			Subcode:    code.Child(wsman.NSSOAP, "Subcode").Child(wsman.NSSOAP, "Value").Text(),
			Reason:     first.Child(wsman.NSSOAP, "Reason").Child(wsman.NSSOAP, "Text").Text(),
		}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &HTTPError{Status: resp.StatusCode, Body: snippet(data)}
	}
	return first, nil
}

// enumerate reads every instance (or, with epr, every endpoint reference)
// of a class: one optimized Enumerate (DSP0226 §8.2.3) when AMT returns
// everything at once, else Pulls until EndOfSequence.
func (c *wsmanClient) enumerate(ctx context.Context, resourceURI string, epr bool) ([]wsman.Node, error) {
	body := enumerateBody{NSN: wsman.NSWSEN, Optimize: &struct{}{}, MaxElements: maxElements}
	if epr {
		body.Mode = "EnumerateEPR"
	}
	resp, err := c.call(ctx, wsman.ActionEnumerate, resourceURI, nil, body)
	if err != nil {
		return nil, fmt.Errorf("Enumerate: %w", err)
	}
	if resp == nil || resp.XMLName.Local != "EnumerateResponse" {
		return nil, fmt.Errorf("Enumerate: answer has no EnumerateResponse")
	}
	var items []wsman.Node
	if it := resp.Child("", "Items"); it != nil {
		items = append(items, it.Children...)
	}
	if resp.Child("", "EndOfSequence") != nil {
		return items, nil
	}
	ctxID := resp.Child(wsman.NSWSEN, "EnumerationContext").Text()
	for range maxPulls {
		if ctxID == "" {
			return items, nil
		}
		pr, err := c.call(ctx, wsman.ActionPull, resourceURI, nil, pullBody{NSN: wsman.NSWSEN, Context: ctxID, MaxElements: maxElements})
		if err != nil {
			return nil, fmt.Errorf("Pull: %w", err)
		}
		if pr == nil || pr.XMLName.Local != "PullResponse" {
			return nil, fmt.Errorf("Pull: answer has no PullResponse")
		}
		if it := pr.Child("", "Items"); it != nil {
			items = append(items, it.Children...)
		}
		if pr.Child("", "EndOfSequence") != nil {
			return items, nil
		}
		ctxID = pr.Child(wsman.NSWSEN, "EnumerationContext").Text()
	}
	return nil, fmt.Errorf("Pull: no EndOfSequence after %d Pulls", maxPulls)
}

// invoke calls a CIM method and returns its METHOD_OUTPUT and ReturnValue.
func (c *wsmanClient) invoke(ctx context.Context, resourceURI, method string, selectors []wsman.Selector, input any) (*wsman.Node, int, error) {
	out, err := c.call(ctx, resourceURI+"/"+method, resourceURI, selectors, input)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", method, err)
	}
	if out == nil || out.XMLName.Local != method+"_OUTPUT" {
		return nil, 0, &transportError{err: fmt.Errorf("%s: answer has no %s_OUTPUT", method, method), sent: true}
	}
	rv, err := intChild(out, "ReturnValue")
	if err != nil {
		return nil, 0, &transportError{err: fmt.Errorf("%s: %w", method, err), sent: true}
	}
	return out, rv, nil
}

// newMessageID returns a random uuid URN (RFC 9562 version 4).
func newMessageID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("uuid:%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}

func localPart(qname string) string { return qname[strings.LastIndex(qname, ":")+1:] }

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// dialFailed reports whether err happened before a connection existed, so
// the request surely never reached AMT.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
