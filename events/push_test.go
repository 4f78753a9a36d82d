package events

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
)

// receiver is an event destination that records what it is sent.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events []schemas.Event
	bodies [][]byte
	hdrs   []http.Header
	posts  int
	fail   func(n int) bool // fail POST number n (1-based)?
}

func newReceiver(t testing.TB, fail func(n int) bool) *receiver {
	r := &receiver{fail: fail}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.posts++
		if r.fail != nil && r.fail(r.posts) {
			http.Error(w, "not now", http.StatusServiceUnavailable)
			return
		}
		var ev schemas.Event
		if req.Method != http.MethodPost || json.Unmarshal(b, &ev) != nil {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		r.events = append(r.events, ev)
		r.bodies = append(r.bodies, b)
		r.hdrs = append(r.hdrs, req.Header.Clone())
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) snapshot() ([]schemas.Event, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]schemas.Event(nil), r.events...), r.posts
}

// waitFor polls cond for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func loopbackOK() Options {
	return Options{AllowDestinations: []string{"127.0.0.1/32"}, RetryInterval: 20 * time.Millisecond, RetryAttempts: 3}
}

// checkOrderedOnce checks that events carry strictly increasing EventIds
// (each delivered once, in stream order) and returns their MessageIds.
func checkOrderedOnce(t testing.TB, evs []schemas.Event) []string {
	t.Helper()
	var ids []string
	prev := streamID{}
	for _, ev := range evs {
		if len(ev.Events) != 1 {
			t.Fatalf("event with %d records", len(ev.Events))
		}
		id, ok := parseID(ev.Events[0].EventID)
		if !ok || !prev.less(id) {
			t.Fatalf("EventId %s after %s: duplicated or out of order", ev.Events[0].EventID, prev)
		}
		prev = id
		ids = append(ids, ev.Events[0].MessageID)
	}
	return ids
}

// TestPushOnceInOrderAcrossReplicas: two replicas emit; one deliverer at a
// time POSTs; after the deliverer stops, the other replica takes over from
// the cursors. Every subscriber gets each matching event once, in order.
func TestPushOnceInOrderAcrossReplicas(t *testing.T) { forEachRedis(t, pushOnceInOrderAcrossReplicas) }

