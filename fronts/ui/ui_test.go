package ui_test

import (
	"io/fs"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/fishgate/fishgate/fronts/ui"
)

// TestSecurityHeaders: every answer of the page's handler (files, a
// missing file, a refused method) carries the Content-Security-Policy
// and the other security headers; /ui goes to /ui/; files have their
// types.
func TestSecurityHeaders(t *testing.T) {
	h := ui.Handler()
	for _, c := range []struct {
		method, path string
		status       int
		ctype        string
	}{
		{"GET", "/ui/", 200, "text/html"},
		{"GET", "/ui/app.js", 200, "text/javascript"},
		{"GET", "/ui/app.css", 200, "text/css"},
		{"HEAD", "/ui/api.js", 200, "text/javascript"},
		{"GET", "/ui/missing.js", 404, ""},
		{"POST", "/ui/", 405, ""},
		{"GET", "/ui", 301, ""},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		hd := rec.Header()
		if rec.Code != c.status {
			t.Errorf("%s %s: status %d, want %d", c.method, c.path, rec.Code, c.status)
		}
		if c.ctype != "" && !strings.HasPrefix(hd.Get("Content-Type"), c.ctype) {
			t.Errorf("%s %s: Content-Type %q, want %s", c.method, c.path, hd.Get("Content-Type"), c.ctype)
		}
		csp := hd.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s %s: Content-Security-Policy %q lacks %s", c.method, c.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("%s %s: Content-Security-Policy %q allows unsafe sources", c.method, c.path, csp)
		}
		if hd.Get("X-Content-Type-Options") != "nosniff" || hd.Get("X-Frame-Options") != "DENY" || hd.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s %s: security headers missing: %v", c.method, c.path, hd)
		}
		if c.status == 301 && hd.Get("Location") != "/ui/" {
			t.Errorf("GET /ui: Location %q, want /ui/", hd.Get("Location"))
		}
	}
}

// TestNoInlineCode: the page has no inline script, no event handler
// attribute and no style attribute (the policy would block them), and
// loads nothing from another origin.
func TestNoInlineCode(t *testing.T) {
	inline := regexp.MustCompile(`(?i)<script(?:[^>]*)>\s*[^<\s]|\son[a-z]+\s*=|\sstyle\s*=|(?:src|href)\s*=\s*"(?:https?:)?//`)
	err := fs.WalkDir(os.DirFS("static"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".html") {
			return err
		}
		b, err := os.ReadFile("static/" + p)
		if err != nil {
			return err
		}
		if m := inline.Find(b); m != nil {
			t.Errorf("%s: %q: inline code or another origin", p, m)
		}
		if !strings.Contains(string(b), `<script type="module" src="app.js"></script>`) {
			t.Errorf("%s: does not load app.js as a module", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
