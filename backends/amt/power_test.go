package amt

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"testing"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/wire/wsman"
)

func TestPowerStateValue(t *testing.T) {
	for _, tc := range []struct {
		r        schemas.ResetType
		value    int
		graceful bool
		ok       bool
	}{
		{schemas.ResetOn, 2, false, true},
		{schemas.ResetForceOff, 8, false, true},
		{schemas.ResetForceRestart, 10, false, true},
		{schemas.ResetPowerCycle, 5, false, true},
		{schemas.ResetNmi, 11, false, true},
		{schemas.ResetGracefulShutdown, 12, true, true},
		{schemas.ResetGracefulRestart, 14, true, true},
		{schemas.ResetForceOn, 0, false, false},
		{schemas.ResetPushPowerButton, 0, false, false},
	} {
		v, g, ok := PowerStateValue(tc.r)
		if v != tc.value || g != tc.graceful || ok != tc.ok {
			t.Errorf("PowerStateValue(%s) = %d, %v, %v; want %d, %v, %v", tc.r, v, g, ok, tc.value, tc.graceful, tc.ok)
		}
		if ok {
			if back, _ := resetTypeOf(v); back != tc.r {
				t.Errorf("resetTypeOf(%d) = %s, want %s", v, back, tc.r)
			}
		}
	}
}

func TestReadPowerState(t *testing.T) {
	on := []int{2, 3, 4, 5, 7, 9, 10, 14, 15, 16}
	off := []int{6, 8, 12, 13}
	for v := 0; v <= 18; v++ {
		got, err := ReadPowerState(v)
		switch {
		case slices.Contains(on, v):
			if got != schemas.PowerOn || err != nil {
				t.Errorf("ReadPowerState(%d) = %q, %v; want On", v, got, err)
			}
		case slices.Contains(off, v):
			if got != schemas.PowerOff || err != nil {
				t.Errorf("ReadPowerState(%d) = %q, %v; want Off", v, got, err)
			}
		default:
			if got != schemas.PowerUnknown || !errors.Is(err, ErrUnknownPowerState) {
				t.Errorf("ReadPowerState(%d) = %q, %v; want an unknown-state error", v, got, err)
			}
		}
	}
}

func TestResetTypesOffered(t *testing.T) {
	got := ResetTypesOffered([]int{14, 2, 8, 6, 13, 15})
	want := []schemas.ResetType{schemas.ResetOn, schemas.ResetForceOff, schemas.ResetGracefulRestart}
	if !slices.Equal(got, want) {
		t.Errorf("ResetTypesOffered = %v, want %v", got, want)
	}
	if got := ResetTypesOffered(nil); got != nil {
		t.Errorf("ResetTypesOffered(nil) = %v", got)
	}
}

func TestReturnValueError(t *testing.T) {
	for _, tc := range []struct {
		value       int
		text        string
		unsupported bool
		permanent   bool
	}{
		{1, "RequestPowerStateChange returned 1 (Not Supported)", true, true},
		{2, "RequestPowerStateChange returned 2 (Unknown or Unspecified Error)", false, false},
		{5, "RequestPowerStateChange returned 5 (Invalid Parameter)", false, true},
		{4097, "RequestPowerStateChange returned 4097 (Invalid State Transition)", false, false},
		{4099, "RequestPowerStateChange returned 4099 (Busy)", false, false},
		{40000, "RequestPowerStateChange returned 40000 (vendor or reserved value)", false, false},
	} {
		err := &ReturnValueError{Method: "RequestPowerStateChange", Value: tc.value}
		if err.Error() != tc.text || errors.Is(err, backends.ErrUnsupported) != tc.unsupported || err.permanent() != tc.permanent {
			t.Errorf("%d: %q, unsupported %v, permanent %v", tc.value, err, errors.Is(err, backends.ErrUnsupported), err.permanent())
		}
	}
}

