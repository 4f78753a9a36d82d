package redfish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"github.com/fishgate/fishgate/internal/marks"
)

// Accounts as a BMC has them (DSP0266 §13.2, bmcweb): the accounts of the
// configuration file are the bootstrap (they cannot be changed over
// Redfish); accounts created over Redfish live in Redis, shared by every
// replica. Every password is checked with bcrypt (plain-text passwords of
// the configuration are hashed at start), so a login takes the same time
// whether the user exists or not; a verified Basic credential is cached so
// that Basic auth does not cost a bcrypt per request.
//
// A session remembers the fingerprint of the account it was opened for
// (user, password hash, role, enabled): deleting, disabling, demoting an
// account or changing its password revokes its sessions on every replica,
// also across restarts (a changed configuration file changes it too).
//
// Failed logins are counted per user in Redis: AccountLockoutThreshold
// failures within AccountLockoutCounterResetAfter lock the account for
// AccountLockoutDuration on every replica.

// AccountPolicy is the AccountService's policy.
type AccountPolicy struct {
	MinPasswordLength  int           // default 8
	LockoutThreshold   int           // failed logins that lock an account (default 10; 0 = never)
	LockoutDuration    time.Duration // default 5m
	LockoutResetAfter  time.Duration // failures are counted over this (default 5m)
	MaxSessionsPerUser int           // default 64
}

func (p *AccountPolicy) defaults() {
	if p.MinPasswordLength == 0 {
		p.MinPasswordLength = 8
	}
	if p.LockoutThreshold == 0 {
		p.LockoutThreshold = 10
	}
	if p.LockoutThreshold < 0 {
		p.LockoutThreshold = 0
	}
	if p.LockoutDuration == 0 {
		p.LockoutDuration = 5 * time.Minute
	}
	if p.LockoutResetAfter == 0 {
		p.LockoutResetAfter = 5 * time.Minute
	}
	if p.MaxSessionsPerUser == 0 {
		p.MaxSessionsPerUser = 64
	}
}

// storedAccount is an account with its password as a bcrypt hash.
type storedAccount struct {
	User    string   `json:"user"`
	Hash    string   `json:"hash"`
	Role    string   `json:"role"`
	Enabled bool     `json:"enabled"`
	Nodes   []string `json:"nodes,omitempty"`
	// Config: defined in the configuration file (not changeable over Redfish).
	Config bool `json:"-"`
}

// fingerprint changes whenever what a session was granted on changes.
func (a storedAccount) fingerprint() string {
	h := sha256.Sum256([]byte(a.User + "\x00" + a.Hash + "\x00" + a.Role + "\x00" + fmt.Sprint(a.Enabled) + "\x00" + strings.Join(a.Nodes, "\x01")))
	return hex.EncodeToString(h[:8])
}

const (
	accountsKey     = "fg:accounts"    // hash user -> JSON storedAccount (Redfish-created)
	accountsChannel = "fg:accounts"    // published on every change
	configHashesKey = "fg:cfgaccounts" // hash user -> bcrypt of a plain-text configuration password
	basicCacheMax   = 10000            // verified Basic credentials kept
	basicCacheTTL   = 5 * time.Minute  // and for at most this long
)

// userKey names a Redis key about one user, fg:{user:<user>}:<what>:
// "failures" (the failed-login counter), "locked" (present while the user
// is locked out), "sessions" (the user's session ids). A user's keys share
// the hash tag {user:<user>}, so that on Redis Cluster a script may touch
// them together (lockoutScript takes the counter and the lock), while
// different users spread over the slots. "user:" inside the braces keeps
// the tag from being empty for an empty name or one that starts with '}'
// (an empty tag would hash each whole key to its own slot).
func userKey(user, what string) string { return "fg:{user:" + user + "}:" + what }

// dummyHash is a bcrypt hash (DefaultCost) compared only for users that do not exist: an
// unknown user's password is compared against it, so that a login costs
// the same whether the user exists or not. Made once, not at every start.
const dummyHash = "$2a$10$1JARkHsXt5Fn2to6R1spSOcl/2H/DYb8NRp8xJz1sDBqQ1xv1H4q2"

// ErrLocked is returned for a login to a locked-out account.
var ErrLocked = errors.New("account locked out")

