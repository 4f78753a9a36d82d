package schemas

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// registryTables maps each registry table of messages.go to its entries.
var registryTables = map[string][]registryEntry{
	"baseEntries":          baseEntries[:],
	"taskEventEntries":     taskEventEntries[:],
	"resourceEventEntries": resourceEventEntries[:],
}

// messageConstants reads messages.go's tables: constant name -> entry. It
// fails the test unless every constant of a table has an entry whose key
// is the constant's name without "Msg", and keys are unique.
func messageConstants(t *testing.T) map[string]registryEntry {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "messages.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]registryEntry{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.VAR {
			continue
		}
		for _, spec := range g.Specs {
			v := spec.(*ast.ValueSpec)
			entries, ok := registryTables[v.Names[0].Name]
			if !ok {
				continue
			}
			lit := v.Values[0].(*ast.CompositeLit)
			if len(lit.Elts) != len(entries) {
				t.Errorf("%s: %d entries for %d constants", v.Names[0].Name, len(lit.Elts), len(entries))
			}
			keys := map[string]bool{}
			for _, e := range entries {
				if e.key == "" || keys[e.key] {
					t.Errorf("%s: key %q missing or repeated", v.Names[0].Name, e.key)
				}
				keys[e.key] = true
			}
			for _, el := range lit.Elts {
				kv := el.(*ast.KeyValueExpr)
				name := kv.Key.(*ast.Ident).Name
				key, _ := strconv.Unquote(kv.Value.(*ast.CompositeLit).Elts[0].(*ast.BasicLit).Value)
				if name != "Msg"+key {
					t.Errorf("%s: constant %s names message %q", v.Names[0].Name, name, key)
				}
				for _, e := range entries {
					if e.key == key {
						out[name] = e
					}
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no registry tables found in messages.go")
	}
	return out
}

// TestMessageConstantsNameTheirKeys: MsgX builds message X, in every
// registry.
func TestMessageConstantsNameTheirKeys(t *testing.T) {
	msgs := messageConstants(t)
	for _, c := range []struct {
		got, want string
	}{
		{Base(MsgResourceNotFound, "Task", "n1.1").MessageID, "Base.1.22.ResourceNotFound"},
		{MsgServiceTemporarilyUnavailable.Key(), "ServiceTemporarilyUnavailable"},
		{TaskEvent(MsgTaskAborted, "n1.1").MessageID, "TaskEvent.1.0.TaskAborted"},
		{ResourceEvent(MsgResourcePoweredOn, "n1").MessageID, "ResourceEvent.1.4.ResourcePoweredOn"},
		{MsgTaskCompletedWarning.String(), "TaskCompletedWarning"},
		{BaseMessage(-1).Key() + TaskEventMessage(numTaskEventMessages).Key(), ""},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if n := len(baseEntries) + len(taskEventEntries) + len(resourceEventEntries); len(msgs) != n {
		t.Errorf("%d constants read for %d messages", len(msgs), n)
	}
}

// TestMessageArgCounts: every call of Base, TaskEvent or ResourceEvent in
// the module that names its message by constant passes the number of
// arguments the message takes (build panics otherwise, at run time).
func TestMessageArgCounts(t *testing.T) {
	msgs := messageConstants(t)
	builders := map[string]bool{"Base": true, "TaskEvent": true, "ResourceEvent": true}
	calls := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != ".." && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 || call.Ellipsis.IsValid() || !builders[calleeName(call.Fun)] {
				return true
			}
			e, ok := msgs[calleeName(call.Args[0])]
			if !ok {
				return true // a message not named by a constant here (a parameter)
			}
			calls++
			if got := len(call.Args) - 1; got != e.args {
				t.Errorf("%s: %s takes %d args, given %d", fset.Position(call.Pos()), e.key, e.args, got)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls < 50 {
		t.Fatalf("only %d message builds found in the module: the scan is broken", calls)
	}
}

// calleeName is the name of an identifier or the selected name of x.Name.
func calleeName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	}
	return ""
}
