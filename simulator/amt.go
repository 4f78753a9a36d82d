package simulator

import (
	"context"
	"crypto/md5" //nolint:gosec // HTTP Digest with MD5 is what Intel AMT speaks (RFC 7616 §3.4.2)
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/icholy/digest"

	"github.com/fishgate/fishgate/wire/wsman"
)

// The AMT front: one machine's Intel AMT, WS-Management (DSP0226) over HTTP
// at /wsman with HTTP Digest authentication (RFC 7616, MD5, qop=auth).
//
// CIM classes served (DSP1027 Power State Management and DSP1012 Boot
// Control profiles, as AMT implements them):
//
//	CIM_ComputerSystem                    "Intel(r) AMT" and "ManagedSystem" (the host)
//	CIM_PowerManagementService            RequestPowerStateChange
//	CIM_AssociatedPowerManagementService  PowerState, AvailableRequestedPowerStates
//	CIM_BootService                       SetBootConfigRole
//	CIM_BootConfigSetting                 ChangeBootOrder
//	CIM_BootSourceSetting                 PXE, hard drive, CD/DVD
//	AMT_BootSettingData                   Get and Put
//	CIM_ConcreteJob                       jobs of RequestPowerStateChange (AMTConfig.Jobs)
//
// Operations: Identify (without authentication, as AMT allows), Get, Put,
// Enumerate (plain, OptimizeEnumeration, EnumerationMode EnumerateEPR or
// EnumerateObjectAndEPR), Pull, Release, and the three methods above.

const (
	protocolAMT = "amt"
	amtPath     = "/wsman"

	defaultAMTNonceTTL = 5 * time.Minute
	amtMaxNonces       = 4096 // nonces remembered; the oldest are forgotten first
	amtMaxNonceUses    = 1 << 16
	amtMaxEnumerations = 32 // open enumeration contexts; the oldest are dropped first
	amtEnumerationTTL  = 2 * time.Minute
	amtMaxJobs         = 100
)

// Names AMT gives its CIM instances.
const (
	amtSystemName      = "Intel(r) AMT"
	amtManagedSystem   = "ManagedSystem"
	amtPowerService    = "Intel(r) AMT Power Management Service"
	amtBootService     = "Intel(r) AMT Boot Service"
	amtBootConfig      = "Intel(r) AMT: Boot Configuration 0"
	amtBootSettingData = "Intel(r) AMT:BootSettingData 0"
)

// amtBootSources are AMT's CIM_BootSourceSetting instances and the Redfish
// BootSourceOverrideTarget each one means.
var amtBootSources = []struct{ id, structured, target string }{
	{"Intel(r) AMT: Force Hard-drive Boot", "CIM:Hard-Disk:1", "Hdd"},
	{"Intel(r) AMT: Force PXE Boot", "CIM:Network:1", "Pxe"},
	{"Intel(r) AMT: Force CD/DVD Boot", "CIM:CD/DVD:1", "Cd"},
}

// amtPowerRequests maps the PowerState values of RequestPowerStateChange
// (DSP1027, CIM_PowerManagementService) to the ResetType each one means
// (docs/architecture.md#backends).
var amtPowerRequests = []struct {
	value     int
	resetType string
}{
	{2, ResetOn},                // Power On
	{5, ResetPowerCycle},        // Power Cycle (Off - Soft)
	{8, ResetForceOff},          // Power Off - Soft (AMT's hard off)
	{10, ResetForceRestart},     // Master Bus Reset
	{11, ResetNmi},              // Diagnostic Interrupt (NMI)
	{12, ResetGracefulShutdown}, // Power Off - Soft Graceful
	{14, ResetGracefulRestart},  // Master Bus Reset Graceful
}

// amtResetType returns the ResetType that PowerState value v requests.
func amtResetType(v int) (string, bool) {
	for _, p := range amtPowerRequests {
		if p.value == v {
			return p.resetType, true
		}
	}
	return "", false
}

// amtAvailable returns AvailableRequestedPowerStates for a machine that
// offers resetTypes, ascending.
func amtAvailable(resetTypes []string) []int {
	var out []int
	for _, p := range amtPowerRequests {
		if slices.Contains(resetTypes, p.resetType) {
			out = append(out, p.value)
		}
	}
	slices.Sort(out)
	return out
}

// amtPowerState is the PowerState AMT reports for a machine in state,
// settling in target if moving. AMT has no transitional states: the report
// stays on the state the machine is leaving until its transition settles
// (2 On, 8 Off-Soft), and a transition that ends On (a power-on or a
// restart) reads Off from its start. So a client sees the target of its
// command exactly when the machine stops carrying it out.
func amtPowerState(state, target string, moving bool) int {
	if moving {
		if target == PowerOn {
			return 8
		}
		return 2
	}
	if state == PowerOn || state == PowerPoweringOff {
		return 2
	}
	return 8
}

