package ipmibmc

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
)

// Node addresses of the shared-socket tests: 127.0.0.0/8 routes to lo on
// Linux, so they need no set-up.
var (
	addrA  = netip.MustParseAddr("127.0.10.2")
	addrB  = netip.MustParseAddr("127.0.10.3")
	addrNo = netip.MustParseAddr("127.0.10.9") // no node's
)

func startShared(t *testing.T, cfg SharedConfig) *Shared {
	t.Helper()
	m, err := ListenShared(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Serve(context.Background()) }()
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return m
}

func addNode(t *testing.T, m *Shared, a netip.Addr, f *fakeTarget) *Route {
	t.Helper()
	r, err := m.Add(a, Config{Name: a.String(), User: testUser, Password: testPass}, f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sharedTool(m *Shared, a netip.Addr) testkit.IPMITarget {
	return testkit.IPMITarget{Addr: net.JoinHostPort(a.String(), strconv.Itoa(m.Port())), User: testUser, Password: testPass}
}

// asfPing is an RMCP/ASF Presence Ping (ASF 2.0 §3.2.4.1): RMCP header
// (version 6, sequence ff, class ASF), IANA 4542, type 80h, tag 7.
var asfPing = []byte{0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x07, 0x00, 0x00}

// ping sends a Presence Ping to a:port from a socket connected to it (so
// that the kernel hands it only an answer from a:port) and reports whether
// a Presence Pong came back within wait (a bound, not a measurement).
func ping(t *testing.T, a netip.Addr, port int, wait time.Duration) bool {
	t.Helper()
	c, err := net.Dial("udp", net.JoinHostPort(a.String(), strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(asfPing); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	// Pong: ASF message type 40h, the ping's tag.
	return err == nil && n >= 10 && buf[8] == 0x40 && buf[9] == 0x07
}

// TestSharedSocketRoutesByDestination: one socket, two node addresses;
// ipmitool at each address reaches that node's target only, and answers
// come from the address asked (ipmitool, on a socket connected to it,
// would see nothing otherwise).
func TestSharedSocketRoutesByDestination(t *testing.T) {
	m := startShared(t, SharedConfig{})
	fa, fb := &fakeTarget{on: true}, &fakeTarget{}
	addNode(t, m, addrA, fa)
	addNode(t, m, addrB, fb)

	var wg sync.WaitGroup
	var outA, outB string
	wg.Go(func() { outA = testkit.MustIpmitool(t, sharedTool(m, addrA), "chassis", "power", "status") })
	wg.Go(func() { outB = testkit.MustIpmitool(t, sharedTool(m, addrB), "chassis", "power", "status") })
	wg.Wait()
	if outA != "Chassis Power is on" || outB != "Chassis Power is off" {
		t.Fatalf("power status: A %q, B %q", outA, outB)
	}
	testkit.MustIpmitool(t, sharedTool(m, addrA), "chassis", "power", "off")
	testkit.MustIpmitool(t, sharedTool(m, addrB), "chassis", "power", "on")
	if got := fa.Calls(); !slices.Equal(got, []string{"control power down"}) {
		t.Errorf("node A's calls: %q", got)
	}
	if got := fb.Calls(); !slices.Equal(got, []string{"control power up"}) {
		t.Errorf("node B's calls: %q", got)
	}
	if st := m.Stats(); st.Addresses != 2 || st.Open != 2 || st.Unrouted != 0 {
		t.Errorf("stats: %+v", st)
	}

	// An address that is no node's: dropped and counted, not answered.
	if unrouted(t, m, addrNo) {
		t.Error("a packet to no node's address was answered")
	}
}

// unrouted sends a Presence Ping to a, waits until m counts it dropped as
// no node's, and reports whether an answer came anyway.
func unrouted(t *testing.T, m *Shared, a netip.Addr) (answered bool) {
	t.Helper()
	before := m.Stats().Unrouted
	c, err := net.Dial("udp", net.JoinHostPort(a.String(), strconv.Itoa(m.Port())))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(asfPing); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the packet counted as unrouted", func() (bool, string) {
		st := m.Stats()
		return st.Unrouted == before+1, fmt.Sprintf("%+v", st)
	})
	_ = c.SetReadDeadline(time.Now())
	_, err = c.Read(make([]byte, 64))
	return err == nil
}

// TestSharedSessionsPerNode: a session opened at node A's address lives in
// A's session store only; B's stays empty, so no packet to B can use it.
func TestSharedSessionsPerNode(t *testing.T) {
	m := startShared(t, SharedConfig{})
	ra := addNode(t, m, addrA, &fakeTarget{})
	rb := addNode(t, m, addrB, &fakeTarget{})
	if !ping(t, addrB, m.Port(), 5*time.Second) {
		t.Fatal("no pong from B")
	}
	c, err := dialClient(t, ra.Addr().String(), testPass, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetChassisStatus(context.Background()); err != nil {
		t.Fatal(err)
	}
	count := func(r *Route) int {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.ep == nil {
			return -1
		}
		return r.ep.srv.bmc.Sessions.Count()
	}
	if a, b := count(ra), count(rb); a != 1 || b != 0 {
		t.Errorf("sessions: A %d, B %d; want 1 and 0", a, b)
	}
}

// TestSharedAddRemoveIdle: addresses come and go on a running socket;
// an idle node's endpoint closes and opens again at its next packet.
func TestSharedAddRemoveIdle(t *testing.T) {
	m := startShared(t, SharedConfig{})
	ra := addNode(t, m, addrA, &fakeTarget{})
	if _, err := m.Add(addrA, Config{User: testUser, Password: testPass}, &fakeTarget{}); err == nil {
		t.Error("a second node at the same address accepted")
	}
	if _, err := m.Add(addrB, Config{User: testUser}, &fakeTarget{}); err == nil {
		t.Error("a node without a password accepted")
	}
	if _, err := m.Add(netip.MustParseAddr("::1"), Config{User: testUser, Password: testPass}, &fakeTarget{}); err == nil {
		t.Error("an IPv6 address accepted without the IPv6 socket")
	}
	if st := m.Stats(); st.Addresses != 1 || st.Open != 0 {
		t.Fatalf("before any packet: %+v (endpoints open at the first packet)", st)
	}
	if !ping(t, addrA, m.Port(), 5*time.Second) {
		t.Fatal("no pong from A")
	}
	if st := m.Stats(); st.Open != 1 {
		t.Fatalf("after a packet: %+v", st)
	}
	m.reapIdle(time.Now().Add(-time.Hour)) // A's packet is newer: stays
	if st := m.Stats(); st.Open != 1 {
		t.Fatalf("reaped a busy endpoint: %+v", st)
	}
	m.reapIdle(time.Now().Add(time.Second))
	if st := m.Stats(); st.Open != 0 {
		t.Fatalf("idle endpoint not closed: %+v", st)
	}
	if out := testkit.MustIpmitool(t, sharedTool(m, addrA), "chassis", "power", "status"); out != "Chassis Power is off" {
		t.Fatalf("after the idle close: %q", out)
	}

	rb := addNode(t, m, addrB, &fakeTarget{on: true})
	if out := testkit.MustIpmitool(t, sharedTool(m, addrB), "chassis", "power", "status"); out != "Chassis Power is on" {
		t.Fatalf("added B: %q", out)
	}
	ra.Close()
	if unrouted(t, m, addrA) {
		t.Error("removed address A still answers")
	}
	if st := m.Stats(); st.Addresses != 1 {
		t.Errorf("after removing A: %+v", st)
	}
	// A new node takes A's address; closing the old Route again leaves it.
	addNode(t, m, addrA, &fakeTarget{on: true})
	ra.Close()
	if !ping(t, addrA, m.Port(), 5*time.Second) {
		t.Error("the stale Route's Close removed the new node at A")
	}
	rb.Close()
}

// TestSharedIPv6: the IPv6 socket answers at an IPv6 node address from
// that address.
func TestSharedIPv6(t *testing.T) {
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		c.Close()
	}
	m := startShared(t, SharedConfig{IPv6: true})
	v6 := netip.MustParseAddr("::1")
	addNode(t, m, v6, &fakeTarget{on: true})
	addNode(t, m, addrA, &fakeTarget{})
	if !ping(t, v6, m.Port(), 5*time.Second) {
		t.Fatal("no pong at [::1]")
	}
	if out := testkit.MustIpmitool(t, sharedTool(m, v6), "chassis", "power", "status"); out != "Chassis Power is on" {
		t.Errorf("[::1]: %q", out)
	}
	if out := testkit.MustIpmitool(t, sharedTool(m, addrA), "chassis", "power", "status"); out != "Chassis Power is off" {
		t.Errorf("%s: %q", addrA, out)
	}
}

// FuzzSharedDispatch feeds packets to any destination address through the
// shared socket's dispatch (the destination the kernel reports, then the
// node's guarded endpoint): nothing may panic, a packet to an address that
// is no node's is never answered, and an answer leaves from the address
// the packet was sent to.
func FuzzSharedDispatch(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add([]byte{127, 0, 10, 2}, seed.pkt)
		f.Add([]byte{127, 0, 10, 9}, seed.pkt)
	}
	f.Add(addrB.AsSlice(), asfPing)
	f.Add(netip.MustParseAddr("::ffff:127.0.10.3").AsSlice(), asfPing)
	f.Add([]byte{}, asfPing)
	f.Fuzz(func(t *testing.T, dst []byte, pkt []byte) {
		m := &Shared{log: slog.New(slog.DiscardHandler), routes: map[netip.Addr]*Route{}, done: make(chan struct{}), port: 623}
		type sent struct{ src netip.Addr }
		out := make(chan sent, 64)
		m.send = func(_ []byte, src netip.Addr, _ net.Addr) error {
			select {
			case out <- sent{src}:
			default:
			}
			return nil
		}
		for _, a := range []netip.Addr{addrA, addrB} {
			if _, err := m.Add(a, Config{User: testUser, Password: testPass, CipherSuites: fuzzCipherSuites}, &fakeTarget{}); err != nil {
				t.Fatal(err)
			}
		}
		to, _ := netip.AddrFromSlice(dst)
		to = to.Unmap()
		from := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40000}
		m.deliver(to, pkt, from)
		// A pong answers synchronously on the endpoint's goroutine: wait
		// for it when the packet is a ping to a node.
		if (to == addrA || to == addrB) && bytes.Equal(pkt, asfPing) {
			select {
			case s := <-out:
				if s.src != to {
					t.Errorf("answer to a packet for %s sent from %s", to, s.src)
				}
			case <-time.After(10 * time.Second):
				t.Error("no pong")
			}
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		for len(out) > 0 {
			if s := <-out; s.src != addrA && s.src != addrB {
				t.Errorf("an answer from %s, no node's address", s.src)
			}
		}
		if to != addrA && to != addrB && m.unrouted.Load() != 1 {
			t.Errorf("a packet to %v not counted as unrouted", to)
		}
	})
}
