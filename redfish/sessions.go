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
}

// ErrNoSession is returned for an unknown or expired session or token.
var ErrNoSession = errors.New("no such session")

// SessionStore keeps sessions in Redis. Keys: fg:session:<id> (a hash) and
// fg:token:<sha256(token)> -> id; both carry the idle TTL and are refreshed
// on use. Only the token's hash is stored.
type SessionStore struct {
	rdb  redis.UniversalClient
	idle time.Duration
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

// Create opens a session for user and returns it with its token.
func (s *SessionStore) Create(ctx context.Context, user, role string) (Session, string, error) {
	idb := make([]byte, 8)
	if _, err := rand.Read(idb); err != nil {
		return Session{}, "", err
	}
	token, err := randomString(32)
	if err != nil {
		return Session{}, "", err
	}
	sess := Session{ID: hex.EncodeToString(idb), User: user, Role: role, Created: time.Now().UTC().Truncate(time.Second)}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, sessionKey(sess.ID), "user", user, "role", role, "created", sess.Created.Format(time.RFC3339), "token", tokenKey(token))
		p.PExpire(ctx, sessionKey(sess.ID), s.idle)
		p.Set(ctx, tokenKey(token), sess.ID, s.idle)
		p.SAdd(ctx, sessionIndex, sess.ID)
		return nil
	})
	if err != nil {
		return Session{}, "", fmt.Errorf("create session: %w", err)
	}
	return sess, token, nil
}

// Lookup finds the session of token and refreshes its idle timer.
func (s *SessionStore) Lookup(ctx context.Context, token string) (Session, error) {
	id, err := s.rdb.Get(ctx, tokenKey(token)).Result()
	if errors.Is(err, redis.Nil) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("look up session: %w", err)
	}
	var get *redis.MapStringStringCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.HGetAll(ctx, sessionKey(id))
		p.PExpire(ctx, sessionKey(id), s.idle)
		p.PExpire(ctx, tokenKey(token), s.idle)
		return nil
	})
	if err != nil {
		return Session{}, fmt.Errorf("look up session: %w", err)
	}
	return parseSession(id, get.Val())
}

func parseSession(id string, m map[string]string) (Session, error) {
	if len(m) == 0 {
		return Session{}, ErrNoSession
	}
	created, _ := time.Parse(time.RFC3339, m["created"])
	return Session{ID: id, User: m["user"], Role: m["role"], Created: created}, nil
}

// Get returns session id without refreshing it.
func (s *SessionStore) Get(ctx context.Context, id string) (Session, error) {
	m, err := s.rdb.HGetAll(ctx, sessionKey(id)).Result()
	if err != nil {
		return Session{}, fmt.Errorf("get session: %w", err)
	}
	return parseSession(id, m)
}

// Delete ends session id.
func (s *SessionStore) Delete(ctx context.Context, id string) error {
	tk, err := s.rdb.HGet(ctx, sessionKey(id), "token").Result()
	if errors.Is(err, redis.Nil) {
		return ErrNoSession
	}
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, sessionKey(id), tk)
		p.SRem(ctx, sessionIndex, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// List returns the live sessions, dropping expired ones from the index.
func (s *SessionStore) List(ctx context.Context) ([]Session, error) {
	ids, err := s.rdb.SMembers(ctx, sessionIndex).Result()
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, sessionKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	var out []Session
	var gone []any
	for i, id := range ids {
		sess, err := parseSession(id, cmds[i].Val())
		if err != nil {
			gone = append(gone, id)
			continue
		}
		out = append(out, sess)
	}
	if len(gone) > 0 {
		s.rdb.SRem(ctx, sessionIndex, gone...)
	}
	return out, nil
}
