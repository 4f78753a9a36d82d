package simulator

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icholy/digest"

	"github.com/fishgate/fishgate/wire/wsman"
)

// amtServer runs an AMT front for a new machine on a free loopback port.
func amtServer(t *testing.T, mc MachineConfig, cfg AMTConfig) (*Machine, *AMTFront, string) {
	t.Helper()
	m := NewMachine("amt-test", mc)
	cfg.User, cfg.Password = "admin", "pw"
	f := NewAMTFront(m, cfg, nil)
	srv := httptest.NewServer(f)
	t.Cleanup(func() {
		srv.Close()
		m.Close()
		f.Wait()
	})
	return m, f, srv.URL + amtPath
}

// headerLog records the WWW-Authenticate headers a client received.
type headerLog struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []string
}

func (h *headerLog) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := h.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		h.mu.Lock()
		h.seen = append(h.seen, resp.Header.Get("WWW-Authenticate"))
		h.mu.Unlock()
	}
	return resp, err
}

// wsman posts a SOAP envelope with Digest credentials, returning the status
// and the decoded response.
type wsmanPoster struct {
	t      *testing.T
	url    string
	client *http.Client
	log    *headerLog
}

func newPoster(t *testing.T, url, password string) *wsmanPoster {
	log := &headerLog{next: http.DefaultTransport}
	return &wsmanPoster{t: t, url: url, log: log,
		client: &http.Client{Transport: &digest.Transport{Username: "admin", Password: password, Transport: log}}}
}

func (p *wsmanPoster) post(envelope string) (int, *wsman.Node) {
	p.t.Helper()
	resp, err := p.client.Post(p.url, "application/soap+xml;charset=UTF-8", strings.NewReader(envelope))
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var n wsman.Node
	if resp.StatusCode == http.StatusOK || resp.StatusCode == 400 || resp.StatusCode == 500 {
		if err := xml.Unmarshal(body, &n); err != nil {
			p.t.Fatalf("HTTP %d, not XML: %v\n%s", resp.StatusCode, err, body)
		}
	}
	return resp.StatusCode, &n
}

// envelope builds a request the way openwsman's wsman CLI (MAAS) does:
// prefixes of its own, header selectors from the URI's query.
func envelope(action, resource, selectors, body string) string {
	sel := ""
	if selectors != "" {
		sel = `<wsman:SelectorSet>` + selectors + `</wsman:SelectorSet>`
	}
	return `<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">
  <s:Header>
    <wsa:Action s:mustUnderstand="true">` + action + `</wsa:Action>
    <wsa:To s:mustUnderstand="true">http://host:16992/wsman</wsa:To>
    <wsman:ResourceURI s:mustUnderstand="true">` + resource + `</wsman:ResourceURI>
    <wsa:MessageID s:mustUnderstand="true">uuid:11111111-2222-3333-4444-555555555555</wsa:MessageID>
    <wsa:ReplyTo><wsa:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:Address></wsa:ReplyTo>
    ` + sel + `
  </s:Header>
  <s:Body>` + body + `</s:Body>
</s:Envelope>`
}

const (
	maasPowerSelectors = `<wsman:Selector Name="SystemCreationClassName">CIM_ComputerSystem</wsman:Selector>` +
		`<wsman:Selector Name="SystemName">Intel(r) AMT</wsman:Selector>` +
		`<wsman:Selector Name="CreationClassName">CIM_PowerManagementService</wsman:Selector>` +
		`<wsman:Selector Name="Name">Intel(r) AMT Power Management Service</wsman:Selector>`
	// MAAS's input file qualifies the selector's Name attribute (wsman:Name).
	maasManagedElement = `<p:ManagedElement xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">
      <wsa:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:Address>
      <wsa:ReferenceParameters>
        <wsman:ResourceURI>http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ComputerSystem</wsman:ResourceURI>
        <wsman:SelectorSet><wsman:Selector wsman:Name="Name">%s</wsman:Selector></wsman:SelectorSet>
      </wsa:ReferenceParameters>
    </p:ManagedElement>`
)

