package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const accountsLine = "accounts: [{user: a, password: b}]\n"

// TestUnknownKeyDidYouMean: an unknown key is named by its path and line,
// with the closest known key when it looks like a typo of one, else with
// the keys known there.
func TestUnknownKeyDidYouMean(t *testing.T) {
	nodes := "nodes:\n" +
		"  - {id: n0, backend: redfish, address: http://x, user: u}\n" +
		"  - {id: n1, backend: redfish, address: http://x, user: u}\n" +
		"  - id: n2\n    backend: redfish\n    adress: http://x\n    user: u\n"
	for _, c := range []struct{ name, yaml, want string }{
		{"nested in a list", accountsLine + nodes, `line 7: nodes[2].adress: unknown key; did you mean "address"?`},
		{"top level", "listn: x\n" + accountsLine, `line 1: listn: unknown key; did you mean "listen"?`},
		{"longer name", accountsLine + "listen_addr: x", `line 2: listen_addr: unknown key; did you mean "listen"?`},
		{"case", accountsLine + "Listen: x", `line 2: Listen: unknown key; did you mean "listen"?`},
		{"in a block", accountsLine + "admission:\n  polcy: queue", `line 3: admission.polcy: unknown key; did you mean "policy"?`},
		{"account", "accounts: [{user: a, pasword: b}]", `line 1: accounts[0].pasword: unknown key; did you mean "password"?`},
		{"secret file", "accounts: [{user: a, passwordfile: /x}]", `accounts[0].passwordfile: unknown key; did you mean "password_file"?`},
		{"through a merge key", accountsLine + "x-bmc: &bmc {backend: redfish, usr: u}\nnodes: [{<<: *bmc, id: n1, address: http://x}]",
			`line 2: nodes[0].usr: unknown key; did you mean "user"?`},
		{"nothing close", accountsLine + "tasks: {frobnicate: 1}", `line 2: tasks.frobnicate: unknown key; known keys here: keep, keep_for, keep_total`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v\nwant one containing %s", err, c.want)
			}
			if strings.Contains(err.Error(), "not found in type") {
				t.Errorf("the decoder's message leaked: %v", err)
			}
		})
	}
}

