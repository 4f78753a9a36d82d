package redfish_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/app/config"
	rfbackend "github.com/fishgate/fishgate/backends/redfish"
	"github.com/fishgate/fishgate/events"
	"github.com/fishgate/fishgate/fronts/redfish"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

const (
	opUser = "operator"
	opPass = "op"
)

// newEventEnv is newEnv with an event bus: the serializer emits into it
// and the API serves the EventService from it. Push destinations may be
// 127.0.0.1 only (not 127.0.0.2, not ::1). tune, if given, changes the
// options of the API and the bus.
func newEventEnv(t testing.TB, rdb redis.UniversalClient, n int, tune ...func(*redfish.Options, *events.Options)) *env {
	t.Helper()
	log := quietLogger()
	bo := config.Default().EventsOptions()
	bo.Redis, bo.ReplicaID, bo.Logger = rdb, testReplica, log
	bo.AllowDestinations, bo.PollInterval, bo.LeaseTTL = []string{"127.0.0.1/32"}, 100*time.Millisecond, time.Second
	ro := redfish.Options{
		Redis: rdb, Logger: log, SSEKeepAlive: 200 * time.Millisecond,
		Accounts: []redfish.Account{
			{User: adminUser, Password: adminPass, Role: redfish.RoleAdministrator},
			{User: opUser, Password: opPass, Role: redfish.RoleOperator},
			{User: roUser, Password: roPass, Role: redfish.RoleReadOnly},
		},
	}
	for _, f := range tune {
		f(&ro, &bo)
	}
	bus, err := events.New(bo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	bus.Start(ctx)
	fleet := simulator.NewFleet(log)
	var nodes []serializer.Node
	for i := 1; i <= n; i++ {
		id := "node" + string(rune('0'+i))
		sn, err := fleet.Add(simulator.NodeSpec{ID: id, Machine: simulator.MachineConfig{InitialPower: "Off"}})
		if err != nil {
			t.Fatal(err)
		}
		b, err := rfbackend.New(rfbackend.Config{Endpoint: sn.URL(), User: "admin", Password: "password", Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, serializer.Node{ID: id, Backend: b})
	}
	so := serializerOptions(rdb, log)
	so.Events = bus
	svc, err := serializer.New(nodes, so)
	if err != nil {
		t.Fatal(err)
	}
	svc.Start(ctx)
	ro.Nodes, ro.Events = svc, bus
	api, err := redfish.New(ro)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		cancel()
		bus.Close()
		srv.Close()
		svc.Close()
		fleet.Close()
	})
	return &env{t: t, fleet: fleet, nodes: svc, srv: srv}
}

// sseEvent is one dispatched SSE event, or a comment.
type sseEvent struct {
	id, data, comment string
}

// openSSE connects to an SSE URI and returns its events as they come; the
// stream is closed when the test ends or with the returned func.
func (e *env) openSSE(path string, hdr map[string]string) (<-chan sseEvent, *http.Response, func()) {
	e.t.Helper()
	return e.openSSEAs(path, func(r *http.Request) {
		r.SetBasicAuth(adminUser, adminPass)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
	})
}

// openSSEAs is openSSE with other credentials (a sets them, and any header).
func (e *env) openSSEAs(path string, a auth) (<-chan sseEvent, *http.Response, func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+path, nil)
	req.Header.Set("Accept", "text/event-stream")
	a(req)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	ch := make(chan sseEvent, 100)
	if resp.StatusCode != http.StatusOK {
		// A refusal's body is the caller's to read: no stream reader
		// may race it for the bytes.
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		close(ch)
		return ch, resp, cancel
	}
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev != (sseEvent{}) {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.comment = line
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			default:
				ev.comment = "unexpected line " + line
			}
		}
	}()
	stop := func() { cancel(); resp.Body.Close() }
	e.t.Cleanup(stop)
	return ch, resp, stop
}

