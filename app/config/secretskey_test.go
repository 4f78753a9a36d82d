package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretsKey(t *testing.T) {
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.key")
	if err := WriteSecretsKey(gen); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(gen)
	if err := WriteSecretsKey(gen); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(gen); string(again) != string(first) {
		t.Error("WriteSecretsKey replaced an existing key")
	}
	if st, _ := os.Stat(gen); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	for _, c := range []struct {
		name, content, err string
	}{
		{"generated", string(first), ""},
		{"hex", strings.Repeat("ab", 32), ""},
		{"base64", "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n", ""},
		{"raw base64", "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s", ""},
		{"empty", "\n", "empty"},
		{"short hex", strings.Repeat("ab", 16), "16 bytes of hex, want 32"},
		{"short base64", "q6urq6urq6urq6urq6urqw==", "bytes of base64, want 32"},
		{"nonsense", "not a key at all!", "neither 64 hex digits nor base64"},
	} {
		f := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
		os.WriteFile(f, []byte(c.content), 0o600)
		cfg := Default()
		cfg.SecretsKeyFile = f
		k, err := cfg.SecretsKey()
		switch {
		case c.err == "" && (err != nil || len(k) != 32):
			t.Errorf("%s: %d bytes, %v", c.name, len(k), err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.err)
		}
	}
	_, err := Parse([]byte("accounts: [{user: a, password: b}]\nsecrets_key_file: " + filepath.Join(dir, "short_hex") + "\n"))
	if err == nil || !strings.Contains(err.Error(), "secrets_key_file:") {
		t.Errorf("Parse with a bad key file: %v, want an error naming secrets_key_file", err)
	}
	_, err = Parse([]byte("accounts: [{user: a, password: b}]\nsecrets_key_file: " + filepath.Join(dir, "missing") + "\n"))
	if err == nil || !strings.Contains(err.Error(), "secrets_key_file:") {
		t.Errorf("Parse with a missing key file: %v", err)
	}
}
