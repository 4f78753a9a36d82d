package redfish_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
)

// TestRequestBodiesMustBeJSON: a POST, PATCH or PUT body that is not
// application/json is 415 (a browser can send text/plain, forms and
// untyped bodies cross-origin with Basic credentials it holds: CSRF);
// application/json with parameters is fine, and so is a body-less POST
// without a Content-Type.
func TestRequestBodiesMustBeJSON(t *testing.T) {
	e := newEnv(t, testkit.MiniRedis(t), 1, time.Minute)
	reset := "/redfish/v1/Systems/node1/Actions/ComputerSystem.Reset"
	for _, ct := range []string{"text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "application/jsonx", "nonsense/"} {
		hdr := map[string]string{}
		if ct != "" {
			hdr["Content-Type"] = ct
		}
		r := e.raw("POST", reset, strings.NewReader(`{"ResetType":"On"}`), hdr, false)
		if r.Status != http.StatusUnsupportedMediaType || r.messageID(t) != "Base.1.22.HeaderInvalid" {
			t.Errorf("POST Reset with Content-Type %q: %d %s, want 415", ct, r.Status, r.Body)
		}
		r = e.raw("PATCH", "/redfish/v1/Systems/node1", strings.NewReader(`{"Boot":{"BootSourceOverrideTarget":"Pxe"}}`), hdr, false)
		if r.Status != http.StatusUnsupportedMediaType {
			t.Errorf("PATCH with Content-Type %q: %d %s, want 415", ct, r.Status, r.Body)
		}
		r = e.raw("POST", "/redfish/v1/SessionService/Sessions", strings.NewReader(`{"UserName":"admin","Password":"s3cret"}`), hdr, true)
		if r.Status != http.StatusUnsupportedMediaType {
			t.Errorf("login with Content-Type %q: %d %s, want 415", ct, r.Status, r.Body)
		}
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"} {
		r := e.raw("POST", reset, strings.NewReader(`{"ResetType":"On"}`), map[string]string{"Content-Type": ct}, false)
		if r.Status != http.StatusAccepted {
			t.Errorf("POST Reset with Content-Type %q: %d %s, want 202", ct, r.Status, r.Body)
		}
	}
	// No body, no type: not a media-type question (Reset then lacks its parameter).
	r := e.raw("POST", reset, nil, nil, false)
	if r.Status != http.StatusBadRequest || r.messageID(t) != "Base.1.22.MalformedJSON" {
		t.Errorf("body-less POST: %d %s, want 400 MalformedJSON", r.Status, r.Body)
	}
}
