// This file gives tests a real Redis Cluster: redis-server processes with
// cluster-enabled on free loopback ports, joined by redis-cli, and the
// means to kill a master and wait for its replica's promotion.

package testkit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/redisproc"
)

// ClusterNodeTimeout is the cluster-node-timeout of test Clusters: a
// killed master's replica is promoted about this long after the kill.
// Short, so failover tests stay short; long enough that a loaded 2-core
// machine does not fail masters over by itself.
const ClusterNodeTimeout = 1500 * time.Millisecond

// RedisCluster is a running Redis Cluster of a test.
type RedisCluster struct {
	t    testing.TB
	topo *redisproc.Topology
}

// StartRedisCluster starts a Redis Cluster of masters masters (at least
// three) with replicasPerMaster replicas each, every server with AOF in
// its own directory, and returns once every server says cluster_state:ok,
// every slot is served and every replica is linked. Everything is stopped
// when the test ends. Without redis-server or redis-cli the test is
// skipped, or fails when CI is set.
func StartRedisCluster(t testing.TB, masters, replicasPerMaster int) *RedisCluster {
	t.Helper()
	topo := startTopology(t, redisproc.Options{Mode: "cluster", Masters: masters,
		ReplicasPerMaster: replicasPerMaster, NodeTimeout: ClusterNodeTimeout})
	c := &RedisCluster{t: t, topo: topo}
	c.waitSlotsServed()
	return c
}

// Topology is the cluster's processes (redisproc).
func (c *RedisCluster) Topology() *redisproc.Topology { return c.topo }

// Seeds are the addresses of every server, masters and replicas.
func (c *RedisCluster) Seeds() []string { return c.topo.Addrs() }

// Servers describes every server now: address, role, pid.
func (c *RedisCluster) Servers() []redisproc.Server {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.topo.Servers(ctx)
}

// Masters are the addresses of the servers that are masters now.
func (c *RedisCluster) Masters() []string {
	var out []string
	for _, s := range c.Servers() {
		if s.Role == "master" {
			out = append(out, s.Addr)
		}
	}
	return out
}

// Client is a new client of the cluster as the gateway's (a caller's
// deadline bounds the socket I/O), whose calls are checked as MiniRedis's
// are. It is closed when the test ends.
func (c *RedisCluster) Client() *redis.ClusterClient {
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Seeds(), ContextTimeoutEnabled: true,
		// go-redis reloads the slot map on MOVED, but not when a master
		// stops answering: without this it would dial a dead master for
		// the default minute after its replica took over.
		ClusterStateReloadInterval: ClusterNodeTimeout})
	c.t.Cleanup(func() { cl.Close() })
	checkSlots(c.t, cl)
	return cl
}

// MasterFor is the address of the master that serves key's slot now.
func (c *RedisCluster) MasterFor(key string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := c.topo.Master(ctx, key)
	if err != nil {
		c.t.Fatalf("master of %q: %v", key, err)
	}
	return addr
}

// KillMasterFor SIGKILLs the master that serves key's slot and returns its
// address. It stays down until the test ends.
func (c *RedisCluster) KillMasterFor(key string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr, err := c.topo.KillMaster(ctx, key)
	if err != nil {
		c.t.Fatalf("kill the master of %q: %v", key, err)
	}
	return addr
}

// WaitPromoted waits until a replica of the killed master at addr serves
// its slots and the cluster is ok again.
func (c *RedisCluster) WaitPromoted(addr string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.topo.WaitPromoted(ctx, addr); err != nil {
		c.t.Fatalf("promotion of a replica of %s: %v", addr, err)
	}
	c.waitSlotsServed()
}

// waitSlotsServed waits until a client of the cluster finds a master for
// every slot (the servers agree already; this is the clients' view, which
// a test's first command would otherwise race).
func (c *RedisCluster) waitSlotsServed() {
	c.t.Helper()
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Seeds()})
	defer cl.Close()
	WaitFor(c.t, time.Minute, "every hash slot served by a running master", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ranges, err := cl.ClusterSlots(ctx).Result()
		if err != nil {
			return false, err.Error()
		}
		running := map[string]bool{}
		for _, s := range c.topo.Servers(ctx) {
			running[s.Addr] = s.Running && s.Role == "master"
		}
		served := 0
		var bad []string
		for _, r := range ranges {
			if len(r.Nodes) == 0 || !running[r.Nodes[0].Addr] {
				bad = append(bad, fmt.Sprintf("%d-%d", r.Start, r.End))
				continue
			}
			served += int(r.End - r.Start + 1)
		}
		return served == Slots, fmt.Sprintf("%d of %d slots served; not by a running master: %s", served, Slots, strings.Join(bad, " "))
	})
}

// FlushAll empties every master, so that tests sharing one cluster start
// from nothing (a cluster takes seconds to start; emptying it, none).
func (c *RedisCluster) FlushAll() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, addr := range c.Masters() {
		m := redis.NewClient(&redis.Options{Addr: addr})
		err := m.FlushAll(ctx).Err()
		m.Close()
		if err != nil {
			c.t.Fatalf("FLUSHALL on %s: %v", addr, err)
		}
	}
}

// ClusterCase is a test body that runs on any Redis, a Cluster included.
type ClusterCase struct {
	Name string
	Run  func(t *testing.T, rdb redis.UniversalClient)
}

// RunEach runs each case as a subtest on this cluster, one after the
// other, emptied before each (through a client of Client's kind).
func (c *RedisCluster) RunEach(t *testing.T, cases ...ClusterCase) {
	t.Helper()
	rdb := c.Client()
	for _, tc := range cases {
		c.FlushAll()
		t.Run(tc.Name, func(t *testing.T) { tc.Run(t, rdb) })
	}
}
