package schemas

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestRegistryTexts checks every message the gateway builds against the
// DMTF registries (DSP8011) in the DMTF schema folder
// ($FISHGATE_REDFISH_REGISTRIES, or shared/redfish-schemas/registries beside
// the repository):
// text, argument count, severity and resolution are copied, never invented.
func TestRegistryTexts(t *testing.T) {
	cases := []struct {
		file    string
		entries []registryEntry
	}{
		{"Base.1.22.1.json", baseEntries[:]},
		{"TaskEvent.1.0.5.json", taskEventEntries[:]},
		{"ResourceEvent.1.4.3.json", resourceEventEntries[:]},
	}
	for _, c := range cases {
		b := dmtfFile(t, "registries", "FISHGATE_REDFISH_REGISTRIES", c.file)
		var reg struct {
			Messages map[string]struct {
				Message         string
				NumberOfArgs    int
				MessageSeverity string
				Resolution      string
			}
		}
		if err := json.Unmarshal(b, &reg); err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		for _, e := range c.entries {
			key := e.key
			m, ok := reg.Messages[key]
			switch {
			case !ok:
				t.Errorf("%s: no message %s", c.file, key)
			case m.Message != e.text:
				t.Errorf("%s %s: text %q, registry %q", c.file, key, e.text, m.Message)
			case m.NumberOfArgs != e.args:
				t.Errorf("%s %s: %d args, registry %d", c.file, key, e.args, m.NumberOfArgs)
			case m.MessageSeverity != e.severity:
				t.Errorf("%s %s: severity %s, registry %s", c.file, key, e.severity, m.MessageSeverity)
			case m.Resolution != e.resolution:
				t.Errorf("%s %s: resolution %q, registry %q", c.file, key, e.resolution, m.Resolution)
			}
		}
	}
}

// dmtfFile reads file name of the DMTF schema folder sub ("registries" or
// "json-schema"): from $env when set, else from shared/redfish-schemas
// beside the repository. The test is skipped when it is absent, and fails
// when CI is set.
func dmtfFile(t *testing.T, sub, env, name string) []byte {
	t.Helper()
	dir := filepath.Join("..", "..", "shared", "redfish-schemas", sub)
	if d := os.Getenv(env); d != "" {
		dir = d
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s unavailable (CI is set): %v", name, err)
		}
		t.Skipf("%s unavailable: %v", name, err)
	}
	return b
}

// TestShortIDsReadBack: every registry message's stored id (ShortID: the
// bare key, or the full id where another registry has the same key with
// the same argument count) builds the same message again.
func TestShortIDsReadBack(t *testing.T) {
	bare := 0
	for _, r := range registries {
		for _, e := range r.entries {
			if e.key == "" {
				continue
			}
			args := make([]string, e.args)
			for i := range args {
				args[i] = "a" + string(rune('0'+i))
			}
			full := r.name + "." + e.key
			id, short := ShortID(full, args)
			var m Message
			var ok bool
			if short {
				bare++
				m, ok = MessageByKey(id, args)
			} else {
				m, ok = MessageByID(id, args)
			}
			if !ok || m.MessageID != full {
				t.Errorf("%s stored as %q reads back as %q (%v)", full, id, m.MessageID, ok)
			}
		}
	}
	if bare == 0 {
		t.Fatal("no message is stored by its bare key")
	}
	if _, ok := MessageByKey("", nil); ok {
		t.Error("an empty key found a message")
	}
}
