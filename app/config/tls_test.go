package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTLSDefaults: HTTPS with a self-signed certificate unless told
// otherwise, TLS 1.2 at least.
func TestTLSDefaults(t *testing.T) {
	c, err := Parse([]byte("accounts: [{user: a, password: b}]"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.TLS.SelfSigned() || c.TLS.MinVersion != "1.2" {
		t.Errorf("tls defaults: %+v", c.TLS)
	}
	for _, y := range []string{"tls: {disabled: true}", "tls: {cert: /dev/null, key: /dev/null}"} {
		c, err := Parse([]byte("accounts: [{user: a, password: b}]\n" + y))
		if err != nil || c.TLS.SelfSigned() {
			t.Errorf("%s: self-signed %v, %v", y, c.TLS.SelfSigned(), err)
		}
	}
}

// TestLoadKeepsSelfSignedNextToConfig: without tls.dir the self-signed
// certificate is kept in the config file's directory.
func TestLoadKeepsSelfSignedNextToConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.yaml")
	os.WriteFile(p, []byte("accounts: [{user: a, password: b}]"), 0o600)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS.Dir != dir {
		t.Errorf("tls.dir %q, want %q", c.TLS.Dir, dir)
	}
	os.WriteFile(p, []byte("accounts: [{user: a, password: b}]\ntls: {dir: /var/lib/fishgate}"), 0o600)
	if c, err = Load(p); err != nil || c.TLS.Dir != "/var/lib/fishgate" {
		t.Errorf("tls.dir %q, %v", c.TLS.Dir, err)
	}
}

func TestTLSBad(t *testing.T) {
	const acct = "accounts: [{user: a, password: b}]\n"
	cases := []struct{ yaml, want string }{
		{"tls: {disabled: true, cert: /x, key: /y}", "tls.disabled:"},
		{"tls: {min_version: '1.1'}", "tls.min_version:"},
		{"tls: {dir: relative/dir}", "tls.dir:"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(acct + c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.yaml, err, c.want)
		}
	}
}
