package testkit

import (
	"fmt"
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// The design lives in the repository (docs/): comments point there, never
// at notes kept outside it. TestCommentsStayInTheRepository checks the
// comments of the module's Go, Lua, shell and Makefile files, and the whole
// text of its Python and transcript (testdata) files, for the names of such
// notes and for relative paths into the folder beside the repository, and
// checks that every docs/<file>.md#<anchor> a comment names exists.

// outsideNotes are the names of design notes kept outside the repository.
// (Spelled in pieces so that no file of the module contains them whole.)
var outsideNotes = []string{"DESIGN" + ".md", "STYLE" + ".md", "CLIENTS" + ".md"}

// outsidePath is a relative path out of the repository into the folder
// beside it. A test may read the DMTF files from there at run time, and say
// so, as "shared/redfish-schemas beside the repository".
const outsidePath = "../" + "shared"

// docLink is a reference from a comment into docs/, with an optional anchor.
var docLink = regexp.MustCompile(`docs/[\w./-]*\.md(?:#[\w-]+)?`)

func TestCommentsStayInTheRepository(t *testing.T) {
	root, err := moduleDir()
	if err != nil {
		t.Fatal(err)
	}
	problems, files, err := commentProblems(root)
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("looked at %d files under %s; expected the whole module", files, root)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestCommentCheckFindsOffences runs the check on a small tree with one
// offence of each kind, and on the same tree without them.
func TestCommentCheckFindsOffences(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("docs/architecture.md", "# Title\n\n## Leases and fencing\n")
	write("a/a.go", "package a\n\n// Lease renewal (docs/architecture.md#leases-and-fencing).\nvar s = \""+outsideNotes[0]+"\" // a string is not a comment\n")
	write("a/lua/x.lua", "-- see docs/architecture.md\nreturn 1\n")
	write("Makefile", "# builds things\nall:\n")
	write("s/run.sh", "#!/bin/sh\n# runs the runner beside the repository\nrunner=$repo/"+outsidePath+"/run # code, not a comment\n")
	problems, _, err := commentProblems(dir)
	if err != nil || len(problems) != 0 {
		t.Fatalf("clean tree: %v %v", problems, err)
	}

	write("a/b.go", "package a\n\n/* as "+outsideNotes[0]+" §4 says */\nfunc f() {}\n")
	write("a/c_test.go", "package a\n\n// The rule of "+outsideNotes[1]+" §2.\n")
	write("a/lua/y.lua", "-- lease ("+outsideNotes[0]+" §6)\nreturn 1\n")
	write("Makefile", "# checks "+outsideNotes[2]+"\nall:\n")
	write("a/testdata/t", "# "+outsideNotes[0]+" §4\nsubmit On\n----\nok\n")
	write("a/d.go", "package a\n\n// schemas in "+outsidePath+"/redfish-schemas\n")
	write("a/e.go", "package a\n\n// see docs/architecture.md#no-such-section and docs/nothing.md\n")
	write("s/run.sh", "#!/bin/sh\n# needs "+outsidePath+"/tools\nrunner=$repo/"+outsidePath+"/run\n")
	problems, _, err = commentProblems(dir)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(problems, "\n")
	for _, want := range []string{
		"a/b.go:3: ", "a/c_test.go:3: ", "a/lua/y.lua:1: ", "Makefile:1: ", "a/testdata/t:1: ",
		"a/d.go:3: ", "#no-such-section", "docs/nothing.md", "s/run.sh:2: ",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no problem reported for %q; got:\n%s", want, all)
		}
	}
	if len(problems) != 9 {
		t.Errorf("%d problems, want 9:\n%s", len(problems), all)
	}
}

// commentProblems walks root and lists every comment that points outside
// the repository or at a missing part of docs/, and how many files it read.
func commentProblems(root string) (problems []string, files int, err error) {
	anchors := map[string]map[string]bool{} // docs file -> its heading anchors
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == ".git" || rel == "bin" {
				return filepath.SkipDir
			}
			return nil
		}
		comments, ok, err := commentsOf(path, rel)
		if err != nil || !ok {
			return err
		}
		files++
		for _, c := range comments {
			for _, name := range outsideNotes {
				if strings.Contains(c.text, name) {
					problems = append(problems, fmt.Sprintf("%s:%d: names %s, a note outside the repository; point into docs/ instead", rel, c.line, name))
				}
			}
			if strings.Contains(c.text, outsidePath) {
				problems = append(problems, fmt.Sprintf("%s:%d: names %s, outside the repository; a design point goes into docs/, a run-time location is \"shared/... beside the repository\"", rel, c.line, outsidePath))
			}
			for _, link := range docLink.FindAllString(c.text, -1) {
				if p := checkDocLink(root, link, anchors); p != "" {
					problems = append(problems, fmt.Sprintf("%s:%d: %s", rel, c.line, p))
				}
			}
		}
		return nil
	})
	return problems, files, err
}

