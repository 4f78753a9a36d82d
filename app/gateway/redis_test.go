package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestEmbeddedRedisNeedsPassword: the embedded Redis's loopback port
// refuses a client without the gateway's random password (any local user
// could otherwise read and forge session tokens), while the gateway,
// which has it, serves.
func TestEmbeddedRedisNeedsPassword(t *testing.T) {
	g := startTestGateway(t, nil)
	if g.redis.Embedded == nil {
		t.Fatal("no embedded Redis")
	}
	c := redis.NewClient(&redis.Options{Addr: g.redis.Embedded.Addr(), MaxRetries: -1})
	defer c.Close()
	for _, cmd := range [][]any{{"KEYS", "*"}, {"SET", "fg:forged", "x"}} {
		if err := c.Do(context.Background(), cmd...).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
			t.Errorf("%v without the password: %v; want NOAUTH", cmd, err)
		}
	}
	if st := get(t, http.DefaultClient, g, "/redfish/v1/SessionService/Sessions"); st != http.StatusOK {
		t.Errorf("the gateway on its embedded Redis: GET Sessions %d", st)
	}
	if st := get(t, http.DefaultClient, g, "/readyz"); st != http.StatusOK {
		t.Errorf("/readyz %d", st)
	}
}
