package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestBadConfigExitsTwoNamingTheField(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, yaml, field string }{
		{"bad backend", "accounts: [{user: a, password: b}]\nnodes: [{id: n1, backend: telnet, address: http://x, user: u}]", "nodes[0].backend"},
		{"unknown key", "accounts: [{user: a, password: b}]\nlisten_addr: x", "listen_addr"},
		{"no accounts", "listen: 127.0.0.1:0", "accounts"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".yaml")
			if err := os.WriteFile(p, []byte(c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, sub := range []string{"serve", "config"} {
				code, _, stderr := runCLI(t, sub, "--config", p)
				if code != 2 || !strings.Contains(stderr, c.field) {
					t.Errorf("%s: exit %d, stderr %q; want 2 naming %s", sub, code, stderr, c.field)
				}
			}
		})
	}
	if code, _, stderr := runCLI(t, "serve", "--config", filepath.Join(dir, "missing.yaml")); code != 2 || !strings.Contains(stderr, "missing.yaml") {
		t.Errorf("missing file: exit %d %q", code, stderr)
	}
	if code, _, _ := runCLI(t, "demo", "--nodes", "0"); code != 2 {
		t.Errorf("demo --nodes 0: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, "frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

func TestConfigPrintsEffectiveConfigWithoutSecrets(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f.yaml")
	os.WriteFile(p, []byte(`accounts: [{user: a, password: topsecret}]
redis: {mode: sentinel, addrs: ["10.0.0.1:26379"], master_name: fg, password: redissecret, sentinel_password: sentinelsecret, min_replicas_ack: 1}
nodes: [{id: n1, backend: redfish, address: "https://u:addrsecret@bmc", user: u, password: bmcsecret,
         ipmi_listen: "127.0.0.1:0", ipmi_user: ironic, ipmi_password: ipmisecret}]`), 0o600)
	code, out, stderr := runCLI(t, "config", "--config", p, "--listen", "127.0.0.1:9999")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"listen: 127.0.0.1:9999", "session_timeout: 30m0s", "id: n1", "master_name: fg", "10.0.0.1:26379",
		"min_replicas_ack: 1", "ipmi_user: ironic", "https://u:xxxxx@bmc"} {
		if !strings.Contains(out, want) {
			t.Errorf("config output lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"topsecret", "bmcsecret", "redissecret", "sentinelsecret", "ipmisecret", "addrsecret"} {
		if strings.Contains(out, secret) {
			t.Errorf("config output shows the secret %q:\n%s", secret, out)
		}
	}

	// --redis-url replaces the file's Redis; its password is hidden too
	code, out, stderr = runCLI(t, "config", "--config", p, "--redis-url", "redis://fg:urlsecret@redis.lab:6380/1")
	if code != 0 {
		t.Fatalf("--redis-url: exit %d: %s", code, stderr)
	}
	if strings.Contains(out, "urlsecret") || strings.Contains(out, "redissecret") || !strings.Contains(out, "redis://fg:xxxxx@redis.lab:6380/1") ||
		strings.Contains(out, "10.0.0.1:26379") || !strings.Contains(out, "min_replicas_ack: 1") {
		t.Errorf("with --redis-url:\n%s", out)
	}
}

// TestConfigShowsNodeAddresses: `fishgate config` shows the address each
// node has, given or taken from fronts.address_pool, and the fronts block.
func TestConfigShowsNodeAddresses(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f.yaml")
	os.WriteFile(p, []byte(`accounts: [{user: a, password: b}]
fronts: {address_pool: 10.0.5.0/24, bmc_domain: bmc.example}
nodes: [{id: n1, backend: redfish, address: "https://bmc1", user: u, password: p},
        {id: n2, backend: redfish, address: "https://bmc2", user: u, password: p, bmc_address: 10.0.5.1}]`), 0o600)
	code, out, stderr := runCLI(t, "config", "--config", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"bmc_address: 10.0.5.2", "bmc_address: 10.0.5.1", "address_pool: 10.0.5.0/24", "redfish_port: 443", "ipmi_port: 623", "bmc_domain: bmc.example"} {
		if !strings.Contains(out, want) {
			t.Errorf("config output lacks %q:\n%s", want, out)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "fishgate ") {
		t.Errorf("version: %d %q", code, out)
	}
}

// TestConfigSecretsByReference (issue 14 item 5): secrets taken from the
// environment and from files are in effect but `fishgate config` shows
// none of them (it names the files); no nodes is a warning that says how
// to add them; every problem of a bad file is reported at once.
func TestConfigSecretsByReference(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "bmc.pw")
	os.WriteFile(pwFile, []byte("bmc-file-secret\n"), 0o600)
	t.Setenv("FG_TEST_ADMIN_SECRET", "admin-env-secret")
	p := filepath.Join(dir, "f.yaml")
	os.WriteFile(p, []byte(`accounts: [{user: a, password: "${FG_TEST_ADMIN_SECRET}"}]
nodes: [{id: n1, backend: redfish, address: "https://bmc", user: u, password_file: `+pwFile+`}]`), 0o600)
	code, out, stderr := runCLI(t, "config", "--config", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(out, "admin-env-secret") || strings.Contains(out, "bmc-file-secret") || !strings.Contains(out, "password_file: "+pwFile) ||
		strings.Count(out, "password: <hidden>") != 2 {
		t.Errorf("config output:\n%s", out)
	}
	if strings.Contains(stderr, "warning") {
		t.Errorf("a warning with a node configured: %s", stderr)
	}

	os.WriteFile(p, []byte("accounts: [{user: a, password: b}]\n"), 0o600)
	code, _, stderr = runCLI(t, "config", "--config", p)
	if code != 0 || !strings.Contains(stderr, "fishgate: warning: nodes: none configured") || !strings.Contains(stderr, "AggregationSources") {
		t.Errorf("no nodes: exit %d, stderr %q", code, stderr)
	}

	os.WriteFile(p, []byte("accounts: [{user: a, password: \"${FG_TEST_UNSET_SECRET}\"}]\nnodes: [{id: n1, backend: redfish, adress: https://bmc, user: u}]\n"), 0o600)
	code, _, stderr = runCLI(t, "serve", "--config", p)
	for _, want := range []string{"3 problems:", "line 1: accounts[0].password: environment variable FG_TEST_UNSET_SECRET is not set",
		`line 2: nodes[0].adress: unknown key; did you mean "address"?`, "line 2: nodes[0].address: required"} {
		if code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("bad file: exit %d, stderr lacks %q:\n%s", code, want, stderr)
		}
	}
}

// TestServeWarnsWithoutNodes: serve starts without nodes, and its log says
// how to add them.
func TestServeWarnsWithoutNodes(t *testing.T) {
	s := startServe(t, "--config", writeConfig(t, t.TempDir(), ""), "--insecure-http")
	if l := s.logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "nodes: none configured") ||
		!strings.Contains(l, "POST /redfish/v1/AggregationService/AggregationSources") {
		t.Errorf("no warning about the empty node list:\n%s", l)
	}
}

// TestSIGHUPRereadsSecretFiles: a password_file is read again at SIGHUP,
// so a rotated secret takes effect without a restart.
func TestSIGHUPRereadsSecretFiles(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "admin.pw")
	os.WriteFile(pw, []byte("first-secret\n"), 0o600)
	p := filepath.Join(dir, "fishgate.yaml")
	os.WriteFile(p, []byte("listen: 127.0.0.1:0\naccounts: [{user: admin, password_file: "+pw+"}]\n"), 0o600)
	s := startServe(t, "--config", p, "--insecure-http")
	if st, _ := get(t, s.url+"/redfish/v1/Systems", "first-secret"); st != http.StatusOK {
		t.Fatalf("GET with the file's password: %d", st)
	}
	os.WriteFile(pw, []byte("second-secret\n"), 0o600)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the rotated password in effect", func() (bool, string) {
		st, _ := get(t, s.url+"/redfish/v1/Systems", "second-secret")
		return st == http.StatusOK, fmt.Sprint(st, "\n", s.logs.String())
	})
	if st, _ := get(t, s.url+"/redfish/v1/Systems", "first-secret"); st != http.StatusUnauthorized {
		t.Errorf("GET with the old password after the reload: %d, want 401", st)
	}
}
