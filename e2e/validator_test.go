package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fishgate/fishgate/internal/testkit"
)

// derivedCollections are resource collection schemas the gateway serves but
// the DMTF schema bundle (shared/redfish-schemas beside the repository) does
// not ship (its NOT-INCLUDED.txt lists them), each mapped to a bundled
// collection schema of the same generated shape. DMTF generates every
// XxxCollection.json from one template that differs only in the member type's
// name, so renaming the template's member type reproduces the missing
// schema's constraints.
var derivedCollections = map[string]string{
	"ManagerAccountCollection": "ChassisCollection",
}

// validator returns a schema validator over the DMTF bundle, completed with
// derivedCollections when the bundle lacks them. Like testkit.Schemas it
// skips without the bundle, or fails when CI is set.
func validator(t *testing.T) *testkit.SchemaValidator {
	t.Helper()
	v := testkit.Schemas(t)
	dir, err := testkit.SchemaDir()
	if err != nil {
		t.Fatalf("testkit.SchemaDir after ForTest: %v", err)
	}
	var missing []string
	for name := range derivedCollections {
		if _, err := os.Stat(filepath.Join(dir, name+".json")); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return v
	}
	tmp := t.TempDir()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.Symlink(f, filepath.Join(tmp, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range missing {
		tmpl := derivedCollections[name]
		b, err := os.ReadFile(filepath.Join(dir, tmpl+".json"))
		if err != nil {
			t.Fatalf("template for %s: %v", name, err)
		}
		from := strings.TrimSuffix(tmpl, "Collection")
		to := strings.TrimSuffix(name, "Collection")
		derived := strings.ReplaceAll(string(b), from, to)
		var check struct {
			ID    string `json:"$id"`
			Title string `json:"title"`
		}
		if err := json.Unmarshal([]byte(derived), &check); err != nil ||
			check.ID != "http://redfish.dmtf.org/schemas/v1/"+name+".json" || check.Title != "#"+name+"."+name {
			t.Fatalf("deriving %s from %s: $id %q, title %q, err %v", name, tmpl, check.ID, check.Title, err)
		}
		if err := os.WriteFile(filepath.Join(tmp, name+".json"), []byte(derived), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s.json is not in the schema bundle; validating with a copy of %s.json for %s members", name, tmpl, to)
	}
	dv, err := testkit.NewSchemaValidator(tmp)
	if err != nil {
		t.Fatalf("testkit.NewSchemaValidator(%s): %v", tmp, err)
	}
	return dv
}