// ReturnValues of CIM methods (CIM_PowerManagementService.RequestPowerStateChange
// ValueMap; the boot methods use the low ones).
const (
	rvCompleted          = 0
	rvNotSupported       = 1
	rvFailed             = 2 // Unknown or Unspecified Error
	rvInvalidParameter   = 5
	rvJobStarted         = 4096
	rvBusy               = 4099
	jobStateRunning      = 4
	jobStateCompleted    = 7
	jobStateTerminated   = 8
	jobStateException    = 10
	bootRoleNextOnlyOnce = 1 // CIM_BootService.SetBootConfigRole Role IsNextSingleUse
)

// AMTConfig configures the AMT front of one machine. Zero fields take the
// defaults.
type AMTConfig struct {
	User, Password string        // Digest credentials, default "admin" / "password"
	Realm          string        // default "Digest:" + 32 hex digits derived from the machine id
	NonceTTL       time.Duration // how long a nonce is accepted, default 5m; then 401 with stale="true"
	// Jobs makes RequestPowerStateChange answer 4096 (job started) with a
	// CIM_ConcreteJob that is Running until the transition settles
	// (Completed), fails (Exception) or is superseded (Terminated).
	Jobs bool
}

// AMTStats counts what an AMT front received.
type AMTStats struct {
	Requests     int            // HTTP requests
	Unauthorized int            // answered 401
	Faults       int            // answered with a SOAP fault
	Actions      map[string]int // authenticated WS-Man requests by action (last URI segment: "Enumerate", "RequestPowerStateChange", ...)
}

// AMTFront serves one machine's Intel AMT WS-Man endpoint at /wsman. It is
// an http.Handler, safe for concurrent use.
//
// Faults of the machine show as AMT shows failures: FailFirst answers
// RequestPowerStateChange with ReturnValue 2 and with a SOAP fault in turn
// (the first failure as 2, the second as a fault, ...); Ignore answers 0 and
// does nothing; Hang delays the answer; RefuseOnWithin answers 4099 (Busy);
// NeverFinishSoftOff accepts 12 and 14 and the machine stays On. With Jobs,
// failures end the job in Exception instead.
type AMTFront struct {
	m   *Machine
	cfg AMTConfig
	log *slog.Logger
	wg  sync.WaitGroup // job followers

	mu        sync.Mutex
	stats     AMTStats
	msgSeq    uint64
	nonces    map[string]*amtNonce
	enums     map[string]*amtEnumeration
	enumSeq   uint64
	jobs      map[string]*amtJob
	jobOrder  []string
	jobSeq    int
	failures  int // FailFirst failures answered so far
	requested int // RequestedPowerState: the last value requested, 0 before any
	settings  map[string]string
}

type amtNonce struct {
	created time.Time
	used    map[int]struct{} // nc values seen (replays are refused)
}

type amtEnumeration struct {
	items   []xel
	expires time.Time
}

type amtJob struct {
	id, action string
	state      int
	errText    string
}

// NewAMTFront returns the AMT front of m. A nil logger discards logs.
func NewAMTFront(m *Machine, cfg AMTConfig, log *slog.Logger) *AMTFront {
	if cfg.User == "" {
		cfg.User = "admin"
	}
	if cfg.Password == "" {
		cfg.Password = "password"
	}
	if cfg.Realm == "" {
		sum := sha1.Sum([]byte("fishgate-bmcsim-amt/" + m.ID()))
		cfg.Realm = "Digest:" + strings.ToUpper(hex.EncodeToString(sum[:16]))
	}
	if cfg.NonceTTL <= 0 {
		cfg.NonceTTL = defaultAMTNonceTTL
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &AMTFront{
		m: m, cfg: cfg, log: log,
		stats:  AMTStats{Actions: map[string]int{}},
		nonces: map[string]*amtNonce{},
		enums:  map[string]*amtEnumeration{},
		jobs:   map[string]*amtJob{},
		settings: map[string]string{
			"BIOSPause": "false", "BIOSSetup": "false", "BootMediaIndex": "0",
			"ConfigurationDataReset": "false", "FirmwareVerbosity": "0", "ForcedProgressEvents": "false",
			"IDERBootDevice": "0", "LockKeyboard": "false", "LockPowerButton": "false",
			"LockResetButton": "false", "LockSleepButton": "false", "ReflashBIOS": "false",
			"UseIDER": "false", "UseSOL": "false", "UseSafeMode": "false", "UserPasswordBypass": "false",
		},
	}
}

// Stats returns what the front received so far.
func (f *AMTFront) Stats() AMTStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	s.Actions = make(map[string]int, len(f.stats.Actions))
	for k, v := range f.stats.Actions {
		s.Actions[k] = v
	}
	return s
}

// Wait waits for the followers of jobs; call it after closing the machine.
func (f *AMTFront) Wait() { f.wg.Wait() }