// nextEvent returns the next event (skipping keep-alive comments).
func nextEvent(t testing.TB, ch <-chan sseEvent) (sseEvent, schemas.Event) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("SSE stream ended")
			}
			if ev.comment != "" && ev.data == "" {
				if !strings.HasPrefix(ev.comment, ": keep-alive") {
					t.Fatalf("unexpected SSE line: %q", ev.comment)
				}
				continue
			}
			if ev.data == "" && ev.id != "" {
				continue // the stream's opening position
			}
			if ev.id == "" {
				t.Fatalf("SSE event without id: %+v", ev)
			}
			var body schemas.Event
			if err := json.Unmarshal([]byte(ev.data), &body); err != nil {
				t.Fatalf("SSE data is not an Event: %v: %s", err, ev.data)
			}
			if len(body.Events) != 1 || body.Events[0].EventID != ev.id || body.ID != ev.id {
				t.Fatalf("SSE id %s does not match its Event %+v", ev.id, body)
			}
			return ev, body
		case <-timeout:
			t.Fatal("no SSE event within 10s")
		}
	}
}

// expectEvents reads len(want) events and checks their MessageIds.
func expectEvents(t testing.TB, ch <-chan sseEvent, want ...string) []sseEvent {
	t.Helper()
	var got []sseEvent
	for _, w := range want {
		ev, body := nextEvent(t, ch)
		if id := body.Events[0].MessageID; id != w {
			t.Fatalf("event %d: %s, want %s (so far %d)", len(got), id, w, len(got))
		}
		got = append(got, ev)
	}
	return got
}

func (e *env) reset(path, node, rt string) {
	e.t.Helper()
	r := e.do("POST", path+"/redfish/v1/Systems/"+node+"/Actions/ComputerSystem.Reset", `{"ResetType":"`+rt+`"}`)
	if r.Status/100 != 2 {
		e.t.Fatalf("reset %s %s: %d %s", node, rt, r.Status, r.Body)
	}
}

func TestSSE(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			t.Parallel()
			v := testkit.Schemas(t)
			e := newEventEnv(t, target.New(t), 2)
			all, resp, stopAll := e.openSSE("/redfish/v1/EventService/SSE", nil)
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("Content-Type %q", ct)
			}
			sys1, _, _ := e.openSSE("/redfish/v1/EventService/SSE?$filter="+
				"OriginResource%20eq%20%27/redfish/v1/Systems/node1%27", nil)
			node2, _, _ := e.openSSE("/bmc/node2/redfish/v1/EventService/SSE", nil)
			tasks, _, _ := e.openSSE("/redfish/v1/EventService/SSE?$filter="+
				"RegistryPrefix%20eq%20%27TaskEvent%27%20and%20(MessageId%20eq%20%27TaskEvent.1.0.TaskStarted%27%20or%20MessageId%20eq%20%27TaskEvent.TaskCompletedOK%27)", nil)

			e.reset("", "node1", "On")
			got := expectEvents(t, all, "TaskEvent.1.0.TaskStarted", "ResourceEvent.1.4.ResourcePoweringOn",
				"ResourceEvent.1.4.ResourcePoweredOn", "TaskEvent.1.0.TaskCompletedOK")
			for _, ev := range got {
				if err := v.Validate([]byte(ev.data)); err != nil {
					t.Errorf("SSE event does not validate: %v\n%s", err, ev.data)
				}
			}
			_, b := nextEvent(t, sys1)
			if b.Events[0].MessageID != "ResourceEvent.1.4.ResourcePoweringOn" || b.Events[0].OriginOfCondition.ODataID != "/redfish/v1/Systems/node1" {
				t.Errorf("filtered stream: %+v", b.Events[0])
			}
			expectEvents(t, sys1, "ResourceEvent.1.4.ResourcePoweredOn")
			expectEvents(t, tasks, "TaskEvent.1.0.TaskStarted", "TaskEvent.1.0.TaskCompletedOK")

			// Resume after the first event: the rest comes again, same ids.
			stopAll()
			resumed, _, _ := e.openSSE("/redfish/v1/EventService/SSE", map[string]string{"Last-Event-ID": got[0].id})
			again := expectEvents(t, resumed, "ResourceEvent.1.4.ResourcePoweringOn", "ResourceEvent.1.4.ResourcePoweredOn", "TaskEvent.1.0.TaskCompletedOK")
			for i, ev := range again {
				if ev.id != got[i+1].id {
					t.Errorf("resumed event %d id %s, want %s", i, ev.id, got[i+1].id)
				}
			}

			// The per-node view sees its node only, with its own URIs.
			e.reset("/bmc/node2", "node2", "On")
			_, b = nextEvent(t, node2)
			if b.Events[0].MessageID != "TaskEvent.1.0.TaskStarted" || !strings.HasPrefix(b.Events[0].OriginOfCondition.ODataID, "/bmc/node2/redfish/v1/TaskService/Tasks/node2.") {
				t.Errorf("per-node stream: %+v", b.Events[0])
			}
			_, b = nextEvent(t, node2)
			if b.Events[0].OriginOfCondition.ODataID != "/bmc/node2/redfish/v1/Systems/node2" {
				t.Errorf("per-node stream origin: %+v", b.Events[0])
			}
			expectEvents(t, resumed, "TaskEvent.1.0.TaskStarted", "ResourceEvent.1.4.ResourcePoweringOn")

			// An idle stream gets keep-alive comments.
			deadline := time.After(5 * time.Second)
			for seen := false; !seen; {
				select {
				case ev := <-sys1:
					seen = strings.HasPrefix(ev.comment, ": keep-alive")
				case <-deadline:
					t.Fatal("no keep-alive on an idle stream")
				}
			}
		})
	}
}

