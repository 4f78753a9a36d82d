package redfish

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/fronts/redfish/proxy"
	"github.com/fishgate/fishgate/schemas"
)

// The AccountService as a BMC has it (DSP0266 §13.2): the predefined Roles
// with their privileges, and Accounts that an Administrator
// (ConfigureUsers) creates, changes and deletes; every user may change its
// own password (ConfigureSelf). Accounts of the configuration file are
// shown but not changeable over Redfish.

// roleIDs are the Redfish predefined roles (DSP0266 §13.4); their
// privileges are proxy.RolePrivileges (one table for the pass-through and
// the Roles resources).
var roleIDs = []string{RoleAdministrator, RoleOperator, RoleReadOnly}

func (s *Server) getAccountService(c echo.Context) error {
	sc := scopeOf(c)
	pol := s.accounts.Policy()
	return send(c, http.StatusOK, schemas.AccountService{
		Resource:                        schemas.Resource{ODataID: sc.url("/AccountService"), ODataType: schemas.TypeAccountService, ID: "AccountService", Name: "Account Service"},
		ServiceEnabled:                  true,
		Accounts:                        schemas.Link{ODataID: sc.url("/AccountService/Accounts")},
		Roles:                           schemas.Link{ODataID: sc.url("/AccountService/Roles")},
		LocalAccountAuth:                "Enabled",
		MinPasswordLength:               pol.MinPasswordLength,
		AccountLockoutThreshold:         pol.LockoutThreshold,
		AccountLockoutDuration:          int(pol.LockoutDuration.Seconds()),
		AccountLockoutCounterResetAfter: int(pol.LockoutResetAfter.Seconds()),
	})
}

func (s *Server) getRoles(c echo.Context) error {
	sc := scopeOf(c)
	var m []schemas.Link
	for _, id := range roleIDs {
		m = append(m, schemas.Link{ODataID: sc.url("/AccountService/Roles/" + id)})
	}
	return send(c, http.StatusOK, schemas.NewCollection(sc.url("/AccountService/Roles"), schemas.TypeRoleColl, "Roles Collection", m))
}

func (s *Server) getRole(c echo.Context) error {
	id := c.Param("id")
	privs := proxy.RolePrivileges(id)
	if !slices.Contains(roleIDs, id) || privs == nil {
		return notFound("Role", id)
	}
	sc := scopeOf(c)
	return send(c, http.StatusOK, schemas.Role{
		Resource:           schemas.Resource{ODataID: sc.url("/AccountService/Roles/" + id), ODataType: schemas.TypeRole, ID: id, Name: id + " role"},
		RoleID:             id,
		IsPredefined:       true,
		AssignedPrivileges: privs,
		OemPrivileges:      []string{},
	})
}

// mayConfigureUsers is the ConfigureUsers privilege.
func mayConfigureUsers(p principal) bool { return p.Role == RoleAdministrator }

func (s *Server) getAccounts(c echo.Context) error {
	sc := scopeOf(c)
	p := principalOf(c)
	var m []schemas.Link
	for _, a := range s.accounts.List() {
		if mayConfigureUsers(p) || p.User == a.User {
			m = append(m, schemas.Link{ODataID: sc.url("/AccountService/Accounts/" + a.User)})
		}
	}
	return send(c, http.StatusOK, schemas.NewCollection(sc.url("/AccountService/Accounts"), schemas.TypeManagerAccountColl, "Accounts Collection", m))
}

// account loads the account named by :id, as the principal may see it
// (others' accounts are invisible without ConfigureUsers).
func (s *Server) account(c echo.Context) (storedAccount, error) {
	id := c.Param("id")
	a, ok := s.accounts.get(id)
	p := principalOf(c)
	if !ok || (!mayConfigureUsers(p) && p.User != id) {
		return a, notFound("ManagerAccount", id)
	}
	return a, nil
}

// sendAccount answers with account a and its ETag (one read of its
// lockout state for both).
func (s *Server) sendAccount(c echo.Context, status int, a storedAccount) error {
	locked := s.accounts.Locked(c.Request().Context(), a.User)
	sc := scopeOf(c)
	return sendTagged(c, status, schemas.ManagerAccount{
		Resource:     schemas.Resource{ODataID: sc.url("/AccountService/Accounts/" + a.User), ODataType: schemas.TypeManagerAccount, ID: a.User, Name: "Account " + a.User},
		UserName:     a.User,
		RoleID:       a.Role,
		Enabled:      a.Enabled,
		Locked:       locked,
		AccountTypes: []string{"Redfish"},
		Oem:          map[string]any{"Fishgate": map[string]any{"Nodes": append([]string{}, a.Nodes...), "FromConfiguration": a.Config}},
	}, accountETag(a, locked))
}