func (f *AMTFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.stats.Requests++
	f.mu.Unlock()
	if r.URL.Path != amtPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if r.Header.Get("Authorization") == "" && isIdentify(body) {
		f.identify(w)
		return
	}
	if status := f.authenticate(w, r); status != 0 {
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "application/soap+xml" && mt != "text/xml" && mt != "application/xml") {
			http.Error(w, "want Content-Type application/soap+xml", http.StatusUnsupportedMediaType)
			return
		}
	}
	req, err := parseRequest(body)
	if err != nil {
		f.writeFault(w, req, senderFault("w:SchemaValidationError", "%v", err))
		return
	}
	f.mu.Lock()
	f.stats.Actions[req.Action[strings.LastIndex(req.Action, "/")+1:]]++
	f.mu.Unlock()
	if req.Body != nil && req.Body.XMLName.Space == wsman.NSWSMID && req.Body.XMLName.Local == "Identify" {
		f.identify(w)
		return
	}
	action, resp, fault := f.dispatch(r.Context(), req)
	if fault != nil {
		f.writeFault(w, req, fault)
		return
	}
	f.write(w, http.StatusOK, encodeResponse(req, f.messageID(), action, resp...))
}

// dispatch carries out one authenticated request: the response's action and
// body, or a fault.
func (f *AMTFront) dispatch(ctx context.Context, req request) (string, []xel, *soapFault) {
	if req.ResourceURI == "" && req.Action != wsman.ActionPull && req.Action != wsman.ActionRelease {
		return "", nil, senderFault("w:InvalidParameter", "no ResourceURI in the SOAP header")
	}
	switch req.Action {
	case wsman.ActionGet:
		inst, fault := f.instance(req.ResourceURI, req.Selectors)
		if fault != nil {
			return "", nil, fault
		}
		return wsman.ActionGet + "Response", []xel{inst.render()}, nil
	case wsman.ActionPut:
		return f.put(req)
	case wsman.ActionEnumerate:
		return f.enumerate(req)
	case wsman.ActionPull:
		return f.pull(req)
	case wsman.ActionRelease:
		ctxID := req.Body.Child(wsman.NSWSEN, "EnumerationContext").Text()
		f.mu.Lock()
		_, ok := f.enums[ctxID]
		delete(f.enums, ctxID)
		f.mu.Unlock()
		if !ok {
			return "", nil, senderFault("n:InvalidEnumerationContext", "no enumeration context %q", ctxID)
		}
		return wsman.ActionRelease + "Response", nil, nil
	case wsman.URIPowerService + "/RequestPowerStateChange":
		return f.requestPowerStateChange(ctx, req)
	case wsman.URIBootConfig + "/ChangeBootOrder":
		return f.changeBootOrder(req)
	case wsman.URIBootService + "/SetBootConfigRole":
		return f.setBootConfigRole(req)
	}
	if _, ok := f.class(req.ResourceURI); !ok {
		return "", nil, senderFault("a:DestinationUnreachable", "no resource %s", req.ResourceURI)
	}
	return "", nil, senderFault("a:ActionNotSupported", "action %s is not supported", req.Action)
}

// ---- authentication (RFC 7616) ----

// authenticate checks the Digest credentials of r. It answers and returns
// the HTTP status when they are missing or wrong, else returns 0.
func (f *AMTFront) authenticate(w http.ResponseWriter, r *http.Request) int {
	h := r.Header.Get("Authorization")
	if h == "" || !digest.IsDigest(h) {
		return f.challenge(w, false)
	}
	cred, err := digest.ParseCredentials(h)
	if err != nil {
		return f.challenge(w, false)
	}
	if cred.URI != r.URL.RequestURI() {
		http.Error(w, "digest uri does not match the request", http.StatusBadRequest)
		return http.StatusBadRequest
	}
	if cred.Username != f.cfg.User || cred.Realm != f.cfg.Realm || cred.QOP != "auth" || cred.Cnonce == "" ||
		cred.Nc <= 0 || (cred.Algorithm != "" && !strings.EqualFold(cred.Algorithm, "MD5")) {
		return f.challenge(w, false)
	}
	ha1 := md5hex(f.cfg.User + ":" + f.cfg.Realm + ":" + f.cfg.Password)
	ha2 := md5hex(r.Method + ":" + cred.URI)
	want := md5hex(fmt.Sprintf("%s:%s:%08x:%s:%s:%s", ha1, cred.Nonce, cred.Nc, cred.Cnonce, cred.QOP, ha2))
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(cred.Response))) != 1 {
		return f.challenge(w, false)
	}
	f.mu.Lock()
	n, known := f.nonces[cred.Nonce]
	stale := known && time.Since(n.created) > f.cfg.NonceTTL
	replay := false
	if known && !stale {
		_, replay = n.used[cred.Nc]
		if !replay {
			n.used[cred.Nc] = struct{}{}
			stale = len(n.used) > amtMaxNonceUses
		}
	}
	f.mu.Unlock()
	if !known || replay || stale {
		return f.challenge(w, stale)
	}
	return 0
}