func TestSSERefusals(t *testing.T) {
	e := newEventEnv(t, testkit.MiniRedis(t), 1)
	cases := []struct {
		name, path string
		as         []auth
		status     int
		msg        string
	}{
		{"bad filter", "/redfish/v1/EventService/SSE?$filter=Colour%20eq%20%27red%27", nil, 400, "Base.1.22.QueryParameterValueFormatError"},
		{"unbalanced filter", "/redfish/v1/EventService/SSE?$filter=(MessageId%20eq%20%27x%27", nil, 400, "Base.1.22.QueryParameterValueFormatError"},
		{"bad Last-Event-ID", "/redfish/v1/EventService/SSE", []auth{basic(adminUser, adminPass), header("Last-Event-ID", "yesterday")}, 400, "Base.1.22.HeaderInvalid"},
		{"no auth", "/redfish/v1/EventService/SSE", []auth{noAuth()}, 401, "Base.1.22.NoValidSession"},
		{"unknown node", "/bmc/node9/redfish/v1/EventService/SSE", nil, 404, "Base.1.22.ResourceNotFound"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do("GET", c.path, "", c.as...)
			if r.Status != c.status || r.messageID(t) != c.msg {
				t.Errorf("%d %s, want %d %s: %s", r.Status, r.messageID(t), c.status, c.msg, r.Body)
			}
		})
	}
	// A session token works as well as Basic.
	tok, _ := e.login(roUser, roPass)
	ch, resp, _ := e.openSSEAs("/redfish/v1/EventService/SSE", token(tok))
	if resp.StatusCode != 200 {
		t.Fatalf("SSE with a session: %d", resp.StatusCode)
	}
	e.reset("", "node1", "On")
	expectEvents(t, ch, "TaskEvent.1.0.TaskStarted")
}