// AccountStore is the accounts of a gateway.
type AccountStore struct {
	rdb    redis.UniversalClient
	policy AccountPolicy
	log    *slog.Logger
	dummy  []byte // a bcrypt hash compared against for unknown users

	// checks counts bcrypt comparisons (one per login attempt that the
	// verified-credentials cache did not answer).
	checks atomic.Int64

	mu     sync.RWMutex
	config map[string]storedAccount
	stored map[string]storedAccount // from Redis, reloaded on change
	basic  map[[32]byte]basicEntry
}

type basicEntry struct {
	fp      string
	expires time.Time
}

// NewAccountStore hashes the configuration's accounts and loads those in
// Redis.
func NewAccountStore(ctx context.Context, rdb redis.UniversalClient, config []Account, policy AccountPolicy, log *slog.Logger) (*AccountStore, error) {
	policy.defaults()
	st := &AccountStore{rdb: rdb, policy: policy, log: log, dummy: []byte(dummyHash), basic: map[[32]byte]basicEntry{}}
	var err error
	if st.config, err = st.configAccounts(ctx, config); err != nil {
		return nil, err
	}
	if err := st.reload(ctx); err != nil {
		log.Warn("accounts in Redis not loaded yet", "err", err)
	}
	return st, nil
}

// configAccounts checks the configuration's accounts and hashes their
// plain-text passwords.
func (st *AccountStore) configAccounts(ctx context.Context, config []Account) (map[string]storedAccount, error) {
	out := map[string]storedAccount{}
	for _, a := range config {
		if a.User == "" {
			return nil, fmt.Errorf("redfish: account with empty user name")
		}
		if _, dup := out[a.User]; dup {
			return nil, fmt.Errorf("redfish: duplicate account %q", a.User)
		}
		if a.Role == "" {
			a.Role = RoleAdministrator
		}
		hash := a.Password
		if !isBcrypt(hash) {
			h, err := st.configHash(ctx, a.User, a.Password)
			if err != nil {
				return nil, fmt.Errorf("redfish: account %s: %w", a.User, err)
			}
			hash = h
		}
		for _, p := range a.Nodes {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("redfish: account %s: node pattern %q: %w", a.User, p, err)
			}
		}
		out[a.User] = storedAccount{User: a.User, Hash: hash, Role: a.Role, Enabled: true, Config: true, Nodes: a.Nodes}
	}
	return out, nil
}

// SetConfig replaces the accounts of the configuration file (a reload):
// an added one may log in at once; a removed or changed one (password,
// role, nodes) loses its sessions, as after a restart with that file. On
// error nothing changes.
func (st *AccountStore) SetConfig(ctx context.Context, config []Account) error {
	m, err := st.configAccounts(ctx, config)
	if err != nil {
		return err
	}
	st.mu.Lock()
	st.config = m
	st.mu.Unlock()
	return nil
}

func isBcrypt(s string) bool {
	return strings.HasPrefix(s, "$2a$") || strings.HasPrefix(s, "$2b$") || strings.HasPrefix(s, "$2y$")
}

// Watch reloads the Redis accounts whenever a replica changes them, and
// every interval as a safety net, until ctx ends.
func (st *AccountStore) Watch(ctx context.Context, interval time.Duration) {
	// The subscriber only notes that a reload is due (one note stands for
	// any number of messages): it must never wait for Redis itself
	// (internal/marks says why).
	sub := st.rdb.Subscribe(ctx, accountsChannel)
	defer sub.Close()
	t := time.NewTicker(interval)
	defer t.Stop()
	due := make(chan struct{}, 1)
	subDone := marks.Drain(ctx, sub.Channel(), func(string) {
		select {
		case due <- struct{}{}:
		default:
		}
	})
	defer func() { <-subDone }()
	for {
		select {
		case <-ctx.Done():
			return
		case <-subDone:
			return // the client was closed
		case <-due:
		case <-t.C:
		}
		if err := st.reload(ctx); err != nil && ctx.Err() == nil {
			st.log.Warn("reload accounts", "err", err)
		}
	}
}

func (st *AccountStore) reload(ctx context.Context) error {
	m, err := st.rdb.HGetAll(ctx, accountsKey).Result()
	if err != nil {
		return err
	}
	stored := map[string]storedAccount{}
	for user, raw := range m {
		var a storedAccount
		if json.Unmarshal([]byte(raw), &a) == nil && a.User == user {
			stored[user] = a
		}
	}
	st.mu.Lock()
	st.stored = stored
	st.mu.Unlock()
	return nil
}

