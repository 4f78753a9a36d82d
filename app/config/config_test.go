package config

import (
	"strings"
	"testing"
	"time"
)

const good = `
listen: 127.0.0.1:9000
redis_url: redis://127.0.0.1:6390/0
session_timeout: 10m
accounts:
  - {user: admin, password: pw}
  - {user: ro, password: pw2, role: ReadOnly}
nodes:
  - {id: n1, backend: redfish, address: https://10.0.0.5, user: root, password: calvin, insecure: true}
  - {id: n2, backend: redfish, address: http://127.0.0.1:9999, user: root, password: x, system_id: /redfish/v1/Systems/1}
`

func TestParseGood(t *testing.T) {
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9000" || time.Duration(c.SessionTimeout) != 10*time.Minute || len(c.Nodes) != 2 || !c.Nodes[0].Insecure {
		t.Errorf("parsed %+v", c)
	}
	if as := c.AccountService; as.MinPasswordLength != 8 || as.LockoutThreshold != 10 || time.Duration(as.LockoutDuration) != 5*time.Minute || as.MaxSessionsPerUser != 64 {
		t.Errorf("account_service defaults: %+v", as)
	}
	if time.Duration(c.SoftOffTimeout) != 5*time.Minute || c.SoftOffFallback != "fail" {
		t.Errorf("soft-off defaults: %s %q", time.Duration(c.SoftOffTimeout), c.SoftOffFallback)
	}
	if time.Duration(c.SyncInterval) != 30*time.Second || c.MaxBodyBytes != 65536 {
		t.Errorf("defaults not applied: %+v", c)
	}
}

// TestParseBad: every bad field is named in the error.
func TestParseBad(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "listn: x\naccounts: [{user: a, password: b}]", `listn: unknown key; did you mean "listen"?`},
		{"no accounts", "listen: 127.0.0.1:1", "accounts: at least one"},
		{"bad listen", "listen: nope\naccounts: [{user: a, password: b}]", "listen:"},
		{"bad duration", "session_timeout: soon\naccounts: [{user: a, password: b}]", "not a duration"},
		{"short session", "session_timeout: 1s\naccounts: [{user: a, password: b}]", "session_timeout:"},
		{"bad redis", "redis_url: http://x\naccounts: [{user: a, password: b}]", "redis_url:"},
		{"bad role", "accounts: [{user: a, password: b, role: God}]", "accounts[0].role"},
		{"dup user", "accounts: [{user: a, password: b}, {user: a, password: c}]", "accounts[1].user"},
		{"missing password", "accounts: [{user: a}]", "accounts[0].password"},
		{"bad backend", "accounts: [{user: a, password: b}]\nnodes: [{id: n1, backend: telnet, address: http://x, user: u}]", "nodes[0].backend"},
		{"bad address", "accounts: [{user: a, password: b}]\nnodes: [{id: n1, backend: redfish, address: 10.0.0.1, user: u}]", "nodes[0].address"},
		{"bad id", "accounts: [{user: a, password: b}]\nnodes: [{id: 'a/b', backend: redfish, address: http://x, user: u}]", "nodes[0].id"},
		{"dup id", "accounts: [{user: a, password: b}]\nnodes: [{id: n, backend: redfish, address: http://x, user: u}, {id: n, backend: redfish, address: http://y, user: u}]", "nodes[1].id"},
		{"tls half", "tls: {cert: /x}\naccounts: [{user: a, password: b}]", "tls:"},
		{"not yaml", "{{{", "config:"},
		{"bad node pattern", "accounts: [{user: a, password: b, nodes: ['[']}]", "accounts[0].nodes[0]"},
		{"lockout threshold", "account_service: {lockout_threshold: -1}\naccounts: [{user: a, password: b}]", "account_service.lockout_threshold"},
		{"password length", "account_service: {min_password_length: 0}\naccounts: [{user: a, password: b}]", "account_service.min_password_length"},
		{"session cap", "account_service: {max_sessions_per_user: 0}\naccounts: [{user: a, password: b}]", "account_service.max_sessions_per_user"},
		{"short soft off", "soft_off_timeout: 100ms\naccounts: [{user: a, password: b}]", "soft_off_timeout:"},
		{"bad fallback", "soft_off_fallback: maybe\naccounts: [{user: a, password: b}]", "soft_off_fallback:"},
		{"bad node fallback", "accounts: [{user: a, password: b}]\nnodes: [{id: n1, backend: redfish, address: http://x, user: u, soft_off_fallback: sometimes}]", "nodes[0].soft_off_fallback"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestEmbeddedKeepsLess: with the embedded Redis, tasks.keep_total and
// events.stream_max_len default to EmbeddedKeep (its data is in the
// gateway's memory); what the file sets stands; with a Redis server the
// defaults are Default's.
func TestEmbeddedKeepsLess(t *testing.T) {
	for _, c := range []struct {
		name, yaml       string
		tasks, streamLen int
	}{
		{"embedded", "", EmbeddedKeep, EmbeddedKeep},
		{"embedded, set", "tasks: {keep_total: 150000}\nevents: {stream_max_len: 50000}\n", 150000, 50000},
		{"embedded, one set", "events: {stream_max_len: 100000}\n", EmbeddedKeep, 100000},
		{"redis server", "redis_url: redis://127.0.0.1:1/0\n", Default().Tasks.KeepTotal, int(Default().Events.StreamMaxLen)},
		{"sentinel", "redis: {mode: sentinel, addrs: ['127.0.0.1:1'], master_name: m}\n", Default().Tasks.KeepTotal, int(Default().Events.StreamMaxLen)},
	} {
		cfg, err := Parse([]byte("accounts: [{user: a, password: b}]\n" + c.yaml))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if cfg.Tasks.KeepTotal != c.tasks || cfg.Events.StreamMaxLen != int64(c.streamLen) {
			t.Errorf("%s: keep_total %d, stream_max_len %d; want %d, %d", c.name, cfg.Tasks.KeepTotal, cfg.Events.StreamMaxLen, c.tasks, c.streamLen)
		}
	}
	if Default().Tasks.KeepTotal != 100000 || Default().Events.StreamMaxLen != 100000 {
		t.Errorf("defaults for a Redis server: %d tasks, %d events; want 100000 each", Default().Tasks.KeepTotal, Default().Events.StreamMaxLen)
	}
}
