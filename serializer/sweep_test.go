package serializer_test

import (
	"context"
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
