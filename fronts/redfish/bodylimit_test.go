package redfish_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
)

// raw sends a request with exactly the given headers (no Content-Type is
// added) and Basic admin credentials unless hdr has Authorization or
// X-Auth-Token, or noCreds is set.
func (e *env) raw(method, path string, body io.Reader, hdr map[string]string, noCreds bool) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if !noCreds && req.Header.Get("Authorization") == "" && req.Header.Get("X-Auth-Token") == "" {
		req.SetBasicAuth(adminUser, adminPass)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// TestUnauthenticatedBodyCap: a login body, or any body without
// credentials, is at most 4 KiB (413 past it, by Content-Length or as it is
// read); an authenticated request keeps max_body_bytes.
func TestUnauthenticatedBodyCap(t *testing.T) {
	e := newEnv(t, testkit.MiniRedis(t), 1, time.Minute)
	json := map[string]string{"Content-Type": "application/json"}
	padded := func(n int, obj string) string { // obj with leading spaces, n bytes in all
		return strings.Repeat(" ", n-len(obj)) + obj
	}
	login := `{"UserName":"admin","Password":"s3cret"}`
	if r := e.raw("POST", "/redfish/v1/SessionService/Sessions", strings.NewReader(padded(4096, login)), json, true); r.Status != http.StatusCreated {
		t.Errorf("4096-byte login: %d %s, want 201", r.Status, r.Body)
	}
	for _, creds := range []bool{false, true} { // a login is capped with credentials too
		hdr := map[string]string{"Content-Type": "application/json"}
		if creds {
			hdr["Authorization"] = "Basic YWRtaW46czNjcmV0"
		}
		r := e.raw("POST", "/redfish/v1/SessionService/Sessions", strings.NewReader(padded(4097, login)), hdr, true)
		if r.Status != http.StatusRequestEntityTooLarge || r.messageID(t) != "Base.1.22.PayloadTooLarge" {
			t.Errorf("4097-byte login (credentials %v): %d %s, want 413", creds, r.Status, r.Body)
		}
		// Without a Content-Length (chunked), refused as it is read.
		r = e.raw("POST", "/redfish/v1/SessionService/Sessions", io.MultiReader(strings.NewReader(padded(60000, login))), hdr, true)
		if r.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked 60000-byte login (credentials %v): %d %s, want 413", creds, r.Status, r.Body)
		}
	}
	if r := e.raw("PATCH", "/redfish/v1/Systems/node1", strings.NewReader(padded(20000, `{}`)), json, true); r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("20000-byte body without credentials: %d, want 413", r.Status)
	}
	// Authenticated: 20000 bytes are within max_body_bytes (64 KiB).
	r := e.raw("PATCH", "/redfish/v1/Systems/node1", strings.NewReader(padded(20000, `{"Boot":{"BootSourceOverrideTarget":"Nonsense"}}`)), json, false)
	if r.Status != http.StatusBadRequest || r.messageID(t) != "Base.1.22.PropertyValueNotInList" {
		t.Errorf("20000-byte authenticated PATCH: %d %s, want 400 PropertyValueNotInList", r.Status, r.Body)
	}
}