// challenge answers 401 with a fresh nonce, in AMT's exact format.
func (f *AMTFront) challenge(w http.ResponseWriter, stale bool) int {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	nonce := hex.EncodeToString(b)
	now := time.Now()
	f.mu.Lock()
	f.stats.Unauthorized++
	if len(f.nonces) >= amtMaxNonces {
		for k, n := range f.nonces {
			if now.Sub(n.created) > f.cfg.NonceTTL {
				delete(f.nonces, k)
			}
		}
		for len(f.nonces) >= amtMaxNonces {
			oldest, at := "", now
			for k, n := range f.nonces {
				if !n.created.After(at) {
					oldest, at = k, n.created
				}
			}
			delete(f.nonces, oldest)
		}
	}
	f.nonces[nonce] = &amtNonce{created: now, used: map[int]struct{}{}}
	f.mu.Unlock()
	w.Header().Set("WWW-Authenticate",
		fmt.Sprintf(`Digest realm="%s", nonce="%s", stale="%t", qop="auth"`, f.cfg.Realm, nonce, stale))
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = io.WriteString(w, "<html><head><title>401 Unauthorized</title></head><body>401 Unauthorized</body></html>\n")
	return http.StatusUnauthorized
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s)) //nolint:gosec // Digest MD5, see import
	return hex.EncodeToString(sum[:])
}

// ---- responses ----

func (f *AMTFront) messageID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgSeq++
	return fmt.Sprintf("uuid:00000000-8086-8086-8086-%012X", f.msgSeq)
}

func (f *AMTFront) write(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", wsman.ContentType)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (f *AMTFront) writeFault(w http.ResponseWriter, req request, fault *soapFault) {
	f.mu.Lock()
	f.stats.Faults++
	f.mu.Unlock()
	f.log.Debug("AMT fault", "action", req.Action, "fault", fault.Error())
	f.write(w, fault.Status, encodeFault(req, f.messageID(), fault))
}

// isIdentify reports whether body is a WS-Management Identify request
// (DSP0226 §11), which AMT answers without authentication.
func isIdentify(body []byte) bool {
	req, err := parseRequest(body)
	return err == nil && req.Body != nil && req.Body.XMLName.Space == wsman.NSWSMID && req.Body.XMLName.Local == "Identify"
}

func (f *AMTFront) identify(w http.ResponseWriter) {
	resp := el("i:IdentifyResponse",
		elText("i:ProtocolVersion", wsman.NSWSMan),
		elText("i:ProductVendor", "Intel Corporation"),
		elText("i:ProductVersion", "AMT 11.8 (fishgate bmcsim)"),
		elText("i:DASHVersion", "1.0.0"),
	).withNS("i", wsman.NSWSMID)
	f.write(w, http.StatusOK, encodeResponse(request{}, f.messageID(), wsman.NSWSMID+"/IdentifyResponse", resp))
}

// ---- CIM instances ----

// cimProp is one property of a CIM instance: one or more values (arrays
// repeat the element), or an endpoint reference.
type cimProp struct {
	name   string
	values []string
	ref    *wsman.EPR
}

func prop(name string, values ...string) cimProp { return cimProp{name: name, values: values} }

// cimInstance is one instance of a class served by the front.
type cimInstance struct {
	class, uri string
	keys       []wsman.Selector
	props      []cimProp
}

func (c cimInstance) epr() wsman.EPR { return wsman.EPR{ResourceURI: c.uri, Selectors: c.keys} }

// render writes the instance as AMT does: keys and properties, sorted by
// name, in the class's own namespace.
func (c cimInstance) render() xel {
	props := slices.Clone(c.props)
	for _, k := range c.keys {
		props = append(props, prop(k.Name, k.Value))
	}
	sort.SliceStable(props, func(i, j int) bool { return props[i].name < props[j].name })
	e := el("h:"+c.class).withNS("h", c.uri)
	for _, p := range props {
		if p.ref != nil {
			e.Kids = append(e.Kids, el("h:"+p.name, eprKids(*p.ref)...))
			continue
		}
		for _, v := range p.values {
			e.Kids = append(e.Kids, elText("h:"+p.name, v))
		}
	}
	return e
}

func systemKeys(name string) []wsman.Selector {
	return []wsman.Selector{{Name: "CreationClassName", Value: "CIM_ComputerSystem"}, {Name: "Name", Value: name}}
}

func serviceKeys(class, name string) []wsman.Selector {
	return []wsman.Selector{{Name: "CreationClassName", Value: class}, {Name: "Name", Value: name},
		{Name: "SystemCreationClassName", Value: "CIM_ComputerSystem"}, {Name: "SystemName", Value: amtSystemName}}
}

