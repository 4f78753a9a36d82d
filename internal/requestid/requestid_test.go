package requestid

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for id, want := range map[string]bool{
		"abc-123_x.y:z/1":        true,
		strings.Repeat("a", 128): true,
		strings.Repeat("a", 129): false,
		"":                       false,
		"a b":                    false,
		"a\nb":                   false,
		"a\x7f":                  false,
		"ü":                      false,
	} {
		if got := Valid(id); got != want {
			t.Errorf("Valid(%q) = %v, want %v", id, got, want)
		}
	}
	if id := New(); !Valid(id) || len(id) != 32 || id == New() {
		t.Errorf("New() = %q: want 32 hex digits, new each time", id)
	}
}

// TestLoggerAddsTheContextsID: records logged with a context carrying an
// id name it, others do not, and wrapping twice adds it once.
func TestLoggerAddsTheContextsID(t *testing.T) {
	var buf bytes.Buffer
	log := Logger(Logger(slog.New(slog.NewTextHandler(&buf, nil)))).With("node", "n1")
	log.InfoContext(With(context.Background(), "r-1"), "with")
	log.InfoContext(context.Background(), "without")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || strings.Count(lines[0], "request_id=r-1") != 1 || !strings.Contains(lines[0], "node=n1") ||
		strings.Contains(lines[1], "request_id") {
		t.Errorf("log:\n%s", buf.String())
	}
}

// TestTransportSendsTheID: the context's id goes out in X-Request-Id; the
// caller's request is left as it was.
func TestTransportSendsTheID(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get(Header))
	}))
	defer srv.Close()
	c := &http.Client{Transport: Transport(http.DefaultTransport)}
	req, _ := http.NewRequestWithContext(With(context.Background(), "r-2"), http.MethodGet, srv.URL, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.Header.Get(Header) != "" {
		t.Error("Transport changed the caller's request")
	}
	req, _ = http.NewRequest(http.MethodGet, srv.URL, nil)
	if resp, err = c.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(got) != 2 || got[0] != "r-2" || got[1] != "" {
		t.Errorf("server saw request ids %q, want [r-2 \"\"]", got)
	}
}
