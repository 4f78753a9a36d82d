package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/fishgate/fishgate/app/config"
)

// TestReadyzHidesRedisAddress: the unauthenticated readiness probe says
// Redis is unavailable without naming its address (issue 10, item 7).
func TestReadyzHidesRedisAddress(t *testing.T) {
	m := miniredis.RunT(t)
	addr := m.Addr()
	g := startTestGateway(t, func(c *config.Config) { c.RedisURL = "redis://" + addr })
	m.Close()
	resp, err := http.Get(g.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(b), addr) || strings.Contains(string(b), "127.0.0.1") {
		t.Errorf("/readyz with Redis down: %d %q", resp.StatusCode, b)
	}
}