// configHash is the bcrypt hash of a plain-text password of the
// configuration. Replicas and restarts share one (in Redis), so that the
// account's fingerprint, hence its sessions, survive them; a changed
// password gets a new one, which revokes the sessions.
func (st *AccountStore) configHash(ctx context.Context, user, pw string) (string, error) {
	for range 2 {
		cur, err := st.rdb.HGet(ctx, configHashesKey, user).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return "", err
		}
		if cur != "" && bcrypt.CompareHashAndPassword([]byte(cur), []byte(pw)) == nil {
			return cur, nil
		}
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
		if err != nil {
			return "", err
		}
		// Replace only what was read: of replicas starting together, one
		// writes and the others read its hash on the next turn.
		swapped, err := swapScript.Run(ctx, st.rdb, []string{configHashesKey}, user, cur, string(h)).Int()
		if err != nil {
			return "", err
		}
		if swapped == 1 {
			return string(h), nil
		}
	}
	return "", errors.New("the stored password hash keeps changing (replicas with different configurations?)")
}

// swapScript sets HASH field ARGV[1] to ARGV[3] if it holds ARGV[2] (” =
// absent). KEYS: the hash.
var swapScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if cur ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
`)

// get returns the account named user.
func (st *AccountStore) get(user string) (storedAccount, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if a, ok := st.config[user]; ok {
		return a, true
	}
	a, ok := st.stored[user]
	return a, ok
}

// List returns every account, sorted by user name.
func (st *AccountStore) List() []storedAccount {
	st.mu.RLock()
	var out []storedAccount
	for _, a := range st.config {
		out = append(out, a)
	}
	for u, a := range st.stored {
		if _, shadowed := st.config[u]; !shadowed {
			out = append(out, a)
		}
	}
	st.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out
}

// PasswordChecks is how many bcrypt comparisons logins have cost.
func (st *AccountStore) PasswordChecks() int64 { return st.checks.Load() }

// Policy is the account policy in effect.
func (st *AccountStore) Policy() AccountPolicy { return st.policy }

// Valid reports whether a session opened with fingerprint fp for user is
// still valid: the account exists, is enabled, and has not changed.
func (st *AccountStore) Valid(user, fp string) (storedAccount, bool) {
	a, ok := st.get(user)
	return a, ok && a.Enabled && a.fingerprint() == fp
}

// Authenticate checks user and password. It costs one bcrypt whether or not
// the user exists (unless the credential was verified recently), counts
// failures in Redis and refuses locked-out accounts.
func (st *AccountStore) Authenticate(ctx context.Context, user, pw string) (storedAccount, error) {
	key := sha256.Sum256([]byte(user + "\x00" + pw))
	a, ok := st.get(user)
	if ok {
		st.mu.RLock()
		e, hit := st.basic[key]
		st.mu.RUnlock()
		if hit && e.fp == a.fingerprint() && time.Now().Before(e.expires) && a.Enabled {
			return a, nil
		}
	}
	if st.policy.LockoutThreshold > 0 {
		locked, err := st.rdb.Exists(ctx, userKey(user, "locked")).Result()
		if err != nil {
			return storedAccount{}, fmt.Errorf("lockout state: %w", err)
		}
		if locked == 1 {
			st.checks.Add(1)
			bcrypt.CompareHashAndPassword(st.dummy, []byte(pw)) // same time as a real check
			return storedAccount{}, ErrLocked
		}
	}
	hash := st.dummy
	if ok {
		hash = []byte(a.Hash)
	}
	st.checks.Add(1)
	good := bcrypt.CompareHashAndPassword(hash, []byte(pw)) == nil && ok && a.Enabled
	if !good {
		st.failed(ctx, user)
		return storedAccount{}, errBadCredentials
	}
	st.mu.Lock()
	if len(st.basic) >= basicCacheMax {
		clear(st.basic)
	}
	st.basic[key] = basicEntry{fp: a.fingerprint(), expires: time.Now().Add(basicCacheTTL)}
	st.mu.Unlock()
	if st.policy.LockoutThreshold > 0 {
		st.rdb.Del(ctx, userKey(user, "failures"))
	}
	return a, nil
}

var errBadCredentials = errors.New("bad user name or password")

// failureCountTimeout bounds the count of one failed login, apart from
// the request's own deadline.
const failureCountTimeout = 5 * time.Second

// lockoutScript counts a failed login and locks the account at the
// threshold. KEYS: counter, lock (one user's: they share a hash tag). ARGV: reset-after ms, threshold, duration ms.
var lockoutScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

func (st *AccountStore) failed(ctx context.Context, user string) {
	if st.policy.LockoutThreshold <= 0 {
		return
	}
	// A failure is counted even when the request has run out of time or
	// its client has gone: otherwise a guesser that hangs up right after
	// sending (or a slow moment) would escape the lockout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), failureCountTimeout)
	defer cancel()
	locked, err := lockoutScript.Run(ctx, st.rdb, []string{userKey(user, "failures"), userKey(user, "locked")},
		st.policy.LockoutResetAfter.Milliseconds(), st.policy.LockoutThreshold, st.policy.LockoutDuration.Milliseconds()).Int()
	if err != nil {
		st.log.Warn("failed login not counted: Redis did not answer", "user", user, "err", err)
	}
	if err == nil && locked == 1 {
		st.log.Warn("account locked out after failed logins", "user", user, "failures", st.policy.LockoutThreshold, "for", st.policy.LockoutDuration)
	}
}

// Locked reports whether user is locked out now.
func (st *AccountStore) Locked(ctx context.Context, user string) bool {
	n, err := st.rdb.Exists(ctx, userKey(user, "locked")).Result()
	return err == nil && n == 1
}

// Errors of account changes.
var (
	ErrAccountExists   = errors.New("account exists")
	ErrNoAccount       = errors.New("no such account")
	ErrConfigAccount   = errors.New("account defined in the configuration file")
	ErrPasswordTooWeak = errors.New("password too short")
)

// Put creates (create=true) or replaces a Redis account. password empty
// keeps the current one.
func (st *AccountStore) Put(ctx context.Context, user, password, role string, enabled bool, nodes []string, create bool) (storedAccount, error) {
	st.mu.RLock()
	_, isConfig := st.config[user]
	cur, exists := st.stored[user]
	st.mu.RUnlock()
	switch {
	case isConfig:
		return storedAccount{}, ErrConfigAccount
	case create && exists:
		return storedAccount{}, ErrAccountExists
	case !create && !exists:
		return storedAccount{}, ErrNoAccount
	}
	a := storedAccount{User: user, Hash: cur.Hash, Role: role, Enabled: enabled, Nodes: nodes}
	if password != "" {
		if len(password) < st.policy.MinPasswordLength {
			return storedAccount{}, ErrPasswordTooWeak
		}
		h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
		if err != nil {
			return storedAccount{}, err
		}
		a.Hash = string(h)
	}
	raw, _ := json.Marshal(a)
	// The write, then the message: on a Cluster a pipeline sends them to
	// different masters at once, and a replica that heard the message
	// before the write landed reloaded the old account.
	if err := st.rdb.HSet(ctx, accountsKey, user, raw).Err(); err != nil {
		return storedAccount{}, err
	}
	if err := st.rdb.Publish(ctx, accountsChannel, user).Err(); err != nil {
		return storedAccount{}, err
	}
	st.mu.Lock()
	if st.stored == nil {
		st.stored = map[string]storedAccount{}
	}
	st.stored[user] = a
	st.mu.Unlock()
	return a, nil
}

// Delete removes a Redis account (its sessions stop working at once).
func (st *AccountStore) Delete(ctx context.Context, user string) error {
	st.mu.RLock()
	_, isConfig := st.config[user]
	_, exists := st.stored[user]
	st.mu.RUnlock()
	switch {
	case isConfig:
		return ErrConfigAccount
	case !exists:
		return ErrNoAccount
	}
	if err := st.rdb.HDel(ctx, accountsKey, user).Err(); err != nil {
		return err
	}
	if err := st.rdb.Publish(ctx, accountsChannel, user).Err(); err != nil {
		return err
	}
	st.mu.Lock()
	delete(st.stored, user)
	st.mu.Unlock()
	return nil
}
