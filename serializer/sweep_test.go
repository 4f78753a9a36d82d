package serializer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
)

// slowReader is a backend whose power reads take a while and are counted
// per kind: it measures how many reads the sweep runs at once.
type slowReader struct {
	kind     string
	inFlight map[string]*atomic.Int32
	peak     map[string]*atomic.Int32
	mu       *sync.Mutex
}

func (b slowReader) PowerState(ctx context.Context) (schemas.PowerState, error) {
	n := b.inFlight[b.kind].Add(1)
	b.mu.Lock()
	if n > b.peak[b.kind].Load() {
		b.peak[b.kind].Store(n)
	}
	b.mu.Unlock()
	time.Sleep(30 * time.Millisecond)
	b.inFlight[b.kind].Add(-1)
	return schemas.PowerOff, nil
}
func (slowReader) Reset(context.Context, schemas.ResetType) error { return nil }
func (slowReader) Boot(context.Context) (schemas.BootOverride, error) {
	return schemas.BootOverride{}, nil
}
func (slowReader) SetBoot(context.Context, schemas.BootOverride) error { return nil }
func (slowReader) Capabilities(context.Context) (backends.Capabilities, error) {
	return backends.Capabilities{ResetTypes: []schemas.ResetType{schemas.ResetOn}}, nil
}
func (slowReader) Close() error { return nil }

// TestSweepConcurrencyBounds: the power sweep reads at most SyncPerKind
// nodes of one backend kind, and SyncConcurrency in all, at once.
func TestSweepConcurrencyBounds(t *testing.T) {
	inFlight := map[string]*atomic.Int32{"amt": {}, "ipmi": {}}
	peak := map[string]*atomic.Int32{"amt": {}, "ipmi": {}}
	mu := &sync.Mutex{}
	var nodes []serializer.Node
	for i := range 30 {
		kind := "amt"
		if i%2 == 1 {
			kind = "ipmi"
		}
		nodes = append(nodes, serializer.Node{ID: kind + string(rune('a'+i)), Kind: kind,
			Backend: slowReader{kind: kind, inFlight: inFlight, peak: peak, mu: mu}})
	}
	o := configuredOptions()
	o.Redis, o.ReplicaID, o.Logger = testkit.MiniRedis(t), "r1", slog.New(slog.NewTextHandler(io.Discard, nil))
	o.SyncConcurrency, o.SyncPerKind = 5, 3
	svc, err := serializer.New(nodes, o)
	if err != nil {
		t.Fatal(err)
	}
	svc.Start(t.Context())
	t.Cleanup(func() { svc.Close() })
	<-svc.Synced() // the first sweep read every node
	a, i := peak["amt"].Load(), peak["ipmi"].Load()
	if a > 3 || i > 3 {
		t.Errorf("peak reads per kind amt=%d ipmi=%d, bound 3", a, i)
	}
	if a+i > 5+1 || a < 2 || i < 2 {
		// Both kinds ran concurrently (the bound is not a serialization), and
		// together they stayed near the total bound of 5.
		t.Errorf("peak reads amt=%d ipmi=%d: want each ≥2 and the sum ≤ the total bound", a, i)
	}
}

// hungReader is a backend whose power reads hang until their deadline,
// counted, like a BMC that accepts the connection and never answers.
type hungReader struct {
	slowReader
	reads   *atomic.Int32
	running *atomic.Int32
}

func (b hungReader) PowerState(ctx context.Context) (schemas.PowerState, error) {
	b.reads.Add(1)
	b.running.Add(1)
	defer b.running.Add(-1)
	<-ctx.Done()
	return "", ctx.Err()
}

// countedReader counts its power reads.
type countedReader struct {
	slowReader
	total *atomic.Int32
}

func (b countedReader) PowerState(ctx context.Context) (schemas.PowerState, error) {
	b.total.Add(1)
	return b.slowReader.PowerState(ctx)
}

// TestSweepHungBMCsDoNotHoldTheOthers: BMCs that never answer hold the
// sweep's slots only for SlowRead, not for CallTimeout: every other node
// is read (and Start's first read ends) while their reads still hang, and
// a later sweep does not start a second read of a node whose read runs.
func TestSweepHungBMCsDoNotHoldTheOthers(t *testing.T) {
	var reads, running atomic.Int32
	inFlight := map[string]*atomic.Int32{"redfish": {}}
	peak := map[string]*atomic.Int32{"redfish": {}}
	var total atomic.Int32
	fine := countedReader{slowReader{kind: "redfish", inFlight: inFlight, peak: peak, mu: &sync.Mutex{}}, &total}
	var nodes []serializer.Node
	// The hung ones come first, and there are more of them than slots.
	for _, id := range []string{"a-hung1", "a-hung2", "a-hung3"} {
		nodes = append(nodes, serializer.Node{ID: id, Kind: "redfish", Backend: hungReader{fine.slowReader, &reads, &running}})
	}
	var healthy []string
	for i := range 12 {
		id := "b-node" + string(rune('a'+i))
		healthy = append(healthy, id)
		nodes = append(nodes, serializer.Node{ID: id, Kind: "redfish", Backend: fine})
	}
	o := configuredOptions()
	o.Redis, o.ReplicaID, o.Logger = testkit.MiniRedis(t), "r1", slog.New(slog.NewTextHandler(io.Discard, nil))
	o.SyncConcurrency, o.SyncPerKind = 2, 2
	o.CallTimeout, o.SlowRead = 10*time.Minute, 20*time.Millisecond
	o.SyncInterval = 200 * time.Millisecond
	svc, err := serializer.New(nodes, o)
	if err != nil {
		t.Fatal(err)
	}
	svc.Start(t.Context())
	t.Cleanup(func() { svc.Close() })
	select {
	case <-svc.Synced():
	case <-time.After(time.Minute):
		t.Fatalf("the first read did not end while %d reads hang (CallTimeout %s)", running.Load(), o.CallTimeout)
	}
	testkit.WaitFor(t, time.Minute, "every healthy node read", func() (bool, string) {
		for _, id := range healthy {
			v, err := svc.View(id)
			if err != nil || v.PowerState != schemas.PowerOff {
				return false, id + " power state " + string(v.PowerState)
			}
		}
		return true, ""
	})
	// Several sync intervals later each hung node still has its one read.
	first := total.Load()
	testkit.WaitFor(t, time.Minute, "three more sweeps", func() (bool, string) {
		n := total.Load()
		return n >= first+3*int32(len(healthy)), fmt.Sprintf("%d reads of healthy nodes", n)
	})
	if r, h := reads.Load(), running.Load(); r != 3 || h != 3 {
		t.Errorf("hung nodes: %d reads started, %d running; want 3 and 3 (one each, not doubled by later sweeps)", r, h)
	}
}
