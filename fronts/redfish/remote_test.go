package redfish_test

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/fronts/redfish"
	"github.com/fishgate/fishgate/internal/testkit"
)

// TestRemoteIsTheSocketAddress: the client address logged (and given to
// the serializer for audit) is the socket's, whatever X-Forwarded-For or
// X-Real-IP say, unless the peer is a configured trusted proxy.
func TestRemoteIsTheSocketAddress(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		logs := &testkit.SyncBuffer{}
		e := newEnvWith(t, testkit.MiniRedis(t), time.Minute, envConfig{nodes: 1, tune: func(o *redfish.Options) {
			o.Logger = slog.New(slog.NewTextHandler(logs, nil))
			if trusted {
				o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			}
		}})
		hdr := map[string]string{"Content-Type": "application/json", "X-Forwarded-For": "203.0.113.9", "X-Real-IP": "198.51.100.7"}
		r := e.raw("POST", "/redfish/v1/SessionService/Sessions", strings.NewReader(`{"UserName":"admin","Password":"s3cret"}`), hdr, true)
		if r.Status != http.StatusCreated {
			t.Fatalf("login: %d %s", r.Status, r.Body)
		}
		out := logs.String()
		want, not := "remote=127.0.0.1", "remote=203.0.113.9"
		if trusted {
			want, not = not, want
		}
		if !strings.Contains(out, want) || strings.Contains(out, not) || strings.Contains(out, "198.51.100.7") {
			t.Errorf("trusted proxies %v: want %s in the log, not %s:\n%s", trusted, want, not, out)
		}
	}
}
