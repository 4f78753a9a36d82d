package events

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/replicaid"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newBus starts a bus on rdb, stopped when the test ends. Options left
// zero get test values: a replica id of its own, short timings, room for
// 100 subscriptions (10 per owner).
func newBus(t testing.TB, rdb redis.UniversalClient, o Options) *Bus {
	t.Helper()
	return startBus(t, unstartedBus(t, rdb, o))
}

// unstartedBus is newBus's bus before Start, for a test to adjust.
func unstartedBus(t testing.TB, rdb redis.UniversalClient, o Options) *Bus {
	t.Helper()
	o.Redis = rdb
	if o.Logger == nil {
		o.Logger = quiet()
	}
	if o.ReplicaID == "" {
		o.ReplicaID = replicaid.New()
	}
	if o.PollInterval == 0 {
		o.PollInterval = 100 * time.Millisecond
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 600 * time.Millisecond
	}
	if o.RetryInterval == 0 {
		o.RetryInterval = 20 * time.Millisecond
	}
	if o.RetryPolicy == "" {
		o.RetryPolicy = SuspendRetries
	}
	if o.MaxSubscriptions == 0 {
		o.MaxSubscriptions = 100
	}
	if o.MaxSubscriptionsPerOwner == 0 {
		o.MaxSubscriptionsPerOwner = 10
	}
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startBus starts b, stopped when the test ends.
func startBus(t testing.TB, b *Bus) *Bus {
	ctx, cancel := context.WithCancel(context.Background())
	b.Start(ctx)
	t.Cleanup(func() { cancel(); b.Close() })
	return b
}

// emitPower emits ResourcePoweredOn/Off for node; seq goes into the
// message args' node name so tests can tell events apart.
func emitPower(b *Bus, node string, key schemas.ResourceEventMessage) {
	b.Emit(context.Background(), serializer.Event{Time: time.Now(), Node: node, Origin: "/Systems/" + node,
		Message: schemas.ResourceEvent(key, node)})
}

func emitTask(b *Bus, node, task string, key schemas.TaskEventMessage) {
	b.Emit(context.Background(), serializer.Event{Time: time.Now(), Node: node, Task: task, Origin: "/TaskService/Tasks/" + task,
		Message: schemas.TaskEvent(key, task)})
}

// forEachRedis runs f on miniredis and on a real redis-server
// (TestOnRedisCluster runs the same tests on a Redis Cluster).
func forEachRedis(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient)) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			t.Parallel()
			f(t, target.New(t))
		})
	}
}

// TestOnRedisCluster runs the tests of forEachRedis on a real Redis
// Cluster of three masters, one after the other on one cluster (emptied
// between them): events are published and read, followed, and pushed by
// one elected replica, through a cluster client. The events' keys share
// the hash tag {events}, so their scripts and transactions run on one
// master.
func TestOnRedisCluster(t *testing.T) {
	testkit.StartRedisCluster(t, 3, 0).RunEach(t,
		testkit.ClusterCase{Name: "emit and read", Run: emitAndRead},
		testkit.ClusterCase{Name: "follow without loss", Run: followWithoutLoss},
		testkit.ClusterCase{Name: "tail wakes followers", Run: tailWakesFollowers},
		testkit.ClusterCase{Name: "push once in order across replicas", Run: pushOnceInOrderAcrossReplicas},
		testkit.ClusterCase{Name: "push retries then applies the policy", Run: pushRetriesThenAppliesPolicy},
		testkit.ClusterCase{Name: "subscriptions per owner", Run: subscriptionsPerOwner},
	)
}

func TestEmitAndRead(t *testing.T) { forEachRedis(t, emitAndRead) }

