package redfish_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testredis"
	"github.com/fishgate/fishgate/redfish"
)

// Accounts and sessions as a BMC has them (issue 10): sessions are revoked
// when their account changes, failed logins lock an account on every
// replica, a user's sessions are capped, and accounts are managed over
// Redfish by ConfigureUsers.

func accountsEnv(t *testing.T, policy redfish.AccountPolicy) *env {
	t.Helper()
	return newEnvWith(t, testredis.Mini(t), time.Minute, envConfig{nodes: 1, policy: policy,
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
	e := accountsEnv(t, redfish.AccountPolicy{})
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
func TestLockout(t *testing.T) {
	pol := redfish.AccountPolicy{LockoutThreshold: 3, LockoutDuration: time.Hour, LockoutResetAfter: time.Hour}
	e := accountsEnv(t, pol)
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