type comment struct {
	line int
	text string
}

// lineComment finds where the comment of one line starts (-1: none).
type lineComment func(line string) int

// hashComment: shell and make comments, a '#' at the start of a line or
// after a blank.
var hashComment = regexp.MustCompile(`(^|[ \t])#`)

func shellComment(l string) int {
	if m := hashComment.FindStringIndex(l); m != nil {
		return m[0]
	}
	return -1
}

func luaComment(l string) int { return strings.Index(l, "--") }

// wholeLine: files whose text is mostly comments or documentation (Python
// docstrings, transcripts) are read whole.
func wholeLine(string) int { return 0 }

// commentsOf returns the comments of a file the check reads (ok false for
// the others).
func commentsOf(path, rel string) (cs []comment, ok bool, err error) {
	base := filepath.Base(rel)
	ext := filepath.Ext(base)
	var find lineComment
	switch {
	case ext == ".go":
	case strings.Contains("/"+rel, "/testdata/"), ext == ".py":
		find = wholeLine
	case ext == ".lua":
		find = luaComment
	case ext == ".sh", base == "Makefile", strings.HasPrefix(rel, ".ci/"):
		find = shellComment
	default:
		return nil, false, nil
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, false, err
	}
	if find != nil {
		for i, l := range strings.Split(string(src), "\n") {
			if at := find(l); at >= 0 {
				cs = append(cs, comment{i + 1, l[at:]})
			}
		}
		return cs, true, nil
	}
	fset := token.NewFileSet()
	f := fset.AddFile(rel, -1, len(src))
	var s scanner.Scanner
	var scanErr error
	s.Init(f, src, func(pos token.Position, msg string) { scanErr = fmt.Errorf("%s: %s", pos, msg) }, scanner.ScanComments)
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			break
		}
		if tok != token.COMMENT {
			continue
		}
		// one entry per line, so that a problem names its line
		first := fset.Position(pos).Line
		for i, l := range strings.Split(lit, "\n") {
			cs = append(cs, comment{first + i, l})
		}
	}
	return cs, true, scanErr
}

// checkDocLink says what is wrong with a docs/<file>.md[#anchor] link, or "".
func checkDocLink(root, link string, anchors map[string]map[string]bool) string {
	file, anchor, _ := strings.Cut(link, "#")
	if _, seen := anchors[file]; !seen {
		src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
		if err != nil {
			anchors[file] = nil
		} else {
			anchors[file] = headingAnchors(string(src))
		}
	}
	switch a := anchors[file]; {
	case a == nil:
		return "names " + file + ", which does not exist"
	case anchor != "" && !a[anchor]:
		return "names " + link + ", but " + file + " has no heading with that anchor"
	}
	return ""
}

// headingAnchors lists the anchors a Markdown renderer gives the headings
// of src: lower case, punctuation dropped, spaces as hyphens.
func headingAnchors(src string) map[string]bool {
	out := map[string]bool{}
	fenced := false
	for _, l := range strings.Split(src, "\n") {
		if strings.HasPrefix(l, "```") {
			fenced = !fenced
		}
		text, ok := strings.CutPrefix(strings.TrimLeft(l, "#"), " ")
		if fenced || !strings.HasPrefix(l, "#") || !ok {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(text)) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out[b.String()] = true
	}
	return out
}