// class returns the instances of the class at resource URI uri.
func (f *AMTFront) class(uri string) ([]cimInstance, bool) {
	switch uri {
	case wsman.URIComputerSystem:
		enabled := "3" // Disabled: the host is off
		if f.m.PowerState() == PowerOn {
			enabled = "2"
		}
		return []cimInstance{
			{class: "CIM_ComputerSystem", uri: uri, keys: systemKeys(amtSystemName),
				props: []cimProp{prop("ElementName", "Intel(r) AMT Subsystem"), prop("EnabledState", "2")}},
			{class: "CIM_ComputerSystem", uri: uri, keys: systemKeys(amtManagedSystem),
				props: []cimProp{prop("ElementName", "Managed System"), prop("EnabledState", enabled)}},
		}, true
	case wsman.URIPowerService:
		return []cimInstance{{class: "CIM_PowerManagementService", uri: uri,
			keys:  serviceKeys("CIM_PowerManagementService", amtPowerService),
			props: []cimProp{prop("ElementName", amtPowerService), prop("EnabledState", "2")}}}, true
	case wsman.URIPowerAssociation:
		state, target, moving := f.m.transitionTarget()
		available := amtAvailable(f.m.ResetTypes())
		values := make([]string, len(available))
		for i, v := range available {
			values[i] = strconv.Itoa(v)
		}
		f.mu.Lock()
		requested := f.requested
		f.mu.Unlock()
		svc := wsman.EPR{ResourceURI: wsman.URIPowerService, Selectors: serviceKeys("CIM_PowerManagementService", amtPowerService)}
		host := wsman.EPR{ResourceURI: wsman.URIComputerSystem, Selectors: systemKeys(amtManagedSystem)}
		return []cimInstance{{class: "CIM_AssociatedPowerManagementService", uri: uri, props: []cimProp{
			prop("AvailableRequestedPowerStates", values...),
			prop("PowerState", strconv.Itoa(amtPowerState(state, target, moving))),
			prop("RequestedPowerState", strconv.Itoa(requested)),
			{name: "ServiceProvided", ref: &svc},
			{name: "UserOfService", ref: &host},
		}}}, true
	case wsman.URIBootService:
		return []cimInstance{{class: "CIM_BootService", uri: uri,
			keys:  serviceKeys("CIM_BootService", amtBootService),
			props: []cimProp{prop("ElementName", amtBootService), prop("EnabledState", "2")}}}, true
	case wsman.URIBootConfig:
		return []cimInstance{{class: "CIM_BootConfigSetting", uri: uri,
			keys:  []wsman.Selector{{Name: "InstanceID", Value: amtBootConfig}},
			props: []cimProp{prop("ElementName", "Intel(r) AMT: Boot Configuration")}}}, true
	case wsman.URIBootSource:
		var out []cimInstance
		for _, s := range amtBootSources {
			out = append(out, cimInstance{class: "CIM_BootSourceSetting", uri: uri,
				keys: []wsman.Selector{{Name: "InstanceID", Value: s.id}},
				props: []cimProp{prop("ElementName", s.id), prop("FailThroughSupported", "2"),
					prop("StructuredBootString", s.structured)}})
		}
		return out, true
	case wsman.URIBootSettingData:
		f.mu.Lock()
		props := []cimProp{prop("ElementName", "Intel(r) AMT Boot Configuration Settings"), prop("OwningEntity", "Intel(r) AMT")}
		for k, v := range f.settings {
			props = append(props, prop(k, v))
		}
		f.mu.Unlock()
		return []cimInstance{{class: "AMT_BootSettingData", uri: uri,
			keys: []wsman.Selector{{Name: "InstanceID", Value: amtBootSettingData}}, props: props}}, true
	case wsman.URIConcreteJob:
		f.mu.Lock()
		defer f.mu.Unlock()
		var out []cimInstance
		for _, id := range f.jobOrder {
			j := f.jobs[id]
			props := []cimProp{prop("ElementName", "RequestPowerStateChange "+j.action), prop("JobState", strconv.Itoa(j.state)),
				prop("Name", "Intel(r) AMT Power Job")}
			if j.errText != "" {
				props = append(props, prop("ErrorDescription", j.errText))
			}
			out = append(out, cimInstance{class: "CIM_ConcreteJob", uri: uri, keys: []wsman.Selector{{Name: "InstanceID", Value: j.id}}, props: props})
		}
		return out, true
	}
	return nil, false
}