// accountETag is an account's ETag: it changes with anything a client
// reads or writes of it.
func accountETag(a storedAccount, locked bool) string {
	return `W/"` + a.fingerprint() + map[bool]string{true: "L", false: "U"}[locked] + `"`
}

func (s *Server) getAccount(c echo.Context) error {
	a, err := s.account(c)
	if err != nil {
		return err
	}
	return s.sendAccount(c, http.StatusOK, a)
}

// accountBody is what POST and PATCH of an account may carry.
type accountBody struct {
	UserName *string `json:"UserName"`
	Password *string `json:"Password"`
	RoleID   *string `json:"RoleId"`
	Enabled  *bool   `json:"Enabled"`
	Oem      *struct {
		Fishgate *struct {
			// Nodes limits the account to nodes matching these patterns.
			Nodes *[]string `json:"Nodes"`
		} `json:"Fishgate"`
	} `json:"Oem"`
}

// nodes is the body's Oem.Fishgate.Nodes (ok=false: absent).
func (b accountBody) nodes() ([]string, bool) {
	if b.Oem == nil || b.Oem.Fishgate == nil || b.Oem.Fishgate.Nodes == nil {
		return nil, false
	}
	return *b.Oem.Fishgate.Nodes, true
}

func (s *Server) readAccountBody(c echo.Context, patch bool) (accountBody, error) {
	var b accountBody
	body, err := readBody(c, s.maxBody)
	if err != nil {
		return b, err
	}
	if err := decodeStrict(body, &b, decodeKind{patch: patch}); err != nil {
		return b, err
	}
	if b.RoleID != nil && !slices.Contains(roleIDs, *b.RoleID) {
		return b, newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyValueNotInList, *b.RoleID, "RoleId"))
	}
	if nodes, ok := b.nodes(); ok {
		for _, p := range nodes {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				return b, newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyValueFormatError, p, "Oem/Fishgate/Nodes")).
					withDetail("a node pattern is a node id or a shell pattern such as rack1-*")
			}
		}
	}
	return b, nil
}

// accountError maps an AccountStore error to a Redfish error.
func accountError(err error, user string) error {
	switch {
	case errors.Is(err, ErrConfigAccount):
		return newError(http.StatusForbidden, schemas.Base(schemas.MsgInsufficientPrivilege)).
			withDetail("account " + user + " is defined in the configuration file; change it there")
	case errors.Is(err, ErrAccountExists):
		return newError(http.StatusConflict, schemas.Base(schemas.MsgResourceAlreadyExists, "ManagerAccount", "UserName", user))
	case errors.Is(err, ErrNoAccount):
		return notFound("ManagerAccount", user)
	case errors.Is(err, ErrPasswordTooWeak):
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyValueIncorrect, "Password", "(hidden)")).
			withDetail("the password is shorter than MinPasswordLength")
	}
	return unavailable(5, "account store unavailable")
}

// postAccount creates an account (ConfigureUsers).
func (s *Server) postAccount(c echo.Context) error {
	p := principalOf(c)
	if !mayConfigureUsers(p) {
		return newError(http.StatusForbidden, schemas.Base(schemas.MsgInsufficientPrivilege))
	}
	b, err := s.readAccountBody(c, false)
	if err != nil {
		return err
	}
	switch {
	case b.UserName == nil:
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyMissing, "UserName"))
	case b.Password == nil:
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyMissing, "Password"))
	case b.RoleID == nil:
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyMissing, "RoleId"))
	case !validUserName(*b.UserName):
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyValueIncorrect, "UserName", *b.UserName)).
			withDetail("a user name is 1 to 64 letters, digits, '.', '_' or '-'")
	}
	enabled := true
	if b.Enabled != nil {
		enabled = *b.Enabled
	}
	nodes, _ := b.nodes()
	a, err := s.accounts.Put(c.Request().Context(), *b.UserName, *b.Password, *b.RoleID, enabled, nodes, true)
	if err != nil {
		return accountError(err, *b.UserName)
	}
	s.log.InfoContext(c.Request().Context(), "account created", "user", a.User, "role", a.Role, "by", p.User, "remote", c.RealIP())
	s.audit(c.Request().Context(), auditOf(c, "account-create", a.User, "201").with("role="+a.Role))
	c.Response().Header().Set("Location", scopeOf(c).url("/AccountService/Accounts/"+a.User))
	return s.sendAccount(c, http.StatusCreated, a)
}

