package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/fishgate/fishgate/internal/redisx"
)

// Redis is where the shared state is kept when redis_url, its short form
// for one standalone server, is not enough: Sentinel, Cluster, passwords
// from a file, TLS with a private CA, and writes acknowledged by replicas.
// With neither redis_url nor redis.addrs the gateway runs an embedded Redis.
type Redis struct {
	// Mode is standalone (default: one server), sentinel (a master found
	// through Sentinel) or cluster (a Redis Cluster).
	Mode string `yaml:"mode"`
	// Addrs are host:port addresses: the server (standalone, one), the
	// sentinels (sentinel) or seed nodes (cluster).
	Addrs []string `yaml:"addrs"`
	// MasterName is the master's name in Sentinel (sentinel only, required).
	MasterName string `yaml:"master_name"`
	// Username is an ACL user (optional; default the default user).
	Username string `yaml:"username"`
	// Password authenticates to the servers; PasswordFile names a file
	// holding it instead (read at load, a trailing newline dropped).
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// SentinelPassword authenticates to the sentinels (sentinel only);
	// SentinelPasswordFile names a file holding it instead (secretref.go).
	SentinelPassword     string `yaml:"sentinel_password"`
	SentinelPasswordFile string `yaml:"sentinel_password_file"`
	// DB is the database number (standalone and sentinel; default 0).
	DB int `yaml:"db"`
	// TLS configures TLS to the servers and sentinels.
	TLS RedisTLS `yaml:"tls"`
	// MinReplicasAck replicas must acknowledge every state change within
	// AckTimeout, or it does not count (docs/decisions/0017; default 0:
	// off).
	MinReplicasAck int `yaml:"min_replicas_ack"`
	// AckTimeout bounds that wait (Redis WAIT; default 1s).
	AckTimeout Duration `yaml:"ack_timeout"`
	// OpTimeout bounds one Redis round trip, read or write, where the
	// request's own deadline is not earlier (default 5s).
	OpTimeout Duration `yaml:"op_timeout"`

	// What Validate read from files: password_file's password and the TLS
	// configuration. They are read once per validation, so that a bad
	// file is a configuration error naming its field, not a failure later.
	filePassword string
	tlsConfig    *tls.Config
}

