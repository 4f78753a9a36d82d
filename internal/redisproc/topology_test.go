package redisproc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/redisproc"
	"github.com/fishgate/fishgate/internal/testkit"
)

// TestRedisTopologies: each -redis topology starts, serves a client as
// the gateway would open it, and after the master is stopped serves again
// with the data written before (the failover of Sentinel and Cluster
// promoted the replica; the old master came back).
func TestRedisTopologies(t *testing.T) {
	for _, mode := range redisproc.Modes {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			topo := testkit.StartRedisTopology(t, mode)
			rdb := topo.Client()
			defer rdb.Close()
			key := "fg:node:{n000}:slots"
			if err := rdb.Set(ctx, key, "before", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if mode != "standalone" {
				// acknowledged by the replica, as the gateway's writes are
				// with min_replicas_ack: 1
				m, err := topo.Master(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				c := redis.NewClient(&redis.Options{Addr: m})
				if err := c.Set(ctx, key, "before", 0).Err(); err != nil {
					t.Fatal(err)
				}
				if n, err := c.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n < 1 {
					t.Fatalf("WAIT: %d, %v", n, err)
				}
				c.Close()
			}
			old, err := topo.Master(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if err := topo.StopMaster(ctx, key); err != nil {
				t.Fatal(err)
			}
			now, err := topo.Master(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if mode != "standalone" && now == old {
				t.Errorf("master of %s is still %s after the failover", key, old)
			}
			var got string
			testkit.WaitFor(t, 30*time.Second, "the key to be readable", func() (bool, string) {
				v, err := rdb.Get(ctx, key).Result()
				got = v
				return err == nil, fmt.Sprint(err)
			})
			if got != "before" {
				t.Fatalf("after the master stopped: %q; want %q", got, "before")
			}
			if err := topo.EnsureUp(ctx); err != nil {
				t.Fatal(err)
			}
			if c := topo.Crashes(); len(c) > 0 {
				t.Errorf("unexpected exits: %v", c)
			}
		})
	}
}
