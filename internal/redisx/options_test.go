package redisx

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestClientOptions: each mode builds its kind of client with every
// setting in place (no server is contacted: these are the options only;
// redisx_test.go opens real servers).
func TestClientOptions(t *testing.T) {
	tlsCfg := &tls.Config{ServerName: "redis.example", MinVersion: tls.VersionTLS12}
	base := Options{Username: "fg", Password: "pw", TLS: tlsCfg, OpTimeout: 700 * time.Millisecond, MinReplicasAck: 1, AckTimeout: time.Second}

	t.Run("standalone", func(t *testing.T) {
		o := base
		o.Addrs, o.DB = []string{"10.0.0.1:6379"}, 3
		c, where := mustClient(t, o)
		opt := c.(*redis.Client).Options()
		if opt.Addr != "10.0.0.1:6379" || opt.Username != "fg" || opt.Password != "pw" || opt.DB != 3 || opt.TLSConfig != tlsCfg {
			t.Errorf("options %+v", opt)
		}
		checkCommon(t, opt.ContextTimeoutEnabled, opt.ReadTimeout, opt.WriteTimeout)
		if where != "10.0.0.1:6379" {
			t.Errorf("named %q", where)
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		o := base
		o.Mode, o.Addrs, o.MasterName, o.SentinelPassword, o.DB = Sentinel, []string{"10.0.0.1:26379", "10.0.0.2:26379"}, "fishgate", "spw", 2
		c, where := mustClient(t, o)
		// the failover client is a *redis.Client whose options are the
		// master's (the sentinels' own are not exposed)
		opt := c.(*redis.Client).Options()
		if opt.Username != "fg" || opt.Password != "pw" || opt.DB != 2 || opt.TLSConfig != tlsCfg {
			t.Errorf("options %+v", opt)
		}
		checkCommon(t, opt.ContextTimeoutEnabled, opt.ReadTimeout, opt.WriteTimeout)
		u, err := o.universal()
		if err != nil {
			t.Fatal(err)
		}
		if f := u.Failover(); f.SentinelPassword != "spw" || f.MasterName != "fishgate" || strings.Join(f.SentinelAddrs, ",") != "10.0.0.1:26379,10.0.0.2:26379" {
			t.Errorf("failover options %+v", f)
		}
		if !strings.Contains(where, "fishgate") || !strings.Contains(where, "10.0.0.2:26379") {
			t.Errorf("named %q", where)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		o := base
		o.Mode, o.Addrs = Cluster, []string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"}
		c, where := mustClient(t, o)
		opt := c.(*redis.ClusterClient).Options()
		if strings.Join(opt.Addrs, ",") != "10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000" || opt.Username != "fg" || opt.Password != "pw" || opt.TLSConfig != tlsCfg {
			t.Errorf("options %+v", opt)
		}
		checkCommon(t, opt.ContextTimeoutEnabled, opt.ReadTimeout, opt.WriteTimeout)
		if opt.ClusterStateReloadInterval != clusterReload {
			t.Errorf("slot map re-read every %s, want %s", opt.ClusterStateReloadInterval, clusterReload)
		}
		if !strings.HasPrefix(where, "cluster ") {
			t.Errorf("named %q", where)
		}
	})
	t.Run("url", func(t *testing.T) {
		c, where := mustClient(t, Options{URL: "rediss://fg:secret-pw@redis.example:6380/4", TLS: &tls.Config{MinVersion: tls.VersionTLS13}, OpTimeout: 700 * time.Millisecond})
		opt := c.(*redis.Client).Options()
		if opt.Addr != "redis.example:6380" || opt.Username != "fg" || opt.Password != "secret-pw" || opt.DB != 4 {
			t.Errorf("options %+v", opt)
		}
		// the configured TLS, with the URL's host to verify
		if opt.TLSConfig == nil || opt.TLSConfig.MinVersion != tls.VersionTLS13 || opt.TLSConfig.ServerName != "redis.example" {
			t.Errorf("TLS %+v", opt.TLSConfig)
		}
		checkCommon(t, opt.ContextTimeoutEnabled, opt.ReadTimeout, opt.WriteTimeout)
		if strings.Contains(where, "secret-pw") {
			t.Errorf("named %q", where)
		}
	})
	t.Run("url keeps its own timeout", func(t *testing.T) {
		c, _ := mustClient(t, Options{URL: "redis://127.0.0.1:6379?read_timeout=2s", OpTimeout: 700 * time.Millisecond})
		if opt := c.(*redis.Client).Options(); opt.ReadTimeout != 2*time.Second || opt.WriteTimeout != 700*time.Millisecond {
			t.Errorf("timeouts %s %s", opt.ReadTimeout, opt.WriteTimeout)
		}
	})
}

func mustClient(t *testing.T, o Options) (redis.UniversalClient, string) {
	t.Helper()
	c, where, err := o.client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, where
}

func checkCommon(t *testing.T, contextTimeout bool, read, write time.Duration) {
	t.Helper()
	if !contextTimeout {
		t.Error("ContextTimeoutEnabled is off: a request's deadline would not bound Redis I/O")
	}
	if read != 700*time.Millisecond || write != 700*time.Millisecond {
		t.Errorf("read/write timeouts %s/%s, want OpTimeout 700ms", read, write)
	}
}

// TestClientOptionsRefused: options that cannot name one deployment are
// refused with what is wrong, and no error shows a password.
func TestClientOptionsRefused(t *testing.T) {
	cases := []struct {
		name string
		o    Options
		want string
	}{
		{"two standalone servers", Options{Addrs: []string{"a:1", "b:1"}}, "give one"},
		{"standalone with master name", Options{Addrs: []string{"a:1"}, MasterName: "m"}, "sentinel mode"},
		{"sentinel without master", Options{Mode: Sentinel, Addrs: []string{"a:1"}}, "no master name"},
		{"cluster with db", Options{Mode: Cluster, Addrs: []string{"a:1"}, DB: 1}, "not for a cluster"},
		{"unknown mode", Options{Mode: "ring", Addrs: []string{"a:1"}}, `"ring"`},
		{"url and addrs", Options{URL: "redis://a:1", Addrs: []string{"b:1"}}, "one standalone server"},
		{"url and password", Options{URL: "redis://a:1", Password: "secret-pw"}, "the URL's"},
		{"url without tls", Options{URL: "redis://a:1", TLS: &tls.Config{MinVersion: tls.VersionTLS12}}, "rediss://"},
		{"bad database", Options{URL: "redis://u:secret-pw@a:1/first"}, "redis url"},
		{"bad url scheme", Options{URL: "http://u:secret-pw@a:1"}, "redis url"},
		{"url with a space", Options{URL: "redis://u:secret pw@a:1"}, "redis url"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl, _, err := c.o.client()
			if err == nil {
				cl.Close()
				t.Fatalf("no error; want one containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q; want one containing %q and no password", err, c.want)
			}
		})
	}
}
