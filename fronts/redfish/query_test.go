package redfish_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fishgate/fishgate/fronts/redfish"
	"github.com/fishgate/fishgate/internal/testkit"
)

// messageIDs are every @Message.ExtendedInfo MessageId of an error body.
func (r response) messageIDs(t testing.TB) []string {
	t.Helper()
	var e struct {
		Error struct {
			Info []struct {
				MessageID string `json:"MessageId"`
			} `json:"@Message.ExtendedInfo"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Fatalf("not a Redfish error body (%v): %s", err, r.Body)
	}
	var ids []string
	for _, i := range e.Error.Info {
		ids = append(ids, i.MessageID)
	}
	return ids
}

// TestUnsupportedQueryParameters501: $expand (except on Systems), $select, $filter, $top,
// $skip (except on the paged collections), only and excerpt answer 501 QueryNotSupported naming the
// parameter (DSP0266 §7.3), in both views; other parameters are ignored;
// SSE's $filter and the pass-through's query (the BMC's to interpret) are
// not refused.
func TestUnsupportedQueryParameters501(t *testing.T) {
	var seenQuery string
	var mu sync.Mutex
	e := newEnvWith(t, testkit.MiniRedis(t), time.Minute, envConfig{nodes: 1,
		passthrough: func(ctx context.Context, node string) (http.Handler, error) {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				seenQuery = r.URL.RawQuery
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{}`))
			}), nil
		}})
	for _, q := range []string{"$expand=.", "$expand=*($levels=2)", "$select=PowerState", "$filter=PowerState%20eq%20On", "$top=1", "$skip=1", "only", "excerpt", "$levels=1"} {
		for _, p := range []string{"/redfish/v1/Systems", "/redfish/v1/Systems/node1", "/redfish/v1", "/bmc/node1/redfish/v1/Systems"} {
			if paged := strings.HasSuffix(p, "/Systems") && (strings.HasPrefix(q, "$top") || strings.HasPrefix(q, "$skip")); paged {
				continue // Systems is paged by them (TestCollectionsArePaged)
			}
			if strings.HasSuffix(p, "/Systems") && strings.HasPrefix(q, "$expand") {
				continue // Systems expands its members (TestSystemsExpand)
			}
			r := e.do("GET", p+"?"+q, "")
			if r.Status != http.StatusNotImplemented {
				t.Errorf("GET %s?%s: %d, want 501: %s", p, q, r.Status, r.Body)
				continue
			}
			ids := r.messageIDs(t)
			name, _, _ := strings.Cut(q, "=")
			if len(ids) < 2 || ids[0] != "Base.1.22.QueryNotSupported" || ids[1] != "Base.1.22.QueryParameterUnsupported" ||
				!strings.Contains(string(r.Body), "'"+name+"'") {
				t.Errorf("GET %s?%s: messages %v: %s", p, q, ids, r.Body)
			}
		}
	}
	if r := e.do("GET", "/redfish/v1/Systems/node1?foo=bar&x", ""); r.Status != http.StatusOK {
		t.Errorf("unknown non-$ parameter: %d, want 200 (ignored): %s", r.Status, r.Body)
	}
	// SSE implements $filter: it passes the check (this env has no
	// EventService, so the route itself answers 404).
	if r := e.do("GET", "/redfish/v1/EventService/SSE?$filter=MessageId%20eq%20'x'", ""); r.Status == http.StatusNotImplemented {
		t.Errorf("SSE $filter refused: %s", r.Body)
	}
	if r := e.do("GET", "/redfish/v1/EventService/SSE?$top=1", ""); r.Status != http.StatusNotImplemented {
		t.Errorf("SSE $top: %d, want 501", r.Status)
	}
	// The log entry collections follow their nextLink's $skiptoken.
	for _, p := range []string{"/redfish/v1/Managers/" + redfish.GatewayManager + "/LogServices/Audit/Entries", "/redfish/v1/Systems/node1/LogServices/PowerActions/Entries"} {
		if r := e.do("GET", p+"?$skiptoken=1-0", ""); r.Status != http.StatusOK {
			t.Errorf("GET %s?$skiptoken: %d, want 200: %s", p, r.Status, r.Body)
		}
		if r := e.do("GET", p+"?$top=1", ""); r.Status != http.StatusNotImplemented {
			t.Errorf("GET %s?$top: %d, want 501", p, r.Status)
		}
	}
	if r := e.do("GET", "/redfish/v1/Systems/node1/Bios?$select=Attributes", ""); r.Status != http.StatusOK || seenQuery != "$select=Attributes" {
		t.Errorf("pass-through query: %d, BMC saw %q: %s", r.Status, seenQuery, r.Body)
	}
}
