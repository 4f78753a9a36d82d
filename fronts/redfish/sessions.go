package redfish

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Session is one Redfish login session (DSP0266 §13.3.4). Sessions live in
// Redis so that every replica accepts every token; each expires after the
// idle timeout unless used.
type Session struct {
	ID      string
	User    string
	Role    string
	Created time.Time
	// Fingerprint is the account's when the session was opened: a session
	// whose account changed since is revoked (AccountStore.Valid).
	Fingerprint string
}

// ErrTooManySessions is returned when a user has MaxSessionsPerUser open.
var ErrTooManySessions = errors.New("too many sessions for this user")

// ErrNoSession is returned for an unknown or expired session or token.
var ErrNoSession = errors.New("no such session")

// SessionStore keeps sessions in Redis:
//
//	fg:token:<sha256(token)>  hash {id, user, role, created}, idle TTL, refreshed on use
//	fg:session:<id>           the token key's name (to find a session by id)
//	fg:sessions               set of session ids
//	fg:{user:<user>}:sessions set of that user's session ids (the per-user cap)
//
// A session is alive while its token key is. Only the token's hash is stored.
// Every command touches one key (pipelines group commands, never
// transactions), so on Redis Cluster the keys need no common hash tag: the
// token keys, read by every authenticated request, spread over every
// master (docs/architecture.md#redis-key-layout).
type SessionStore struct {
	rdb  redis.UniversalClient
	idle time.Duration
	// maxPerUser bounds a user's open sessions (0: no bound).
	maxPerUser int
}

// NewSessionStore builds a store with the given idle timeout.
func NewSessionStore(rdb redis.UniversalClient, idle time.Duration) *SessionStore {
	return &SessionStore{rdb: rdb, idle: idle}
}

// IdleTimeout is the session idle timeout.
func (s *SessionStore) IdleTimeout() time.Duration { return s.idle }

const sessionIndex = "fg:sessions"

func sessionKey(id string) string { return "fg:session:" + id }
func tokenKey(token string) string {
	h := sha256.Sum256([]byte(token))
	return "fg:token:" + hex.EncodeToString(h[:])
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func userSessionsKey(user string) string { return userKey(user, "sessions") }

// Create opens a session for user and returns it with its token. fp is the
// account's fingerprint.
func (s *SessionStore) Create(ctx context.Context, user, role, fp string) (Session, string, error) {
	if s.maxPerUser > 0 {
		if err := s.makeRoom(ctx, user); err != nil {
			return Session{}, "", err
		}
	}
	idb := make([]byte, 8)
	if _, err := rand.Read(idb); err != nil {
		return Session{}, "", err
	}
	token, err := randomString(32)
	if err != nil {
		return Session{}, "", err
	}
	sess := Session{ID: hex.EncodeToString(idb), User: user, Role: role, Created: time.Now().UTC().Truncate(time.Second), Fingerprint: fp}
	tk := tokenKey(token)
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, tk, "id", sess.ID, "user", user, "role", role, "created", sess.Created.Format(time.RFC3339), "fp", fp)
		p.PExpire(ctx, tk, s.idle)
		p.Set(ctx, sessionKey(sess.ID), tk, 0)
		p.SAdd(ctx, sessionIndex, sess.ID)
		p.SAdd(ctx, userSessionsKey(user), sess.ID)
		return nil
	})
	if err != nil {
		return Session{}, "", fmt.Errorf("create session: %w", err)
	}
	return sess, token, nil
}

// Lookup finds the session of token and refreshes its idle timer: one
// round trip (HGETALL and PEXPIRE pipelined).
func (s *SessionStore) Lookup(ctx context.Context, token string) (Session, error) {
	tk := tokenKey(token)
	var get *redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.HGetAll(ctx, tk)
		p.PExpire(ctx, tk, s.idle)
		return nil
	})
	if err != nil {
		return Session{}, fmt.Errorf("look up session: %w", err)
	}
	return parseSession(get.Val())
}

func parseSession(m map[string]string) (Session, error) {
	if m["id"] == "" {
		return Session{}, ErrNoSession
	}
	created, _ := time.Parse(time.RFC3339, m["created"])
	return Session{ID: m["id"], User: m["user"], Role: m["role"], Created: created, Fingerprint: m["fp"]}, nil
}

// Get returns session id without refreshing it.
func (s *SessionStore) Get(ctx context.Context, id string) (Session, error) {
	tk, err := s.rdb.Get(ctx, sessionKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("get session: %w", err)
	}
	m, err := s.rdb.HGetAll(ctx, tk).Result()
	if err != nil {
		return Session{}, fmt.Errorf("get session: %w", err)
	}
	sess, err := parseSession(m)
	if errors.Is(err, ErrNoSession) {
		s.forget(ctx, id)
	}
	return sess, err
}

// forget drops the id of an expired session.
func (s *SessionStore) forget(ctx context.Context, ids ...string) {
	if len(ids) == 0 {
		return
	}
	keys := make([]string, len(ids))
	members := make([]any, len(ids))
	for i, id := range ids {
		keys[i], members[i] = sessionKey(id), id
	}
	s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, k)
		}
		p.SRem(ctx, sessionIndex, members...)
		return nil
	})
}

// Delete ends session id.
func (s *SessionStore) Delete(ctx context.Context, id string) error {
	tk, err := s.rdb.Get(ctx, sessionKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return ErrNoSession
	}
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, tk)
		p.Del(ctx, sessionKey(id))
		p.SRem(ctx, sessionIndex, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// RevokeUser ends every session of user.
func (s *SessionStore) RevokeUser(ctx context.Context, user string) error {
	ids, err := s.rdb.SMembers(ctx, userSessionsKey(user)).Result()
	if err != nil {
		return fmt.Errorf("revoke sessions of %s: %w", user, err)
	}
	for _, id := range ids {
		if err := s.Delete(ctx, id); err != nil && !errors.Is(err, ErrNoSession) {
			return fmt.Errorf("revoke sessions of %s: %w", user, err)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	// only the ids ended here: a session opened meanwhile keeps its entry
	return s.rdb.SRem(ctx, userSessionsKey(user), members...).Err()
}

// List returns the live sessions, dropping expired ones from the index.
func (s *SessionStore) List(ctx context.Context) ([]Session, error) {
	ids, err := s.rdb.SMembers(ctx, sessionIndex).Result()
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	tks := make([]*redis.StringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			tks[i] = p.Get(ctx, sessionKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	gets := make([]*redis.MapStringStringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range ids {
			gets[i] = p.HGetAll(ctx, tks[i].Val()) // "" for a missing session key: empty hash
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	var out []Session
	var gone []string
	for i, id := range ids {
		sess, err := parseSession(gets[i].Val())
		if err != nil || sess.ID != id {
			gone = append(gone, id)
			continue
		}
		out = append(out, sess)
	}
	s.forget(ctx, gone...)
	return out, nil
}

// makeRoom checks the user's session cap, first dropping the ids of its
// sessions that expired.
func (s *SessionStore) makeRoom(ctx context.Context, user string) error {
	key := userSessionsKey(user)
	n, err := s.rdb.SCard(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("count sessions: %w", err)
	}
	if int(n) < s.maxPerUser {
		return nil
	}
	ids, err := s.rdb.SMembers(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("count sessions: %w", err)
	}
	live := 0
	for _, id := range ids {
		if _, err := s.Get(ctx, id); errors.Is(err, ErrNoSession) {
			s.rdb.SRem(ctx, key, id)
			continue
		}
		live++
	}
	if live >= s.maxPerUser {
		return ErrTooManySessions
	}
	return nil
}
