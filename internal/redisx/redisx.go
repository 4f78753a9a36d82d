// Package redisx opens the Redis that fishgate keeps its shared state in:
// one standalone server, a master found through Sentinel, a Redis Cluster,
// or an embedded miniredis when none is given
// (docs/decisions/0008-embedded-miniredis-by-default.md). It also runs
// fishgate's scripts on it, acknowledged by replicas when asked (acked.go).
package redisx

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Mode is how a Redis deployment is laid out.
type Mode string

// The modes Open knows.
const (
	Standalone Mode = "standalone" // one server (Addrs[0] or URL)
	Sentinel   Mode = "sentinel"   // the master Sentinel names (Addrs: the sentinels)
	Cluster    Mode = "cluster"    // a Redis Cluster (Addrs: seed nodes)
)

// Options say which Redis to open and how. The zero value starts an
// embedded miniredis. Zero durations leave go-redis's own values: the
// settings a file states come from app/config, which has the defaults.
type Options struct {
	// URL is the short form of one standalone Redis:
	// "redis://[user:pass@]host:port/db", "rediss://...", "unix://...".
	// It excludes Addrs, Mode other than Standalone, the credentials and DB.
	URL string
	// Mode is Standalone when empty.
	Mode Mode
	// Addrs are host:port addresses: the server (Standalone, exactly one),
	// the sentinels (Sentinel) or the Cluster's seed nodes.
	Addrs []string
	// MasterName is the master's name in Sentinel (Sentinel only).
	MasterName string
	// Username (an ACL user) and Password authenticate to the servers;
	// SentinelPassword to the sentinels.
	Username, Password, SentinelPassword string
	// DB is the database number (not with Cluster).
	DB int
	// TLS, when set, is the TLS configuration of every connection
	// (servers and sentinels). With a rediss:// URL, nil takes the
	// system's roots.
	TLS *tls.Config
	// MinReplicasAck and AckTimeout are carried to Conn for the writes
	// that must reach replicas (Acked); Open does not use them.
	MinReplicasAck int
	AckTimeout     time.Duration
	// OpTimeout bounds one Redis round trip (read and write each) when the
	// caller's context has no earlier deadline.
	OpTimeout time.Duration
}

// Embedded reports whether o names no Redis, so that Open starts one.
func (o Options) Embedded() bool { return o.URL == "" && len(o.Addrs) == 0 }

// Conn is an open Redis client and whatever must be stopped with it.
type Conn struct {
	// Client is the one client of the deployment: a *redis.Client for a
	// standalone server and for Sentinel's master, a *redis.ClusterClient
	// for a Cluster.
	Client   redis.UniversalClient
	Embedded *miniredis.Miniredis // nil for an external Redis
	// MinReplicasAck replicas must acknowledge a state change within
	// AckTimeout (0: not checked); see Acked.
	MinReplicasAck int
	AckTimeout     time.Duration
	stop           func()
}

// Writes runs the scripts that change state: acknowledged by
// MinReplicasAck replicas when it is set (Acked), else as they are (Plain).
func (c *Conn) Writes() Runner {
	if c.MinReplicasAck > 0 {
		return Acked{Client: c.Client, Replicas: c.MinReplicasAck, Timeout: c.AckTimeout}
	}
	return Plain(c.Client)
}

// Close closes the client and stops the embedded server, if any.
func (c *Conn) Close() error {
	err := c.Client.Close()
	if c.Embedded != nil {
		c.stop()
		c.Embedded.Close()
	}
	return err
}

// TTLTick is how often the embedded Redis's TTLs are advanced.
const TTLTick = 100 * time.Millisecond

// pingTimeout bounds the check at Open that the Redis answers.
const pingTimeout = 5 * time.Second