// TestMergeKeys: YAML merge keys (<<: *defaults) are keys of the mapping
// they are in, not unknown ones.
func TestMergeKeys(t *testing.T) {
	c, err := Parse([]byte(accountsLine + `nodes:
  - &bmc {id: n1, backend: redfish, address: http://x, user: u, password: p}
  - {<<: *bmc, id: n2}
  - {<<: [*bmc], id: n3, user: v}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != 3 || c.Nodes[1].Address != "http://x" || c.Nodes[2].User != "v" || c.Nodes[2].Password != "p" {
		t.Errorf("nodes %+v", c.Nodes)
	}
}

// TestAllProblemsReportedTogether: unknown keys, values that do not parse
// and values that fail validation come in one error, each with its line
// and field, in the file's order; a value that does not parse does not
// hide the others.
func TestAllProblemsReportedTogether(t *testing.T) {
	yaml := `listen: nope
session_timeout: soon
max_body_bytes: lots
retries: -1
admision: {policy: queue}
accounts:
  - user: a
nodes:
  - id: n1
    backend: telnet
    address: http://x
    user: u
    insecure: maybe
`
	_, err := Parse([]byte(yaml))
	var p Problems
	if !errors.As(err, &p) {
		t.Fatalf("error %v (%T), want Problems", err, err)
	}
	want := []string{
		"line 1: listen:",
		"line 2: session_timeout: `soon` is not a duration",
		"line 3: max_body_bytes: cannot unmarshal",
		"line 4: retries: -1 is out of range",
		`line 5: admision: unknown key; did you mean "admission"?`,
		"line 7: accounts[0].password: required",
		"line 10: nodes[0].backend:",
		"line 13: nodes[0].insecure: cannot unmarshal",
	}
	if len(p) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(p), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(p[i].Error(), w) {
			t.Errorf("problem %d: %q, want it to start %q", i, p[i], w)
		}
	}
	if !strings.HasPrefix(err.Error(), "8 problems:\n  line 1: listen:") {
		t.Errorf("the message does not list them: %v", err)
	}
	// A document that is not YAML is one error.
	if _, err := Parse([]byte("listen: [")); err == nil || !strings.HasPrefix(err.Error(), "config: ") {
		t.Errorf("not YAML: %v", err)
	}
}

// TestSecretsFromEnvAndFiles: every secret field takes ${NAME} from the
// environment or a _file; other strings and other "$"s stay as written.
func TestSecretsFromEnvAndFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("FG_TEST_ADMIN_PW", "admin-from-env")
	t.Setenv("FG_TEST_BMC_PW", "bmc-from-env")
	t.Setenv("FG_TEST_REDIS_URL", "redis://:r3dis@127.0.0.1:6390/0")
	t.Setenv("FG_TEST_NOT_A_SECRET", "expanded")
	bmcFile := write("bmc", "bmc-from-file\n")
	ipmiFile := write("ipmi", "ipmi-from-file\r\n")
	opFile := write("op", "op-from-file")
	yaml := `redis_url: ${FG_TEST_REDIS_URL}
accounts:
  - {user: admin, password: "${FG_TEST_ADMIN_PW}"}
  - {user: op, password_file: ` + opFile + `}
  - {user: hashed, password: "$2a$10$abcdefghijklmnopqrstuuJ2Ni1RM.gUu1wTW5G6hlkPVLhAvKHu"}
  - {user: literal, password: "$${FG_TEST_ADMIN_PW}"}
nodes:
  - {id: n1, backend: redfish, address: http://x, user: u, password: "${FG_TEST_BMC_PW}"}
  - {id: n2, backend: redfish, address: http://x, user: u, password_file: ` + bmcFile + `,
     ipmi_listen: "127.0.0.1:0", ipmi_user: ironic, ipmi_password_file: ` + ipmiFile + `}
  - {id: n3, backend: redfish, address: http://x, user: "${FG_TEST_NOT_A_SECRET}", password: "pa$$word"}
`
	c, err := Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct{ field, got, want string }{
		{"redis_url", c.RedisURL, "redis://:r3dis@127.0.0.1:6390/0"},
		{"accounts[0].password", c.Accounts[0].Password, "admin-from-env"},
		{"accounts[1].password", c.Accounts[1].Password, "op-from-file"},
		{"accounts[2].password", c.Accounts[2].Password, "$2a$10$abcdefghijklmnopqrstuuJ2Ni1RM.gUu1wTW5G6hlkPVLhAvKHu"},
		{"accounts[3].password", c.Accounts[3].Password, "${FG_TEST_ADMIN_PW}"},
		{"nodes[0].password", c.Nodes[0].Password, "bmc-from-env"},
		{"nodes[1].password", c.Nodes[1].Password, "bmc-from-file"},
		{"nodes[1].ipmi_password", c.Nodes[1].IPMIPassword, "ipmi-from-file"},
		{"nodes[2].user", c.Nodes[2].User, "${FG_TEST_NOT_A_SECRET}"},
		{"nodes[2].password", c.Nodes[2].Password, "pa$$word"},
	} {
		if g.got != g.want {
			t.Errorf("%s = %q, want %q", g.field, g.got, g.want)
		}
	}

	// The Sentinel password from a file.
	c, err = Parse([]byte(accountsLine + `redis: {mode: sentinel, addrs: ["a:1"], master_name: m, sentinel_password_file: ` + opFile + `}`))
	if err != nil || c.Redis.SentinelPassword != "op-from-file" || c.RedisOptions().SentinelPassword != "op-from-file" {
		t.Errorf("sentinel_password_file: %q %v", c.Redis.SentinelPassword, err)
	}
	// redacted: the files are named, the secrets hidden
	r := c.Redacted()
	if r.Redis.SentinelPassword != Hidden || r.Redis.SentinelPasswordFile != opFile {
		t.Errorf("redacted: %+v", r.Redis)
	}
}

// TestSecretErrors: a secret that cannot be had is an error naming the
// field, its line, and the variable or file; the others are reported too.
func TestSecretErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	missing := filepath.Join(dir, "missing")
	t.Setenv("FG_TEST_EMPTY", "")
	os.Unsetenv("FG_TEST_UNSET")
	yaml := `accounts:
  - {user: a, password: "${FG_TEST_UNSET}"}
  - {user: b, password_file: ` + missing + `}
  - {user: c, password: x, password_file: ` + empty + `}
nodes:
  - {id: n1, backend: redfish, address: http://x, user: u, password: "${FG_TEST_EMPTY}"}
  - {id: n2, backend: redfish, address: http://x, user: u, password_file: ` + empty + `}
  - {id: n3, backend: redfish, address: http://x, user: u, password: "${not a name}"}
redis_url: "${FG_TEST_UNSET}"
`
	_, err := Parse([]byte(yaml))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"line 2: accounts[0].password: environment variable FG_TEST_UNSET is not set",
		"line 3: accounts[1].password_file: open " + missing + ": no such file",
		"line 4: accounts[2].password: give password or password_file, not both",
		"line 6: nodes[0].password: environment variable FG_TEST_EMPTY is empty",
		"line 7: nodes[1].password_file: " + empty + " is empty",
		`line 8: nodes[2].password: starts with "${" but is not a reference`,
		"line 9: redis_url: environment variable FG_TEST_UNSET is not set",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "accounts[1].password: required") {
		t.Errorf("a password_file that failed is also reported as a missing password:\n%v", err)
	}
}

// TestEmptyNodesWarns: no nodes is allowed, with a warning that says how
// to add them (and that runtime enrolment needs secrets_key_file).
func TestEmptyNodesWarns(t *testing.T) {
	c, err := Parse([]byte(accountsLine))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], "nodes:") || !strings.Contains(w[0], "POST /redfish/v1/AggregationService/AggregationSources") ||
		!strings.Contains(w[0], "secrets_key_file") {
		t.Errorf("warnings %q", w)
	}
	c, err = Parse([]byte(accountsLine + "nodes: [{id: n1, backend: redfish, address: http://x, user: u}]"))
	if err != nil || len(c.Warnings()) != 0 {
		t.Errorf("with a node: %q %v", c.Warnings(), err)
	}
}

func TestDebugListen(t *testing.T) {
	for _, c := range []struct{ value, want string }{
		{"127.0.0.1:6060", ""},
		{"[::1]:0", ""},
		{"localhost:6060", ""},
		{"0.0.0.0:6060", "not a loopback address"},
		{"10.0.0.1:6060", "not a loopback address"},
		{"6060", "not host:port"},
		{"127.0.0.1:9000", "is the API's listen address"},
	} {
		_, err := Parse([]byte(accountsLine + "listen: 127.0.0.1:9000\ndebug_listen: '" + c.value + "'"))
		if (c.want == "") != (err == nil) || (err != nil && (!strings.Contains(err.Error(), "line 3: debug_listen: ") || !strings.Contains(err.Error(), c.want))) {
			t.Errorf("debug_listen %s: %v, want %q", c.value, err, c.want)
		}
	}
}
