package gateway

import (
	"context"
	"net"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestNodeListenerOnLoopback: with loopback node addresses only, the
// wildcard listener is bound to lo (SO_BINDTODEVICE), and takes a
// connection to any 127/8 address, naming it as the local address.
func TestNodeListenerOnLoopback(t *testing.T) {
	l, err := listenNodes(context.Background(), ":0", true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	raw, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var dev string
	var gerr error
	raw.Control(func(fd uintptr) {
		dev, gerr = unix.GetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
	})
	if gerr != nil || dev != "lo" {
		t.Fatalf("SO_BINDTODEVICE %q (%v), want lo", dev, gerr)
	}
	accepted := make(chan net.Addr, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c.LocalAddr()
		c.Close()
	}()
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.10.77", strconv.Itoa(l.Addr().(*net.TCPAddr).Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	la, _ := (<-accepted).(*net.TCPAddr)
	if la == nil || la.AddrPort().Addr().Unmap().String() != "127.0.10.77" {
		t.Errorf("local address of the accepted connection %v, want 127.0.10.77", la)
	}
}
