package redisx_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/redisproc"
	"github.com/fishgate/fishgate/internal/redisx"
	"github.com/fishgate/fishgate/internal/testkit"
)

// open opens o for the test; the connection closes when it ends.
func open(t *testing.T, o redisx.Options) *redisx.Conn {
	t.Helper()
	c, err := redisx.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// openFails opens o, which must fail, and returns the error; no error may
// show a password.
func openFails(t *testing.T, o redisx.Options, secrets ...string) error {
	t.Helper()
	c, err := redisx.Open(context.Background(), o)
	if err == nil {
		c.Close()
		t.Fatalf("Open of %s %v succeeded; want an error", o.Mode, o.Addrs)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error shows a password: %v", err)
		}
	}
	return err
}

// roundTrip writes and reads a key through c.
func roundTrip(t *testing.T, c redis.UniversalClient, key string) {
	t.Helper()
	ctx := context.Background()
	if err := c.Set(ctx, key, "v-"+key, 0).Err(); err != nil {
		t.Fatalf("SET %s: %v", key, err)
	}
	if v, err := c.Get(ctx, key).Result(); err != nil || v != "v-"+key {
		t.Fatalf("GET %s = %q, %v", key, v, err)
	}
}

// TestOpenEmbeddedRequiresPassword: the embedded Redis listens on loopback
// but answers only with the random password its own client has; each
// start makes a new one.
func TestOpenEmbeddedRequiresPassword(t *testing.T) {
	ctx := context.Background()
	var passwords []string
	for range 2 {
		c := open(t, redisx.Options{})
		if c.Embedded == nil {
			t.Fatal("no embedded server")
		}
		roundTrip(t, c.Client, "k")
		pw := c.Client.(*redis.Client).Options().Password
		if len(pw) != 64 {
			t.Errorf("password %d characters; want 64 (32 random bytes, hex)", len(pw))
		}
		passwords = append(passwords, pw)

		for _, guess := range []string{"", "fishgate"} {
			other := redis.NewClient(&redis.Options{Addr: c.Embedded.Addr(), Password: guess, MaxRetries: -1})
			err := other.Get(ctx, "k").Err()
			other.Close()
			if err == nil || !strings.Contains(err.Error(), "NOAUTH") && !strings.Contains(err.Error(), "WRONGPASS") {
				t.Errorf("a client with password %q: %v; want NOAUTH or WRONGPASS", guess, err)
			}
		}
	}
	if passwords[0] == passwords[1] {
		t.Error("two embedded servers share a password")
	}
}

// TestOpenStandalone: a real redis-server by URL and by address, with an
// ACL user and a database; a wrong password is refused without showing it.
func TestOpenStandalone(t *testing.T) {
	ctx := context.Background()
	addr := testkit.StartRedisServer(t)
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	if err := admin.Do(ctx, "ACL", "SETUSER", "fishgate", "on", ">s3cret-pw", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}

	c := open(t, redisx.Options{Addrs: []string{addr}, Username: "fishgate", Password: "s3cret-pw", DB: 2,
		MinReplicasAck: 1, AckTimeout: 250 * time.Millisecond, OpTimeout: time.Second})
	roundTrip(t, c.Client, "by-addrs")
	if c.MinReplicasAck != 1 || c.AckTimeout != 250*time.Millisecond {
		t.Errorf("Conn carries MinReplicasAck %d, AckTimeout %s", c.MinReplicasAck, c.AckTimeout)
	}
	if _, ok := c.Writes().(redisx.Acked); !ok {
		t.Errorf("Writes with MinReplicasAck 1 is %T; want Acked", c.Writes())
	}
	// the admin client's connection pool may hand out another connection:
	// read database 2 on a client of its own
	db2 := redis.NewClient(&redis.Options{Addr: addr, DB: 2})
	defer db2.Close()
	if v, err := db2.Get(ctx, "by-addrs").Result(); err != nil || v != "v-by-addrs" {
		t.Errorf("database 2 has %q, %v", v, err)
	}

	u := open(t, redisx.Options{URL: "redis://fishgate:s3cret-pw@" + addr + "/3"})
	roundTrip(t, u.Client, "by-url")
	if _, ok := u.Writes().(redisx.Acked); ok {
		t.Error("Writes without MinReplicasAck is Acked")
	}
	db3 := redis.NewClient(&redis.Options{Addr: addr, DB: 3})
	defer db3.Close()
	if n, err := db3.Exists(ctx, "by-url").Result(); err != nil || n != 1 {
		t.Errorf("database 3 lacks the key: %d %v", n, err)
	}

	err := openFails(t, redisx.Options{Addrs: []string{addr}, Username: "fishgate", Password: "wrong-s3cret"}, "wrong-s3cret")
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error does not name the server: %v", err)
	}
	openFails(t, redisx.Options{URL: "redis://fishgate:wrong-s3cret@" + addr}, "wrong-s3cret")
	openFails(t, redisx.Options{Addrs: []string{testkit.RefusedAddr(t)}})
}

