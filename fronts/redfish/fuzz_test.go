package redfish_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
)

// FuzzRequestBodies throws arbitrary bodies at every endpoint that decodes
// one. Whatever arrives, the answer is a 2xx or a 4xx with a Redfish error
// body: never a panic, never a 5xx.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []string{
		`{"ResetType":"On"}`, `{"ResetType":"ForceOff"}`, `{"ResetType":5}`, `{"ResetType":null}`,
		`{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}`,
		`{"Boot":{"BootSourceOverrideMode":"UEFI"}}`, `{"Boot":null}`, `{"Boot":[]}`,
		`{"UserName":"admin","Password":"s3cret"}`, `{"UserName":1}`,
		``, `{`, `[]`, `null`, `"x"`, `{"a":{"b":{"c":[1,2,{"d":"\u0000"}]}}}`, "{\"ResetType\":\"On\"}\x00",
	} {
		for path := range uint8(3) {
			f.Add(path, s)
		}
	}
	e := newEnv(f, testkit.MiniRedis(f), 1, time.Minute)
	handler := e.srv.Config.Handler
	paths := []struct{ method, path string }{
		{"POST", "/redfish/v1/Systems/node1/Actions/ComputerSystem.Reset"},
		{"PATCH", "/redfish/v1/Systems/node1"},
		{"POST", "/redfish/v1/SessionService/Sessions"},
	}
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		p := paths[int(which)%len(paths)]
		req := httptest.NewRequest(p.method, p.path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(adminUser, adminPass)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		requireFuzzAnswer(t, p.method+" "+p.path, body, rec)
	})
}

// requireFuzzAnswer fails unless rec is a 2xx or 3xx, or a 4xx with a Base
// registry error body; never a 5xx; JSON whenever there is a body.
func requireFuzzAnswer(t *testing.T, what, body string, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("%s %q: status %d: %s", what, body, rec.Code, rec.Body)
	}
	if rec.Code >= 400 {
		var e struct {
			Error struct {
				Info []struct {
					MessageID string `json:"MessageId"`
				} `json:"@Message.ExtendedInfo"`
			} `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || len(e.Error.Info) == 0 || !strings.HasPrefix(e.Error.Info[0].MessageID, "Base.1.22.") {
			t.Fatalf("%s %q: %d without a Base registry error body: %s", what, body, rec.Code, rec.Body)
		}
	}
	if rec.Code != http.StatusNoContent && rec.Code != http.StatusNotModified && !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("%s %q: %d with a non-JSON body: %s", what, body, rec.Code, rec.Body)
	}
}
