// This file validates Redfish payloads against the official DMTF JSON
// schemas (DSP8010) in the DMTF schema folder ($FISHGATE_REDFISH_SCHEMAS, or
// shared/redfish-schemas beside the repository).
// It is for tests: the gateway itself never reads the schemas.

package testkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

const dmtfPrefix = "http://redfish.dmtf.org/schemas/v1/"

// SchemaValidator compiles and caches schemas from one folder of DMTF files.
type SchemaValidator struct {
	dir      string
	compiler *jsonschema.Compiler
	mu       sync.Mutex
	cache    map[string]*jsonschema.Schema
}

// SchemaDir finds the schema folder: $FISHGATE_REDFISH_SCHEMAS, or
// shared/redfish-schemas/json-schema beside the repository.
func SchemaDir() (string, error) {
	if d := os.Getenv("FISHGATE_REDFISH_SCHEMAS"); d != "" {
		return d, nil
	}
	return SharedDir("json-schema")
}

// SharedDir finds a folder of the DMTF files beside the repository:
// shared/redfish-schemas/<sub> in the parent of the folder holding go.mod.
func SharedDir(sub string) (string, error) {
	d, err := moduleDir()
	if err != nil {
		return "", err
	}
	cand := filepath.Join(filepath.Dir(d), "shared", "redfish-schemas", sub)
	if _, err := os.Stat(cand); err != nil {
		return "", fmt.Errorf("DMTF files not found at %s", cand)
	}
	return cand, nil
}

// moduleDir is the folder holding go.mod, at or above the working directory.
func moduleDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
	}
}

// Schemas returns a validator, skipping the test when the schemas are
// absent, or failing it when CI is set.
func Schemas(t testing.TB) *SchemaValidator {
	t.Helper()
	dir, err := SchemaDir()
	if err == nil {
		var v *SchemaValidator
		if v, err = NewSchemaValidator(dir); err == nil {
			return v
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("Redfish schemas unavailable (CI is set): %v", err)
	}
	t.Skipf("Redfish schemas unavailable, schema validation skipped: %v", err)
	return nil
}

// refRe finds "$ref" targets in schema files.
var refRe = regexp.MustCompile(`"\$ref":\s*"([^"#]+)#/definitions/([^"]+)"`)

// New builds a validator over dir. References to documents the bundle does
// not ship (navigation-link targets, see the bundle's NOT-INCLUDED.txt)
// resolve to schemas that accept anything: link objects are not checked,
// the gateway's own resources are, in full.
func NewSchemaValidator(dir string) (*SchemaValidator, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no schema files in %s", dir)
	}
	missing := map[string]map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, m := range refRe.FindAllSubmatch(b, -1) {
			url, def := string(m[1]), string(m[2])
			if name, ok := strings.CutPrefix(url, dmtfPrefix); ok {
				if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
					continue
				}
			}
			if missing[url] == nil {
				missing[url] = map[string]bool{}
			}
			missing[url][def] = true
		}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.UseLoader(bundleLoader{dir: dir, missing: missing})
	return &SchemaValidator{dir: dir, compiler: c, cache: map[string]*jsonschema.Schema{}}, nil
}

type bundleLoader struct {
	dir     string
	missing map[string]map[string]bool
}

func (l bundleLoader) Load(url string) (any, error) {
	if name, ok := strings.CutPrefix(url, dmtfPrefix); ok && !strings.Contains(name, "/") {
		if b, err := os.ReadFile(filepath.Join(l.dir, name)); err == nil {
			return jsonschema.UnmarshalJSON(bytes.NewReader(b))
		}
	}
	if defs, ok := l.missing[url]; ok {
		d := map[string]any{}
		for name := range defs {
			d[name] = map[string]any{}
		}
		return map[string]any{"$schema": "http://json-schema.org/draft-07/schema#", "definitions": d}, nil
	}
	return nil, fmt.Errorf("%s is not in the local schema bundle", url)
}

// SchemaURL maps an @odata.type to the bundled schema definition:
// "#ComputerSystem.v1_20_0.ComputerSystem" -> newest errata file of v1_20,
// "#ComputerSystemCollection.ComputerSystemCollection" -> the unversioned file.
func (v *SchemaValidator) SchemaURL(odataType string) (string, error) {
	parts := strings.Split(strings.TrimPrefix(odataType, "#"), ".")
	switch len(parts) {
	case 2:
		if _, err := os.Stat(filepath.Join(v.dir, parts[0]+".json")); err != nil {
			return "", fmt.Errorf("no bundled schema for %s", odataType)
		}
		return dmtfPrefix + parts[0] + ".json#/definitions/" + parts[1], nil
	case 3:
		ver := parts[1]
		i := strings.LastIndex(ver, "_")
		if i < 0 {
			return "", fmt.Errorf("bad version in %s", odataType)
		}
		cands, _ := filepath.Glob(filepath.Join(v.dir, parts[0]+"."+ver[:i]+"_*.json"))
		if len(cands) == 0 {
			return "", fmt.Errorf("no bundled schema for %s", odataType)
		}
		sort.Slice(cands, func(a, b int) bool { return errata(cands[a]) < errata(cands[b]) })
		return dmtfPrefix + filepath.Base(cands[len(cands)-1]) + "#/definitions/" + parts[2], nil
	}
	return "", fmt.Errorf("bad @odata.type %q", odataType)
}

func errata(path string) int {
	s := strings.TrimSuffix(filepath.Base(path), ".json")
	n, _ := strconv.Atoi(s[strings.LastIndex(s, "_")+1:])
	return n
}

func (v *SchemaValidator) schema(url string) (*jsonschema.Schema, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.cache[url]; ok {
		return s, nil
	}
	s, err := v.compiler.Compile(url)
	if err != nil {
		return nil, err
	}
	v.cache[url] = s
	return s, nil
}

// Validate checks a resource body against the schema its @odata.type names.
func (v *SchemaValidator) Validate(body []byte) error {
	var head struct {
		Type string `json:"@odata.type"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return err
	}
	if head.Type == "" {
		return fmt.Errorf("no @odata.type")
	}
	url, err := v.SchemaURL(head.Type)
	if err != nil {
		return err
	}
	return v.validateAt(url, body)
}

// ValidateError checks an error response against redfish-error v1_0_2.
func (v *SchemaValidator) ValidateError(body []byte) error {
	return v.validateAt(dmtfPrefix+"redfish-error.v1_0_2.json", body)
}

func (v *SchemaValidator) validateAt(url string, body []byte) error {
	s, err := v.schema(url)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}
