package simulator

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fixed URIs of the Redfish service (DSP0266 "Resource URI patterns").
const (
	rootPath        = "/redfish/v1"
	systemsPath     = rootPath + "/Systems"
	managersPath    = rootPath + "/Managers"
	managerPath     = managersPath + "/BMC"
	sessionSvcPath  = rootPath + "/SessionService"
	sessionsPath    = sessionSvcPath + "/Sessions"
	taskSvcPath     = rootPath + "/TaskService"
	tasksPath       = taskSvcPath + "/Tasks"
	resetActionName = "ComputerSystem.Reset"
	protocolRedfish = "redfish"
)

const (
	sessionTimeout = 30 * time.Minute // SessionService.SessionTimeout: idle sessions expire
	maxBodyBytes   = 1 << 20
	maxTasks       = 1000 // tasks kept; the oldest go first
)

// redfishFront is the Redfish service of one node: it authenticates, renders
// resources from its Machine and turns Reset and PATCH into Machine calls.
type redfishFront struct {
	spec       NodeSpec
	m          *Machine
	log        *slog.Logger
	systemPath string
	uuid       string
	handler    http.Handler
	wg         sync.WaitGroup // task followers

	mu          sync.Mutex
	password    string              // spec.Password until setPassword
	sessions    map[string]*session // by token
	nextSession int
	tasks       map[string]*task // by id
	taskOrder   []string
	nextTask    int
}

type session struct {
	id, token, user string
	lastUsed        time.Time
}

// task is a Redfish Task (Task v1_x) following one asynchronous Reset.
type task struct {
	id, resetType string
	state, status string // TaskState, TaskStatus
	start, end    time.Time
	messages      []message
}

func newRedfishFront(spec NodeSpec, m *Machine, log *slog.Logger) *redfishFront {
	f := &redfishFront{
		spec:       spec,
		m:          m,
		log:        log,
		systemPath: systemsPath + "/" + spec.SystemID,
		uuid:       nameUUID(spec.ID),
		password:   spec.Password,
		sessions:   map[string]*session{},
		tasks:      map[string]*task{},
	}
	mux := http.NewServeMux()
	route := func(path string, h methods) { mux.Handle(path, h) }
	route("/redfish", methods{"GET": func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"v1": rootPath + "/"})
	}})
	route(rootPath, methods{"GET": f.getServiceRoot})
	route(rootPath+"/odata", methods{"GET": f.getODataService})
	route(rootPath+"/$metadata", methods{"GET": f.getMetadata})
	route(systemsPath, methods{"GET": f.getSystems})
	route(f.systemPath, methods{"GET": f.getSystem, "PATCH": f.patchSystem})
	route(f.systemPath+"/Actions/"+resetActionName, methods{"POST": f.postReset})
	route(managersPath, methods{"GET": f.getManagers})
	route(managerPath, methods{"GET": f.getManager})
	route(sessionSvcPath, methods{"GET": f.getSessionService})
	route(sessionsPath, methods{"GET": f.getSessions, "POST": f.postSession})
	route(sessionsPath+"/{id}", methods{"GET": f.getSession, "DELETE": f.deleteSession})
	if spec.AsyncReset {
		route(taskSvcPath, methods{"GET": f.getTaskService})
		route(tasksPath, methods{"GET": f.getTasks})
		route(tasksPath+"/{id}", methods{"GET": f.getTask})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, msgResourceMissingAtURI(r.URL.Path))
	})
	f.handler = f.normalize(f.authenticate(mux))
	return f
}