// instance finds the instance of uri that sels address: every selector
// given must match a key; none given is fine for a class with one instance.
func (f *AMTFront) instance(uri string, sels []wsman.Selector) (cimInstance, *soapFault) {
	all, ok := f.class(uri)
	if !ok {
		return cimInstance{}, senderFault("a:DestinationUnreachable", "no resource %s", uri)
	}
	var found []cimInstance
	for _, c := range all {
		if matches(c.epr(), sels) {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		return cimInstance{}, senderFault("w:InvalidSelectors", "selectors %v address %d instances of %s", sels, len(found), uri)
	}
	return found[0], nil
}

// matches reports whether every selector of sels has the value ref's key of
// that name has.
func matches(ref wsman.EPR, sels []wsman.Selector) bool {
	for _, s := range sels {
		if v, ok := ref.Lookup(s.Name); !ok || v != s.Value {
			return false
		}
	}
	return true
}

// ---- WS-Transfer Put ----

func (f *AMTFront) put(req request) (string, []xel, *soapFault) {
	if req.ResourceURI != wsman.URIBootSettingData {
		if _, ok := f.class(req.ResourceURI); !ok {
			return "", nil, senderFault("a:DestinationUnreachable", "no resource %s", req.ResourceURI)
		}
		return "", nil, senderFault("a:ActionNotSupported", "Put is not supported on %s", req.ResourceURI)
	}
	if _, fault := f.instance(req.ResourceURI, req.Selectors); fault != nil {
		return "", nil, fault
	}
	if req.Body == nil || req.Body.XMLName.Local != "AMT_BootSettingData" || req.Body.XMLName.Space != wsman.URIBootSettingData {
		return "", nil, senderFault("w:SchemaValidationError", "Put wants an AMT_BootSettingData body")
	}
	f.mu.Lock()
	for _, c := range req.Body.Children {
		if _, known := f.settings[c.XMLName.Local]; known {
			f.settings[c.XMLName.Local] = c.Text()
		}
	}
	f.mu.Unlock()
	inst, fault := f.instance(req.ResourceURI, nil)
	if fault != nil {
		return "", nil, fault
	}
	return wsman.ActionPut + "Response", []xel{inst.render()}, nil
}

// ---- WS-Enumeration ----

func (f *AMTFront) enumerate(req request) (string, []xel, *soapFault) {
	if req.Body == nil || req.Body.XMLName.Space != wsman.NSWSEN || req.Body.XMLName.Local != "Enumerate" {
		return "", nil, senderFault("w:SchemaValidationError", "Enumerate wants an Enumerate body")
	}
	all, ok := f.class(req.ResourceURI)
	if !ok {
		return "", nil, senderFault("a:DestinationUnreachable", "no resource %s", req.ResourceURI)
	}
	mode := req.Body.Child(wsman.NSWSMan, "EnumerationMode").Text()
	var items []xel
	for _, c := range all {
		switch mode {
		case "":
			items = append(items, c.render())
		case "EnumerateEPR", "EnumerateObjectAndEPR":
			if len(c.keys) == 0 {
				return "", nil, senderFault("w:UnsupportedFeature", "EnumerationMode %s is not supported on %s", mode, req.ResourceURI)
			}
			ref := el("a:EndpointReference", eprKids(c.epr())...)
			if mode == "EnumerateEPR" {
				items = append(items, ref)
			} else {
				items = append(items, el("w:Item", c.render(), ref))
			}
		default:
			return "", nil, senderFault("w:UnsupportedFeature", "EnumerationMode %q", mode)
		}
	}
	f.mu.Lock()
	f.enumSeq++
	id := fmt.Sprintf("%08X-0000-0000-0000-000000000000", f.enumSeq)
	f.mu.Unlock()
	resp := el("n:EnumerateResponse", elText("n:EnumerationContext", id))
	if req.Body.Child(wsman.NSWSMan, "OptimizeEnumeration") != nil {
		n := maxElements(req.Body.Child(wsman.NSWSMan, "MaxElements"))
		batch := items[:min(n, len(items))]
		items = items[len(batch):]
		resp.Kids = append(resp.Kids, el("w:Items", batch...))
		if len(items) == 0 {
			resp.Kids = append(resp.Kids, el("w:EndOfSequence"))
			return wsman.ActionEnumerate + "Response", []xel{resp}, nil
		}
	}
	f.keepEnumeration(id, items)
	return wsman.ActionEnumerate + "Response", []xel{resp}, nil
}

// maxElements reads a MaxElements element; absent or bad means 1 (WS-Enumeration).
func maxElements(n *wsman.Node) int {
	v, err := strconv.Atoi(n.Text())
	if err != nil || v < 1 {
		return 1
	}
	return v
}

// keepEnumeration stores the items still to pull under id, dropping
// expired contexts and then the oldest beyond the limit.
func (f *AMTFront) keepEnumeration(id string, items []xel) {
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, e := range f.enums {
		if now.After(e.expires) {
			delete(f.enums, k)
		}
	}
	for len(f.enums) >= amtMaxEnumerations {
		oldest := ""
		for k, e := range f.enums {
			if oldest == "" || e.expires.Before(f.enums[oldest].expires) {
				oldest = k
			}
		}
		delete(f.enums, oldest)
	}
	f.enums[id] = &amtEnumeration{items: items, expires: now.Add(amtEnumerationTTL)}
}

func (f *AMTFront) pull(req request) (string, []xel, *soapFault) {
	if req.Body == nil || req.Body.XMLName.Space != wsman.NSWSEN || req.Body.XMLName.Local != "Pull" {
		return "", nil, senderFault("w:SchemaValidationError", "Pull wants a Pull body")
	}
	id := req.Body.Child(wsman.NSWSEN, "EnumerationContext").Text()
	n := maxElements(req.Body.Child("", "MaxElements"))
	f.mu.Lock()
	e, ok := f.enums[id]
	var batch []xel
	done := false
	if ok {
		batch = e.items[:min(n, len(e.items))]
		e.items = e.items[len(batch):]
		e.expires = time.Now().Add(amtEnumerationTTL)
		if done = len(e.items) == 0; done {
			delete(f.enums, id)
		}
	}
	f.mu.Unlock()
	if !ok {
		return "", nil, senderFault("n:InvalidEnumerationContext", "no enumeration context %q", id)
	}
	resp := el("n:PullResponse")
	if !done {
		resp.Kids = append(resp.Kids, elText("n:EnumerationContext", id))
	}
	resp.Kids = append(resp.Kids, el("n:Items", batch...))
	if done {
		resp.Kids = append(resp.Kids, el("n:EndOfSequence"))
	}
	return wsman.ActionPull + "Response", []xel{resp}, nil
}

// ---- methods ----

// methodInput returns the METHOD_INPUT body of an invoke of uri, or a fault.
func methodInput(req request, uri, method string) (*wsman.Node, *soapFault) {
	if req.ResourceURI != uri {
		return nil, senderFault("a:ActionNotSupported", "action %s does not belong to resource %s", req.Action, req.ResourceURI)
	}
	if req.Body == nil || req.Body.XMLName.Space != uri || req.Body.XMLName.Local != method+"_INPUT" {
		return nil, senderFault("w:SchemaValidationError", "%s wants a %s_INPUT body in namespace %s", method, method, uri)
	}
	return req.Body, nil
}

// methodOutput renders METHOD_OUTPUT with a ReturnValue and more parameters.
func methodOutput(uri, method string, rv int, more ...xel) []xel {
	out := el("h:"+method+"_OUTPUT", elText("h:ReturnValue", strconv.Itoa(rv))).withNS("h", uri)
	out.Kids = append(out.Kids, more...)
	return []xel{out}
}

// requestPowerStateChange is CIM_PowerManagementService.RequestPowerStateChange
// (DSP1027 §8.2): the service may be addressed by its selectors in the
// header (as MAAS's wsman does) or not at all (one service; as iamt does);
// ManagedElement must reference the host's CIM_ComputerSystem.
func (f *AMTFront) requestPowerStateChange(ctx context.Context, req request) (string, []xel, *soapFault) {
	const method = "RequestPowerStateChange"
	in, fault := methodInput(req, wsman.URIPowerService, method)
	if fault != nil {
		return "", nil, fault
	}
	if _, fault := f.instance(wsman.URIPowerService, req.Selectors); fault != nil {
		return "", nil, fault
	}
	action := req.Action + "Response"
	reply := func(rv int, more ...xel) (string, []xel, *soapFault) {
		return action, methodOutput(wsman.URIPowerService, method, rv, more...), nil
	}
	value, err := strconv.Atoi(in.Child(wsman.URIPowerService, "PowerState").Text())
	if err != nil {
		return reply(rvInvalidParameter)
	}
	ref, ok := wsman.ReadEPR(in.Child(wsman.URIPowerService, "ManagedElement"))
	if name, _ := ref.Lookup("Name"); !ok || ref.ResourceURI != wsman.URIComputerSystem || name != amtManagedSystem {
		return reply(rvInvalidParameter)
	}
	if ccn, ok := ref.Lookup("CreationClassName"); ok && ccn != "CIM_ComputerSystem" {
		return reply(rvInvalidParameter)
	}
	resetType, ok := amtResetType(value)
	if !ok {
		return reply(rvNotSupported)
	}
	label := fmt.Sprintf("%s (%d)", resetType, value)
	f.mu.Lock()
	f.requested = value
	f.mu.Unlock()

	if f.cfg.Jobs {
		ch, err := f.m.resetAsyncAs(context.Background(), protocolAMT, resetType, label)
		if err != nil {
			return f.powerError(err, reply)
		}
		id := f.newJob(label)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			o := <-ch
			f.finishJob(id, o)
		}()
		job := wsman.EPR{ResourceURI: wsman.URIConcreteJob, Selectors: []wsman.Selector{{Name: "InstanceID", Value: id}}}
		return reply(rvJobStarted, el("h:Job", eprKids(job)...))
	}
	if err := f.m.resetAs(ctx, protocolAMT, resetType, label); err != nil {
		return f.powerError(err, reply)
	}
	return reply(rvCompleted)
}

