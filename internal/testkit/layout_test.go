package testkit

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path"
	"strings"
	"testing"
)

const module = "github.com/fishgate/fishgate"

// layer is the height of each top folder in the README's picture: a
// package may import its own folder's packages and those of lower layers
// only. internal/ (shared parts) sits at the bottom with schemas/.
var layer = map[string]int{
	"cmd":        9,
	"e2e":        9,
	"app":        8,
	"fronts":     7,
	"events":     6,
	"serializer": 5,
	"backends":   4,
	"simulator":  3,
	"wire":       2,
	"schemas":    1,
	"internal":   1,
}

type goPackage struct {
	ImportPath string
	Name       string
	Imports    []string
}

// listPackages runs go list over the whole module, without tests.
func listPackages(t *testing.T) []goPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []goPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages; expected the whole module", len(pkgs))
	}
	return pkgs
}

func topFolder(importPath string) string {
	rel := strings.TrimPrefix(importPath, module+"/")
	top, _, _ := strings.Cut(rel, "/")
	return top
}

// TestLayout checks the README's picture against the imports: every
// package imports only its own top folder and lower layers (testkit, for
// tests only, may import anything), no backend
// or simulator imports a server package of the gateway, only tests import
// testkit, and every package's name is its folder's.
func TestLayout(t *testing.T) {
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(p.ImportPath, module+"/")
		if p.Name != "main" && p.Name != path.Base(rel) {
			t.Errorf("%s: package %s, folder %s", rel, p.Name, path.Base(rel))
		}
		top := topFolder(p.ImportPath)
		h, ok := layer[top]
		if !ok {
			t.Errorf("%s: top folder %q is not in the README's picture", rel, top)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			irel := strings.TrimPrefix(imp, module+"/")
			if strings.HasPrefix(irel, "internal/testkit") && !strings.HasPrefix(rel, "internal/testkit") {
				t.Errorf("%s imports %s outside tests", rel, irel)
			}
			itop := topFolder(imp)
			testOnly := strings.HasPrefix(rel, "internal/testkit")
			if itop != top && layer[itop] >= h && !testOnly {
				t.Errorf("%s (layer %s) imports %s (layer %s): imports point down only", rel, top, irel, itop)
			}
			if (top == "backends" || top == "simulator") && strings.HasPrefix(irel, "fronts/") {
				t.Errorf("%s imports the front %s", rel, irel)
			}
			if top == "backends" && irel == "wire/ipmibmc" {
				t.Errorf("%s (a client) imports the IPMI server %s", rel, irel)
			}
		}
	}
}
