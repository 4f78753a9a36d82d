package testkit

import (
	"net"
	"strconv"
	"testing"
)

// RefusedAddr is a loopback TCP address that refuses connections for the
// whole test. Closing a listener and reusing its port is racy (a test
// running beside may bind it); instead the port is held on 127.0.0.1,
// which keeps anyone else from binding it there or on every address, and
// the address returned is 127.0.0.2 with that port, where nothing listens.
func RefusedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return net.JoinHostPort("127.0.0.2", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
}