// tlsConfig trusts the test CA and, with client, presents its client
// certificate.
func tlsConfig(t *testing.T, r testkit.RedisTLS, client bool) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(r.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if client {
		pair, err := tls.LoadX509KeyPair(r.ClientCert, r.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

// TestOpenTLS: a redis-server serving TLS only, asking for client
// certificates: the CA and client certificate get in, by address and by
// rediss:// URL; without the CA the server's certificate is not trusted,
// and without a client certificate the server refuses.
func TestOpenTLS(t *testing.T) {
	r := testkit.StartRedisTLS(t, true)
	c := open(t, redisx.Options{Addrs: []string{r.Addr}, TLS: tlsConfig(t, r, true)})
	roundTrip(t, c.Client, "tls")
	u := open(t, redisx.Options{URL: "rediss://" + r.Addr + "/1", TLS: tlsConfig(t, r, true)})
	roundTrip(t, u.Client, "tls-url")

	if err := openFails(t, redisx.Options{Addrs: []string{r.Addr}, TLS: &tls.Config{MinVersion: tls.VersionTLS12}}); !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA: %v; want a certificate error", err)
	}
	openFails(t, redisx.Options{Addrs: []string{r.Addr}, TLS: tlsConfig(t, r, false)})
	openFails(t, redisx.Options{Addrs: []string{r.Addr}}) // plain TCP to a TLS port
}

// TestOpenSentinel: the master a set of sentinels names (a real master,
// replica and three redis-sentinels), with passwords on the servers and
// on the sentinels; the wrong sentinel password is refused, and a
// sentinel given as a standalone server is refused at Open.
func TestOpenSentinel(t *testing.T) {
	ctx := context.Background()
	topo := testkit.StartRedisTopology(t, "sentinel")
	const pw, spw = "server-s3cret", "sentinel-s3cret"
	for _, a := range topo.SentinelAddrs() {
		s := redis.NewSentinelClient(&redis.Options{Addr: a})
		if err := s.Set(ctx, redisproc.MasterName, "auth-pass", pw).Err(); err != nil {
			t.Fatalf("sentinel %s: SENTINEL SET auth-pass: %v", a, err)
		}
		s.Close()
		c := redis.NewClient(&redis.Options{Addr: a})
		if err := c.Do(ctx, "ACL", "SETUSER", "default", "on", ">"+spw).Err(); err != nil {
			t.Fatalf("sentinel %s: ACL SETUSER: %v", a, err)
		}
		c.Close()
	}
	requirePass(t, topo.Addrs(), pw) // master, replica

	o := redisx.Options{Mode: redisx.Sentinel, Addrs: topo.SentinelAddrs(), MasterName: redisproc.MasterName,
		Password: pw, SentinelPassword: spw, DB: 1, MinReplicasAck: 1, AckTimeout: 5 * time.Second}
	c := open(t, o)
	roundTrip(t, c.Client, "sentinel")
	master := redis.NewClient(&redis.Options{Addr: topo.Addrs()[0], Password: pw, DB: 1})
	defer master.Close()
	if v, err := master.Get(ctx, "sentinel").Result(); err != nil || v != "v-sentinel" {
		t.Errorf("the master's database 1 has %q, %v", v, err)
	}
	// a write acknowledged by the replica, as the gateway makes them
	set := redis.NewScript(`return redis.call('SET', KEYS[1], ARGV[1])`)
	if err := c.Writes().Run(ctx, set, []string{"acked"}, "1").Err(); err != nil {
		t.Errorf("acknowledged write: %v", err)
	}

	bad := o
	bad.SentinelPassword = "wrong-s3cret"
	openFails(t, bad, "wrong-s3cret", pw)
	bad = o
	bad.Password = "wrong-s3cret"
	openFails(t, bad, "wrong-s3cret", spw)
	err := openFails(t, redisx.Options{Addrs: topo.SentinelAddrs()[:1], Password: spw}, spw)
	if !strings.Contains(err.Error(), "Sentinel") {
		t.Errorf("a sentinel as a standalone server: %v; want it named a Sentinel", err)
	}
}

// TestOpenCluster: a real Cluster of three masters with a replica each,
// with a password: keys of every master are written and read through the
// one client, an acknowledged write reaches the slot's replica, and a
// Cluster node given as a standalone server is refused at Open.
func TestOpenCluster(t *testing.T) {
	ctx := context.Background()
	topo := testkit.StartRedisTopology(t, "cluster")
	const pw = "cluster-s3cret"
	requirePass(t, topo.Addrs(), pw)
	c := open(t, redisx.Options{Mode: redisx.Cluster, Addrs: topo.Addrs()[:1], Password: pw, MinReplicasAck: 1, AckTimeout: 5 * time.Second})
	cc, ok := c.Client.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("client %T; want a cluster client", c.Client)
	}
	masters := map[string]bool{}
	for i := range 30 {
		key := fmt.Sprintf("fg:node:{n%03d}:slots", i)
		roundTrip(t, c.Client, key)
		m, err := cc.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Options().Addr] = true
	}
	if len(masters) != 3 {
		t.Errorf("keys reached %d masters; want all 3", len(masters))
	}
	set := redis.NewScript(`return redis.call('SET', KEYS[1], ARGV[1])`)
	if err := c.Writes().Run(ctx, set, []string{"fg:node:{n001}:acked"}, "1").Err(); err != nil {
		t.Errorf("acknowledged write: %v", err)
	}

	err := openFails(t, redisx.Options{Addrs: topo.Addrs()[:1], Password: pw}, pw)
	if !strings.Contains(err.Error(), "Cluster") {
		t.Errorf("a Cluster node as a standalone server: %v; want it named a Cluster node", err)
	}
	openFails(t, redisx.Options{Mode: redisx.Cluster, Addrs: topo.Addrs()[:1], Password: "wrong-s3cret"}, "wrong-s3cret")
}

// requirePass gives the running servers a password (the topologies start
// without), replicas authenticating to their masters with it, and waits
// until every replica's link to its master is up again.
func requirePass(t *testing.T, addrs []string, pw string) {
	t.Helper()
	ctx := context.Background()
	for _, setting := range []string{"masterauth", "requirepass"} {
		for _, a := range addrs {
			c := redis.NewClient(&redis.Options{Addr: a})
			err := c.ConfigSet(ctx, setting, pw).Err()
			c.Close()
			if err != nil {
				t.Fatalf("%s CONFIG SET %s: %v", a, setting, err)
			}
		}
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a, Password: pw})
		testkit.WaitFor(t, 30*time.Second, a+" linked to its master", func() (bool, string) {
			info, err := c.Info(ctx, "replication").Result()
			return err == nil && (strings.Contains(info, "role:master") || strings.Contains(info, "master_link_status:up")), fmt.Sprint(info, err)
		})
		c.Close()
	}
}