// nameUUID derives a stable name-based UUID (RFC 9562 version 5 layout)
// from a node id, so a node keeps its UUID across runs.
func nameUUID(id string) string {
	sum := sha1.Sum([]byte("fishgate-bmcsim/" + id))
	u := sum[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func (f *redfishFront) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.handler.ServeHTTP(w, r) }

// wait waits for the task followers; call after the machine closed.
func (f *redfishFront) wait() { f.wg.Wait() }

// methods dispatches on the HTTP method, answering 405 with a Redfish error
// and an Allow header otherwise. HEAD is served by GET.
type methods map[string]http.HandlerFunc

func (ms methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, ok := ms[r.Method]
	if !ok && r.Method == http.MethodHead {
		h, ok = ms[http.MethodGet]
	}
	if !ok {
		w.Header().Set("Allow", strings.Join(slices.Sorted(maps.Keys(ms)), ", "))
		writeError(w, http.StatusMethodNotAllowed, msgOperationNotAllowed())
		return
	}
	h(w, r)
}

// normalize drops a trailing slash: DSP0266 lets clients name a resource
// with or without one.
func (f *redfishFront) normalize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
			r2 := *r
			u := *r.URL
			u.Path, u.RawPath = strings.TrimRight(p, "/"), ""
			r2.URL = &u
			r = &r2
		}
		// A gateway's X-Request-Id goes into the command log with the
		// command it carried (Command.RequestID).
		if id := r.Header.Get("X-Request-Id"); id != "" {
			r = r.WithContext(withRequestID(r.Context(), id))
		}
		next.ServeHTTP(w, r)
	})
}

// authenticate lets through the unauthenticated URIs of DSP0266 §"Protocol
// details / Authentication" (service root, OData documents, session login)
// and requires a session token or Basic credentials for the rest.
func (f *redfishFront) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/redfish", p == rootPath, p == rootPath+"/odata", p == rootPath+"/$metadata",
			p == sessionsPath && r.Method == http.MethodPost:
			next.ServeHTTP(w, r)
			return
		}
		if f.authorized(r) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="bmcsim"`)
		writeError(w, http.StatusUnauthorized, msgNoValidSession())
	})
}

func (f *redfishFront) authorized(r *http.Request) bool {
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		f.mu.Lock()
		defer f.mu.Unlock()
		s, ok := f.sessions[tok]
		if !ok {
			return false
		}
		now := time.Now()
		if now.Sub(s.lastUsed) > sessionTimeout {
			delete(f.sessions, tok)
			return false
		}
		s.lastUsed = now
		return true
	}
	user, pass, ok := r.BasicAuth()
	return ok && f.credentialsOK(user, pass)
}

func (f *redfishFront) credentialsOK(user, pass string) bool {
	f.mu.Lock()
	want := f.password
	f.mu.Unlock()
	u := subtle.ConstantTimeCompare([]byte(user), []byte(f.spec.User))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(want))
	return u&p == 1
}

// setPassword changes the account's password and ends its sessions, as
// a BMC does (bmcweb ends a user's sessions when the password changes).
func (f *redfishFront) setPassword(pw string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.password = pw
	clear(f.sessions)
}

func odataID(path string) map[string]string { return map[string]string{"@odata.id": path} }

func collection(path, odataType, name string, members ...string) map[string]any {
	ms := make([]map[string]string, len(members))
	for i, m := range members {
		ms[i] = odataID(m)
	}
	return map[string]any{
		"@odata.id":           path,
		"@odata.type":         odataType,
		"Name":                name,
		"Members":             ms,
		"Members@odata.count": len(ms),
	}
}

func (f *redfishFront) getServiceRoot(w http.ResponseWriter, r *http.Request) {
	root := map[string]any{
		"@odata.id":      rootPath + "/",
		"@odata.type":    "#ServiceRoot.v1_5_0.ServiceRoot",
		"Id":             "RootService",
		"Name":           "Root Service",
		"RedfishVersion": "1.15.0",
		"UUID":           f.uuid,
		"Product":        "fishgate bmcsim",
		"Vendor":         "fishgate",
		"Systems":        odataID(systemsPath),
		"Managers":       odataID(managersPath),
		"SessionService": odataID(sessionSvcPath),
		"Links":          map[string]any{"Sessions": odataID(sessionsPath)},
	}
	if f.spec.AsyncReset {
		root["TaskService"] = odataID(taskSvcPath)
	}
	writeJSON(w, http.StatusOK, root)
}

func (f *redfishFront) getODataService(w http.ResponseWriter, r *http.Request) {
	type entry struct {
		Name string `json:"name"`
		Kind string `json:"kind"`
		URL  string `json:"url"`
	}
	value := []entry{
		{"Service", "Singleton", rootPath + "/"},
		{"Systems", "Singleton", systemsPath},
		{"Managers", "Singleton", managersPath},
		{"SessionService", "Singleton", sessionSvcPath},
	}
	if f.spec.AsyncReset {
		value = append(value, entry{"TaskService", "Singleton", taskSvcPath})
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": rootPath + "/$metadata", "value": value})
}

// metadata is a minimal CSDL document naming the schemas the service uses.
const metadata = `<?xml version="1.0" encoding="UTF-8"?>
<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/ServiceRoot_v1.xml"><edmx:Include Namespace="ServiceRoot.v1_5_0"/></edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/ComputerSystem_v1.xml"><edmx:Include Namespace="ComputerSystem.v1_13_0"/></edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/Manager_v1.xml"><edmx:Include Namespace="Manager.v1_10_0"/></edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/Session_v1.xml"><edmx:Include Namespace="Session.v1_3_0"/></edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/Task_v1.xml"><edmx:Include Namespace="Task.v1_6_0"/></edmx:Reference>
  <edmx:DataServices>
    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">
      <EntityContainer Name="Service" Extends="ServiceRoot.v1_5_0.ServiceContainer"/>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
