package serializer

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// luaSources are the scripts' sources (lua/*.lua and the ones written in
// Go), comments removed.
func luaSources(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("lua", "*.lua"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Lua scripts in lua/: %v", err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = stripLuaComments(string(b))
	}
	return out
}

var luaComment = regexp.MustCompile(`--[^\n]*`)

func stripLuaComments(s string) string { return luaComment.ReplaceAllString(s, "") }

// TestScriptsNameTheirKeys: the order of a script's KEYS is defined once
// (nodeKeySet.named); scripts use the names bound from it, never KEYS[i].
func TestScriptsNameTheirKeys(t *testing.T) {
	for f, src := range luaSources(t) {
		if strings.Contains(src, "KEYS[") {
			t.Errorf("%s indexes KEYS; use the names common.lua binds", f)
		}
	}
	if !strings.Contains(luaCommon, "{{KEYS}}") {
		t.Fatal("common.lua has no {{KEYS}} line to bind the keys")
	}
	k := nodeKeys("n1")
	want := "local SLOTS, TASKS, TASKZ, FLIPS, LOG, LEASE, FENCE = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]"
	if got := keysLua(); got != want {
		t.Errorf("keysLua:\n got %s\nwant %s", got, want)
	}
	got := k.forScripts()
	wantKeys := []string{k.Slots, k.Tasks, k.TaskZ, k.Flips, k.Log, k.Lease, k.Fence}
	if strings.Join(got, " ") != strings.Join(wantKeys, " ") {
		t.Errorf("script keys %v, want %v", got, wantKeys)
	}
	seen := map[string]bool{}
	for _, key := range k.all() {
		if seen[key] || !strings.HasPrefix(key, "fg:node:{n1}:") {
			t.Errorf("key %q repeated or outside the node's hash tag", key)
		}
		seen[key] = true
	}
}
