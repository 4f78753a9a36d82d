package proxy

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/fishgate/fishgate/internal/testkit"
)

var updatePrivileges = flag.Bool("update-privileges", false, "rewrite privilege_registry.json from the registry in the DMTF schema folder")

const privilegeRegistryFile = "Redfish_1.8.0_PrivilegeRegistry.json"

// sharedFile reads a file of the DMTF schema folder
// ($FISHGATE_REDFISH_REGISTRIES / $FISHGATE_REDFISH_SCHEMAS, or
// shared/redfish-schemas beside the repository), skipping the test when it is
// absent, failing it when CI is set.
func sharedFile(t *testing.T, sub, name string) []byte {
	t.Helper()
	dir, dirErr := testkit.SharedDir(sub)
	switch {
	case sub == "registries" && os.Getenv("FISHGATE_REDFISH_REGISTRIES") != "":
		dir = os.Getenv("FISHGATE_REDFISH_REGISTRIES")
	case sub == "json-schema" && os.Getenv("FISHGATE_REDFISH_SCHEMAS") != "":
		dir = os.Getenv("FISHGATE_REDFISH_SCHEMAS")
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil && dirErr != nil {
		err = dirErr
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s unavailable (CI is set): %v", name, err)
		}
		t.Skipf("%s unavailable, the check against the DMTF files is skipped: %v", name, err)
	}
	return b
}

// treeEntities lists every entity of entityTrees.
func treeEntities() []string {
	seen := map[string]bool{}
	var visit func(n *entityNode)
	visit = func(n *entityNode) {
		if n == nil {
			return
		}
		if n.entity != "" {
			seen[n.entity] = true
		}
		visit(n.member)
		for _, c := range n.children {
			visit(c)
		}
	}
	for _, r := range entityTrees {
		visit(r)
	}
	out := make([]string, 0, len(seen))
	for e := range seen {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// TestPrivilegeTableMatchesRegistry: the embedded part of the privilege
// registry is the DMTF file's, entity for entity, and holds every entity
// the path tree uses. Run with -update-privileges to rewrite it.
func TestPrivilegeTableMatchesRegistry(t *testing.T) {
	raw := sharedFile(t, "registries", privilegeRegistryFile)
	var reg struct {
		Mappings []json.RawMessage
	}
	if err := json.Unmarshal(raw, &reg); err != nil {
		t.Fatalf("%s: %v", privilegeRegistryFile, err)
	}
	byEntity := map[string]json.RawMessage{}
	for _, m := range reg.Mappings {
		var e struct{ Entity string }
		if err := json.Unmarshal(m, &e); err != nil {
			t.Fatal(err)
		}
		byEntity[e.Entity] = m
	}
	entities := treeEntities()

	if *updatePrivileges {
		var b bytes.Buffer
		b.WriteString("{\n\"Source\": \"DMTF DSP8011 " + privilegeRegistryFile + ": the Mappings of the entities below a System, Manager and Chassis (proxy/entities.go), unchanged\",\n\"Mappings\": [\n")
		for i, e := range entities {
			m, ok := byEntity[e]
			if !ok {
				t.Fatalf("the registry has no entity %s", e)
			}
			var c bytes.Buffer
			if err := json.Compact(&c, m); err != nil {
				t.Fatal(err)
			}
			b.Write(c.Bytes())
			if i < len(entities)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString("]\n}\n")
		if err := os.WriteFile("privilege_registry.json", b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote privilege_registry.json: %d entities", len(entities))
		return
	}

	var emb struct{ Mappings []json.RawMessage }
	if err := json.Unmarshal(privilegeRegistryJSON, &emb); err != nil {
		t.Fatal(err)
	}
	embedded := map[string]bool{}
	for _, m := range emb.Mappings {
		var e struct{ Entity string }
		if err := json.Unmarshal(m, &e); err != nil {
			t.Fatal(err)
		}
		embedded[e.Entity] = true
		r, ok := byEntity[e.Entity]
		if !ok {
			t.Errorf("embedded entity %s is not in the registry", e.Entity)
			continue
		}
		var got, want any
		_ = json.Unmarshal(m, &got)
		_ = json.Unmarshal(r, &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("entity %s differs from the registry:\nembedded %s\nregistry %s", e.Entity, m, r)
		}
	}
	for _, e := range entities {
		if !embedded[e] {
			t.Errorf("entity %s of the path tree is not embedded (go test ./proxy -run TestPrivilegeTableMatchesRegistry -update-privileges)", e)
		}
		if _, ok := privilegeTable[e]; !ok {
			t.Errorf("entity %s is not in privilegeTable", e)
		}
	}
	if len(emb.Mappings) != len(entities) {
		t.Errorf("%d entities embedded, the path tree uses %d", len(emb.Mappings), len(entities))
	}
}

// TestEntityTreeMatchesSchemas: every navigation property of the System,
// Manager, Chassis and LogService schemas (the newest version in the DMTF
// schema folder) that leads to a resource type is a child of that type in the
// path tree, with the same type.
func TestEntityTreeMatchesSchemas(t *testing.T) {
	ref := regexp.MustCompile(`/v1/(\w+)\.json#/definitions/(\w+)$`)
	for _, c := range []struct {
		file, def string
		node      *entityNode
	}{
		{"ComputerSystem.v1_27_0.json", "ComputerSystem", entityTrees[0]},
		{"Manager.v1_24_0.json", "Manager", entityTrees[1]},
		{"Chassis.v1_28_0.json", "Chassis", entityTrees[2]},
		{"LogService.v1_9_0.json", "LogService", entityTrees[0].children["logservices"].member},
	} {
		var sch struct {
			Definitions map[string]struct {
				Properties map[string]json.RawMessage
			}
		}
		if err := json.Unmarshal(sharedFile(t, "json-schema", c.file), &sch); err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		props := sch.Definitions[c.def].Properties
		checked := 0
		for name, p := range props {
			var d struct {
				Ref   string `json:"$ref"`
				AnyOf []struct {
					Ref string `json:"$ref"`
				}
				Items struct {
					Ref string `json:"$ref"`
				}
				ReadOnly *bool `json:"readonly"`
			}
			_ = json.Unmarshal(p, &d)
			refs := []string{d.Ref, d.Items.Ref}
			for _, a := range d.AnyOf {
				refs = append(refs, a.Ref)
			}
			for _, r := range refs {
				m := ref.FindStringSubmatch(r)
				if m == nil || m[1] != m[2] || (d.Items.Ref != "" && !strings.HasSuffix(m[1], "Collection")) {
					continue // not a navigation property to a resource (or an array of links)
				}
				if slices.Contains([]string{"Redundancy"}, m[1]) {
					continue // an object in the resource, not a resource of its own
				}
				checked++
				n := c.node.children[strings.ToLower(name)]
				switch {
				case n == nil:
					t.Errorf("%s.%s (%s) is not in the path tree", c.def, name, m[1])
				case n.entity != m[1]:
					t.Errorf("%s.%s is %s in the path tree, %s in the schema", c.def, name, n.entity, m[1])
				}
			}
		}
		if checked == 0 {
			t.Errorf("%s: no navigation property of %s found: the check would be empty", c.file, c.def)
		}
	}
}