func validUserName(u string) bool {
	if u == "" || len(u) > 64 {
		return false
	}
	for _, r := range u {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// patchAccount changes an account: an Administrator anything of any
// account; a user only its own Password (ConfigureSelf). Any change revokes
// the account's sessions (their fingerprint no longer matches).
func (s *Server) patchAccount(c echo.Context) error {
	a, err := s.account(c)
	if err != nil {
		return err
	}
	p := principalOf(c)
	if err := ifMatch(c, accountETag(a, s.accounts.Locked(c.Request().Context(), a.User))); err != nil {
		return err
	}
	b, err := s.readAccountBody(c, true)
	if err != nil {
		return err
	}
	if b.UserName != nil && *b.UserName != a.User {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyNotWritable, "UserName"))
	}
	newNodes, nodesSet := b.nodes()
	if !mayConfigureUsers(p) && (b.RoleID != nil || b.Enabled != nil || nodesSet) {
		return newError(http.StatusForbidden, schemas.Base(schemas.MsgInsufficientPrivilege)).withDetail("only the Password of one's own account may be changed without ConfigureUsers")
	}
	role, enabled, password := a.Role, a.Enabled, ""
	if b.RoleID != nil {
		role = *b.RoleID
	}
	if b.Enabled != nil {
		enabled = *b.Enabled
	}
	if b.Password != nil {
		password = *b.Password
		if password == "" {
			return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyValueIncorrect, "Password", "(hidden)"))
		}
	}
	nodes := a.Nodes
	if nodesSet {
		nodes = newNodes
	}
	oldFP := a.fingerprint()
	a, err = s.accounts.Put(c.Request().Context(), a.User, password, role, enabled, nodes, false)
	if err != nil {
		return accountError(err, c.Param("id"))
	}
	if a.fingerprint() != oldFP {
		s.revokeSessions(c.Request().Context(), a.User)
	}
	s.log.InfoContext(c.Request().Context(), "account changed", "user", a.User, "role", a.Role, "enabled", a.Enabled, "password_changed", password != "", "by", p.User, "remote", c.RealIP())
	s.audit(c.Request().Context(), auditOf(c, "account-change", a.User, "200").with(fmt.Sprintf("role=%s enabled=%t password_changed=%t nodes=%v", a.Role, a.Enabled, password != "", a.Nodes)))
	return s.sendAccount(c, http.StatusOK, a)
}

func (s *Server) deleteAccount(c echo.Context) error {
	p := principalOf(c)
	if !mayConfigureUsers(p) {
		return newError(http.StatusForbidden, schemas.Base(schemas.MsgInsufficientPrivilege))
	}
	a, err := s.account(c)
	if err != nil {
		return err
	}
	if err := s.accounts.Delete(c.Request().Context(), a.User); err != nil {
		return accountError(err, a.User)
	}
	s.revokeSessions(c.Request().Context(), a.User)
	s.log.InfoContext(c.Request().Context(), "account deleted", "user", a.User, "by", p.User, "remote", c.RealIP())
	s.audit(c.Request().Context(), auditOf(c, "account-delete", a.User, "204"))
	return c.NoContent(http.StatusNoContent)
}

// revokeSessions ends user's sessions in Redis at once, so that no replica
// accepts their tokens any more, even one whose copy of the accounts has
// not heard of the change yet (each replica also refuses a session whose
// account fingerprint changed, once it has). A failure is logged: the
// fingerprint check still ends the sessions when the change arrives.
func (s *Server) revokeSessions(ctx context.Context, user string) {
	if err := s.sessions.RevokeUser(context.WithoutCancel(ctx), user); err != nil {
		s.log.WarnContext(ctx, "sessions of a changed account not ended at once", "user", user, "err", err)
	}
}
