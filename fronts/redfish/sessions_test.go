package redfish_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
)

// TestSessions runs the session life cycle on miniredis and on a real
// redis-server: login, use, list, logout, idle expiry.
func TestSessions(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			e := newEnv(t, target.New(t), 1, 2*time.Second)
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
			// Use keeps a session alive past its idle timeout...
			for range 3 {
				time.Sleep(time.Second)
				if r := e.do("GET", "/redfish/v1/Systems", "", token(tok)); r.Status != 200 {
					t.Fatalf("token in use expired: %d", r.Status)
				}
			}
			// ...and idleness expires it.
			time.Sleep(2500 * time.Millisecond)
			r := e.do("GET", "/redfish/v1/Systems", "", token(tok))
			if r.Status != http.StatusUnauthorized || r.messageID(t) != "Base.1.22.NoValidSession" {
				t.Errorf("expired token: %d %s, want 401 NoValidSession", r.Status, r.Body)
			}
		})
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
