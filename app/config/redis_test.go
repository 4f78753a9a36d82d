package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/redisx"
	"github.com/fishgate/fishgate/internal/testkit"
)

const account = "accounts: [{user: a, password: b}]\n"

// TestRedisDefaults: no Redis configured is the embedded one, with the
// documented timeouts.
func TestRedisDefaults(t *testing.T) {
	c, err := Parse([]byte(account))
	if err != nil {
		t.Fatal(err)
	}
	o := c.RedisOptions()
	if !c.EmbeddedRedis() || !o.Embedded() || o.Mode != redisx.Standalone || o.TLS != nil || o.MinReplicasAck != 0 ||
		o.AckTimeout != time.Second || o.OpTimeout != 5*time.Second {
		t.Errorf("defaults: %+v", o)
	}
	if c.RedisID() != "" {
		t.Errorf("RedisID of the embedded Redis %q; want \"\" (the service UUID it seeds stays as it was)", c.RedisID())
	}
}

// TestRedisBlock: every field of the redis block reaches redisx's options;
// password_file is read, its trailing newline dropped.
func TestRedisBlock(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "redis-pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(account + `
redis:
  mode: sentinel
  addrs: ["10.0.0.1:26379", "sentinel-2:26379"]
  master_name: fishgate
  username: fg
  password_file: ` + pwFile + `
  sentinel_password: spw
  db: 3
  tls: {insecure_skip_verify: true}
  min_replicas_ack: 1
  ack_timeout: 2s
  op_timeout: 3s
`))
	if err != nil {
		t.Fatal(err)
	}
	o := c.RedisOptions()
	if o.URL != "" || o.Mode != redisx.Sentinel || strings.Join(o.Addrs, ",") != "10.0.0.1:26379,sentinel-2:26379" ||
		o.MasterName != "fishgate" || o.Username != "fg" || o.Password != "from-file" || o.SentinelPassword != "spw" || o.DB != 3 ||
		o.MinReplicasAck != 1 || o.AckTimeout != 2*time.Second || o.OpTimeout != 3*time.Second {
		t.Errorf("options %+v", o)
	}
	if o.TLS == nil || !o.TLS.InsecureSkipVerify || o.TLS.RootCAs != nil {
		t.Errorf("TLS %+v", o.TLS)
	}
	if c.EmbeddedRedis() || !strings.Contains(c.RedisID(), "sentinel-2:26379") || strings.Contains(c.RedisID(), "from-file") {
		t.Errorf("embedded %v, id %q", c.EmbeddedRedis(), c.RedisID())
	}

	c, err = Parse([]byte(account + "redis: {mode: cluster, addrs: [a:7000, b:7000], password: pw, tls: {enabled: true}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if o := c.RedisOptions(); o.Mode != redisx.Cluster || len(o.Addrs) != 2 || o.Password != "pw" || o.TLS == nil || o.TLS.InsecureSkipVerify {
		t.Errorf("cluster options %+v", o)
	}

	// redis_url with the settings that are not its own
	c, err = Parse([]byte(account + "redis_url: rediss://:pw@h:6380/2\nredis: {tls: {insecure_skip_verify: true}, min_replicas_ack: 2, op_timeout: 1s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if o := c.RedisOptions(); o.URL != "rediss://:pw@h:6380/2" || o.TLS == nil || o.MinReplicasAck != 2 || o.OpTimeout != time.Second {
		t.Errorf("URL options %+v", o)
	}
}

// TestSetRedisURL: serve --redis-url replaces the file's Redis but keeps
// its TLS, acknowledgements and timeouts.
func TestSetRedisURL(t *testing.T) {
	c, err := Parse([]byte(account + "redis: {mode: cluster, addrs: [a:7000], password: pw, min_replicas_ack: 1, op_timeout: 2s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.SetRedisURL("redis://127.0.0.1:6390/1")
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if o := c.RedisOptions(); o.URL != "redis://127.0.0.1:6390/1" || len(o.Addrs) != 0 || o.Password != "" || o.Mode != redisx.Standalone ||
		o.MinReplicasAck != 1 || o.OpTimeout != 2*time.Second {
		t.Errorf("after --redis-url: %+v", o)
	}
}

// TestRedisBad: every bad redis setting is an error naming its field (and
// the other field it clashes with); none shows a password.
func TestRedisBad(t *testing.T) {
	dir := t.TempDir()
	empty, notPEM := filepath.Join(dir, "empty"), filepath.Join(dir, "not.pem")
	os.WriteFile(empty, []byte("\n"), 0o600)
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	missing := filepath.Join(dir, "missing")
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"bad url", "redis_url: http://u:s3cret@x", []string{"redis_url:", "u:xxxxx@x"}},
		{"url that does not parse", "redis_url: 'redis://u:s3cret pw@x'", []string{"redis_url:"}},
		{"mode", "redis: {mode: ring, addrs: [a:1]}", []string{"redis.mode:", `"ring"`}},
		{"sentinel without addrs", "redis: {mode: sentinel, master_name: m}", []string{"redis.addrs: required in sentinel mode"}},
		{"cluster without addrs", "redis: {mode: cluster}", []string{"redis.addrs: required in cluster mode"}},
		{"bad addr", "redis: {addrs: [nope]}", []string{"redis.addrs[0]:", `"nope"`}},
		{"standalone with two addrs", "redis: {addrs: [a:1, b:1]}", []string{"redis.addrs:", "takes one"}},
		{"sentinel without master", "redis: {mode: sentinel, addrs: [a:1]}", []string{"redis.master_name: required in sentinel mode"}},
		{"master name in cluster", "redis: {mode: cluster, addrs: [a:1], master_name: m}", []string{"redis.master_name: only in sentinel mode"}},
		{"sentinel password standalone", "redis: {addrs: [a:1], sentinel_password: s3cret}", []string{"redis.sentinel_password: only in sentinel mode"}},
		{"negative db", "redis: {addrs: [a:1], db: -1}", []string{"redis.db:", "negative"}},
		{"db in cluster", "redis: {mode: cluster, addrs: [a:1], db: 1}", []string{"redis.db:", "database 0 only"}},
		{"password twice", "redis: {addrs: [a:1], password: s3cret, password_file: " + empty + "}", []string{"redis.password:", "redis.password_file"}},
		{"missing password file", "redis: {addrs: [a:1], password_file: " + missing + "}", []string{"redis.password_file:", missing}},
		{"empty password file", "redis: {addrs: [a:1], password_file: " + empty + "}", []string{"redis.password_file:", empty, "empty"}},
		{"url and addrs", "redis_url: redis://x:1\nredis: {addrs: [a:1]}", []string{"redis_url:", "redis.addrs"}},
		{"url and mode", "redis_url: redis://x:1\nredis: {mode: cluster, addrs: [a:1]}", []string{"redis_url:", "redis.mode"}},
		{"url and password", "redis_url: redis://x:1\nredis: {password: s3cret}", []string{"redis_url:", "redis.password"}},
		{"url and db", "redis_url: redis://x:1\nredis: {db: 2}", []string{"redis_url:", "redis.db"}},
		{"url and username", "redis_url: redis://x:1\nredis: {username: u}", []string{"redis_url:", "redis.username"}},
		{"url and sentinel password", "redis_url: redis://x:1\nredis: {sentinel_password: s3cret}", []string{"redis_url:", "redis.sentinel_password"}},
		{"url and password file", "redis_url: redis://x:1\nredis: {password_file: /x}", []string{"redis_url:", "redis.password_file"}},
		{"tls without rediss", "redis_url: redis://x:1\nredis: {tls: {enabled: true}}", []string{"redis.tls:", "rediss://"}},
		{"password without a redis", "redis: {password: s3cret}", []string{"redis.password:", "needs a Redis"}},
		{"tls without a redis", "redis: {tls: {enabled: true}}", []string{"redis.tls:", "needs a Redis"}},
		{"negative acks", "redis: {addrs: [a:1], min_replicas_ack: -1}", []string{"redis.min_replicas_ack:", "negative"}},
		{"acks on the embedded redis", "redis: {min_replicas_ack: 1}", []string{"redis.min_replicas_ack:", "embedded"}},
		{"short ack timeout", "redis: {addrs: [a:1], ack_timeout: 1ms}", []string{"redis.ack_timeout:", "too short"}},
		{"ack timeout not a duration", "redis: {addrs: [a:1], ack_timeout: soon}", []string{"not a duration"}},
		{"short op timeout", "redis: {addrs: [a:1], op_timeout: 10ms}", []string{"redis.op_timeout:", "too short"}},
		{"missing ca", "redis: {addrs: [a:1], tls: {ca: " + missing + "}}", []string{"redis.tls.ca:", missing}},
		{"ca not pem", "redis: {addrs: [a:1], tls: {ca: " + notPEM + "}}", []string{"redis.tls.ca:", "no PEM certificate"}},
		{"cert without key", "redis: {addrs: [a:1], tls: {cert: " + notPEM + "}}", []string{"redis.tls:", "together"}},
		{"bad cert", "redis: {addrs: [a:1], tls: {cert: " + notPEM + ", key: " + notPEM + "}}", []string{"redis.tls.cert:", notPEM}},
		{"unknown field", "redis: {addrs: [a:1], sentinels: [b:1]}", []string{"redis.sentinels: unknown key"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(account + c.yaml))
			if err == nil {
				t.Fatalf("no error; want one containing %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows a password: %q", err)
			}
		})
	}
}

// TestRedisTLSFiles: the CA and client certificate files of redis.tls get
// the gateway's client into a real redis-server that serves TLS only and
// asks for client certificates.
func TestRedisTLSFiles(t *testing.T) {
	r := testkit.StartRedisTLS(t, true)
	c, err := Parse([]byte(account + "redis: {addrs: [" + r.Addr + "], tls: {ca: " + r.CA + ", cert: " + r.ClientCert + ", key: " + r.ClientKey + "}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := redisx.Open(context.Background(), c.RedisOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Client.Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
}
