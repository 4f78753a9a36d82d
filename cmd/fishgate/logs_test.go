package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestServeLogFormatJSON: with --log-format json every line on stderr is
// a JSON object, and a request's access line carries the request id the
// client sent, route, status and user; an unknown format is a usage error.
func TestServeLogFormatJSON(t *testing.T) {
	s := startServe(t, "--config", writeConfig(t, t.TempDir(), ""), "--insecure-http", "--log-format", "json")
	req, _ := http.NewRequest(http.MethodGet, s.url+"/redfish/v1/Systems", nil)
	req.SetBasicAuth("admin", "pw")
	req.Header.Set("X-Request-Id", "cli-log-test-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s.stop()
	found := false
	for line := range strings.Lines(s.logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON line: %q (%v)", line, err)
		}
		if rec["msg"] == "http request" && rec["request_id"] == "cli-log-test-1" {
			found = rec["route"] == "/redfish/v1/Systems" && rec["status"] == float64(200) && rec["user"] == "admin"
		}
	}
	if !found {
		t.Errorf("no access line with the request's id, route, status and user:\n%s", s.logs.String())
	}
	if code, _, stderr := runCLI(t, "serve", "--config", writeConfig(t, t.TempDir(), ""), "--log-format", "xml"); code != 2 || !strings.Contains(stderr, "--log-format") {
		t.Errorf("--log-format xml: exit %d %q, want 2 naming the flag", code, stderr)
	}
}