func powerChange(value, managed string) string {
	return `<p:RequestPowerStateChange_INPUT xmlns:p="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_PowerManagementService">` +
		`<p:PowerState>` + value + `</p:PowerState>` + managed + `</p:RequestPowerStateChange_INPUT>`
}

// rv posts an invoke and returns the ReturnValue of its METHOD_OUTPUT.
func (p *wsmanPoster) rv(envelope string) string {
	t := p.t
	t.Helper()
	status, resp := p.post(envelope)
	if status != http.StatusOK {
		t.Fatalf("HTTP %d: %+v", status, resp)
	}
	out := resp.Child(wsman.NSSOAP, "Body")
	if out == nil || len(out.Children) != 1 {
		t.Fatalf("no output in %+v", resp)
	}
	return out.Children[0].Child("", "ReturnValue").Text()
}

// faultSubcode reads a fault's subcode.
func faultSubcode(resp *wsman.Node) string {
	return resp.Child(wsman.NSSOAP, "Body").Child(wsman.NSSOAP, "Fault").Child(wsman.NSSOAP, "Code").Child(wsman.NSSOAP, "Subcode").Child(wsman.NSSOAP, "Value").Text()
}

func TestAMTChallenge(t *testing.T) {
	m, f, url := amtServer(t, MachineConfig{}, AMTConfig{})
	req := envelope(wsman.URIPowerService+"/RequestPowerStateChange", wsman.URIPowerService, "", powerChange("2", fmt.Sprintf(maasManagedElement, "ManagedSystem")))
	resp, err := http.Post(url, "application/soap+xml", strings.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := regexp.MustCompile(`^Digest realm="Digest:[0-9A-F]{32}", nonce="[0-9a-f]{32}", stale="false", qop="auth"$`)
	if resp.StatusCode != http.StatusUnauthorized || !want.MatchString(resp.Header.Get("WWW-Authenticate")) {
		t.Fatalf("HTTP %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if m.Status().CommandCount != 0 {
		t.Fatal("an unauthenticated request reached the machine")
	}
	// Basic credentials are not accepted either.
	r, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(req))
	r.SetBasicAuth("admin", "pw")
	resp, err = http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Basic credentials: HTTP %d", resp.StatusCode)
	}
	if st := f.Stats(); st.Requests != 2 || st.Unauthorized != 2 {
		t.Errorf("stats %+v", st)
	}
	// Wrong paths and methods.
	for _, tc := range []struct {
		method, url string
		want        int
	}{
		{http.MethodGet, url, http.StatusMethodNotAllowed},
		{http.MethodPost, strings.TrimSuffix(url, amtPath) + "/other", http.StatusNotFound},
	} {
		r, _ := http.NewRequest(tc.method, tc.url, nil)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.url, resp.StatusCode, tc.want)
		}
	}
}