func TestEventServiceAndSubscriptions(t *testing.T) {
	v := testkit.Schemas(t)
	e := newEventEnv(t, testkit.MiniRedis(t), 2)
	valid := func(r response) {
		t.Helper()
		if err := v.Validate(r.Body); err != nil {
			t.Errorf("%v\n%s", err, r.Body)
		}
	}
	root := e.do("GET", "/redfish/v1", "", noAuth()).json(t)
	if es, _ := root["EventService"].(map[string]any); es["@odata.id"] != "/redfish/v1/EventService" {
		t.Errorf("service root EventService %v", root["EventService"])
	}
	if !strings.Contains(string(e.do("GET", "/redfish/v1/odata", "", noAuth()).Body), `"/redfish/v1/EventService"`) {
		t.Error("odata document lacks EventService")
	}
	for _, base := range []string{"", "/bmc/node1"} {
		r := e.do("GET", base+"/redfish/v1/EventService", "")
		valid(r)
		es := r.json(t)
		if es["ServerSentEventUri"] != base+"/redfish/v1/EventService/SSE" || es["DeliveryRetryAttempts"] != 3.0 || es["DeliveryRetryIntervalSeconds"] != 10.0 {
			t.Errorf("%s EventService: %s", base, r.Body)
		}
	}

	subs := "/redfish/v1/EventService/Subscriptions"
	bad := []struct {
		name, body string
		as         []auth
		status     int
		msg, says  string
	}{
		{"loopback destination", `{"Destination":"http://127.0.0.2:9/x","Protocol":"Redfish"}`, nil, 400, "Base.1.22.PropertyValueIncorrect", "loopback"},
		{"IPv6 loopback", `{"Destination":"http://[::1]:9/x","Protocol":"Redfish"}`, nil, 400, "Base.1.22.PropertyValueIncorrect", "loopback"},
		{"link-local destination", `{"Destination":"http://169.254.169.254/","Protocol":"Redfish"}`, nil, 400, "Base.1.22.PropertyValueIncorrect", "link-local"},
		{"private destination", `{"Destination":"https://10.0.0.1/","Protocol":"Redfish"}`, nil, 400, "Base.1.22.PropertyValueIncorrect", "private"},
		{"not a URL", `{"Destination":"hooks","Protocol":"Redfish"}`, nil, 400, "Base.1.22.PropertyValueFormatError", "http"},
		{"no destination", `{"Protocol":"Redfish"}`, nil, 400, "Base.1.22.PropertyMissing", "Destination"},
		{"no protocol", `{"Destination":"http://127.0.0.1:9/"}`, nil, 400, "Base.1.22.PropertyMissing", "Protocol"},
		{"other protocol", `{"Destination":"http://127.0.0.1:9/","Protocol":"SNMPv2c"}`, nil, 400, "Base.1.22.PropertyValueNotInList", "Protocol"},
		{"bad retry policy", `{"Destination":"http://127.0.0.1:9/","Protocol":"Redfish","DeliveryRetryPolicy":"Never"}`, nil, 400, "Base.1.22.PropertyValueNotInList", "DeliveryRetryPolicy"},
		{"bad registry", `{"Destination":"http://127.0.0.1:9/","Protocol":"Redfish","RegistryPrefixes":["Base"]}`, nil, 400, "Base.1.22.PropertyValueNotInList", "RegistryPrefixes"},
		{"bad origin", `{"Destination":"http://127.0.0.1:9/","Protocol":"Redfish","OriginResources":[{"@odata.id":"/Systems/node1"}]}`, nil, 400, "Base.1.22.PropertyValueFormatError", "OriginResources"},
		{"unknown property", `{"Destination":"http://127.0.0.1:9/","Protocol":"Redfish","Colour":"red"}`, nil, 400, "Base.1.22.PropertyUnknown", "Colour"},
		{"wrong type", `{"Destination":"http://127.0.0.1:9/","Protocol":"Redfish","Context":5}`, nil, 400, "Base.1.22.PropertyValueTypeError", "Context"},
		{"read-only user", `{"Destination":"http://127.0.0.1:9/","Protocol":"Redfish"}`, []auth{basic(roUser, roPass)}, 403, "Base.1.22.InsufficientPrivilege", ""},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			r := e.do("POST", subs, c.body, c.as...)
			if r.Status != c.status || r.messageID(t) != c.msg || !strings.Contains(string(r.Body), c.says) {
				t.Errorf("%d %s, want %d %s mentioning %q: %s", r.Status, r.messageID(t), c.status, c.msg, c.says, r.Body)
			}
			if err := v.ValidateError(r.Body); err != nil {
				t.Errorf("error body: %v", err)
			}
		})
	}

	r := e.do("POST", subs, `{"Destination":"http://127.0.0.1:9/events","Protocol":"Redfish","Context":"ironic",
		"RegistryPrefixes":["ResourceEvent"],"ResourceTypes":["ComputerSystem"],"MessageIds":["ResourceEvent.ResourcePoweredOn"],
		"OriginResources":[{"@odata.id":"/redfish/v1/Systems/node1"}],"DeliveryRetryPolicy":"TerminateAfterRetries",
		"HttpHeaders":[{"Authorization":"Bearer secret"}],"SubscriptionType":"RedfishEvent","EventFormatType":"Event","EventTypes":["Alert"]}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	loc := r.Header.Get("Location")
	valid(r)
	got := e.do("GET", loc, "")
	valid(got)
	m := got.json(t)
	if m["Context"] != "ironic" || m["DeliveryRetryPolicy"] != "TerminateAfterRetries" || strings.Contains(string(got.Body), "secret") ||
		m["OriginResources"].([]any)[0].(map[string]any)["@odata.id"] != "/redfish/v1/Systems/node1" {
		t.Errorf("subscription: %s", got.Body)
	}
	list := e.do("GET", subs, "")
	valid(list)
	if list.json(t)["Members@odata.count"] != 1.0 {
		t.Errorf("collection: %s", list.Body)
	}
	// The per-node view has its own subscriptions.
	if r := e.do("GET", "/bmc/node1"+loc, ""); r.Status != 404 {
		t.Errorf("aggregate subscription through the node view: %d", r.Status)
	}
	nr := e.do("POST", "/bmc/node1"+subs, `{"Destination":"http://127.0.0.1:9/n1","Protocol":"Redfish"}`, basic(opUser, opPass))
	if nr.Status != 201 || !strings.HasPrefix(nr.Header.Get("Location"), "/bmc/node1/redfish/v1/EventService/Subscriptions/") {
		t.Fatalf("node view create: %d %v %s", nr.Status, nr.Header, nr.Body)
	}
	if c := e.do("GET", "/bmc/node1"+subs, "").json(t)["Members@odata.count"]; c != 1.0 {
		t.Errorf("node view collection has %v members", c)
	}
	if c := e.do("GET", subs, "").json(t)["Members@odata.count"]; c != 2.0 {
		t.Errorf("aggregate collection has %v members", c)
	}
	// An Operator deletes its own subscriptions only.
	if r := e.do("DELETE", loc, "", basic(opUser, opPass)); r.Status != 403 {
		t.Errorf("operator deleting the admin's subscription: %d", r.Status)
	}
	if r := e.do("DELETE", nr.Header.Get("Location"), "", basic(opUser, opPass)); r.Status != 204 {
		t.Errorf("operator deleting its own: %d %s", r.Status, r.Body)
	}
	if r := e.do("DELETE", loc, "", basic(roUser, roPass)); r.Status != 403 {
		t.Errorf("read-only delete: %d", r.Status)
	}
	if r := e.do("DELETE", loc, ""); r.Status != 204 {
		t.Errorf("delete: %d %s", r.Status, r.Body)
	}
	if r := e.do("GET", loc, ""); r.Status != 404 || r.messageID(t) != "Base.1.22.ResourceNotFound" {
		t.Errorf("deleted subscription: %d %s", r.Status, r.Body)
	}
	if r := e.do("DELETE", loc, ""); r.Status != 404 {
		t.Errorf("second delete: %d", r.Status)
	}
}

// TestNoEventService: without a bus the service has no EventService.
func TestNoEventService(t *testing.T) {
	e := newEnv(t, testkit.MiniRedis(t), 1, time.Minute)
	if _, ok := e.do("GET", "/redfish/v1", "").json(t)["EventService"]; ok {
		t.Error("service root links an EventService that does not exist")
	}
	if r := e.do("GET", "/redfish/v1/EventService", ""); r.Status != 404 {
		t.Errorf("EventService without a bus: %d", r.Status)
	}
}

// TestSSEOpeningPosition: the stream opens with an id-only block naming
// its position; a client that lost the connection before any event
// resumes from it without loss.
func TestSSEOpeningPosition(t *testing.T) {
	e := newEventEnv(t, testkit.MiniRedis(t), 1)
	ch, _, stop := e.openSSE("/redfish/v1/EventService/SSE", nil)
	var first sseEvent
	select {
	case first = <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no opening block")
	}
	if first.id == "" || first.data != "" || first.comment != "" {
		t.Fatalf("opening block %+v, want an id only", first)
	}
	stop()
	e.reset("", "node1", "On")
	e.waitPower("node1", "On")
	resumed, _, _ := e.openSSE("/redfish/v1/EventService/SSE", map[string]string{"Last-Event-ID": first.id})
	expectEvents(t, resumed, "TaskEvent.1.0.TaskStarted", "ResourceEvent.1.4.ResourcePoweringOn", "ResourceEvent.1.4.ResourcePoweredOn")
}

// TestSSEOutlivesWriteTimeout: a server write timeout bounds ordinary
// answers, not an event stream.
func TestSSEOutlivesWriteTimeout(t *testing.T) {
	e := newEventEnv(t, testkit.MiniRedis(t), 1)
	slow := httptest.NewUnstartedServer(e.srv.Config.Handler)
	slow.Config.WriteTimeout = 300 * time.Millisecond
	slow.Start()
	t.Cleanup(slow.Close)
	orig := e.srv
	e.srv = slow
	ch, _, _ := e.openSSE("/redfish/v1/EventService/SSE", nil)
	e.srv = orig
	time.Sleep(700 * time.Millisecond)
	e.reset("", "node1", "On")
	expectEvents(t, ch, "TaskEvent.1.0.TaskStarted", "ResourceEvent.1.4.ResourcePoweringOn")
}

// TestSSEEndsWithItsSession: logging out ends the SSE streams opened with
// that session (issue 10: they kept delivering).
func TestSSEEndsWithItsSession(t *testing.T) {
	e := newEventEnv(t, testkit.MiniRedis(t), 1)
	tok, loc := e.login(roUser, roPass)
	ch, resp, _ := e.openSSEAs("/redfish/v1/EventService/SSE", token(tok))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE: %d", resp.StatusCode)
	}
	if r := e.do("DELETE", loc, ""); r.Status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, open := <-ch:
			if !open {
				return // the stream ended
			}
		case <-deadline:
			t.Fatal("the SSE stream still runs 10 s after its session was logged out")
		}
	}
}

// TestSSEStreamLimits: SSE streams are bounded per account and in all
// (issue 10, item 6: 1,000 streams were held open). Over a limit the
// answer is 503 EventSubscriptionLimitExceeded with Retry-After, before
// anything is streamed; a closed stream frees its place.
func TestSSEStreamLimits(t *testing.T) {
	e := newEventEnv(t, testkit.MiniRedis(t), 1, func(o *redfish.Options, _ *events.Options) {
		o.MaxSSEStreams, o.MaxSSEStreamsPerUser = 3, 2
	})
	const sse = "/redfish/v1/EventService/SSE"
	open := func(a auth) (*http.Response, func()) {
		t.Helper()
		ch, resp, stop := e.openSSEAs(sse, a)
		if resp.StatusCode == http.StatusOK {
			<-ch // the opening block: the stream is counted
		}
		return resp, stop
	}
	refused := func(what string, resp *http.Response, says string) {
		t.Helper()
		var body struct {
			Error struct {
				Message  string
				Extended []schemas.Message `json:"@Message.ExtendedInfo"`
			} `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
			len(body.Error.Extended) == 0 || body.Error.Extended[0].MessageID != "Base.1.22.EventSubscriptionLimitExceeded" ||
			!strings.Contains(body.Error.Message, says) {
			t.Errorf("%s: %d Retry-After %q %+v; want 503, Retry-After and EventSubscriptionLimitExceeded saying %q",
				what, resp.StatusCode, resp.Header.Get("Retry-After"), body.Error, says)
		}
	}
	op := basic(opUser, opPass)
	r1, stop1 := open(op)
	r2, _ := open(op)
	if r1.StatusCode != 200 || r2.StatusCode != 200 {
		t.Fatalf("operator's streams: %d %d", r1.StatusCode, r2.StatusCode)
	}
	r3, _ := open(op)
	refused("operator's third stream", r3, "max_sse_streams_per_user")
	// another account still may, up to the server's limit
	r4, _ := open(basic(roUser, roPass))
	if r4.StatusCode != 200 {
		t.Fatalf("readonly's stream: %d", r4.StatusCode)
	}
	r5, _ := open(basic(adminUser, adminPass))
	refused("a fourth stream in all", r5, "(events.max_sse_streams)")
	// closing one frees its place (the handler notices at its next wait)
	stop1()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, stop := open(op)
		if r.StatusCode == 200 {
			stop()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stream after one was closed: %d", r.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSubscriptionsPerUser: one account cannot take every push
// subscription (issue 10, item 6: one Operator filled all 100).
func TestSubscriptionsPerUser(t *testing.T) {
	e := newEventEnv(t, testkit.MiniRedis(t), 1, func(_ *redfish.Options, o *events.Options) {
		o.MaxSubscriptionsPerOwner = 2
	})
	const subs = "/redfish/v1/EventService/Subscriptions"
	body := `{"Destination": "http://127.0.0.1:9/", "Protocol": "Redfish"}`
	op := basic(opUser, opPass)
	var first string
	for i := range 2 {
		r := e.do("POST", subs, body, op)
		if r.Status != http.StatusCreated {
			t.Fatalf("operator's subscription %d: %d %s", i+1, r.Status, r.Body)
		}
		if first == "" {
			first = r.Header.Get("Location")
		}
	}
	r := e.do("POST", subs, body, op)
	if r.Status != http.StatusBadRequest || r.messageID(t) != "Base.1.22.EventSubscriptionLimitExceeded" ||
		!strings.Contains(string(r.Body), "max_subscriptions_per_user") {
		t.Errorf("operator's third subscription: %d %s", r.Status, r.Body)
	}
	if r := e.do("POST", subs, body, basic(adminUser, adminPass)); r.Status != http.StatusCreated {
		t.Errorf("another account's subscription: %d %s", r.Status, r.Body)
	}
	if r := e.do("DELETE", first, "", op); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := e.do("POST", subs, body, op); r.Status != http.StatusCreated {
		t.Errorf("operator's subscription after deleting one: %d %s", r.Status, r.Body)
	}
}

// TestEventsOfInvisibleNodes: an account limited to node1 gets, on the
// aggregate SSE stream, node1's events only, and may subscribe only
// through node1's own service (issue 10: per-node authorization).
func TestEventsOfInvisibleNodes(t *testing.T) {
	e := newEventEnv(t, testkit.MiniRedis(t), 2, func(o *redfish.Options, _ *events.Options) {
		o.Accounts = append(o.Accounts, redfish.Account{User: "tenant", Password: "tenant-pw", Role: redfish.RoleOperator, Nodes: []string{"node1"}})
	})
	as := basic("tenant", "tenant-pw")
	ch, resp, _ := e.openSSEAs("/redfish/v1/EventService/SSE?$filter="+url.QueryEscape("MessageId eq 'TaskEvent.1.0.TaskStarted'"), as)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE: %d", resp.StatusCode)
	}
	e.reset("", "node2", "On") // invisible to the tenant
	e.reset("", "node1", "On")
	_, ev := nextEvent(t, ch)
	if got := ev.Events[0].OriginOfCondition.ODataID; !strings.HasPrefix(got, "/redfish/v1/TaskService/Tasks/node1.") {
		t.Fatalf("the tenant's first event is about %s, want node1's task", got)
	}
	if r := e.do("POST", "/redfish/v1/EventService/Subscriptions", `{"Destination":"http://127.0.0.1:9/x","Protocol":"Redfish"}`, as); r.Status != http.StatusForbidden {
		t.Errorf("aggregate subscription by a limited account: %d %s", r.Status, r.Body)
	}
	if r := e.do("POST", "/bmc/node2/redfish/v1/EventService/Subscriptions", `{"Destination":"http://127.0.0.1:9/x","Protocol":"Redfish"}`, as); r.Status != http.StatusNotFound {
		t.Errorf("subscription through an invisible node's service: %d %s", r.Status, r.Body)
	}
	if r := e.do("POST", "/bmc/node1/redfish/v1/EventService/Subscriptions", `{"Destination":"http://127.0.0.1:9/x","Protocol":"Redfish"}`, as); r.Status != http.StatusCreated {
		t.Errorf("subscription through node1's service: %d %s", r.Status, r.Body)
	}
}