`

func (f *redfishFront) getMetadata(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("OData-Version", "4.0")
	_, _ = io.WriteString(w, metadata)
}

func (f *redfishFront) getSystems(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, collection(systemsPath,
		"#ComputerSystemCollection.ComputerSystemCollection", "Computer System Collection", f.systemPath))
}

// system renders the ComputerSystem and its ETag (see bootETag).
func (f *redfishFront) system() (map[string]any, string) {
	st := f.m.Status()
	sys := map[string]any{
		"@odata.id":   f.systemPath,
		"@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
		"Id":          f.spec.SystemID,
		"Name":        f.spec.ID,
		"SystemType":  "Physical",
		"UUID":        f.uuid,
		"PowerState":  st.PowerState,
		"Status":      map[string]string{"State": "Enabled", "Health": "OK"},
		"Boot": map[string]any{
			"BootSourceOverrideTarget":                         st.Boot.Target,
			"BootSourceOverrideEnabled":                        st.Boot.Enabled,
			"BootSourceOverrideMode":                           st.Boot.Mode,
			"BootSourceOverrideTarget@Redfish.AllowableValues": bootTargets,
		},
		"Actions": map[string]any{
			"#" + resetActionName: map[string]any{
				"target":                            f.systemPath + "/Actions/" + resetActionName,
				"ResetType@Redfish.AllowableValues": f.m.ResetTypes(),
			},
		},
		"Links": map[string]any{"ManagedBy": []map[string]string{odataID(managerPath)}},
	}
	return sys, bootETag(st.Boot)
}

// bootETag is the System's weak ETag. It covers the writable properties
// (the Boot override) only, so a PATCH with If-Match fails when Boot changed
// since the client read it, not because PowerState moved on in between
// (gofish sends If-Match on every PATCH). Real BMCs often hash the whole
// body instead.
func bootETag(b Boot) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%s", b.Target, b.Enabled, b.Mode)
	return fmt.Sprintf(`W/"%016x"`, h.Sum64())
}

func (f *redfishFront) getSystem(w http.ResponseWriter, r *http.Request) {
	sys, etag := f.system()
	w.Header().Set("ETag", etag)
	writeJSON(w, http.StatusOK, sys)
}

// readObject reads a JSON object body; on failure it has answered 400.
func readObject(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, bool) {
	var obj map[string]json.RawMessage
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err == nil {
		err = json.Unmarshal(body, &obj)
	}
	if err != nil || obj == nil {
		writeError(w, http.StatusBadRequest, msgMalformedJSON())
		return nil, false
	}
	return obj, true
}

// sameETag compares entity tags weakly (RFC 9110 §8.8.3.2).
func sameETag(a, b string) bool {
	return strings.TrimPrefix(strings.TrimSpace(a), "W/") == strings.TrimPrefix(strings.TrimSpace(b), "W/")
}

// patchSystem accepts {"Boot": {...}}: the three override properties.
func (f *redfishFront) patchSystem(w http.ResponseWriter, r *http.Request) {
	if match := r.Header.Get("If-Match"); match != "" && match != "*" {
		if _, etag := f.system(); !sameETag(match, etag) {
			writeError(w, http.StatusPreconditionFailed, msgPreconditionFailed())
			return
		}
	}
	obj, ok := readObject(w, r)
	if !ok {
		return
	}
	var msgs []message
	var b Boot
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		switch {
		case strings.HasPrefix(k, "@"): // annotations such as @odata.etag
		case k == "Boot":
			var props map[string]json.RawMessage
			if err := json.Unmarshal(obj[k], &props); err != nil || props == nil {
				msgs = append(msgs, msgPropertyValueTypeError(string(obj[k]), "Boot"))
				continue
			}
			msgs = append(msgs, readBoot(props, &b)...)
		case k == "Id" || k == "Name" || k == "PowerState" || k == "UUID" || k == "Status" ||
			k == "SystemType" || k == "Actions" || k == "Links":
			msgs = append(msgs, msgPropertyNotWritable(k))
		default:
			msgs = append(msgs, msgPropertyUnknown(k))
		}
	}
	if len(msgs) > 0 {
		writeError(w, http.StatusBadRequest, msgs...)
		return
	}
	if b != (Boot{}) {
		if err := f.m.SetBoot(protocolRedfish, b); err != nil {
			f.machineError(w, err)
			return
		}
	}
	sys, etag := f.system()
	w.Header().Set("ETag", etag)
	writeJSON(w, http.StatusOK, sys)
}

// readBoot reads the Boot properties of a PATCH into b.
func readBoot(props map[string]json.RawMessage, b *Boot) []message {
	var msgs []message
	for _, k := range slices.Sorted(maps.Keys(props)) {
		var dst *string
		var allowed []string
		switch k {
		case "BootSourceOverrideTarget":
			dst, allowed = &b.Target, bootTargets
		case "BootSourceOverrideEnabled":
			dst, allowed = &b.Enabled, bootEnabledValues
		case "BootSourceOverrideMode":
			dst, allowed = &b.Mode, bootModes
		default:
			msgs = append(msgs, msgPropertyUnknown("Boot/"+k))
			continue
		}
		var v string
		if err := json.Unmarshal(props[k], &v); err != nil {
			msgs = append(msgs, msgPropertyValueTypeError(string(props[k]), "Boot/"+k))
			continue
		}
		if !slices.Contains(allowed, v) {
			msgs = append(msgs, msgPropertyValueNotInList(v, "Boot/"+k))
			continue
		}
		*dst = v
	}
	return msgs
}

// postReset runs ComputerSystem.Reset {"ResetType": ...}: 204 once the
// machine accepted it, or 202 with a Task when AsyncReset.
func (f *redfishFront) postReset(w http.ResponseWriter, r *http.Request) {
	obj, ok := readObject(w, r)
	if !ok {
		return
	}
	for k := range obj {
		if k != "ResetType" {
			writeError(w, http.StatusBadRequest, msgActionParameterUnknown(resetActionName, k))
			return
		}
	}
	raw, ok := obj["ResetType"]
	if !ok {
		writeError(w, http.StatusBadRequest, msgActionParameterMissing(resetActionName, "ResetType"))
		return
	}
	var rt string
	if err := json.Unmarshal(raw, &rt); err != nil {
		writeError(w, http.StatusBadRequest, msgActionParameterValueTypeError(string(raw), "ResetType", resetActionName))
		return
	}
	f.log.DebugContext(r.Context(), "Reset", "resetType", rt, "async", f.spec.AsyncReset)

	if !f.spec.AsyncReset {
		if err := f.m.Reset(r.Context(), protocolRedfish, rt); err != nil {
			f.resetError(w, rt, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	// The task outlives the request; Machine.Close ends the wait.
	outcome, err := f.m.ResetAsync(context.WithoutCancel(r.Context()), protocolRedfish, rt)
	if err != nil {
		f.resetError(w, rt, err)
		return
	}
	t := f.newTask(rt)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.finishTask(t.id, <-outcome)
	}()
	w.Header().Set("Location", tasksPath+"/"+t.id)
	f.mu.Lock()
	body := f.taskBody(t)
	f.mu.Unlock()
	writeJSON(w, http.StatusAccepted, body)
}

// resetError answers with the Redfish error for a failed Reset.
func (f *redfishFront) resetError(w http.ResponseWriter, resetType string, err error) {
	if errors.Is(err, ErrUnsupportedResetType) {
		writeError(w, http.StatusBadRequest, msgActionParameterValueNotInList(resetType, "ResetType", resetActionName))
		return
	}
	f.machineError(w, err)
}

// machineError answers with the Redfish error for a Machine error: the
// machine's text in a GeneralError, with a status that says whether to retry.
func (f *redfishFront) machineError(w http.ResponseWriter, err error) {
	var refused *RefusedError
	switch {
	case errors.Is(err, ErrInvalidBoot):
		writeError(w, http.StatusBadRequest, msgMachineError(err.Error()))
	case errors.As(err, &refused):
		secs := strconv.Itoa(int(math.Ceil(refused.RetryAfter.Seconds())))
		w.Header().Set("Retry-After", secs)
		writeError(w, http.StatusServiceUnavailable, msgMachineError(err.Error()), msgServiceTemporarilyUnavailable(secs))
	case errors.Is(err, ErrClosed):
		writeError(w, http.StatusServiceUnavailable, msgMachineError(err.Error()))
	default: // simulated failures, hangs cut short
		writeError(w, http.StatusInternalServerError, msgMachineError(err.Error()))
	}
}

func (f *redfishFront) newTask(resetType string) *task {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextTask++
	t := &task{id: strconv.Itoa(f.nextTask), resetType: resetType, state: "Running", status: "OK", start: time.Now()}
	f.tasks[t.id] = t
	f.taskOrder = append(f.taskOrder, t.id)
	if len(f.taskOrder) > maxTasks {
		delete(f.tasks, f.taskOrder[0])
		f.taskOrder = f.taskOrder[1:]
	}
	return t
}

// finishTask records how the task's command ended: Completed when its
// transition settled (or it was ignored: the BMC said yes), Cancelled when a
// later command took over, Exception when the machine refused or failed it.
func (f *redfishFront) finishTask(id string, o Outcome) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.tasks[id]
	if !ok {
		return
	}
	t.end = time.Now()
	switch {
	case o.Err != nil:
		t.state, t.status = "Exception", "Critical"
		t.messages = []message{msgMachineError(o.Err.Error())}
	case o.Superseded:
		t.state, t.status = "Cancelled", "Warning"
		t.messages = []message{msgMachineError(fmt.Sprintf("%s: %s superseded by a later command", f.spec.ID, t.resetType))}
	default:
		t.state, t.status = "Completed", "OK"
		t.messages = []message{msgSuccess()}
	}
}

// taskBody renders t. f.mu is held.
func (f *redfishFront) taskBody(t *task) map[string]any {
	msgs := t.messages
	if msgs == nil {
		msgs = []message{}
	}
	body := map[string]any{
		"@odata.id":       tasksPath + "/" + t.id,
		"@odata.type":     "#Task.v1_6_0.Task",
		"Id":              t.id,
		"Name":            "Reset " + t.resetType,
		"TaskState":       t.state,
		"TaskStatus":      t.status,
		"StartTime":       t.start.Format(time.RFC3339Nano),
		"PercentComplete": 0,
		"Messages":        msgs,
		"Payload": map[string]any{
			"HttpOperation": "POST",
			"TargetUri":     f.systemPath + "/Actions/" + resetActionName,
			"JsonBody":      fmt.Sprintf(`{"ResetType":%q}`, t.resetType),
		},
	}
	if !t.end.IsZero() {
		body["EndTime"] = t.end.Format(time.RFC3339Nano)
		body["PercentComplete"] = 100
	}
	return body
}

func (f *redfishFront) getTaskService(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.id":      taskSvcPath,
		"@odata.type":    "#TaskService.v1_2_0.TaskService",
		"Id":             "TaskService",
		"Name":           "Task Service",
		"ServiceEnabled": true,
		"Tasks":          odataID(tasksPath),
	})
}

func (f *redfishFront) getTasks(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	members := make([]string, len(f.taskOrder))
	for i, id := range f.taskOrder {
		members[i] = tasksPath + "/" + id
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, collection(tasksPath, "#TaskCollection.TaskCollection", "Task Collection", members...))
}

func (f *redfishFront) getTask(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	t, ok := f.tasks[r.PathValue("id")]
	var body map[string]any
	if ok {
		body = f.taskBody(t)
	}
	f.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, msgResourceMissingAtURI(r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (f *redfishFront) getManagers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, collection(managersPath, "#ManagerCollection.ManagerCollection", "Manager Collection", managerPath))
}

func (f *redfishFront) getManager(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.id":       managerPath,
		"@odata.type":     "#Manager.v1_10_0.Manager",
		"Id":              "BMC",
		"Name":            "Manager",
		"ManagerType":     "BMC",
		"FirmwareVersion": "bmcsim",
		"Status":          map[string]string{"State": "Enabled", "Health": "OK"},
		"Links":           map[string]any{"ManagerForServers": []map[string]string{odataID(f.systemPath)}},
	})
}

func (f *redfishFront) getSessionService(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.id":      sessionSvcPath,
		"@odata.type":    "#SessionService.v1_1_8.SessionService",
		"Id":             "SessionService",
		"Name":           "Session Service",
		"ServiceEnabled": true,
		"SessionTimeout": int(sessionTimeout.Seconds()),
		"Sessions":       odataID(sessionsPath),
	})
}

func (f *redfishFront) getSessions(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	var ids []int
	now := time.Now()
	for tok, s := range f.sessions {
		if now.Sub(s.lastUsed) > sessionTimeout {
			delete(f.sessions, tok)
			continue
		}
		n, _ := strconv.Atoi(s.id)
		ids = append(ids, n)
	}
	f.mu.Unlock()
	slices.Sort(ids)
	members := make([]string, len(ids))
	for i, id := range ids {
		members[i] = sessionsPath + "/" + strconv.Itoa(id)
	}
	writeJSON(w, http.StatusOK, collection(sessionsPath, "#SessionCollection.SessionCollection", "Session Collection", members...))
}

func sessionBody(s *session) map[string]any {
	return map[string]any{
		"@odata.id":   sessionsPath + "/" + s.id,
		"@odata.type": "#Session.v1_3_0.Session",
		"Id":          s.id,
		"Name":        "User Session",
		"UserName":    s.user,
	}
}

// postSession logs in (DSP0266 "Session login"): 201, X-Auth-Token and the
// session's URI in Location.
func (f *redfishFront) postSession(w http.ResponseWriter, r *http.Request) {
	obj, ok := readObject(w, r)
	if !ok {
		return
	}
	creds := map[string]string{}
	var msgs []message
	for _, k := range []string{"UserName", "Password"} {
		raw, ok := obj[k]
		if !ok {
			msgs = append(msgs, msgPropertyMissing(k))
			continue
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			msgs = append(msgs, msgPropertyValueTypeError(string(raw), k))
			continue
		}
		creds[k] = v
	}
	if len(msgs) > 0 {
		writeError(w, http.StatusBadRequest, msgs...)
		return
	}
	if !f.credentialsOK(creds["UserName"], creds["Password"]) {
		writeError(w, http.StatusUnauthorized, msgNoValidSession())
		return
	}
	var tok [16]byte
	_, _ = rand.Read(tok[:]) // crypto/rand.Read never fails
	f.mu.Lock()
	f.nextSession++
	s := &session{id: strconv.Itoa(f.nextSession), token: hex.EncodeToString(tok[:]), user: creds["UserName"], lastUsed: time.Now()}
	f.sessions[s.token] = s
	f.mu.Unlock()
	w.Header().Set("X-Auth-Token", s.token)
	w.Header().Set("Location", sessionsPath+"/"+s.id)
	writeJSON(w, http.StatusCreated, sessionBody(s))
}

// sessionByID finds a live session. f.mu is held.
func (f *redfishFront) sessionByID(id string) *session {
	for _, s := range f.sessions {
		if s.id == id {
			return s
		}
	}
	return nil
}

func (f *redfishFront) getSession(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	s := f.sessionByID(r.PathValue("id"))
	var body map[string]any
	if s != nil {
		body = sessionBody(s)
	}
	f.mu.Unlock()
	if s == nil {
		writeError(w, http.StatusNotFound, msgResourceMissingAtURI(r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// deleteSession logs out: the session's token stops working.
func (f *redfishFront) deleteSession(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	s := f.sessionByID(r.PathValue("id"))
	if s != nil {
		delete(f.sessions, s.token)
	}
	f.mu.Unlock()
	if s == nil {
		writeError(w, http.StatusNotFound, msgResourceMissingAtURI(r.URL.Path))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