// A nonce is reused with growing nc (one 401 for many requests); a replayed
// Authorization is refused; an expired nonce is answered stale="true".
func TestAMTNonces(t *testing.T) {
	_, f, url := amtServer(t, MachineConfig{}, AMTConfig{NonceTTL: time.Second})
	p := newPoster(t, url, "pw")
	get := envelope(wsman.ActionGet, wsman.URIPowerService, "", "")
	for range 5 {
		if status, _ := p.post(get); status != http.StatusOK {
			t.Fatalf("HTTP %d", status)
		}
	}
	if st := f.Stats(); st.Unauthorized != 1 || st.Requests != 6 {
		t.Errorf("5 Gets cost %d requests and %d challenges; want 6 and 1", st.Requests, st.Unauthorized)
	}

	// Replay: the same Authorization header twice.
	var auth string
	capture := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		auth = r.Header.Get("Authorization")
		return http.DefaultTransport.RoundTrip(r)
	})
	c := &http.Client{Transport: &digest.Transport{Username: "admin", Password: "pw", Transport: capture}}
	resp, err := c.Post(url, "application/soap+xml", strings.NewReader(get))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
	r, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(get))
	r.Header.Set("Authorization", auth)
	resp, err = http.DefaultClient.Do(r)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed credentials: %v %v", resp, err)
	}
	resp.Body.Close()

	time.Sleep(1100 * time.Millisecond)
	if status, _ := p.post(get); status != http.StatusOK {
		t.Fatalf("after the nonce expired: HTTP %d", status)
	}
	if last := p.log.seen[len(p.log.seen)-1]; !strings.Contains(last, `stale="true"`) {
		t.Errorf("expired nonce answered %q, want stale=\"true\"", last)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// RequestPowerStateChange as MAAS sends it (header selectors, wsman:Name),
// and the requests AMT refuses.
func TestAMTPowerChangeAddressing(t *testing.T) {
	m, _, url := amtServer(t, MachineConfig{ResetTypes: []string{"On", "ForceOff", "PowerCycle", "ForceRestart"}}, AMTConfig{})
	p := newPoster(t, url, "pw")
	action := wsman.URIPowerService + "/RequestPowerStateChange"
	managed := fmt.Sprintf(maasManagedElement, "ManagedSystem")

	if rv := p.rv((envelope(action, wsman.URIPowerService, maasPowerSelectors, powerChange("2", managed)))); rv != "0" {
		t.Fatalf("MAAS-style power on: ReturnValue %s", rv)
	}
	if rv := p.rv((envelope(action, wsman.URIPowerService, "", powerChange("8", managed)))); rv != "0" {
		t.Fatalf("power off without header selectors: ReturnValue %s", rv)
	}
	for _, tc := range []struct {
		name, body, rv string
	}{
		{"no ManagedElement", powerChange("2", ""), "5"},
		{"the AMT subsystem as ManagedElement", powerChange("2", fmt.Sprintf(maasManagedElement, "Intel(r) AMT")), "5"},
		{"PowerState not a number", powerChange("on", managed), "5"},
		{"PowerState 6 (not one AMT takes)", powerChange("6", managed), "1"},
		{"Nmi, not offered by this machine", powerChange("11", managed), "1"},
	} {
		if rv := p.rv((envelope(action, wsman.URIPowerService, "", tc.body))); rv != tc.rv {
			t.Errorf("%s: ReturnValue %s, want %s", tc.name, rv, tc.rv)
		}
	}
	wrong := strings.Replace(maasPowerSelectors, ">Intel(r) AMT<", ">Other<", 1)
	if status, resp := p.post(envelope(action, wsman.URIPowerService, wrong, powerChange("2", managed))); status != 400 || faultSubcode(resp) != "w:InvalidSelectors" {
		t.Errorf("wrong selectors: HTTP %d, subcode %q", status, faultSubcode(resp))
	}
	want := []string{"On (2): accepted", "ForceOff (8): accepted", "Nmi (11): refused: unsupported ResetType"}
	var got []string
	for _, c := range m.Status().Commands {
		got = append(got, c.Action+": "+c.Result)
	}
	if !slices.Equal(got, want) {
		t.Errorf("machine logged %q, want %q", got, want)
	}
}

// Boot configuration as MAAS sends it: ChangeBootOrder then SetBootConfigRole,
// each addressed with header selectors.
func TestAMTBootMAASStyle(t *testing.T) {
	m, _, url := amtServer(t, MachineConfig{}, AMTConfig{})
	p := newPoster(t, url, "pw")
	source := `<p:ChangeBootOrder_INPUT xmlns:p="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_BootConfigSetting">
  <p:Source>
    <a:Address xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address>
    <a:ReferenceParameters xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing">
      <w:ResourceURI xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_BootSourceSetting</w:ResourceURI>
      <w:SelectorSet xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><w:Selector Name="InstanceID">%s</w:Selector></w:SelectorSet>
    </a:ReferenceParameters>
  </p:Source>
</p:ChangeBootOrder_INPUT>`
	cfgSel := `<wsman:Selector Name="InstanceID">Intel(r) AMT: Boot Configuration 0</wsman:Selector>`
	if rv := p.rv((envelope(wsman.URIBootConfig+"/ChangeBootOrder", wsman.URIBootConfig, cfgSel, fmt.Sprintf(source, "Intel(r) AMT: Force PXE Boot")))); rv != "0" {
		t.Fatalf("ChangeBootOrder: ReturnValue %s", rv)
	}
	role := `<p:SetBootConfigRole_INPUT xmlns:p="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_BootService">
  <p:BootConfigSetting>
    <a:Address xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address>
    <a:ReferenceParameters xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing">
      <w:ResourceURI xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_BootConfigSetting</w:ResourceURI>
      <w:SelectorSet xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><w:Selector Name="InstanceID">Intel(r) AMT: Boot Configuration 0</w:Selector></w:SelectorSet>
    </a:ReferenceParameters>
  </p:BootConfigSetting>
  <p:Role>%d</p:Role>
</p:SetBootConfigRole_INPUT>`
	svcSel := `<wsman:Selector Name="SystemCreationClassName">CIM_ComputerSystem</wsman:Selector><wsman:Selector Name="SystemName">Intel(r) AMT</wsman:Selector>` +
		`<wsman:Selector Name="CreationClassName">CIM_BootService</wsman:Selector><wsman:Selector Name="Name">Intel(r) AMT Boot Service</wsman:Selector>`
	if rv := p.rv((envelope(wsman.URIBootService+"/SetBootConfigRole", wsman.URIBootService, svcSel, fmt.Sprintf(role, 1)))); rv != "0" {
		t.Fatalf("SetBootConfigRole: ReturnValue %s", rv)
	}
	if b := m.Boot(); b.Target != "Pxe" || b.Enabled != "Once" {
		t.Fatalf("boot %+v", b)
	}
	if rv := p.rv((envelope(wsman.URIBootService+"/SetBootConfigRole", wsman.URIBootService, svcSel, fmt.Sprintf(role, 0)))); rv != "5" {
		t.Errorf("Role 0: ReturnValue %s, want 5", rv)
	}
	if rv := p.rv((envelope(wsman.URIBootConfig+"/ChangeBootOrder", wsman.URIBootConfig, "", fmt.Sprintf(source, "Intel(r) AMT: Force Floppy Boot")))); rv != "5" {
		t.Errorf("unknown source: ReturnValue %s, want 5", rv)
	}
	clear := `<p:ChangeBootOrder_INPUT xmlns:p="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_BootConfigSetting"/>`
	if rv := p.rv((envelope(wsman.URIBootConfig+"/ChangeBootOrder", wsman.URIBootConfig, "", clear))); rv != "0" {
		t.Fatalf("clearing ChangeBootOrder: ReturnValue %s", rv)
	}
	if b := m.Boot(); b.Target != "None" || b.Enabled != "Disabled" {
		t.Fatalf("boot after clearing %+v", b)
	}
}

// Enumerate without OptimizeEnumeration, then Pulls of MaxElements 1 (the
// WS-Enumeration default), as iamt does; EPR and object-and-EPR modes.
func TestAMTEnumeration(t *testing.T) {
	_, _, url := amtServer(t, MachineConfig{InitialPower: PowerOn}, AMTConfig{})
	p := newPoster(t, url, "pw")
	enumBody := `<wsen:Enumerate xmlns:wsen="http://schemas.xmlsoap.org/ws/2004/09/enumeration">%s</wsen:Enumerate>`
	pull := func(ctx string) (int, *wsman.Node) {
		return p.post(envelope(wsman.ActionPull, wsman.URIComputerSystem, "",
			`<wsen:Pull xmlns:wsen="http://schemas.xmlsoap.org/ws/2004/09/enumeration"><wsen:EnumerationContext>`+ctx+`</wsen:EnumerationContext></wsen:Pull>`))
	}
	status, resp := p.post(envelope(wsman.ActionEnumerate, wsman.URIComputerSystem, "", fmt.Sprintf(enumBody, "")))
	er := resp.Child(wsman.NSSOAP, "Body").Child(wsman.NSWSEN, "EnumerateResponse")
	ctx := er.Child(wsman.NSWSEN, "EnumerationContext").Text()
	if status != 200 || ctx == "" || er.Child("", "Items") != nil {
		t.Fatalf("Enumerate: HTTP %d %+v", status, resp)
	}
	var names []string
	for i := range 2 {
		status, resp := pull(ctx)
		pr := resp.Child(wsman.NSSOAP, "Body").Child(wsman.NSWSEN, "PullResponse")
		items := pr.Child(wsman.NSWSEN, "Items")
		if status != 200 || items == nil || len(items.Children) != 1 {
			t.Fatalf("Pull %d: HTTP %d %+v", i, status, resp)
		}
		names = append(names, items.Children[0].Child(wsman.URIComputerSystem, "Name").Text())
		last := i == 1
		if (pr.Child(wsman.NSWSEN, "EndOfSequence") != nil) != last || (pr.Child(wsman.NSWSEN, "EnumerationContext") == nil) != last {
			t.Errorf("Pull %d: EndOfSequence/EnumerationContext wrong: %+v", i, pr)
		}
	}
	if !slices.Equal(names, []string{"Intel(r) AMT", "ManagedSystem"}) {
		t.Errorf("systems %q", names)
	}
	if status, resp := pull(ctx); status != 400 || faultSubcode(resp) != "n:InvalidEnumerationContext" {
		t.Errorf("Pull after the end: HTTP %d %q", status, faultSubcode(resp))
	}

	opt := `<wsman:OptimizeEnumeration/><wsman:MaxElements>10</wsman:MaxElements><wsman:EnumerationMode>%s</wsman:EnumerationMode>`
	_, resp = p.post(envelope(wsman.ActionEnumerate, wsman.URIComputerSystem, "", fmt.Sprintf(enumBody, fmt.Sprintf(opt, "EnumerateEPR"))))
	er = resp.Child(wsman.NSSOAP, "Body").Child(wsman.NSWSEN, "EnumerateResponse")
	items := er.Child(wsman.NSWSMan, "Items")
	if items == nil || len(items.Children) != 2 || er.Child(wsman.NSWSMan, "EndOfSequence") == nil {
		t.Fatalf("optimized EnumerateEPR: %+v", er)
	}
	ref, ok := wsman.ReadEPR(&items.Children[1])
	if v, _ := ref.Lookup("Name"); !ok || ref.ResourceURI != wsman.URIComputerSystem || v != "ManagedSystem" {
		t.Errorf("EPR %+v", ref)
	}
	_, resp = p.post(envelope(wsman.ActionEnumerate, wsman.URIComputerSystem, "", fmt.Sprintf(enumBody, fmt.Sprintf(opt, "EnumerateObjectAndEPR"))))
	item := resp.Child(wsman.NSSOAP, "Body").Child(wsman.NSWSEN, "EnumerateResponse").Child(wsman.NSWSMan, "Items").Child(wsman.NSWSMan, "Item")
	if item.Child(wsman.URIComputerSystem, "CIM_ComputerSystem") == nil || item.Child(wsman.NSWSA, "EndpointReference") == nil {
		t.Errorf("EnumerateObjectAndEPR item %+v", item)
	}

	// The power association, optimized: one request.
	_, resp = p.post(envelope(wsman.ActionEnumerate, wsman.URIPowerAssociation, "", fmt.Sprintf(enumBody, `<wsman:OptimizeEnumeration/><wsman:MaxElements>10</wsman:MaxElements>`)))
	assoc := resp.Child(wsman.NSSOAP, "Body").Child(wsman.NSWSEN, "EnumerateResponse").Child(wsman.NSWSMan, "Items").Child(wsman.URIPowerAssociation, "CIM_AssociatedPowerManagementService")
	var avail []string
	for _, c := range assoc.Children {
		if c.XMLName.Local == "AvailableRequestedPowerStates" {
			avail = append(avail, c.Text())
		}
	}
	if assoc.Child(wsman.URIPowerAssociation, "PowerState").Text() != "2" || !slices.Equal(avail, []string{"2", "5", "8", "10", "11", "12", "14"}) {
		t.Errorf("association %+v", assoc)
	}
	if status, resp := p.post(envelope(wsman.ActionEnumerate, wsman.URIPowerAssociation, "", fmt.Sprintf(enumBody, fmt.Sprintf(opt, "EnumerateEPR")))); status != 400 || faultSubcode(resp) != "w:UnsupportedFeature" {
		t.Errorf("EPRs of the association: HTTP %d %q", status, faultSubcode(resp))
	}
}

func TestAMTFaultsAndIdentify(t *testing.T) {
	_, f, url := amtServer(t, MachineConfig{}, AMTConfig{})
	p := newPoster(t, url, "pw")
	for _, tc := range []struct {
		name, req, subcode string
	}{
		{"unknown resource", envelope(wsman.ActionGet, wsman.CIMBase+"CIM_Nothing", "", ""), "a:DestinationUnreachable"},
		{"unknown action", envelope(wsman.CIMBase+"CIM_PowerManagementService/Explode", wsman.URIPowerService, "", ""), "a:ActionNotSupported"},
		{"Put on a read-only class", envelope(wsman.ActionPut, wsman.URIPowerService, "", ""), "a:ActionNotSupported"},
		{"two instances, no selectors", envelope(wsman.ActionGet, wsman.URIComputerSystem, "", ""), "w:InvalidSelectors"},
		{"not SOAP", "<hello/>", "w:SchemaValidationError"},
	} {
		status, resp := p.post(tc.req)
		if status != 400 || faultSubcode(resp) != tc.subcode {
			t.Errorf("%s: HTTP %d, subcode %q, want 400 %s", tc.name, status, faultSubcode(resp), tc.subcode)
		}
	}
	// Identify needs no credentials.
	identify := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"><s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>`
	resp, err := http.Post(url, "application/soap+xml", strings.NewReader(identify))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Intel Corporation") {
		t.Errorf("Identify: HTTP %d %s", resp.StatusCode, body)
	}
	if st := f.Stats(); st.Faults != 5 {
		t.Errorf("%d faults counted", st.Faults)
	}
}

