package redisproc

import (
	"fmt"
	"net"
	"testing"
)

// TestFreePortBelowEphemeralRange: the ports given to servers are never
// ones the kernel could hand to someone else meanwhile, and are free.
func TestFreePortBelowEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	if low-10000 < 1000 {
		t.Skipf("ephemeral range starts at %d: no room below it, the kernel picks", low)
	}
	seen := map[int]bool{}
	for range 20 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if port < 10000 || port >= low {
			t.Fatalf("port %d outside [10000, %d)", port, low)
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatalf("port %d not free: %v", port, err)
		}
		ln.Close()
		seen[port] = true
	}
	if len(seen) < 15 {
		t.Errorf("20 draws gave only %d ports: not drawn at random", len(seen))
	}
}
