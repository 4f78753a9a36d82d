package testkit

import (
	"os"
	"os/exec"
	"testing"
)

// ToolOrSkip returns the path of the program name, skipping t when it is
// not installed, or failing t when CI is set (.ci/run installs it from the
// Debian package pkg).
func ToolOrSkip(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed and CI is set (Debian package %s): %v", name, pkg, err)
		}
		t.Skipf("%s not installed (Debian package %s): %v", name, pkg, err)
	}
	return p
}
