package serializer

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
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
	want := "local SLOTS, TASKS, TASKZ, FLIPS, LOG, LEASE = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]"
	if got := keysLua(); got != want {
		t.Errorf("keysLua:\n got %s\nwant %s", got, want)
	}
	got := k.forScripts()
	wantKeys := []string{k.Slots, k.Tasks, k.TaskZ, k.Flips, k.Log, k.Lease}
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

// dmtfTaskStates is the TaskState enum of the DMTF Task schema (Task v1_7).
var dmtfTaskStates = []string{"New", "Starting", "Running", "Suspended", "Interrupted", "Pending",
	"Stopping", "Completed", "Killed", "Exception", "Service", "Cancelling", "Cancelled"}

var (
	luaString   = regexp.MustCompile(`'([^'\\\n]*)'|"([^"\\\n]*)"`)
	luaStateRef = regexp.MustCompile(`\bSTATE\s*(?:\.\s*(\w+)|\[)`)
)

// TestScriptsTakeTaskStatesFromGo: the scripts name task states through
// the STATE table generated from schemas.TaskStates, never as a literal,
// and only states Go defines.
func TestScriptsTakeTaskStatesFromGo(t *testing.T) {
	for f, src := range luaSources(t) {
		for _, m := range luaString.FindAllStringSubmatch(src, -1) {
			if lit := m[1] + m[2]; slices.Contains(dmtfTaskStates, lit) {
				t.Errorf("%s: task state %s written as a literal (%s); use STATE.%s", f, lit, m[0], lit)
			}
		}
		for _, m := range luaStateRef.FindAllStringSubmatch(src, -1) {
			if m[1] == "" {
				t.Errorf("%s: %s: index STATE by a name (STATE.<name>)", f, m[0])
			} else if !slices.Contains(schemas.TaskStates, schemas.TaskState(m[1])) {
				t.Errorf("%s: STATE.%s is not one of schemas.TaskStates", f, m[1])
			}
		}
	}
}

// TestScriptStatesAreGos: STATE and TERMINAL, as a script sees them, are
// schemas.TaskStates and TaskState.Terminal.
func TestScriptStatesAreGos(t *testing.T) {
	rdb := testkit.MiniRedis(t)
	probe := script(`return { STATE[ARGV[1]] or '', TERMINAL[ARGV[1]] and '1' or '' }`)
	for _, s := range append(slices.Clone(schemas.TaskStates), "Killed", "Pending") {
		got, err := probe.Run(context.Background(), rdb, nodeKeys("n1").forScripts(), string(s)).StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"", ""}
		if slices.Contains(schemas.TaskStates, s) {
			want[0] = string(s)
		}
		if s.Terminal() {
			want[1] = "1"
		}
		if !slices.Equal(got, want) {
			t.Errorf("state %s: STATE, TERMINAL = %q, want %q", s, got, want)
		}
	}
}
