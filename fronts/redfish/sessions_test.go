package redfish_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/testkit"
)

// TestSessions runs the session life cycle on miniredis and on a real
// redis-server: login, use, list, logout, idle expiry.
func TestSessions(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) { sessionLifeCycle(t, target.New(t)) })
	}
}

// sessionLifeCycle is TestSessions on rdb (TestOnRedisCluster runs it on a
// Cluster too).
func sessionLifeCycle(t *testing.T, rdb redis.UniversalClient) {
	const idle = time.Minute
	e := newEnv(t, rdb, 1, idle)
	tok, loc := e.login(adminUser, adminPass)
	if r := e.do("GET", "/redfish/v1/Systems/node1", "", token(tok)); r.Status != 200 {
		t.Fatalf("GET with token: %d %s", r.Status, r.Body)
	}
	sess := e.do("GET", loc, "", token(tok)).json(t)
	if sess["UserName"] != adminUser || sess["Password"] != nil {
		t.Errorf("session resource: %v", sess)
	}
	roTok, roLoc := e.login(roUser, roPass)
	list := e.do("GET", "/redfish/v1/SessionService/Sessions", "", token(tok)).json(t)
	if n := list["Members@odata.count"].(float64); n != 2 {
		t.Errorf("administrator sees %v sessions, want 2", n)
	}
	list = e.do("GET", "/redfish/v1/SessionService/Sessions", "", token(roTok)).json(t)
	if n := list["Members@odata.count"].(float64); n != 1 {
		t.Errorf("read-only user sees %v sessions, want only its own", n)
	}
	if r := e.do("DELETE", loc, "", token(roTok)); r.Status != http.StatusNotFound {
		t.Errorf("read-only user deleting another's session: %d, want 404", r.Status)
	}
	// Logout.
	if r := e.do("DELETE", roLoc, "", token(roTok)); r.Status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	if r := e.do("GET", "/redfish/v1/Systems", "", token(roTok)); r.Status != http.StatusUnauthorized {
		t.Errorf("token after logout: %d, want 401", r.Status)
	}
	// The token key lives for the idle timeout, and use renews it:
	// time passing is stood for by shortening the key's TTL, so the
	// test does not depend on how fast a busy machine runs.
	ctx := context.Background()
	h := sha256.Sum256([]byte(tok))
	tk := "fg:token:" + hex.EncodeToString(h[:])
	if ttl := rdb.PTTL(ctx, tk).Val(); ttl <= 0 || ttl > idle {
		t.Fatalf("token key %s TTL %v, want within the idle timeout %v", tk, ttl, idle)
	}
	rdb.PExpire(ctx, tk, 5*time.Second) // 55 s of idleness
	if r := e.do("GET", "/redfish/v1/Systems", "", token(tok)); r.Status != 200 {
		t.Fatalf("token in use: %d", r.Status)
	}
	if ttl := rdb.PTTL(ctx, tk).Val(); ttl <= 5*time.Second {
		t.Errorf("token key TTL %v after use, want it renewed to the idle timeout %v", ttl, idle)
	}
	// ...and idleness expires it.
	rdb.PExpire(ctx, tk, time.Millisecond)
	testkit.WaitFor(t, 30*time.Second, "the idle token key expires", func() (bool, string) {
		n, err := rdb.Exists(ctx, tk).Result()
		return err == nil && n == 0, fmt.Sprint(n, err)
	})
	r := e.do("GET", "/redfish/v1/Systems", "", token(tok))
	if r.Status != http.StatusUnauthorized || r.messageID(t) != "Base.1.22.NoValidSession" {
		t.Errorf("expired token: %d %s, want 401 NoValidSession", r.Status, r.Body)
	}
}

// TestRedisDown: with its Redis gone, token authentication answers 503
// ServiceTemporarilyUnavailable with Retry-After, never 500.
func TestRedisDown(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	e := newEnv(t, rdb, 1, time.Minute)
	tok, _ := e.login(adminUser, adminPass)
	rdb.Close()
	r := e.do("GET", "/redfish/v1/Systems", "", token(tok))
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("token auth with Redis down: %d (Retry-After %q) %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	if id := r.messageID(t); id != "Base.1.22.ServiceTemporarilyUnavailable" {
		t.Errorf("MessageId %s", id)
	}
	r = e.do("POST", "/redfish/v1/SessionService/Sessions", `{"UserName":"admin","Password":"s3cret"}`, noAuth())
	if r.Status != http.StatusServiceUnavailable {
		t.Errorf("login with Redis down: %d, want 503", r.Status)
	}
	// Admission: 503 with Retry-After, and nothing reaches the BMC.
	r = e.do("POST", "/redfish/v1/Systems/node1/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`)
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || r.messageID(t) != "Base.1.22.ServiceTemporarilyUnavailable" {
		t.Errorf("reset with Redis down: %d (Retry-After %q) %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	time.Sleep(100 * time.Millisecond)
	if n, _ := e.fleet.Node("node1"); n.Machine().Status().CommandCount != 0 {
		t.Errorf("a command reached the BMC with Redis down: %+v", n.Machine().Status().Commands)
	}
}