func TestAMTPowerStateReport(t *testing.T) {
	for _, tc := range []struct {
		state, target string
		moving        bool
		want          int
	}{
		{PowerOn, PowerOn, false, 2},
		{PowerOff, PowerOff, false, 8},
		{PowerPoweringOn, PowerOn, true, 8},   // powering on: still off
		{PowerPoweringOff, PowerOff, true, 2}, // powering off: still on
		{PowerPoweringOff, PowerOn, true, 8},  // a restart reads off from its start
		{PowerOff, PowerOn, true, 8},
		{PowerPoweringOn, PowerPoweringOn, false, 8}, // stopped half way (SetPower, Close)
		{PowerPoweringOff, PowerPoweringOff, false, 2},
	} {
		if got := amtPowerState(tc.state, tc.target, tc.moving); got != tc.want {
			t.Errorf("amtPowerState(%s, %s, %v) = %d, want %d", tc.state, tc.target, tc.moving, got, tc.want)
		}
	}
	if got := amtAvailable([]string{"PushPowerButton", "GracefulRestart", "On", "ForceOn"}); !slices.Equal(got, []int{2, 14}) {
		t.Errorf("amtAvailable = %v", got)
	}
	for v := range 20 {
		rt, ok := amtResetType(v)
		if want := slices.Contains([]int{2, 5, 8, 10, 11, 12, 14}, v); ok != want || (ok && !knownResetType(rt)) {
			t.Errorf("amtResetType(%d) = %q, %v", v, rt, ok)
		}
	}
}
