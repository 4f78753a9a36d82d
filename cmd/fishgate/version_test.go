package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
)

// TestVersionStamp: the ldflags' values come first, then the build
// information's; a binary without either says "dev".
func TestVersionStamp(t *testing.T) {
	info := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := versionText(stamped(info)), "fishgate v1.2.3\ncommit: 0123abcd (with uncommitted changes)\nbuilt: 2026-12-01T10:00:00Z\ngo: go1.26.0\n"; got != want {
		t.Errorf("from build info:\n%s\nwant\n%s", got, want)
	}
	if got, want := versionText(stamped(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}})), "fishgate dev\ncommit: unknown\nbuilt: unknown\ngo: unknown\n"; got != want {
		t.Errorf("nothing known:\n%s\nwant\n%s", got, want)
	}
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "fishgate ") || !strings.Contains(out, "\ncommit: ") || !strings.Contains(out, "\nbuilt: ") {
		t.Errorf("version: %d %q", code, out)
	}
}

// TestMakeBuildStampsVersion (issue 14 item 6): `make build` stamps the
// binary with the version, the commit and the build date, and `fishgate
// version` prints them.
func TestMakeBuildStampsVersion(t *testing.T) {
	testkit.ToolOrSkip(t, "make", "make")
	testkit.ToolOrSkip(t, "git", "git")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	before := time.Now().UTC().Truncate(time.Second)
	mk := exec.Command("make", "-s", "-C", root, "build", "BIN="+bin, "PKGS=./cmd/fishgate", "VERSION=v9.8.7-test")
	mk.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	// Not a git checkout (a source archive): the commit is unknown.
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		head = []byte("unknown")
	}
	out, err := exec.Command(filepath.Join(bin, "fishgate"), "version").Output()
	if err != nil {
		t.Fatalf("fishgate version: %v", err)
	}
	m := regexp.MustCompile(`^fishgate v9\.8\.7-test\ncommit: (\S+)\nbuilt: (\S+)\ngo: go\S+\n$`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("fishgate version:\n%s", out)
	}
	if m[1] != strings.TrimSpace(string(head)) {
		t.Errorf("commit %s, HEAD is %s", m[1], head)
	}
	if built, err := time.Parse(time.RFC3339, m[2]); err != nil || built.Before(before) || built.After(time.Now().Add(time.Second)) {
		t.Errorf("build date %s (%v): not the time of the build (from %s)", m[2], err, before)
	}
}