// RedisTLS is TLS to Redis. It is on when any field is set.
type RedisTLS struct {
	// Enabled alone uses TLS with the system's certificate authorities.
	Enabled bool `yaml:"enabled"`
	// CA is a PEM file of the certificate authorities to trust (default:
	// the system's).
	CA string `yaml:"ca"`
	// Cert and Key are a client certificate and its key (PEM), for servers
	// that ask for one (tls-auth-clients).
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// InsecureSkipVerify does not verify the servers' certificates.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// RedisModes are the redis.mode values.
var RedisModes = []string{string(redisx.Standalone), string(redisx.Sentinel), string(redisx.Cluster)}

func defaultRedis() Redis {
	return Redis{Mode: string(redisx.Standalone), AckTimeout: Duration(time.Second), OpTimeout: Duration(5 * time.Second)}
}

// on reports whether any TLS setting is given.
func (t RedisTLS) on() bool {
	return t.Enabled || t.CA != "" || t.Cert != "" || t.Key != "" || t.InsecureSkipVerify
}

// EmbeddedRedis reports whether the configuration names no Redis, so that
// the gateway runs an embedded one.
func (c Config) EmbeddedRedis() bool { return c.RedisURL == "" && len(c.Redis.Addrs) == 0 }

// RedisOptions are redisx's options from the configuration (after
// Validate, which reads the files they need).
func (c Config) RedisOptions() redisx.Options {
	r := c.Redis
	password := r.Password
	if r.PasswordFile != "" {
		password = r.filePassword
	}
	return redisx.Options{
		URL: c.RedisURL, Mode: redisx.Mode(r.Mode), Addrs: r.Addrs, MasterName: r.MasterName,
		Username: r.Username, Password: password, SentinelPassword: r.SentinelPassword, DB: r.DB,
		TLS: r.tlsConfig, MinReplicasAck: r.MinReplicasAck,
		AckTimeout: time.Duration(r.AckTimeout), OpTimeout: time.Duration(r.OpTimeout),
	}
}

// RedisID names the Redis the configuration uses; it seeds the Redfish
// service's UUID, so that replicas sharing a Redis serve one service. It
// holds redis_url as written, password included: hash it, never show it.
func (c Config) RedisID() string {
	if c.RedisURL != "" || c.EmbeddedRedis() {
		return c.RedisURL
	}
	r := c.Redis
	return fmt.Sprintf("%s:%s/%s/%d", r.Mode, strings.Join(r.Addrs, ","), r.MasterName, r.DB)
}

// SetRedisURL makes url the Redis (serve --redis-url): it replaces the
// file's redis_url and the servers, credentials and database of its redis
// block; TLS, acknowledgements and timeouts stay.
func (c *Config) SetRedisURL(url string) {
	d := defaultRedis()
	c.RedisURL = url
	c.Redis.Mode, c.Redis.Addrs, c.Redis.MasterName = d.Mode, nil, ""
	c.Redis.Username, c.Redis.Password, c.Redis.PasswordFile, c.Redis.SentinelPassword = "", "", "", ""
	c.Redis.SentinelPasswordFile = ""
	c.Redis.DB = 0
}

// validateRedis checks redis_url and the redis block, and reads the files
// the block names.
func (c *Config) validateRedis(bad func(field, format string, a ...any)) {
	r := &c.Redis
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			bad("redis_url", "%s is not a redis://, rediss:// or unix:// URL", redactedURL(c.RedisURL))
		} else if r.TLS.on() && u.Scheme != "rediss" {
			bad("redis.tls", "needs a rediss:// redis_url (or redis.addrs)")
		}
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"redis.mode", r.Mode != string(redisx.Standalone)}, {"redis.addrs", len(r.Addrs) > 0},
			{"redis.master_name", r.MasterName != ""}, {"redis.username", r.Username != ""},
			{"redis.password", r.Password != ""}, {"redis.password_file", r.PasswordFile != ""},
			{"redis.sentinel_password", r.SentinelPassword != ""}, {"redis.db", r.DB != 0},
		} {
			if f.set {
				bad("redis_url", "cannot be combined with %s: give the Redis by redis_url (one standalone server) or by the redis block", f.name)
			}
		}
	}
	mode := r.Mode
	switch {
	case !contains(RedisModes, mode):
		bad("redis.mode", "%q is not one of %s", mode, strings.Join(RedisModes, ", "))
	case c.RedisURL != "":
	case len(r.Addrs) == 0 && mode != string(redisx.Standalone):
		bad("redis.addrs", "required in %s mode", mode)
	case len(r.Addrs) > 1 && mode == string(redisx.Standalone):
		bad("redis.addrs", "%d addresses: standalone mode takes one (sentinel mode takes the sentinels, cluster mode seed nodes)", len(r.Addrs))
	case len(r.Addrs) == 0:
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"redis.username", r.Username != ""}, {"redis.password", r.Password != ""},
			{"redis.password_file", r.PasswordFile != ""}, {"redis.db", r.DB != 0}, {"redis.tls", r.TLS.on()},
			{"redis.master_name", r.MasterName != ""}, {"redis.sentinel_password", r.SentinelPassword != ""},
		} {
			if f.set {
				bad(f.name, "needs a Redis: redis.addrs or redis_url (without them the gateway runs an embedded Redis)")
			}
		}
	}
	for i, a := range r.Addrs {
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			bad(fmt.Sprintf("redis.addrs[%d]", i), "%q is not host:port", a)
		}
	}
	if mode == string(redisx.Sentinel) && r.MasterName == "" {
		bad("redis.master_name", "required in sentinel mode")
	}
	if mode != string(redisx.Sentinel) && r.MasterName != "" {
		bad("redis.master_name", "only in sentinel mode")
	}
	if mode != string(redisx.Sentinel) && r.SentinelPassword != "" {
		bad("redis.sentinel_password", "only in sentinel mode")
	}
	switch {
	case r.DB < 0:
		bad("redis.db", "%d is negative", r.DB)
	case r.DB != 0 && mode == string(redisx.Cluster):
		bad("redis.db", "a Redis Cluster has database 0 only")
	}
	r.filePassword = ""
	switch {
	case r.Password != "" && r.PasswordFile != "":
		bad("redis.password", "give redis.password or redis.password_file, not both")
	case r.PasswordFile != "":
		var err error
		if r.filePassword, err = readSecretFile(r.PasswordFile); err != nil {
			bad("redis.password_file", "%v", err)
		}
	}
	if r.MinReplicasAck < 0 {
		bad("redis.min_replicas_ack", "%d is negative", r.MinReplicasAck)
	}
	if r.MinReplicasAck > 0 && c.EmbeddedRedis() {
		bad("redis.min_replicas_ack", "the embedded Redis has no replicas: configure redis_url or redis.addrs")
	}
	if r.AckTimeout < Duration(10*time.Millisecond) {
		bad("redis.ack_timeout", "%s is too short (at least 10ms)", time.Duration(r.AckTimeout))
	}
	if r.OpTimeout < Duration(100*time.Millisecond) {
		bad("redis.op_timeout", "%s is too short (at least 100ms)", time.Duration(r.OpTimeout))
	}
	r.tlsConfig = nil
	if r.TLS.on() {
		r.tlsConfig = r.TLS.config(bad)
	}
}

// config is the TLS configuration, the files read; nil after a problem.
func (t RedisTLS) config(bad func(field, format string, a ...any)) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // the operator asked for it
	ok := true
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			bad("redis.tls.ca", "%v", err)
			ok = false
		} else {
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				bad("redis.tls.ca", "%s holds no PEM certificate", t.CA)
				ok = false
			}
		}
	}
	switch {
	case (t.Cert == "") != (t.Key == ""):
		bad("redis.tls", "cert and key must be given together")
		ok = false
	case t.Cert != "":
		pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			bad("redis.tls.cert", "%s and %s: %v", t.Cert, t.Key, err)
			ok = false
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if !ok {
		return nil
	}
	return cfg
}

// redactedURL is a URL with its password hidden, for errors; one that
// does not parse is not shown at all (it may hold a password anywhere).
func redactedURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(the URL, hidden: it does not parse and may hold a password)"
	}
	return u.Redacted()
}