func TestRetryable(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	read := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	for _, tc := range []struct {
		name             string
		err              error
		idempotent, want bool
	}{
		{"auth", ErrAuthentication, true, false},
		{"busy", &ReturnValueError{Value: 4099}, false, true},
		{"failed", &ReturnValueError{Value: 2}, false, true},
		{"not supported", &ReturnValueError{Value: 1}, true, false},
		{"invalid parameter", &ReturnValueError{Value: 5}, true, false},
		{"receiver fault", &FaultError{Code: "Receiver"}, false, true},
		{"sender fault", &FaultError{Code: "Sender"}, true, false},
		{"HTTP 500", &HTTPError{Status: 500}, false, true},
		{"HTTP 404", &HTTPError{Status: 404}, true, false},
		{"never sent, command", &transportError{err: &url.Error{Op: "Post", Err: dial}, sent: !dialFailed(&url.Error{Op: "Post", Err: dial})}, false, true},
		{"lost answer, command", &transportError{err: &url.Error{Op: "Post", Err: read}, sent: !dialFailed(&url.Error{Op: "Post", Err: read})}, false, false},
		{"lost answer, read", &transportError{err: read, sent: true}, true, true},
		{"no answer to a command", lostAnswer(&transportError{err: read, sent: true}), true, false},
		{"read before a command", beforeCommand{&transportError{err: read, sent: true}}, false, true},
		{"refused read before a command", beforeCommand{ErrAuthentication}, false, false},
		{"job failed", fmt.Errorf("x: %w", ErrJobFailed), false, true},
		{"not confirmed", ErrNotConfirmed, true, true},
		{"closed", errClosed, true, false},
		{"other, read", errors.New("garbled"), true, true},
		{"other, cycle", errors.New("garbled"), false, false},
	} {
		if got := retryable(tc.err, tc.idempotent); got != tc.want {
			t.Errorf("%s: retryable = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestWSManURL(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.5":                   "http://10.0.0.5:16992/wsman",
		"http://10.0.0.5:16992":      "http://10.0.0.5:16992/wsman",
		"https://amt7":               "https://amt7:16993/wsman",
		"http://127.0.0.1:4000/":     "http://127.0.0.1:4000/wsman",
		"http://[::1]:4000/wsman":    "http://[::1]:4000/wsman",
		"https://host:16993/custom/": "https://host:16993/custom/",
	} {
		if got, err := wsmanURL(in); err != nil || got != want {
			t.Errorf("wsmanURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// The literal prefixes of the request structs are all declared: decoded
// with namespaces, the request says what AMT must read.
func TestRequestEncoding(t *testing.T) {
	c := &wsmanClient{url: "http://amt/wsman", slot: make(chan struct{}, 1)}
	ref := wsman.EPR{ResourceURI: wsman.URIComputerSystem, Selectors: []wsman.Selector{{Name: "CreationClassName", Value: "CIM_ComputerSystem"}, {Name: "Name", Value: "ManagedSystem"}}}
	env := requestEnvelope{NSS: wsman.NSSOAP, NSA: wsman.NSWSA, NSW: wsman.NSWSMan}
	env.Header = requestHeader{Action: mu(wsman.URIPowerService + "/RequestPowerStateChange"), To: mu(c.url),
		ResourceURI: mu(wsman.URIPowerService), MessageID: mu(newMessageID()), ReplyTo: mu(wsman.AnonRole),
		SelectorSet: &selectorSet{Selectors: []selectorXML{{Name: "Name", Value: "svc"}}}}
	env.Body.Content = powerChangeInput{NSP: wsman.URIPowerService, PowerState: 8, ManagedElement: eprParam(ref)}
	got, err := xml.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	var n wsman.Node
	if err := xml.Unmarshal(got, &n); err != nil {
		t.Fatalf("%v\n%s", err, got)
	}
	h := n.Child(wsman.NSSOAP, "Header")
	if h.Child(wsman.NSWSA, "Action").Text() != wsman.URIPowerService+"/RequestPowerStateChange" ||
		h.Child(wsman.NSWSMan, "ResourceURI").Text() != wsman.URIPowerService ||
		h.Child(wsman.NSWSA, "ReplyTo").Child(wsman.NSWSA, "Address").Text() != wsman.AnonRole ||
		h.Child(wsman.NSWSMan, "SelectorSet").Child(wsman.NSWSMan, "Selector").Text() != "svc" {
		t.Errorf("header decoded wrong:\n%s", got)
	}
	in := n.Child(wsman.NSSOAP, "Body").Child(wsman.URIPowerService, "RequestPowerStateChange_INPUT")
	if in.Child(wsman.URIPowerService, "PowerState").Text() != "8" {
		t.Errorf("PowerState decoded wrong:\n%s", got)
	}
	back, ok := wsman.ReadEPR(in.Child(wsman.URIPowerService, "ManagedElement"))
	if !ok || back.ResourceURI != ref.ResourceURI || !slices.Equal(back.Selectors, ref.Selectors) {
		t.Errorf("ManagedElement decoded as %+v:\n%s", back, got)
	}
}