// powerError turns a machine's refusal into what AMT answers.
func (f *AMTFront) powerError(err error, reply func(int, ...xel) (string, []xel, *soapFault)) (string, []xel, *soapFault) {
	switch {
	case errors.Is(err, ErrUnsupportedResetType):
		return reply(rvNotSupported)
	case errors.Is(err, ErrPowerOnRefused):
		return reply(rvBusy)
	case errors.Is(err, ErrSimulatedFailure):
		f.mu.Lock()
		f.failures++
		asFault := f.failures%2 == 0
		f.mu.Unlock()
		if asFault {
			return "", nil, receiverFault("w:InternalError", "%v", err)
		}
		return reply(rvFailed)
	}
	return "", nil, receiverFault("w:InternalError", "%v", err)
}

func (f *AMTFront) newJob(action string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobSeq++
	id := fmt.Sprintf("Intel(r) AMT:PowerJob %d", f.jobSeq)
	f.jobs[id] = &amtJob{id: id, action: action, state: jobStateRunning}
	f.jobOrder = append(f.jobOrder, id)
	if len(f.jobOrder) > amtMaxJobs {
		delete(f.jobs, f.jobOrder[0])
		f.jobOrder = f.jobOrder[1:]
	}
	return id
}

func (f *AMTFront) finishJob(id string, o Outcome) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return
	}
	switch {
	case o.Err != nil:
		j.state, j.errText = jobStateException, o.Err.Error()
	case o.Superseded:
		j.state, j.errText = jobStateTerminated, "superseded by a later power command"
	default:
		j.state = jobStateCompleted
	}
}

