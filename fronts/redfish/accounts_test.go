package redfish_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/fronts/redfish"
	"github.com/fishgate/fishgate/internal/testkit"
)

// Accounts and sessions as a BMC has them (issue 10): sessions are revoked
// when their account changes, failed logins lock an account on every
// replica, a user's sessions are capped, and accounts are managed over
// Redfish by ConfigureUsers.

func accountsEnv(t *testing.T, policy redfish.AccountPolicy) *env {
	t.Helper()
	return accountsEnvOn(t, testkit.MiniRedis(t), policy)
}

// accountsEnvOn is accountsEnv on rdb.
func accountsEnvOn(t *testing.T, rdb redis.UniversalClient, policy redfish.AccountPolicy) *env {
	t.Helper()
	return newEnvWith(t, rdb, time.Minute, envConfig{nodes: 1, policy: policy,
		accounts: []redfish.Account{{User: "cfgop", Password: "cfg-operator", Role: redfish.RoleOperator}}})
}

// secondReplica is another gateway API on e's Redis with accounts.
func (e *env) secondReplica(accounts []redfish.Account, policy redfish.AccountPolicy) *env {
	e.t.Helper()
	api, err := redfish.New(redfish.Options{Nodes: e.nodes, Redis: e.rdb, SessionTimeout: time.Minute, Logger: quietLogger(),
		Accounts: accounts, AccountPolicy: policy})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(api.Close)
	srv := httptest.NewServer(api.Handler())
	e.t.Cleanup(srv.Close)
	return &env{t: e.t, fleet: e.fleet, nodes: e.nodes, srv: srv, rdb: e.rdb}
}

func wantStatus(t *testing.T, what string, r response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.Status, status, r.Body)
	}
}

func TestAccountsCRUDAndSessionRevocation(t *testing.T) {
	accountsCRUDAndSessionRevocation(t, testkit.MiniRedis(t))
}

