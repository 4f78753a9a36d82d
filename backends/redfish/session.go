package redfish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/stmcginnis/gofish"
	rf "github.com/stmcginnis/gofish/schemas"
)

// systemsCollection is the ComputerSystemCollection, at the URI DSP0266
// fixes for it (§ "Resource URI patterns"). gofish keeps the service root's
// link to it unexported.
const systemsCollection = "/redfish/v1/Systems"

// do runs op with a client bound to ctx, logging in first if there is no
// session. If op fails with 401, the session has expired or was deleted on
// the BMC: do logs in again, once, and runs op again. A 401 means the BMC did
// not act on the request, so running op again never repeats a command.
func (b *Backend) do(ctx context.Context, op func(c *gofish.APIClient) error) error {
	c, gen, err := b.session(ctx)
	if err != nil {
		return err
	}
	err = op(c.WithContext(ctx))
	if !unauthorized(err) {
		return err
	}
	b.log.InfoContext(ctx, "BMC answered 401, logging in again", "err", err)
	c, _, err = b.connect(ctx, gen)
	if err != nil {
		return err
	}
	return op(c.WithContext(ctx))
}

// session returns the current session, logging in if there is none.
func (b *Backend) session(ctx context.Context) (*gofish.APIClient, uint64, error) {
	b.mu.Lock()
	c, gen, closed := b.client, b.gen, b.closed
	b.mu.Unlock()
	if closed {
		return nil, 0, errClosed
	}
	if c != nil {
		return c, gen, nil
	}
	return b.connect(ctx, gen)
}

// connect replaces the session of generation stale by a new one. If another
// goroutine already replaced it while this one waited, connect returns that
// session instead of logging in again: many callers seeing the same 401 make
// one login.
func (b *Backend) connect(ctx context.Context, stale uint64) (*gofish.APIClient, uint64, error) {
	select {
	case b.login <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("waiting for login: %w", ctx.Err())
	}
	defer func() { <-b.login }()

	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return nil, 0, errClosed
	case b.gen != stale && b.client != nil:
		c, gen := b.client, b.gen
		b.mu.Unlock()
		return c, gen, nil
	}
	b.client = nil
	b.mu.Unlock()

	c, err := gofish.ConnectContext(ctx, gofish.ClientConfig{
		Endpoint:          b.endpoint,
		Username:          b.cfg.User,
		Password:          b.cfg.Password,
		Insecure:          b.cfg.Insecure,
		HTTPClient:        b.http,
		ReuseConnections:  true,
		NoModifyTransport: true,
	})
	if err != nil {
		b.log.WarnContext(ctx, "login failed", "user", b.cfg.User, "err", err)
		if status(err) == http.StatusUnauthorized || status(err) == http.StatusForbidden {
			return nil, 0, fmt.Errorf("log in as %q: %w: %w", b.cfg.User, ErrAuthentication, err)
		}
		return nil, 0, fmt.Errorf("log in as %q: %w", b.cfg.User, err)
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = logout(ctx, c)
		return nil, 0, errClosed
	}
	b.gen++
	b.client = c
	b.reset = nil // the BMC may have changed (firmware update) since last time
	gen := b.gen
	b.mu.Unlock()

	id := ""
	if s, err := c.GetSession(); err == nil {
		id = s.ID
	}
	b.log.InfoContext(ctx, "logged in", "session", id)
	return c, gen, nil
}

// logout deletes c's session on the BMC. A session the BMC no longer knows
// (401, 404) counts as logged out. It does not use gofish's Logout, which
// writes into the auth token that in-flight copies of c still read.
func logout(ctx context.Context, c *gofish.APIClient) error {
	s, err := c.GetSession()
	if err != nil || s.ID == "" {
		return nil // basic auth or no credentials: nothing to delete
	}
	_, err = c.WithContext(ctx).Delete(s.ID)
	if st := status(err); st == http.StatusUnauthorized || st == http.StatusNotFound {
		return nil
	}
	return err
}

// status is the HTTP status of a gofish error, or 0.
func status(err error) int {
	var e *rf.Error
	if errors.As(err, &e) {
		return e.HTTPReturnedStatusCode
	}
	return 0
}

func unauthorized(err error) bool { return status(err) == http.StatusUnauthorized }

// systemPath returns the ComputerSystem's path: Config.SystemID, or the
// first member of the Systems collection, looked up once.
func (b *Backend) systemPath(c *gofish.APIClient) (string, error) {
	b.mu.Lock()
	p := b.system
	b.mu.Unlock()
	if p != "" {
		return p, nil
	}
	resp, err := c.Get(systemsCollection)
	defer rf.DeferredCleanupHTTPResponse(resp)
	if err != nil {
		return "", fmt.Errorf("list systems: %w", err)
	}
	var coll struct {
		Members []struct {
			ID string `json:"@odata.id"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&coll); err != nil {
		return "", fmt.Errorf("list systems: %w", err)
	}
	if len(coll.Members) == 0 || coll.Members[0].ID == "" {
		return "", fmt.Errorf("list systems: %s has no members", systemsCollection)
	}
	p = systemPathOf(coll.Members[0].ID)
	b.mu.Lock()
	b.system = p
	b.mu.Unlock()
	return p, nil
}

// getSystem reads the ComputerSystem.
func (b *Backend) getSystem(c *gofish.APIClient) (*rf.ComputerSystem, error) {
	p, err := b.systemPath(c)
	if err != nil {
		return nil, err
	}
	sys, err := rf.GetObject[rf.ComputerSystem](c, p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return sys, nil
}

// resetAction returns the system's Reset action, read once per session.
func (b *Backend) resetAction(c *gofish.APIClient) (*resetInfo, error) {
	b.mu.Lock()
	ri := b.reset
	b.mu.Unlock()
	if ri != nil {
		return ri, nil
	}
	sys, err := b.getSystem(c)
	if err != nil {
		return nil, err
	}
	ri, err = b.readResetAction(sys)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.reset = ri
	b.mu.Unlock()
	return ri, nil
}

// readResetAction reads the Reset action's target and ResetTypes from sys:
// ResetType@Redfish.AllowableValues, else the action's ActionInfo (gofish's
// GetSupportedResetTypes does both), else DefaultResetTypes.
func (b *Backend) readResetAction(sys *rf.ComputerSystem) (*resetInfo, error) {
	target, err := resetTarget(sys.RawData)
	if err != nil {
		return nil, err
	}
	advertised, err := sys.GetSupportedResetTypes()
	if err != nil {
		return nil, fmt.Errorf("read Reset ActionInfo: %w", err)
	}
	names := make([]string, len(advertised))
	for i, t := range advertised {
		names[i] = string(t)
	}
	types, unknown := resetTypes(names)
	if len(unknown) > 0 {
		b.log.Debug("BMC offers ResetTypes outside the Resource schema; ignored", "types", unknown)
	}
	if len(names) == 0 {
		b.log.Debug("BMC advertises no ResetTypes; assuming the default set", "types", types)
	}
	return &resetInfo{target: target, types: types}, nil
}
