package redfish_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/fronts/redfish"
	"github.com/fishgate/fishgate/internal/testkit"
)

// TestOnRedisCluster runs sessions, accounts and the lockout on a real
// Redis Cluster of three masters: the session life cycle, account changes
// revoking sessions on two replicas, the lockout script (its two keys
// share the user's hash tag), sessions whose keys spread over every
// master, and account changes reaching another replica by the
// fg:accounts channel.
func TestOnRedisCluster(t *testing.T) {
	c := testkit.StartRedisCluster(t, 3, 0)
	c.RunEach(t,
		testkit.ClusterCase{Name: "sessions", Run: sessionLifeCycle},
		testkit.ClusterCase{Name: "accounts", Run: accountsCRUDAndSessionRevocation},
		testkit.ClusterCase{Name: "lockout", Run: lockout},
		testkit.ClusterCase{Name: "sessions over every master", Run: func(t *testing.T, rdb redis.UniversalClient) { sessionsOverMasters(t, rdb, c) }},
		testkit.ClusterCase{Name: "account changes published", Run: accountChangesPublished},
	)
}

// sessionsOverMasters: a user's sessions, whose token keys lie on every
// master, are listed, used on two replicas, deleted one by one, and all
// revoked by a change of the account.
func sessionsOverMasters(t *testing.T, rdb redis.UniversalClient, c *testkit.RedisCluster) {
	ctx := context.Background()
	e := accountsEnvOn(t, rdb, redfish.AccountPolicy{MaxSessionsPerUser: 100})
	other := e.secondReplica([]redfish.Account{{User: adminUser, Password: adminPass}}, redfish.AccountPolicy{MaxSessionsPerUser: 100})
	const accounts = "/redfish/v1/AccountService/Accounts"
	wantStatus(t, "create op", e.do("POST", accounts, `{"UserName":"op","Password":"operator1","RoleId":"Operator"}`), http.StatusCreated)

	const n = 24
	var toks, locs []string
	masters := map[string]bool{}
	for range n {
		tok, loc := e.login("op", "operator1")
		toks, locs = append(toks, tok), append(locs, loc)
		h := sha256.Sum256([]byte(tok))
		masters[c.MasterFor("fg:token:"+hex.EncodeToString(h[:]))] = true
	}
	// 24 random tokens all on two of three masters: about 1 in 20000.
	if len(masters) != 3 {
		t.Fatalf("the token keys of %d sessions lie on %d masters, want all 3", n, len(masters))
	}
	for i, tok := range toks {
		wantStatus(t, fmt.Sprint("token ", i), e.do("GET", "/redfish/v1/Systems", "", token(tok)), http.StatusOK)
		wantStatus(t, fmt.Sprint("token ", i, " on the other replica"), other.do("GET", "/redfish/v1/Systems", "", token(tok)), http.StatusOK)
	}
	count := func() float64 {
		return e.do("GET", "/redfish/v1/SessionService/Sessions", "").json(t)["Members@odata.count"].(float64)
	}
	if got := count(); got != n {
		t.Fatalf("%v sessions listed, want %d", got, n)
	}
	wantStatus(t, "logout", other.do("DELETE", locs[0], "", token(toks[0])), http.StatusNoContent)
	wantStatus(t, "token after logout", e.do("GET", "/redfish/v1/Systems", "", token(toks[0])), http.StatusUnauthorized)
	if got := count(); got != n-1 {
		t.Errorf("%v sessions listed after a logout, want %d", got, n-1)
	}

	wantStatus(t, "new password", e.do("PATCH", accounts+"/op", `{"Password":"operator2"}`), http.StatusOK)
	for i, tok := range toks[1:] {
		wantStatus(t, fmt.Sprint("token ", i+1, " after the password changed"), other.do("GET", "/redfish/v1/Systems", "", token(tok)), http.StatusUnauthorized)
	}
	if got := count(); got != 0 {
		t.Errorf("%v sessions listed after the account changed, want 0", got)
	}
	if ids, err := rdb.SMembers(ctx, "fg:{user:op}:sessions").Result(); err != nil || len(ids) != 0 {
		t.Errorf("op's session set after revocation: %v, %v; want empty", ids, err)
	}
}

// accountChangesPublished: an account created, changed and deleted by one
// replica's store is seen by another's at once, by the fg:accounts
// channel (its periodic reload is an hour away).
func accountChangesPublished(t *testing.T, rdb redis.UniversalClient) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	newStore := func() *redfish.AccountStore {
		st, err := redfish.NewAccountStore(ctx, rdb, nil, redfish.AccountPolicy{}, quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	a, b := newStore(), newStore()
	done := make(chan struct{})
	go func() { defer close(done); b.Watch(ctx, time.Hour) }()
	defer func() { cancel(); <-done }()
	cc := rdb.(*redis.ClusterClient)
	testkit.WaitFor(t, 30*time.Second, "the watcher subscribed to fg:accounts", func() (bool, string) {
		var subs atomic.Int64 // ForEachMaster asks the masters at once
		err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			n, err := m.PubSubNumSub(ctx, "fg:accounts").Result()
			subs.Add(n["fg:accounts"])
			return err
		})
		return err == nil && subs.Load() == 1, fmt.Sprint(subs.Load(), " subscribers ", err)
	})
	has := func(st *redfish.AccountStore, user, role string) bool {
		for _, a := range st.List() {
			if a.User == user && a.Role == role {
				return true
			}
		}
		return false
	}
	if _, err := a.Put(ctx, "op", "operator1", redfish.RoleOperator, true, nil, true); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "the other replica sees the new account", func() (bool, string) {
		return has(b, "op", redfish.RoleOperator), fmt.Sprint(b.List())
	})
	if _, err := a.Put(ctx, "op", "", redfish.RoleReadOnly, true, nil, false); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "the other replica sees the demotion", func() (bool, string) {
		return has(b, "op", redfish.RoleReadOnly), fmt.Sprint(b.List())
	})
	if err := a.Delete(ctx, "op"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "the other replica sees the deletion", func() (bool, string) {
		return len(b.List()) == 0, fmt.Sprint(b.List())
	})
}