// accountsCRUDAndSessionRevocation is TestAccountsCRUDAndSessionRevocation
// on rdb (TestOnRedisCluster runs it on a Cluster too).
func accountsCRUDAndSessionRevocation(t *testing.T, rdb redis.UniversalClient) {
	e := accountsEnvOn(t, rdb, redfish.AccountPolicy{})
	const accounts = "/redfish/v1/AccountService/Accounts"

	// An Administrator creates an Operator; ReadOnly and Operators may not.
	wantStatus(t, "POST by ReadOnly", e.do("POST", accounts, `{"UserName":"op","Password":"operator1","RoleId":"Operator"}`, basic(roUser, roPass)), http.StatusForbidden)
	wantStatus(t, "short password", e.do("POST", accounts, `{"UserName":"op","Password":"short","RoleId":"Operator"}`), http.StatusBadRequest)
	wantStatus(t, "bad role", e.do("POST", accounts, `{"UserName":"op","Password":"operator1","RoleId":"God"}`), http.StatusBadRequest)
	r := e.do("POST", accounts, `{"UserName":"op","Password":"operator1","RoleId":"Operator"}`)
	wantStatus(t, "POST", r, http.StatusCreated)
	if r.Header.Get("Location") != accounts+"/op" {
		t.Errorf("Location %q", r.Header.Get("Location"))
	}
	wantStatus(t, "POST again", e.do("POST", accounts, `{"UserName":"op","Password":"operator1","RoleId":"Operator"}`), http.StatusConflict)
	wantStatus(t, "POST by Operator", e.do("POST", accounts, `{"UserName":"x","Password":"operator1","RoleId":"Administrator"}`, basic("op", "operator1")), http.StatusForbidden)

	// The new account works on this replica and on another one at once.
	other := e.secondReplica([]redfish.Account{{User: adminUser, Password: adminPass}}, redfish.AccountPolicy{})
	tok, _ := e.login("op", "operator1")
	wantStatus(t, "Operator Reset", e.do("POST", "/redfish/v1/Systems/node1/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`, token(tok)), http.StatusAccepted)
	wantStatus(t, "Operator via the other replica", other.do("GET", "/redfish/v1/Systems/node1", "", token(tok)), http.StatusOK)

	// An Operator changes its own password, not its role.
	wantStatus(t, "own role", e.do("PATCH", accounts+"/op", `{"RoleId":"Administrator"}`, basic("op", "operator1")), http.StatusForbidden)
	wantStatus(t, "other's account", e.do("PATCH", accounts+"/"+roUser, `{"Password":"whatever123"}`, basic("op", "operator1")), http.StatusNotFound)
	wantStatus(t, "own password", e.do("PATCH", accounts+"/op", `{"Password":"operator2"}`, token(tok)), http.StatusOK)
	// ... which revokes its sessions, the one used included, on every replica.
	wantStatus(t, "token after a password change", e.do("GET", "/redfish/v1/Systems", "", token(tok)), http.StatusUnauthorized)
	wantStatus(t, "old password", e.do("GET", "/redfish/v1/Systems", "", basic("op", "operator1")), http.StatusUnauthorized)
	wantStatus(t, "new password", e.do("GET", "/redfish/v1/Systems", "", basic("op", "operator2")), http.StatusOK)

	// Demotion and disabling revoke too.
	tok, _ = e.login("op", "operator2")
	wantStatus(t, "demote", e.do("PATCH", accounts+"/op", `{"RoleId":"ReadOnly"}`), http.StatusOK)
	wantStatus(t, "token after demotion", other.do("POST", "/redfish/v1/Systems/node1/Actions/ComputerSystem.Reset", `{"ResetType":"ForceOff"}`, token(tok)), http.StatusUnauthorized)
	tok, _ = e.login("op", "operator2")
	wantStatus(t, "ReadOnly now", e.do("POST", "/redfish/v1/Systems/node1/Actions/ComputerSystem.Reset", `{"ResetType":"ForceOff"}`, token(tok)), http.StatusForbidden)
	wantStatus(t, "disable", e.do("PATCH", accounts+"/op", `{"Enabled":false}`), http.StatusOK)
	wantStatus(t, "token of a disabled account", e.do("GET", "/redfish/v1/Systems", "", token(tok)), http.StatusUnauthorized)
	wantStatus(t, "Basic of a disabled account", e.do("GET", "/redfish/v1/Systems", "", basic("op", "operator2")), http.StatusUnauthorized)

	// Deleting revokes; accounts of the configuration file are not changed over Redfish.
	wantStatus(t, "enable", e.do("PATCH", accounts+"/op", `{"Enabled":true}`), http.StatusOK)
	tok, _ = e.login("op", "operator2")
	wantStatus(t, "delete", e.do("DELETE", accounts+"/op", ""), http.StatusNoContent)
	wantStatus(t, "token of a deleted account", other.do("GET", "/redfish/v1/Systems", "", token(tok)), http.StatusUnauthorized)
	wantStatus(t, "delete a config account", e.do("DELETE", accounts+"/cfgop", ""), http.StatusForbidden)
	wantStatus(t, "patch a config account", e.do("PATCH", accounts+"/cfgop", `{"RoleId":"ReadOnly"}`), http.StatusForbidden)
}

// TestSessionsRevokedAcrossRestart: the configuration changed while the
// gateway was down (an account removed, another demoted): the sessions of
// those accounts no longer work after the restart.
func TestSessionsRevokedAcrossRestart(t *testing.T) {
	e := accountsEnv(t, redfish.AccountPolicy{})
	opTok, _ := e.login("cfgop", "cfg-operator")
	roTok, _ := e.login(roUser, roPass)
	adminTok, _ := e.login(adminUser, adminPass)
	restarted := e.secondReplica([]redfish.Account{
		{User: adminUser, Password: adminPass, Role: redfish.RoleAdministrator},
		{User: roUser, Password: "a-new-password", Role: redfish.RoleReadOnly},
		// cfgop removed
	}, redfish.AccountPolicy{})
	wantStatus(t, "removed account's token", restarted.do("POST", "/redfish/v1/Systems/node1/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`, token(opTok)), http.StatusUnauthorized)
	wantStatus(t, "token after a password change in the file", restarted.do("GET", "/redfish/v1/Systems", "", token(roTok)), http.StatusUnauthorized)
	wantStatus(t, "unchanged account's token", restarted.do("GET", "/redfish/v1/Systems", "", token(adminTok)), http.StatusOK)
}

// TestLockout: failed logins lock the account on every replica, the right
// password included, and the account shows Locked.
func TestLockout(t *testing.T) { lockout(t, testkit.MiniRedis(t)) }

// lockout is TestLockout on rdb (TestOnRedisCluster runs it on a Cluster
// too: the failure count and the lock are touched by one script).
func lockout(t *testing.T, rdb redis.UniversalClient) {
	pol := redfish.AccountPolicy{LockoutThreshold: 3, LockoutDuration: time.Hour, LockoutResetAfter: time.Hour}
	e := accountsEnvOn(t, rdb, pol)
	other := e.secondReplica([]redfish.Account{{User: adminUser, Password: adminPass}, {User: "cfgop", Password: "cfg-operator", Role: redfish.RoleOperator}}, pol)
	for i := range 3 {
		wantStatus(t, "wrong password "+strconv.Itoa(i), e.do("GET", "/redfish/v1/Systems", "", basic("cfgop", "guess"+strconv.Itoa(i))), http.StatusUnauthorized)
	}
	wantStatus(t, "right password, locked", other.do("GET", "/redfish/v1/Systems", "", basic("cfgop", "cfg-operator")), http.StatusUnauthorized)
	r := e.do("POST", "/redfish/v1/SessionService/Sessions", `{"UserName":"cfgop","Password":"cfg-operator"}`, noAuth())
	wantStatus(t, "login, locked", r, http.StatusUnauthorized)
	if a := e.do("GET", "/redfish/v1/AccountService/Accounts/cfgop", "").json(t); a["Locked"] != true {
		t.Errorf("account: %v, want Locked", a)
	}
	// Other accounts are not affected.
	wantStatus(t, "admin", other.do("GET", "/redfish/v1/Systems", ""), http.StatusOK)
	svc := e.do("GET", "/redfish/v1/AccountService", "").json(t)
	if svc["AccountLockoutThreshold"] != float64(3) || svc["AccountLockoutDuration"] != float64(3600) || svc["MinPasswordLength"] != float64(8) {
		t.Errorf("AccountService %v", svc)
	}
}

// TestSessionCapPerUser: one user cannot open sessions without bound.
func TestSessionCapPerUser(t *testing.T) {
	e := accountsEnv(t, redfish.AccountPolicy{MaxSessionsPerUser: 3})
	var locs []string
	for range 3 {
		_, loc := e.login(roUser, roPass)
		locs = append(locs, loc)
	}
	r := e.do("POST", "/redfish/v1/SessionService/Sessions", `{"UserName":"`+roUser+`","Password":"`+roPass+`"}`, noAuth())
	wantStatus(t, "fourth session", r, http.StatusServiceUnavailable)
	if id := r.messageID(t); id != "Base.1.22.SessionLimitExceeded" {
		t.Errorf("MessageId %s", id)
	}
	e.login(adminUser, adminPass) // another user is not affected
	wantStatus(t, "logout", e.do("DELETE", locs[0], ""), http.StatusNoContent)
	e.login(roUser, roPass)
}

// TestRoles: the predefined roles and their privileges (DSP0266 §13.4).
func TestRoles(t *testing.T) {
	e := accountsEnv(t, redfish.AccountPolicy{})
	coll := e.do("GET", "/redfish/v1/AccountService/Roles", "", basic(roUser, roPass)).json(t)
	if coll["Members@odata.count"] != float64(3) {
		t.Fatalf("Roles: %v", coll)
	}
	op := e.do("GET", "/redfish/v1/AccountService/Roles/Operator", "").json(t)
	privs, _ := op["AssignedPrivileges"].([]any)
	if !slices.Contains(privs, any("ConfigureComponents")) || slices.Contains(privs, any("ConfigureUsers")) || op["IsPredefined"] != true {
		t.Errorf("Operator role %v", op)
	}
	wantStatus(t, "unknown role", e.do("GET", "/redfish/v1/AccountService/Roles/God", ""), http.StatusNotFound)
}

// TestBasicAuthCostsOneBcrypt: MAAS polls with Basic auth; a verified
// credential is not checked with bcrypt again (until the password
// changes), and an unknown user costs the same bcrypt as a known one with
// a wrong password, so the time of a failed login does not tell whether
// the user exists.
func TestBasicAuthCostsOneBcrypt(t *testing.T) {
	e := accountsEnv(t, redfish.AccountPolicy{})
	n0 := e.api.PasswordChecks()
	for range 5 {
		wantStatus(t, "Basic", e.do("GET", "/redfish/v1/Systems", "", basic(roUser, roPass)), http.StatusOK)
	}
	if n := e.api.PasswordChecks() - n0; n != 1 {
		t.Fatalf("5 requests with the same Basic credentials cost %d bcrypt checks, want 1", n)
	}
	n0 = e.api.PasswordChecks()
	wantStatus(t, "known user, wrong password", e.do("GET", "/redfish/v1/Systems", "", basic(roUser, "nope")), http.StatusUnauthorized)
	wantStatus(t, "unknown user", e.do("GET", "/redfish/v1/Systems", "", basic("nobody", "nope")), http.StatusUnauthorized)
	if n := e.api.PasswordChecks() - n0; n != 2 {
		t.Fatalf("a wrong password and an unknown user cost %d bcrypt checks, want one each", n)
	}
}

// TestPerNodeAuthorization: an account limited to some nodes does not see
// the others anywhere: collections, resources, per-node views, actions,
// tasks (404, not 403: to it they do not exist).
func TestPerNodeAuthorization(t *testing.T) {
	e := newEnvWith(t, testkit.MiniRedis(t), time.Minute, envConfig{nodes: 2,
		accounts: []redfish.Account{{User: "tenant", Password: "tenant-pw", Role: redfish.RoleOperator, Nodes: []string{"node1"}}}})
	as := basic("tenant", "tenant-pw")
	coll := e.do("GET", "/redfish/v1/Systems", "", as).json(t)
	if coll["Members@odata.count"] != float64(1) {
		t.Fatalf("tenant sees Systems %v", coll)
	}
	for _, p := range []string{"/redfish/v1/Systems/node2", "/redfish/v1/Managers/node2", "/redfish/v1/Chassis/node2", "/bmc/node2/redfish/v1/Systems", "/bmc/node2/redfish/v1/SessionService"} {
		wantStatus(t, "GET "+p, e.do("GET", p, "", as), http.StatusNotFound)
	}
	wantStatus(t, "Reset node2", e.do("POST", "/redfish/v1/Systems/node2/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`, as), http.StatusNotFound)
	wantStatus(t, "Reset node1", e.do("POST", "/redfish/v1/Systems/node1/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`, as), http.StatusAccepted)
	wantStatus(t, "per-node view of node1", e.do("GET", "/bmc/node1/redfish/v1/Systems/node1", "", as), http.StatusOK)
	// The public service root does not tell which node ids exist.
	if a, b := e.do("GET", "/bmc/node2/redfish/v1", "", noAuth()), e.do("GET", "/bmc/no-such-node/redfish/v1", "", noAuth()); a.Status != http.StatusOK || b.Status != http.StatusOK {
		t.Errorf("public per-node roots: %d and %d, want both 200", a.Status, b.Status)
	}

	// An administrator's task on node2 is invisible to the tenant.
	r := e.do("POST", "/redfish/v1/Systems/node2/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`)
	wantStatus(t, "admin Reset node2", r, http.StatusAccepted)
	task := r.json(t)["@odata.id"].(string)
	wantStatus(t, "tenant GET of node2's task", e.do("GET", task, "", as), http.StatusNotFound)
	wantStatus(t, "tenant DELETE of node2's task", e.do("DELETE", task, "", as), http.StatusNotFound)
	tasks := e.do("GET", "/redfish/v1/TaskService/Tasks", "", as).json(t)
	for _, m := range tasks["Members"].([]any) {
		if id := m.(map[string]any)["@odata.id"].(string); strings.Contains(id, "node2") {
			t.Errorf("tenant lists %s", id)
		}
	}

	// An account made over Redfish can be limited too; changing its nodes
	// revokes its sessions.
	wantStatus(t, "create", e.do("POST", "/redfish/v1/AccountService/Accounts", `{"UserName":"t2","Password":"tenant2-pw","RoleId":"ReadOnly","Oem":{"Fishgate":{"Nodes":["node2"]}}}`), http.StatusCreated)
	tok, _ := e.login("t2", "tenant2-pw")
	wantStatus(t, "t2 node1", e.do("GET", "/redfish/v1/Systems/node1", "", token(tok)), http.StatusNotFound)
	wantStatus(t, "t2 node2", e.do("GET", "/redfish/v1/Systems/node2", "", token(tok)), http.StatusOK)
	wantStatus(t, "change nodes", e.do("PATCH", "/redfish/v1/AccountService/Accounts/t2", `{"Oem":{"Fishgate":{"Nodes":["node1"]}}}`), http.StatusOK)
	wantStatus(t, "t2's old session", e.do("GET", "/redfish/v1/Systems/node2", "", token(tok)), http.StatusUnauthorized)
	wantStatus(t, "bad pattern", e.do("PATCH", "/redfish/v1/AccountService/Accounts/t2", `{"Oem":{"Fishgate":{"Nodes":["["]}}}`), http.StatusBadRequest)
}

// TestAuditLog: logins (and failures), power actions, boot changes and
// account changes are in the gateway's Audit log with who and from where;
// a node's power actions are in its System's PowerActions log; only an
// Administrator reads the audit log.
func TestAuditLog(t *testing.T) {
	e := accountsEnv(t, redfish.AccountPolicy{})
	e.login(roUser, roPass)
	wantStatus(t, "bad login", e.do("GET", "/redfish/v1/Systems", "", basic("mallory", "guess")), http.StatusUnauthorized)
	wantStatus(t, "reset", e.do("POST", "/redfish/v1/Systems/node1/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`, basic("cfgop", "cfg-operator")), http.StatusAccepted)
	wantStatus(t, "boot", e.do("PATCH", "/redfish/v1/Systems/node1", `{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}`, basic("cfgop", "cfg-operator")), http.StatusOK)
	wantStatus(t, "account", e.do("POST", "/redfish/v1/AccountService/Accounts", `{"UserName":"bob","Password":"bob-pw-123","RoleId":"ReadOnly"}`), http.StatusCreated)

	const entries = "/redfish/v1/Managers/fishgate/LogServices/Audit/Entries"
	wantStatus(t, "audit by ReadOnly", e.do("GET", entries, "", basic(roUser, roPass)), http.StatusForbidden)
	log := e.do("GET", entries, "").json(t)
	var msgs []string
	for _, m := range log["Members"].([]any) {
		msgs = append(msgs, m.(map[string]any)["Message"].(string))
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{
		"login by " + roUser + " from 127.0.0.1 (Redfish): 201",
		"login-failed by mallory from 127.0.0.1 (Redfish): 401",
		"reset by cfgop from 127.0.0.1 (Redfish): started node1.",
		"boot by cfgop from 127.0.0.1 (Redfish): applied on node1; target=Pxe enabled=Once",
		"account-create by " + adminUser + " from 127.0.0.1 (Redfish): 201 on bob",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("audit log lacks %q:\n%s", want, all)
		}
	}
	if !strings.HasPrefix(msgs[0], "account-create") {
		t.Errorf("newest first: %q", msgs[0])
	}
	pa := e.do("GET", "/redfish/v1/Systems/node1/LogServices/PowerActions/Entries", "", basic(roUser, roPass)).json(t)
	var pam []string
	for _, m := range pa["Members"].([]any) {
		pam = append(pam, m.(map[string]any)["Message"].(string))
	}
	if p := strings.Join(pam, "\n"); !strings.Contains(p, "event=started type=On") || !strings.Contains(p, "req=user=cfgop remote=127.0.0.1") {
		t.Errorf("PowerActions log:\n%s", p)
	}
}

// TestLoginWithFrozenRedis: with Redis frozen (DEBUG SLEEP), a login and a
// request with a session token answer 503 while Redis is still frozen,
// not after the client gave up (issue 10: 35-40 s).
func TestLoginWithFrozenRedis(t *testing.T) {
	rdb := testkit.RealRedis(t)
	e := newEnvWith(t, rdb, time.Minute, envConfig{nodes: 1})
	tok, _ := e.login(roUser, roPass)
	frozen := make(chan struct{})
	thawed := make(chan struct{})
	go func() {
		defer close(thawed)
		sleeper := redis.NewClient(&redis.Options{Addr: rdb.Options().Addr, ReadTimeout: -1, MaxRetries: -1}) // one DEBUG SLEEP, waited for
		defer sleeper.Close()
		close(frozen)
		sleeper.Do(context.Background(), "DEBUG", "SLEEP", "9")
	}()
	<-frozen
	// wait until the freeze began: a PING no longer answers within 300 ms
	for i := 0; ; i++ {
		pctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := rdb.Ping(pctx).Err()
		cancel()
		if err != nil {
			break
		}
		select {
		case <-thawed:
			t.Fatal("DEBUG SLEEP did not freeze Redis (is the DEBUG command enabled?)")
		default:
		}
		time.Sleep(10 * time.Millisecond)
	}
	t0 := time.Now()
	r := e.do("POST", "/redfish/v1/SessionService/Sessions", `{"UserName":"`+roUser+`","Password":"`+roPass+`"}`, noAuth())
	t.Logf("login answered %d after %v", r.Status, time.Since(t0))
	wantStatus(t, "login with Redis frozen", r, http.StatusServiceUnavailable)
	wantStatus(t, "token with Redis frozen", e.do("GET", "/redfish/v1/Systems", "", token(tok)), http.StatusServiceUnavailable)
	select {
	case <-thawed:
		t.Fatal("the answers came only after Redis thawed")
	default:
	}
	<-thawed
	t.Logf("thawed after %v", time.Since(t0))
}

// TestLockoutCountsAbandonedGuesses: a wrong password is counted even when
// the request's context ends while the password is checked (a guesser that
// hangs up at once, or a request that ran out of time), so nobody escapes
// the lockout that way.
func TestLockoutCountsAbandonedGuesses(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	hangUp := &hangUpHook{}
	rdb.AddHook(hangUp)
	pol := redfish.AccountPolicy{LockoutThreshold: 2, LockoutDuration: time.Hour, LockoutResetAfter: time.Hour}
	st, err := redfish.NewAccountStore(context.Background(), rdb, []redfish.Account{{User: "cfgop", Password: "cfg-operator", Role: redfish.RoleOperator}}, pol, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		hangUp.set(cancel) // the client goes once the lock was looked at
		if _, err := st.Authenticate(ctx, "cfgop", "guess"+strconv.Itoa(i)); err == nil {
			t.Fatalf("guess %d accepted", i)
		}
		if ctx.Err() == nil {
			t.Fatalf("guess %d: the request's context was never cancelled", i)
		}
	}
	hangUp.set(nil)
	if !st.Locked(context.Background(), "cfgop") {
		t.Fatal("two abandoned wrong guesses did not lock the account (threshold 2)")
	}
	if _, err := st.Authenticate(context.Background(), "cfgop", "cfg-operator"); !errors.Is(err, redfish.ErrLocked) {
		t.Errorf("right password while locked: %v, want ErrLocked", err)
	}
}

// hangUpHook cancels the current request's context right after the lock
// check (EXISTS) has been answered: the password check then runs for a
// client that has gone.
type hangUpHook struct {
	mu     sync.Mutex
	cancel context.CancelFunc
}

func (h *hangUpHook) set(c context.CancelFunc) { h.mu.Lock(); h.cancel = c; h.mu.Unlock() }

func (h *hangUpHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *hangUpHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if cmd.Name() == "exists" {
			h.mu.Lock()
			if h.cancel != nil {
				h.cancel()
			}
			h.mu.Unlock()
		}
		return err
	}
}

func (h *hangUpHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
