package serializer_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/serializer"
)

// clusterPropertyChecks is the number of random scenarios run on the
// Cluster (the property test runs propertyChecks on each other Redis).
const clusterPropertyChecks = 20

// TestOnRedisCluster runs the serializer on a real Redis Cluster of three
// masters: the storm of 100 nodes, whose keys lie on every master, driven
// by two replicas (admission, coalescing, leases, worker steps; every
// node's change published on fg:node reaches a subscriber of the cluster),
// and random scenarios of the property test (one command per node, final
// power = the last accepted request, every task terminal).
func TestOnRedisCluster(t *testing.T) {
	c := testkit.StartRedisCluster(t, 3, 0)
	rdb := c.Client()

	t.Run("storm over every master", func(t *testing.T) {
		masters := map[string]int{}
		for i := range stormNodes {
			masters[c.MasterFor(serializer.LogKey(stormNodeID(i)))]++
		}
		if len(masters) != 3 {
			t.Fatalf("the storm's %d nodes lie on %d masters (%v), want all 3", stormNodes, len(masters), masters)
		}
		t.Logf("nodes per master: %v", masters)

		// Every node's change is published from a script on its own
		// master; one subscriber of the cluster hears them all.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sub := rdb.Subscribe(ctx, "fg:node")
		defer sub.Close()
		if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
			t.Fatal(err)
		}
		var mu sync.Mutex
		heard := map[string]bool{}
		go func() {
			for m := range sub.Channel() {
				mu.Lock()
				heard[m.Payload] = true
				mu.Unlock()
			}
		}()

		stormOfDuplicateOns(t, rdb)

		for i := range stormNodes {
			id := stormNodeID(i)
			testkit.WaitFor(t, 30*time.Second, "fg:node to name "+id, func() (bool, string) {
				mu.Lock()
				defer mu.Unlock()
				return heard[id], fmt.Sprintf("%d of %d nodes heard", len(heard), stormNodes)
			})
		}
	})

	t.Run("property", func(t *testing.T) {
		c.FlushAll()
		limitRapid(t, clusterPropertyChecks)
		checkScenarios(t, rdb, "c")
	})
}
