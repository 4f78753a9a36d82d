package testkit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRedisCluster: StartRedisCluster gives the shape asked for, every
// server's role and pid; Slot agrees with the servers' CLUSTER KEYSLOT;
// the cluster refuses what the slot check reports (so the check is about
// something real); and a killed master's replica takes over with the
// data the master had replicated.
func TestRedisCluster(t *testing.T) {
	start := time.Now()
	c := StartRedisCluster(t, 3, 1)
	t.Logf("3 masters with a replica each: started in %s", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()

	servers := c.Servers()
	roles := map[string]int{}
	pids := map[int]bool{}
	for _, s := range servers {
		roles[s.Role]++
		if s.PID <= 0 || pids[s.PID] || !s.Running {
			t.Errorf("server %+v: want a running process of its own", s)
		}
		pids[s.PID] = true
	}
	if len(servers) != 6 || roles["master"] != 3 || roles["slave"] != 3 {
		t.Fatalf("servers %+v: want 3 masters and 3 replicas", servers)
	}

	rdb := c.Client()
	keys := []string{"fg:sessions", "fg:node:{n000}:slots", "fg:{events}:stream", "fg:{user:}:locked",
		"fg:{user:}x}:locked", "a{}{b}", "{{x}}", "ünïcode", ""}
	for i := range 200 {
		keys = append(keys, fmt.Sprintf("fg:token:%064x", i*7919))
	}
	for _, k := range keys {
		got, err := rdb.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if int(got) != Slot(k) {
			t.Errorf("CLUSTER KEYSLOT %q = %d, Slot = %d", k, got, Slot(k))
		}
	}

	// What the slot check reports, the cluster refuses. (Sent to one
	// master directly: the cluster client would refuse it itself.)
	a, b := "fg:node:{n000}:slots", ""
	for i := 1; b == ""; i++ { // a key of another slot on the same master
		k := fmt.Sprintf("fg:node:{n%03d}:slots", i)
		if Slot(k) != Slot(a) && c.MasterFor(k) == c.MasterFor(a) {
			b = k
		}
	}
	if v := SlotViolation([]any{"del", a, b}); v == "" {
		t.Fatal("DEL of two slots not reported")
	}
	m := redis.NewClient(&redis.Options{Addr: c.MasterFor(a)})
	defer m.Close()
	if err := m.Del(ctx, a, b).Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Errorf("DEL %s %s on their master: %v, want CROSSSLOT", a, b, err)
	}
	// (A script that touches a key it was not given, of another slot on
	// the same master, is not refused by Redis 7.0: the servers cannot
	// hold scripts to the rule; TestScriptsTouchOnlyTheirKEYS does.)

	// Failover: a write the replica acknowledged survives its master.
	key := "fg:node:{n000}:slots"
	old := c.MasterFor(key)
	om := redis.NewClient(&redis.Options{Addr: old})
	defer om.Close()
	if err := om.Set(ctx, key, "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := om.Wait(ctx, 1, 10*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d, %v", n, err)
	}
	killed := time.Now()
	if got := c.KillMasterFor(key); got != old {
		t.Fatalf("killed %s, want the master of %s, %s", got, key, old)
	}
	c.WaitPromoted(old)
	t.Logf("replica promoted %s after the kill", time.Since(killed).Round(time.Millisecond))
	now := c.MasterFor(key)
	if now == old {
		t.Fatalf("master of %s is still %s", key, old)
	}
	if len(c.Masters()) != 3 {
		t.Errorf("masters after the failover: %v, want 3", c.Masters())
	}
	for _, s := range c.Servers() {
		if s.Addr == old && (s.Running || s.PID != 0) {
			t.Errorf("killed master %+v still runs", s)
		}
	}
	WaitFor(t, 30*time.Second, "the key readable through the cluster client", func() (bool, string) {
		v, err := rdb.Get(ctx, key).Result()
		return err == nil && v == "before", fmt.Sprint(v, err)
	})
}
