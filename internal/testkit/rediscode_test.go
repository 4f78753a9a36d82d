package testkit

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The Redis rules no server checks for us, read from the module's source
// (its Go files but tests, and its Lua files):
//
//   - A script touches only keys it was given in KEYS. Redis Cluster
//     routes a script by its KEYS, and Redis 7.0 does not refuse a key of
//     another slot that a script makes up itself when that slot is on the
//     same master; on another master it fails, and only then.
//   - Nothing walks the whole keyspace (KEYS, SCAN): on Redis Cluster
//     that reaches one master only, and with many nodes it is slow on any
//     Redis.

// redisCall is a redis.call or redis.pcall in a script, with its first
// two arguments.
var redisCall = regexp.MustCompile(`redis\.p?call\(\s*([^,)]*)\s*(?:,\s*([^,)]*))?`)

// keyArg is an argument that names a key given in KEYS: KEYS[n], or a
// name in capitals bound to KEYS[n] (the serializer's scripts bind
// "local SLOTS, TASKS, ... = KEYS[1], KEYS[2], ..."), or "key", the
// parameter of internal/lease's lease_held.
var keyArg = regexp.MustCompile(`^(KEYS\[\d+\]|[A-Z][A-Z0-9_]*|key)$`)

// keylessCommands take no key first (PUBLISH's first argument is a
// channel, never a key).
var keylessCommands = map[string]bool{"PUBLISH": true, "TIME": true, "PING": true}

// keyspaceWalk is a Go call or a command that walks the keyspace.
var keyspaceWalk = regexp.MustCompile(`\.(Keys|Scan|ScanType)\(\s*ctx\b|["'](?i:keys|scan)["']`)

func TestScriptsTouchOnlyTheirKEYS(t *testing.T) {
	calls := 0
	forRedisCode(t, func(path string, line int, text string) {
		for _, m := range redisCall.FindAllStringSubmatch(text, -1) {
			calls++
			cmd := strings.Trim(m[1], `'"`)
			switch {
			case cmd == m[1] || strings.ToUpper(cmd) != cmd:
				t.Errorf("%s:%d: redis.call with command %s: name the command as a literal in capitals, so that its keys can be checked", path, line, m[1])
			case keylessCommands[cmd]:
			case !keyArg.MatchString(strings.TrimSpace(m[2])):
				t.Errorf("%s:%d: %s %s: a script may touch only keys it is given in KEYS (Redis Cluster routes it by them): pass the key in KEYS", path, line, cmd, m[2])
			}
		}
	})
	if calls < 20 {
		t.Fatalf("found %d redis.call in the module's scripts: the search is broken", calls)
	}
}

// scanAllowed are the files that may walk a keyspace: fgbench's fleet
// benchmark splits the memory of a redis-server it started itself, for
// itself, by kind of key, and must find every key to do so.
var scanAllowed = map[string]bool{filepath.Join("cmd", "fgbench", "fleet.go"): true}

func TestNoKeyspaceScans(t *testing.T) {
	walks := 0
	forRedisCode(t, func(path string, line int, text string) {
		if m := keyspaceWalk.FindString(text); m != "" && scanAllowed[path] {
			walks++
		} else if m != "" {
			t.Errorf("%s:%d: %s walks the whole keyspace (KEYS/SCAN): on Redis Cluster it sees one master only, and it is slow with many nodes; keep an index (a set or hash) instead", path, line, m)
		}
	})
	if walks == 0 {
		t.Error("the allowed keyspace walk in cmd/fgbench/fleet.go was not found: the search is broken, or scanAllowed is stale")
	}
}

// forRedisCode calls f with each line of the module's Go files but tests
// and of its Lua files.
func forRedisCode(t *testing.T, f func(path string, line int, text string)) {
	t.Helper()
	root, err := moduleDir()
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); p != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !(strings.HasSuffix(p, ".lua") || strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go")) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		for i, l := range strings.Split(string(b), "\n") {
			f(rel, i+1, l)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