// RunClock makes m's TTLs follow the wall clock, advancing them every tick.
// (miniredis's ClockTTL does the same on every command, which walks every
// key each time: far too slow with thousands of nodes.) Each advance walks
// and sorts every key under miniredis's one lock (about 30 ms at 100,000
// keys on a 2-core machine: TestClockExpiresAmongManyKeys), so the pause after it grows with it (clockPause): the
// walk holds the embedded Redis at most 1/clockShare of the time, and a TTL
// ends late by at most that pause. Call stop to end it.
func RunClock(m *miniredis.Miniredis, tick time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTimer(tick)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			now := time.Now()
			m.FastForward(now.Sub(last))
			last = now
			t.Reset(clockPause(tick, time.Since(now)))
		}
	}()
	return func() { close(done); <-finished }
}

// clockShare bounds the share of time RunClock's walks hold the embedded
// Redis: one in clockShare.
const clockShare = 50

// clockPause is the wait after a TTL walk that took walk: tick, or longer
// when the walk was long.
func clockPause(tick, walk time.Duration) time.Duration {
	return max(tick, clockShare*walk)
}

// Open connects to the Redis o names and checks that it answers, or, when
// o names none, starts an embedded miniredis (openEmbedded). Errors name
// the servers, never a password.
func Open(ctx context.Context, o Options) (*Conn, error) {
	if o.Embedded() {
		return openEmbedded(o)
	}
	client, where, err := o.client()
	if err != nil {
		return nil, err
	}
	c := &Conn{Client: client, MinReplicasAck: o.MinReplicasAck, AckTimeout: o.AckTimeout}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := c.Client.Ping(pctx).Err(); err != nil {
		c.Client.Close()
		return nil, fmt.Errorf("redis %s: %w", where, err)
	}
	if o.Mode == "" || o.Mode == Standalone {
		if err := checkStandalone(pctx, c.Client); err != nil {
			c.Client.Close()
			return nil, fmt.Errorf("redis %s: %w", where, err)
		}
	}
	return c, nil
}

// openEmbedded starts a miniredis on a random loopback port whose TTLs
// follow the wall clock (without it, leases and sessions would never
// expire). It requires a random password, known only to this process:
// any local user can reach a loopback port, and whoever reads or writes
// the gateway's Redis can forge sessions.
func openEmbedded(o Options) (*Conn, error) {
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, fmt.Errorf("embedded redis password: %w", err)
	}
	password := hex.EncodeToString(secret[:])
	m := miniredis.NewMiniRedis()
	m.RequireAuth(password)
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	opt := &redis.Options{Addr: m.Addr(), Password: password}
	o.apply(&opt.ContextTimeoutEnabled, &opt.ReadTimeout, &opt.WriteTimeout)
	return &Conn{Client: redis.NewClient(opt), Embedded: m, stop: RunClock(m, TTLTick),
		MinReplicasAck: o.MinReplicasAck, AckTimeout: o.AckTimeout}, nil
}

// apply sets what every client of fishgate has in common.
func (o Options) apply(contextTimeout *bool, read, write *time.Duration) {
	// A caller's deadline bounds the socket I/O too: a frozen Redis makes a
	// request answer 503 when its deadline passes, not after go-redis's
	// own timeouts and retries.
	*contextTimeout = true
	if o.OpTimeout > 0 {
		if *read == 0 {
			*read = o.OpTimeout
		}
		if *write == 0 {
			*write = o.OpTimeout
		}
	}
}

// client builds the client of o (not the embedded one) and names its
// servers for errors.
func (o Options) client() (redis.UniversalClient, string, error) {
	if o.URL != "" {
		opt, err := o.urlOptions()
		if err != nil {
			return nil, "", err
		}
		return redis.NewClient(opt), opt.Addr, nil
	}
	u, err := o.universal()
	if err != nil {
		return nil, "", err
	}
	addrs := strings.Join(o.Addrs, ",")
	switch o.Mode {
	case Sentinel:
		return redis.NewFailoverClient(u.Failover()), fmt.Sprintf("master %q of sentinels %s", o.MasterName, addrs), nil
	case Cluster:
		co := u.Cluster()
		co.ClusterStateReloadInterval = clusterReload
		return redis.NewClusterClient(co), "cluster " + addrs, nil
	}
	return redis.NewClient(u.Simple()), addrs, nil
}

