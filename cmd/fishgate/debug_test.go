package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

var pprofURLRe = regexp.MustCompile(`pprof serving" url=(\S+)`)

// TestServeDebugListen (issue 14 item 3): with debug_listen the profiles
// are answered on that listener, and the API's listener answers 404 for
// them (with credentials, so that it is not a 401 hiding them); the hidden
// --pprof flag is the same setting; a non-loopback debug_listen is a
// configuration error.
func TestServeDebugListen(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		args       []string
	}{
		{"debug_listen", "debug_listen: 127.0.0.1:0\n", nil},
		{"--pprof", "", []string{"--pprof", "127.0.0.1:0"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startServe(t, append([]string{"--config", writeConfig(t, t.TempDir(), c.yaml), "--insecure-http"}, c.args...)...)
			m := pprofURLRe.FindStringSubmatch(s.logs.String())
			if m == nil {
				t.Fatalf("no pprof listener logged:\n%s", s.logs.String())
			}
			if strings.HasPrefix(m[1], s.url) {
				t.Fatalf("profiles served on the API's listener %s: %s", s.url, m[1])
			}
			status, body := get(t, m[1]+"goroutine?debug=1", "")
			if status != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
				t.Errorf("GET goroutine profile on debug_listen: %d %.200q", status, body)
			}
			for _, p := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/profile?seconds=1"} {
				if status, _ := get(t, s.url+p, "pw"); status != http.StatusNotFound {
					t.Errorf("GET %s on the API port: %d, want 404", p, status)
				}
			}
		})
	}
	t.Run("without it", func(t *testing.T) {
		s := startServe(t, "--config", writeConfig(t, t.TempDir(), ""), "--insecure-http")
		if strings.Contains(s.logs.String(), "pprof") {
			t.Errorf("profiles served though not asked for:\n%s", s.logs.String())
		}
		if status, _ := get(t, s.url+"/debug/pprof/", "pw"); status != http.StatusNotFound {
			t.Errorf("GET /debug/pprof/ on the API port: %d, want 404", status)
		}
	})
	code, _, stderr := runCLI(t, "serve", "--config", writeConfig(t, t.TempDir(), "debug_listen: 0.0.0.0:6060\n"))
	if code != 2 || !strings.Contains(stderr, "debug_listen: ") || !strings.Contains(stderr, "loopback") {
		t.Errorf("debug_listen 0.0.0.0:6060: exit %d %q, want 2 naming the field", code, stderr)
	}
}

// get GETs u (as admin with password pw, if pw is set) and returns the
// status and body.
func get(t *testing.T, u, pw string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pw != "" {
		req.SetBasicAuth("admin", pw)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
