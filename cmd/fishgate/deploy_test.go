package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/internal/testkit"
)

// TestSystemdUnit (issue 14 item 7): deploy/fishgate.service passes
// `systemd-analyze verify` without a word (verify exits 0 on unknown keys
// and bad values, and only says so: any output fails), its hardening
// rates an exposure of at most 2.0 in `systemd-analyze security`, and it
// runs as its own user, reloads with SIGHUP and restarts on failure.
func TestSystemdUnit(t *testing.T) {
	analyze := testkit.ToolOrSkip(t, "systemd-analyze", "systemd")
	b, err := os.ReadFile("../../deploy/fishgate.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{"\nUser=fishgate\n", "\nExecReload=/bin/kill -HUP $MAINPID\n", "\nRestart=on-failure\n",
		"\nExecStart=/usr/local/bin/fishgate serve --config /etc/fishgate/fishgate.yaml", "\nNoNewPrivileges=yes\n", "\nProtectSystem=strict\n"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q", strings.TrimSpace(want))
		}
	}
	// verify wants ExecStart's program to exist: any executable will do
	// for checking the unit, this test's own binary for one.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	write := func(text string) string {
		p := filepath.Join(t.TempDir(), "fishgate.service")
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(text, "/usr/local/bin/fishgate", self)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	verify := func(path string) (string, error) {
		out, err := exec.Command(analyze, "verify", path).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(write(unit)); err != nil || out != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The same check catches a mistake: a misspelt key.
	if out, _ := verify(write(strings.Replace(unit, "ProtectHome=yes", "ProtectHomes=yes", 1))); !strings.Contains(out, "ProtectHomes") {
		t.Errorf("verify said nothing of a misspelt key: %q", out)
	}
	if out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold=20", write(unit)).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v):\n%s", err, out)
	}
}

// TestExampleConfigLoads: deploy/fishgate.yaml loads with the real loader
// once its secrets exist (the environment variables and files it names,
// here under a temporary directory instead of /etc/fishgate).
func TestExampleConfigLoads(t *testing.T) {
	b, err := os.ReadFile("../../deploy/fishgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	text := strings.ReplaceAll(string(b), "/etc/fishgate/", dir+"/")
	text = strings.ReplaceAll(text, "/var/lib/fishgate", dir)
	for name, content := range map[string]string{
		"fishgate.yaml":   text,
		"secrets.key":     strings.Repeat("ab", 32) + "\n",
		"ironic.password": "ironic-secret\n",
		"bmc.password":    "bmc-secret\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("FISHGATE_REDIS_URL", "redis://127.0.0.1:6379/0")
	t.Setenv("FISHGATE_ADMIN_PASSWORD", "admin-secret")
	t.Setenv("FISHGATE_MONITORING_PASSWORD", "monitoring-secret")
	cfg, err := config.Load(filepath.Join(dir, "fishgate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Nodes) != 2 || cfg.Nodes[1].Password != "bmc-secret" || cfg.Accounts[0].Password != "admin-secret" ||
		cfg.Accounts[1].Password != "ironic-secret" || cfg.RedisURL != "redis://127.0.0.1:6379/0" || len(cfg.Warnings()) != 0 {
		t.Errorf("loaded %+v, warnings %q", cfg, cfg.Warnings())
	}
	// Without its environment it names what is missing.
	os.Unsetenv("FISHGATE_ADMIN_PASSWORD")
	if _, err := config.Load(filepath.Join(dir, "fishgate.yaml")); err == nil || !strings.Contains(err.Error(), "accounts[0].password: environment variable FISHGATE_ADMIN_PASSWORD is not set") {
		t.Errorf("without FISHGATE_ADMIN_PASSWORD: %v", err)
	}
}

// TestCompletion: `fishgate completion <shell>` writes a completion
// script (README "Shell completion").
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "bash completion V2 for fishgate", "zsh": "#compdef fishgate", "fish": "complete -c fishgate"} {
		code, out, stderr := runCLI(t, "completion", shell)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("completion %s: exit %d, %q lacks %q", shell, code, stderr, want)
		}
	}
}