// urlOptions are the client options of the URL form.
func (o Options) urlOptions() (*redis.Options, error) {
	switch {
	case len(o.Addrs) > 0 || (o.Mode != "" && o.Mode != Standalone):
		return nil, errors.New("redis: a URL names one standalone server: no addresses or mode besides")
	case o.Username != "" || o.Password != "" || o.SentinelPassword != "" || o.DB != 0:
		return nil, errors.New("redis: with a URL, the credentials and database are the URL's")
	}
	opt, err := redis.ParseURL(o.URL)
	if err != nil {
		// url.Parse's errors quote the whole URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("redis url: %w", err)
	}
	if o.TLS != nil {
		if opt.TLSConfig == nil {
			return nil, errors.New("redis url: a TLS configuration needs a rediss:// URL")
		}
		t := o.TLS.Clone()
		if t.ServerName == "" {
			t.ServerName = opt.TLSConfig.ServerName
		}
		opt.TLSConfig = t
	}
	o.apply(&opt.ContextTimeoutEnabled, &opt.ReadTimeout, &opt.WriteTimeout)
	return opt, nil
}

// clusterReload is how often a Cluster client re-reads the slot map.
// go-redis re-reads it at once on a MOVED reply, but a master that dies
// answers nothing: until the next periodic read (60 s by default) the
// client would keep dialling it after its replica took the slots over,
// and every Reset of those nodes would wait out its deadline.
const clusterReload = 2 * time.Second

// universal are the client options of the Addrs form, for any mode.
func (o Options) universal() (*redis.UniversalOptions, error) {
	switch o.Mode {
	case "", Standalone:
		if len(o.Addrs) != 1 {
			return nil, fmt.Errorf("redis standalone: %d addresses; give one", len(o.Addrs))
		}
		if o.SentinelPassword != "" || o.MasterName != "" {
			return nil, errors.New("redis standalone: a master name and sentinel password are for sentinel mode")
		}
	case Sentinel:
		if o.MasterName == "" {
			return nil, errors.New("redis sentinel: no master name")
		}
	case Cluster:
		if o.DB != 0 || o.MasterName != "" || o.SentinelPassword != "" {
			return nil, errors.New("redis cluster: a database, master name or sentinel password is not for a cluster")
		}
	default:
		return nil, fmt.Errorf("redis: mode %q is not standalone, sentinel or cluster", o.Mode)
	}
	if len(o.Addrs) == 0 {
		return nil, fmt.Errorf("redis %s: no addresses", o.Mode)
	}
	u := &redis.UniversalOptions{
		Addrs: o.Addrs, MasterName: o.MasterName, DB: o.DB,
		Username: o.Username, Password: o.Password, SentinelPassword: o.SentinelPassword,
		TLSConfig: o.TLS,
	}
	o.apply(&u.ContextTimeoutEnabled, &u.ReadTimeout, &u.WriteTimeout)
	return u, nil
}

// checkStandalone refuses a server that is a Cluster node or a sentinel
// when a standalone server was asked for: its refusals (MOVED, unknown
// commands) would otherwise surface later, on every request. A server
// that does not let us read INFO is taken as it is.
func checkStandalone(ctx context.Context, c redis.UniversalClient) error {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return nil
	}
	for _, l := range strings.Split(info, "\n") {
		switch strings.TrimSpace(l) {
		case "redis_mode:cluster":
			return errors.New("this server is a Redis Cluster node: configure redis.mode: cluster with its nodes in redis.addrs")
		case "redis_mode:sentinel":
			return errors.New("this server is a Sentinel: configure redis.mode: sentinel, the sentinels in redis.addrs and redis.master_name")
		}
	}
	return nil
}