// changeBootOrder is CIM_BootConfigSetting.ChangeBootOrder (DSP1012): Source
// names the one CIM_BootSourceSetting to boot next; no Source clears the
// override.
func (f *AMTFront) changeBootOrder(req request) (string, []xel, *soapFault) {
	const method = "ChangeBootOrder"
	in, fault := methodInput(req, wsman.URIBootConfig, method)
	if fault != nil {
		return "", nil, fault
	}
	if _, fault := f.instance(wsman.URIBootConfig, req.Selectors); fault != nil {
		return "", nil, fault
	}
	action := req.Action + "Response"
	src := in.Child(wsman.URIBootConfig, "Source")
	boot := Boot{Target: "None", Enabled: "Disabled"}
	if src != nil {
		ref, ok := wsman.ReadEPR(src)
		id, _ := ref.Lookup("InstanceID")
		boot = Boot{}
		for _, s := range amtBootSources {
			if ok && ref.ResourceURI == wsman.URIBootSource && s.id == id {
				boot = Boot{Target: s.target, Enabled: "Once"}
			}
		}
		if boot.Target == "" {
			return action, methodOutput(wsman.URIBootConfig, method, rvInvalidParameter), nil
		}
	}
	if err := f.m.SetBoot(protocolAMT, boot); err != nil {
		return "", nil, receiverFault("w:InternalError", "%v", err)
	}
	return action, methodOutput(wsman.URIBootConfig, method, rvCompleted), nil
}

// setBootConfigRole is CIM_BootService.SetBootConfigRole (DSP1012): AMT
// accepts only its one boot configuration, as IsNextSingleUse (1).
func (f *AMTFront) setBootConfigRole(req request) (string, []xel, *soapFault) {
	const method = "SetBootConfigRole"
	in, fault := methodInput(req, wsman.URIBootService, method)
	if fault != nil {
		return "", nil, fault
	}
	if _, fault := f.instance(wsman.URIBootService, req.Selectors); fault != nil {
		return "", nil, fault
	}
	action := req.Action + "Response"
	ref, ok := wsman.ReadEPR(in.Child(wsman.URIBootService, "BootConfigSetting"))
	id, _ := ref.Lookup("InstanceID")
	role, err := strconv.Atoi(in.Child(wsman.URIBootService, "Role").Text())
	if !ok || ref.ResourceURI != wsman.URIBootConfig || id != amtBootConfig || err != nil || role != bootRoleNextOnlyOnce {
		return action, methodOutput(wsman.URIBootService, method, rvInvalidParameter), nil
	}
	return action, methodOutput(wsman.URIBootService, method, rvCompleted), nil
}

// transitionTarget returns the machine's power state, and the steady state
// its transition under way settles in (moving is false when none is).
func (m *Machine) transitionTarget() (state, target string, moving bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.steps) == 0 {
		return m.state, m.state, false
	}
	return m.state, m.steps[len(m.steps)-1].State, true
}

// ---- a Node's AMT listener ----

// amtListener is a Node's AMT front on its own listener.
type amtListener struct {
	front  *AMTFront
	server *http.Server
	url    string
	addr   string // the address it listens on
	served chan struct{}
}

// startAMT starts the AMT front of a node on spec.AMTListen, serving HTTPS
// when spec.TLS (its certificate is added to roots).
func startAMT(spec NodeSpec, m *Machine, log *slog.Logger, roots *x509.CertPool) (*amtListener, error) {
	ln, err := net.Listen("tcp", spec.AMTListen)
	if err != nil {
		return nil, fmt.Errorf("AMT front: %w", err)
	}
	scheme := "http"
	if spec.TLS {
		cert, _, err := selfSignedCert(ln.Addr())
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("AMT front: %w", err)
		}
		roots.AddCert(cert.Leaf)
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	a := &amtListener{
		front:  NewAMTFront(m, AMTConfig{User: spec.User, Password: spec.Password}, log),
		url:    scheme + "://" + dialAddr(ln.Addr()),
		addr:   ln.Addr().String(),
		served: make(chan struct{}),
	}
	a.server = &http.Server{
		Handler:           a.front,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(a.served)
		if err := a.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("AMT front stopped", "err", err)
		}
	}()
	log.Info("AMT front started", "url", a.url+amtPath)
	return a, nil
}

// close stops the listener (nil-safe).
func (a *amtListener) close() error {
	if a == nil {
		return nil
	}
	err := a.server.Close()
	<-a.served
	return err
}

// wait waits for the front's job followers (nil-safe); after the machine closed.
func (a *amtListener) wait() {
	if a != nil {
		a.front.Wait()
	}
}

// AMTURL returns the base URL of the node's AMT front, e.g.
// "http://127.0.0.1:41235" (WS-Man is at /wsman), or "" when NodeSpec.AMTListen
// was empty.
func (n *Node) AMTURL() string {
	if n.amt == nil {
		return ""
	}
	return n.amt.url
}

// AMT returns the node's AMT front, nil when it has none.
func (n *Node) AMT() *AMTFront {
	if n.amt == nil {
		return nil
	}
	return n.amt.front
}
