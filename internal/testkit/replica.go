package testkit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisReplica starts a real redis-server replicating master (REPLICAOF)
// and returns its client once the link is up on both sides.
func RedisReplica(t testing.TB, master *redis.Client) *redis.Client {
	t.Helper()
	replica := RealRedis(t)
	host, port, _ := strings.Cut(master.Options().Addr, ":")
	ctx := context.Background()
	before := connectedReplicas(ctx, master)
	if err := replica.ReplicaOf(ctx, host, port).Err(); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, 20*time.Second, "replica link up", func() (bool, string) {
		info, err := replica.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up"), info
	})
	WaitFor(t, 20*time.Second, "master sees its new replica", func() (bool, string) {
		n := connectedReplicas(ctx, master)
		return n > before, fmt.Sprintf("connected_slaves:%d", n)
	})
	return replica
}

// connectedReplicas is the master's connected_slaves (-1 unknown).
func connectedReplicas(ctx context.Context, c *redis.Client) int {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return -1
	}
	var n int
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "connected_slaves:"); ok {
			fmt.Sscan(v, &n)
		}
	}
	return n
}