func pushOnceInOrderAcrossReplicas(t *testing.T, rdb redis.UniversalClient) {
	v := testkit.Schemas(t)
	a := newBus(t, rdb, loopbackOK())
	b := newBus(t, rdb, loopbackOK())
	all, tasks := newReceiver(t, nil), newReceiver(t, nil)
	ctx := context.Background()
	if _, err := a.Subscribe(ctx, Subscription{Destination: all.srv.URL + "/hook", Context: "all-events"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe(ctx, Subscription{Destination: tasks.srv.URL, RegistryPrefixes: []string{"TaskEvent"}}); err != nil {
		t.Fatal(err)
	}
	round := func(n int) {
		for i := range n {
			bus := a
			if i%2 == 1 {
				bus = b
			}
			emitTask(bus, "n1", "n1.t", schemas.MsgTaskStarted)
			emitPower(bus, "n1", schemas.MsgResourcePoweredOn)
		}
	}
	round(10)
	waitFor(t, "20 events", func() bool { e, _ := all.snapshot(); return len(e) == 20 })
	waitFor(t, "10 task events", func() bool { e, _ := tasks.snapshot(); return len(e) == 10 })
	// Stop whichever replica delivers; the other takes over.
	holder, err := rdb.Get(ctx, leaseKeys.Holder).Result()
	if err != nil {
		t.Fatalf("no deliverer lease: %v", err)
	}
	survivor := b
	if strings.HasPrefix(holder, b.opts.ReplicaID+"|") {
		b.Close()
		survivor = a
	} else {
		a.Close()
	}
	for range 5 {
		emitTask(survivor, "n1", "n1.u", schemas.MsgTaskCompletedOK)
		emitPower(survivor, "n1", schemas.MsgResourcePoweredOff)
	}
	waitFor(t, "30 events", func() bool { e, _ := all.snapshot(); return len(e) >= 30 })
	waitFor(t, "15 task events", func() bool { e, _ := tasks.snapshot(); return len(e) >= 15 })
	time.Sleep(300 * time.Millisecond) // nothing more may come
	evs, _ := all.snapshot()
	if len(evs) != 30 {
		t.Fatalf("%d events delivered, want 30", len(evs))
	}
	ids := checkOrderedOnce(t, evs)
	if ids[0] != "TaskEvent.1.0.TaskStarted" || ids[1] != "ResourceEvent.1.4.ResourcePoweredOn" || ids[29] != "ResourceEvent.1.4.ResourcePoweredOff" {
		t.Errorf("MessageIds %v", ids)
	}
	tevs, _ := tasks.snapshot()
	if len(tevs) != 15 {
		t.Fatalf("%d task events, want 15", len(tevs))
	}
	for _, id := range checkOrderedOnce(t, tevs) {
		if !strings.HasPrefix(id, "TaskEvent.") {
			t.Errorf("task subscriber got %s", id)
		}
	}
	ev := evs[0]
	if ev.Context != "all-events" || ev.ODataType != schemas.TypeEvent || ev.Events[0].OriginOfCondition.ODataID != "/redfish/v1/TaskService/Tasks/n1.t" {
		t.Errorf("event body: %+v", ev)
	}
	all.mu.Lock()
	body := all.bodies[1]
	ct := all.hdrs[1].Get("Content-Type")
	all.mu.Unlock()
	if ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if err := v.Validate(body); err != nil {
		t.Errorf("event body does not validate: %v\n%s", err, body)
	}
}

func TestPushRetriesThenAppliesPolicy(t *testing.T) { forEachRedis(t, pushRetriesThenAppliesPolicy) }

func pushRetriesThenAppliesPolicy(t *testing.T, rdb redis.UniversalClient) {
	o := loopbackOK()
	o.RetryAttempts = 2
	bus := newBus(t, rdb, o)
	ctx := context.Background()
	down := newReceiver(t, func(int) bool { return true })
	gone := newReceiver(t, func(int) bool { return true })
	suspended, err := bus.Subscribe(ctx, Subscription{Destination: down.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	terminated, err := bus.Subscribe(ctx, Subscription{Destination: gone.srv.URL, RetryPolicy: TerminateAfterRetries})
	if err != nil {
		t.Fatal(err)
	}
	if suspended.RetryPolicy != SuspendRetries || suspended.State != "Enabled" {
		t.Errorf("new subscription: %+v", suspended)
	}
	emitPower(bus, "n1", schemas.MsgResourcePoweredOn)
	waitFor(t, "suspension", func() bool {
		s, err := bus.Subscription(ctx, suspended.ID)
		return err == nil && s.State == "Disabled"
	})
	waitFor(t, "termination", func() bool {
		_, err := bus.Subscription(ctx, terminated.ID)
		return errors.Is(err, ErrNoSubscription)
	})
	emitPower(bus, "n1", schemas.MsgResourcePoweredOff)
	time.Sleep(300 * time.Millisecond)
	for name, r := range map[string]*receiver{"suspended": down, "terminated": gone} {
		if _, posts := r.snapshot(); posts != 3 {
			t.Errorf("%s: %d POSTs, want 3 (1 + 2 retries)", name, posts)
		}
	}
	// A read may fail on a loaded machine (a Redis timeout): the test
	// reads until one succeeds, and then the reason must be there.
	var s Subscription
	var rerr error
	waitFor(t, "a read of the suspended subscription", func() bool {
		s, rerr = bus.Subscription(ctx, suspended.ID)
		if rerr != nil {
			t.Logf("read subscription: %v", rerr)
		}
		return rerr == nil
	})
	if s.State != "Disabled" || !strings.Contains(s.LastError, "503") {
		t.Errorf("suspended subscription: State %q, LastError %q; want Disabled and the destination's 503", s.State, s.LastError)
	}
}

// TestPushRecoversFromTransientFailures: a destination that fails twice
// then answers gets every event once, in order.
func TestPushRecoversFromTransientFailures(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	bus := newBus(t, rdb, loopbackOK())
	flaky := newReceiver(t, func(n int) bool { return n <= 2 })
	ctx := context.Background()
	sub, err := bus.Subscribe(ctx, Subscription{Destination: flaky.srv.URL, Headers: [][2]string{{"Authorization", "Bearer abc"}}})
	if err != nil {
		t.Fatal(err)
	}
	emitPower(bus, "n1", schemas.MsgResourcePoweringOn)
	emitPower(bus, "n1", schemas.MsgResourcePoweredOn)
	waitFor(t, "2 events", func() bool { e, _ := flaky.snapshot(); return len(e) == 2 })
	time.Sleep(200 * time.Millisecond)
	evs, posts := flaky.snapshot()
	ids := checkOrderedOnce(t, evs)
	if len(evs) != 2 || posts != 4 || ids[0] != "ResourceEvent.1.4.ResourcePoweringOn" {
		t.Errorf("%d events in %d POSTs: %v", len(evs), posts, ids)
	}
	flaky.mu.Lock()
	auth := flaky.hdrs[0].Get("Authorization")
	flaky.mu.Unlock()
	if auth != "Bearer abc" {
		t.Errorf("Authorization header %q", auth)
	}
	if s, _ := bus.Subscription(ctx, sub.ID); s.State != "Enabled" {
		t.Errorf("state %s after recovery", s.State)
	}
}

// TestPushNodeScope: a subscription made in a per-node view gets that
// node's events only, with that view's URIs.
func TestPushNodeScope(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	bus := newBus(t, rdb, loopbackOK())
	r := newReceiver(t, nil)
	if _, err := bus.Subscribe(context.Background(), Subscription{Destination: r.srv.URL, Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	emitPower(bus, "n2", schemas.MsgResourcePoweredOn)
	emitPower(bus, "n1", schemas.MsgResourcePoweredOn)
	waitFor(t, "1 event", func() bool { e, _ := r.snapshot(); return len(e) == 1 })
	time.Sleep(200 * time.Millisecond)
	evs, _ := r.snapshot()
	if len(evs) != 1 || evs[0].Events[0].OriginOfCondition.ODataID != "/bmc/n1/redfish/v1/Systems/n1" {
		t.Errorf("events %+v", evs)
	}
}

// TestPushRefusedAtConnectTime: a name that resolved to a public address
// when the subscription was made, and to loopback when the event is sent
// (DNS rebinding), gets nothing.
func TestPushRefusedAtConnectTime(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	o := loopbackOK()
	o.AllowDestinations = nil
	o.RetryAttempts = 1
	o.Resolver = fakeResolver{"localhost": {"203.0.113.7"}}
	bus := newBus(t, rdb, o)
	r := newReceiver(t, nil)
	port := r.srv.URL[strings.LastIndex(r.srv.URL, ":"):]
	ctx := context.Background()
	sub, err := bus.Subscribe(ctx, Subscription{Destination: "http://localhost" + port + "/"})
	if err != nil {
		t.Fatal(err)
	}
	emitPower(bus, "n1", schemas.MsgResourcePoweredOn)
	waitFor(t, "suspension", func() bool {
		s, err := bus.Subscription(ctx, sub.ID)
		return err == nil && s.State == "Disabled"
	})
	if _, posts := r.snapshot(); posts != 0 {
		t.Errorf("destination got %d POSTs", posts)
	}
	if s, _ := bus.Subscription(ctx, sub.ID); !strings.Contains(s.LastError, "allow_destinations") {
		t.Errorf("LastError %q", s.LastError)
	}
}

func TestSubscribeValidation(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	o := loopbackOK()
	o.MaxSubscriptions = 2
	bus := newBus(t, rdb, o)
	none := newBus(t, rdb, Options{})
	ctx := context.Background()
	bad := []struct {
		bus  *Bus
		sub  Subscription
		prop string
		kind InvalidKind
	}{
		{bus, Subscription{}, "Destination", Missing},
		{none, Subscription{Destination: "http://127.0.0.1:9/"}, "Destination", Refused},
		{none, Subscription{Destination: "http://169.254.1.1/"}, "Destination", Refused},
		{none, Subscription{Destination: "http://[::1]:9/"}, "Destination", Refused},
		{bus, Subscription{Destination: "mailto:x@example.net"}, "Destination", Format},
		{bus, Subscription{Destination: "http://127.0.0.1/", RetryPolicy: "Sometimes"}, "DeliveryRetryPolicy", NotInList},
		{bus, Subscription{Destination: "http://127.0.0.1/", RegistryPrefixes: []string{"Base"}}, "RegistryPrefixes", NotInList},
		{bus, Subscription{Destination: "http://127.0.0.1/", ResourceTypes: []string{"Chassis"}}, "ResourceTypes", NotInList},
		{bus, Subscription{Destination: "http://127.0.0.1/", MessageIDs: []string{"NoDot"}}, "MessageIds", Format},
		{bus, Subscription{Destination: "http://127.0.0.1/", Headers: [][2]string{{"Host", "x"}}}, "HttpHeaders", Refused},
		{bus, Subscription{Destination: "http://127.0.0.1/", Headers: [][2]string{{"Bad Name", "x"}}}, "HttpHeaders", Format},
		{bus, Subscription{Destination: "http://127.0.0.1/", Headers: [][2]string{{"X-A", "a\r\nb"}}}, "HttpHeaders", Format},
	}
	for i, c := range bad {
		_, err := c.bus.Subscribe(ctx, c.sub)
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Property != c.prop || ie.Kind != c.kind {
			t.Errorf("case %d (%+v): %v; want %s kind %d", i, c.sub, err, c.prop, c.kind)
		}
	}
	for range 2 {
		if _, err := bus.Subscribe(ctx, Subscription{Destination: "http://127.0.0.1:9/"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bus.Subscribe(ctx, Subscription{Destination: "http://127.0.0.1:9/"}); !errors.Is(err, ErrTooManySubscriptions) {
		t.Errorf("third subscription: %v", err)
	}
	subs, err := bus.Subscriptions(ctx)
	if err != nil || len(subs) != 2 || subs[0].ID != "1" || subs[1].ID != "2" {
		t.Fatalf("Subscriptions: %+v %v", subs, err)
	}
	if err := none.Unsubscribe(ctx, "1"); err != nil {
		t.Errorf("Unsubscribe from another replica: %v", err)
	}
	if err := bus.Unsubscribe(ctx, "1"); !errors.Is(err, ErrNoSubscription) {
		t.Errorf("second Unsubscribe: %v", err)
	}
	if _, err := bus.Subscription(ctx, "1"); !errors.Is(err, ErrNoSubscription) {
		t.Errorf("deleted subscription: %v", err)
	}
}

// TestSubscriptionsPerOwner: one account cannot take every subscription
// (issue 10, item 6: one Operator filled all 100); the owner's count is
// kept in Redis, so two replicas together cannot exceed it either.
func TestSubscriptionsPerOwner(t *testing.T) { subscriptionsPerOwner(t, testkit.MiniRedis(t)) }

// subscriptionsPerOwner is TestSubscriptionsPerOwner on rdb
// (TestOnRedisCluster runs it on a Cluster: Unsubscribe is a MULTI).
func subscriptionsPerOwner(t *testing.T, rdb redis.UniversalClient) {
	o := loopbackOK()
	o.MaxSubscriptions, o.MaxSubscriptionsPerOwner = 10, 3
	a, b := newBus(t, rdb, o), newBus(t, rdb, o)
	ctx := context.Background()
	sub := func(bus *Bus, owner string) error {
		_, err := bus.Subscribe(ctx, Subscription{Destination: "http://127.0.0.1:9/", Owner: owner})
		return err
	}
	for i, bus := range []*Bus{a, b, a} {
		if err := sub(bus, "op"); err != nil {
			t.Fatalf("op's subscription %d: %v", i+1, err)
		}
	}
	for _, bus := range []*Bus{a, b} {
		if err := sub(bus, "op"); !errors.Is(err, ErrTooManyOwnerSubscriptions) || !errors.Is(err, ErrTooManySubscriptions) {
			t.Errorf("op's fourth subscription: %v; want ErrTooManyOwnerSubscriptions", err)
		}
	}
	if err := sub(b, "other"); err != nil {
		t.Errorf("another account's subscription: %v", err)
	}
	subs, _ := a.Subscriptions(ctx)
	if err := b.Unsubscribe(ctx, subs[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := sub(a, "op"); err != nil {
		t.Errorf("op's subscription after deleting one: %v", err)
	}
	// concurrent creation on two replicas stops at the owner's limit
	var wg sync.WaitGroup
	var made atomic.Int32
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if sub([]*Bus{a, b}[i%2], "racer") == nil {
				made.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := made.Load(); n != 3 {
		t.Errorf("racer made %d subscriptions concurrently; want 3", n)
	}
}