func emitAndRead(t *testing.T, rdb redis.UniversalClient) {
	b := newBus(t, rdb, Options{})
	ctx := context.Background()
	if id, err := b.LastID(ctx); err != nil || id != "0-0" {
		t.Fatalf("LastID of an empty stream: %q %v", id, err)
	}
	emitPower(b, "n1", schemas.MsgResourcePoweringOn)
	emitTask(b, "n1", "n1.a", schemas.MsgTaskStarted)
	emitPower(b, "n1", schemas.MsgResourcePoweredOn)
	recs, err := b.Read(ctx, "0-0", 0)
	if err != nil || len(recs) != 3 {
		t.Fatalf("Read: %d records, %v", len(recs), err)
	}
	want := []string{"ResourceEvent.1.4.ResourcePoweringOn", "TaskEvent.1.0.TaskStarted", "ResourceEvent.1.4.ResourcePoweredOn"}
	for i, r := range recs {
		if r.Message.MessageID != want[i] || r.Node != "n1" || r.Time.IsZero() {
			t.Errorf("record %d: %+v", i, r)
		}
	}
	if recs[1].Task != "n1.a" || recs[1].Origin != "/TaskService/Tasks/n1.a" || recs[1].ResourceType() != "Task" {
		t.Errorf("task record: %+v", recs[1])
	}
	if last, _ := b.LastID(ctx); last != recs[2].ID {
		t.Errorf("LastID %s, want %s", last, recs[2].ID)
	}
	// A blocking read returns when an event arrives.
	done := make(chan []Record)
	go func() {
		r, _ := b.Read(ctx, recs[2].ID, 5*time.Second)
		done <- r
	}()
	time.Sleep(50 * time.Millisecond)
	emitPower(b, "n2", schemas.MsgResourcePoweredOff)
	select {
	case r := <-done:
		if len(r) != 1 || r[0].Node != "n2" {
			t.Errorf("blocking read: %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocking read did not return")
	}
	if r, err := b.Read(ctx, recs[2].ID, 0); err != nil || len(r) != 1 {
		t.Errorf("Read after: %d %v", len(r), err)
	}
}

// TestFollowWithoutLoss: a follower that resumes after an id gets every
// later event once, in stream order, while two replicas emit concurrently.
func TestFollowWithoutLoss(t *testing.T) { forEachRedis(t, followWithoutLoss) }

func followWithoutLoss(t *testing.T, rdb redis.UniversalClient) {
	a := newBus(t, rdb, Options{})
	b := newBus(t, rdb, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	emitPower(a, "first", schemas.MsgResourcePoweredOn)
	recs, _ := a.Read(ctx, "0-0", 0)
	f, err := b.Follow(ctx, recs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const perReplica = 60
	var wg sync.WaitGroup
	for _, bus := range []*Bus{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perReplica {
				name := "r" + strconv.Itoa(i)
				if bus == b {
					name = "s" + strconv.Itoa(i)
				}
				emitPower(bus, name, schemas.MsgResourcePoweredOff)
			}
		}()
	}
	var got []Record
	for len(got) < 2*perReplica {
		r, err := f.Next(ctx, 5*time.Second)
		if err != nil {
			t.Fatalf("after %d events: %v", len(got), err)
		}
		if r == nil {
			t.Fatalf("no event within 5s after %d", len(got))
		}
		got = append(got, r...)
	}
	wg.Wait()
	if len(got) != 2*perReplica {
		t.Fatalf("%d events, want %d", len(got), 2*perReplica)
	}
	next := map[byte]int{}
	prev := streamID{}
	for _, r := range got {
		id, _ := parseID(r.ID)
		if !prev.less(id) {
			t.Fatalf("event %s after %s: not in stream order", r.ID, prev)
		}
		prev = id
		want := string(r.Node[0]) + strconv.Itoa(next[r.Node[0]])
		if r.Node != want {
			t.Fatalf("event for %s, want %s: one replica's events out of order", r.Node, want)
		}
		next[r.Node[0]]++
	}
	if f.Cursor() != got[len(got)-1].ID {
		t.Errorf("cursor %s, want %s", f.Cursor(), got[len(got)-1].ID)
	}
	// Nothing more, and an idle wait returns nil, nil.
	if r, err := f.Next(ctx, 150*time.Millisecond); r != nil || err != nil {
		t.Errorf("idle Next: %v %v", r, err)
	}
}

func TestFollowFromNowAndClose(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	b := newBus(t, rdb, Options{})
	ctx := context.Background()
	emitPower(b, "old", schemas.MsgResourcePoweredOn)
	f, err := b.Follow(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	emitPower(b, "new", schemas.MsgResourcePoweredOn)
	r, err := f.Next(ctx, 5*time.Second)
	if err != nil || len(r) != 1 || r[0].Node != "new" {
		t.Fatalf("Next: %+v %v; want only the event after Follow", r, err)
	}
	if _, err := b.Follow(ctx, "not-an-id"); err == nil {
		t.Error("Follow accepted a bad id")
	}
	errc := make(chan error, 1)
	go func() {
		_, err := f.Next(ctx, time.Minute)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	b.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Next after Close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not end when the bus closed")
	}
}

func TestStreamIsBounded(t *testing.T) {
	rdb := testkit.RealRedis(t)
	b := newBus(t, rdb, Options{MaxLen: 100})
	for range 1000 {
		emitPower(b, "n", schemas.MsgResourcePoweredOn)
	}
	n, err := rdb.XLen(context.Background(), keyStream).Result()
	if err != nil || n >= 1000 || n < 100 {
		t.Errorf("stream length %d (%v); want about 100", n, err)
	}
}

// TestNewRefusesMissingOptions: the options the configuration file states
// have no second default here: New names each one left out.
func TestNewRefusesMissingOptions(t *testing.T) {
	_, err := New(Options{Redis: testkit.MiniRedis(t), RetryAttempts: -1})
	if err == nil {
		t.Fatal("New without the configured options: no error")
	}
	for _, want := range []string{"ReplicaID", "RetryAttempts", "RetryInterval", "RetryPolicy", "MaxSubscriptions ", "MaxSubscriptionsPerOwner", "LeaseTTL"} {
		if !strings.Contains(err.Error(), "Options."+want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "Options.Redis") {
		t.Errorf("New without Redis: %v", err)
	}
}

// TestTailWakesFollowers: a replica's followers are woken by an event
// another replica emits (through the wake-up channel, not by polling: the
// poll interval here is an hour), the wake-up subscription answers its
// pings, and after its connection is killed it subscribes again and wakes
// the followers (what was emitted meanwhile is read then).
func TestTailWakesFollowers(t *testing.T) { forEachRedis(t, tailWakesFollowers) }

func tailWakesFollowers(t *testing.T, rdb redis.UniversalClient) {
	a := newBus(t, rdb, Options{PollInterval: time.Hour})
	b := unstartedBus(t, rdb, Options{PollInterval: time.Hour})
	b.ping = 50 * time.Millisecond
	startBus(t, b)
	ctx := context.Background()
	waitFor(t, "the wake-up subscription", b.tailing.Load)
	w := b.hub.register()
	defer b.hub.unregister(w)
	drain := func() {
		select {
		case <-w.ch:
		default:
		}
	}
	woken := func(what string) {
		t.Helper()
		select {
		case <-w.ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("no wake-up within 10 s after %s", what)
		}
	}
	drain()
	emitPower(a, "n1", schemas.MsgResourcePoweredOn)
	woken("another replica's Emit")
	// Pings are answered, and the subscription stays up.
	p0 := b.pongs.Load()
	waitFor(t, "two answered pings", func() bool { return b.pongs.Load() >= p0+2 })
	if !b.tailing.Load() {
		t.Fatal("the wake-up subscription failed over its pings")
	}
	f, err := b.Follow(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	emitPower(a, "n2", schemas.MsgResourcePoweredOff)
	r, err := f.Next(ctx, 10*time.Second)
	if err != nil || len(r) != 1 || r[0].Node != "n2" {
		t.Fatalf("Next: %+v %v; want n2's event", r, err)
	}
}

// TestTailResubscribes: when the wake-up subscription's connection is
// killed, the tail subscribes again and wakes its followers.
func TestTailResubscribes(t *testing.T) {
	rdb := testkit.RealRedis(t)
	b := newBus(t, rdb, Options{PollInterval: time.Hour})
	waitFor(t, "the wake-up subscription", b.tailing.Load)
	w := b.hub.register()
	defer b.hub.unregister(w)
	select {
	case <-w.ch:
	default:
	}
	ctx := context.Background()
	if n, err := rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Result(); err != nil || n < 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub: %d %v", n, err)
	}
	select {
	case <-w.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("followers not woken after the subscription's connection was killed")
	}
	waitFor(t, "the wake-up subscription again", b.tailing.Load)
	if n, err := rdb.PubSubNumSub(ctx, channelNew).Result(); err != nil || n[channelNew] != 1 {
		t.Fatalf("PUBSUB NUMSUB %s: %v %v; want 1 subscriber", channelNew, n, err)
	}
}
