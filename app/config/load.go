package config

import (
	"cmp"
	"encoding"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Loading a file reports every problem at once, each with its line and the
// path of its field (nodes[2].address): unknown keys (with the closest
// known key), values that do not parse, secrets that cannot be read, and
// what Validate finds. An operator fixing a file then sees the whole list,
// not one problem per attempt.

// FieldError is one problem of a configuration: the field's path as the
// YAML writes it, and the line that states it when the file does (0 for a
// field the file leaves to its default).
type FieldError struct {
	Line    int
	Field   string
	Problem string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Problem)
	}
	return e.Field + ": " + e.Problem
}

// Problems is every problem found in a configuration, in the file's order.
type Problems []error

func (p Problems) Error() string {
	if len(p) == 1 {
		return p[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(p))
	for _, e := range p {
		b.WriteString("\n  ")
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap gives the problems to errors.Is and errors.As.
func (p Problems) Unwrap() []error { return p }

// decodeFile decodes the YAML document b over c. It returns the problems
// of the file itself (unknown keys and values that do not parse) and the
// line of every field path it states, for the problems found later. A
// document that is not YAML at all is one error.
func decodeFile(b []byte, c *Config) (lines map[string]int, problems []error, err error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	w := &keyWalker{lines: map[string]int{}}
	if root.Kind == 0 { // an empty file: all defaults
		return w.lines, nil, nil
	}
	w.walk(&root, reflect.TypeFor[Config](), "")
	problems = w.problems
	// Unknown keys are reported above with their paths; the decoder skips
	// them and goes on past values that do not fit, listing each.
	var te *yaml.TypeError
	if err := root.Decode(c); errors.As(err, &te) {
		for _, msg := range te.Errors {
			problems = append(problems, w.locate(msg))
		}
	} else if err != nil {
		problems = append(problems, fmt.Errorf("config: %w", err))
	}
	return w.lines, problems, nil
}

// keyWalker walks a YAML document beside the Go type it decodes into.
type keyWalker struct {
	lines    map[string]int
	scalars  []scalarAt
	problems []error
}

// scalarAt is a scalar value of the file and the path it sets.
type scalarAt struct {
	line  int
	path  string
	value string
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (w *keyWalker) walk(n *yaml.Node, t reflect.Type, path string) {
	for n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode {
		w.scalars = append(w.scalars, scalarAt{n.Line, path, n.Value})
		w.checkText(n, t, path)
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return // its own decoder judges it
	}
	// A node of the wrong kind for t is left to the decoder, which says so.
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.ShortTag() == "!!merge" { // "<<: *defaults": the keys of another mapping, here
				w.walkMerge(v, t, path)
				continue
			}
			p := join(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				w.problems = append(w.problems, &FieldError{Line: k.Line, Field: p, Problem: unknownKey(k.Value, fields)})
				continue
			}
			w.lines[p] = k.Line
			w.walk(v, f.Type, p)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			w.lines[p] = n.Content[i].Line
			w.walk(n.Content[i+1], t.Elem(), p)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.lines[p] = e.Line
			w.walk(e, t.Elem(), p)
		}
	}
}

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// checkText judges a scalar bound for a type that parses text (an IP
// address, a prefix) the way the decoder will, and on failure reports it
// and blanks it: the decoder stops at the first such error, while every
// problem of the file is to be reported.
func (w *keyWalker) checkText(n *yaml.Node, t reflect.Type, path string) {
	if !reflect.PointerTo(t).Implements(textUnmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	v := reflect.New(t).Interface().(encoding.TextUnmarshaler)
	if err := v.UnmarshalText([]byte(n.Value)); err == nil {
		return
	}
	problem := fmt.Sprintf("%q does not parse", n.Value)
	switch t {
	case reflect.TypeFor[netip.Addr]():
		problem = fmt.Sprintf("%q is not an IP address", n.Value)
	case reflect.TypeFor[netip.Prefix]():
		problem = fmt.Sprintf("%q is not an address prefix (10.0.5.0/24)", n.Value)
	}
	w.problems = append(w.problems, &FieldError{Line: n.Line, Field: path, Problem: problem})
	n.Value, n.Tag, n.Style = "", "!!str", 0
}

// walkMerge walks the mapping (or the list of mappings) a merge key
// brings in, as part of the mapping at path.
func (w *keyWalker) walkMerge(v *yaml.Node, t reflect.Type, path string) {
	if v.Kind == yaml.SequenceNode {
		for _, e := range v.Content {
			w.walk(e, t, path)
		}
		return
	}
	w.walk(v, t, path)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields are a struct's fields by their YAML key.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

// unknownKey says what is wrong with key and which known key was probably
// meant: the closest by edit distance when it is close enough to be a typo
// (or shares all but the end of its name: listen_addr, max_conns), else
// the list of keys.
func unknownKey(key string, fields map[string]reflect.StructField) string {
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	slices.Sort(known)
	lower := strings.ToLower(key)
	best, dist := "", -1
	for _, k := range known {
		d := editDistance(lower, k)
		if !(d <= max(2, len(key)/3) || typoByPrefix(lower, k)) {
			continue
		}
		if dist < 0 || d < dist {
			best, dist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown key; did you mean %q?", best)
	}
	return "unknown key; known keys here: " + strings.Join(known, ", ")
}

// typoByPrefix: a and b agree on at least 4 bytes and on all but the last
// byte of the shorter.
func typoByPrefix(a, b string) bool {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n >= 4 && n >= min(len(a), len(b))-1
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// typeErrRe reads the decoder's "line N: cannot unmarshal !!str `abc` into
// int" (a value longer than 10 bytes is shortened to 7 and "...").
var typeErrRe = regexp.MustCompile("^line ([0-9]+): (.*?`([^`]*)`.*)$")

// locate turns one of the decoder's messages into a FieldError naming the
// field: the scalar on that line with that value, when there is exactly
// one (several values share a line in flow style: {id: n1, ...}).
func (w *keyWalker) locate(msg string) error {
	m := typeErrRe.FindStringSubmatch(msg)
	if m == nil {
		return errors.New(msg)
	}
	line, _ := strconv.Atoi(m[1])
	value, short := strings.CutSuffix(m[3], "...")
	var found []string
	for _, s := range w.scalars {
		if s.line == line && (s.value == value || short && strings.HasPrefix(s.value, value)) {
			found = append(found, s.path)
		}
	}
	if len(found) != 1 {
		return errors.New(msg)
	}
	return &FieldError{Line: line, Field: found[0], Problem: m[2]}
}

// placed gives each FieldError of errs the line of its field, or of the
// nearest enclosing one the file states (nodes[1] for a missing
// nodes[1].id), and orders them by line; problems of fields the file does
// not state come last.
func placed(errs []error, lines map[string]int) []error {
	for _, err := range errs {
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Line > 0 {
			continue
		}
		for p := fe.Field; p != ""; p = parentPath(p) {
			if l, ok := lines[p]; ok {
				fe.Line = l
				break
			}
		}
	}
	lineOf := func(err error) int {
		var fe *FieldError
		if errors.As(err, &fe) && fe.Line > 0 {
			return fe.Line
		}
		return int(^uint(0) >> 1)
	}
	slices.SortStableFunc(errs, func(a, b error) int { return cmp.Compare(lineOf(a), lineOf(b)) })
	return errs
}

// parentPath is the path one level up: nodes[1].id -> nodes[1] -> nodes.
func parentPath(p string) string {
	if i := strings.LastIndexAny(p, ".["); i > 0 {
		return p[:i]
	}
	return ""
}
