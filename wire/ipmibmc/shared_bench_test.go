package ipmibmc

import (
	"context"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// benchAddrs is the node count of the memory benchmarks (issue 16).
const benchAddrs = 10000

// benchAddr is node i's address, 127.1.0.1 upwards (127/8 is on lo).
func benchAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, byte((i + 1) >> 8), byte(i + 1)})
}

// memNow is the live heap after a collection, in MiB, and the open file
// descriptors of the process.
func memNow() (heapMiB float64, fds int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	ents, _ := os.ReadDir("/proc/self/fd")
	return float64(ms.HeapInuse+ms.StackInuse) / (1 << 20), len(ents)
}

// BenchmarkSharedSocket10000 measures one shared socket answering IPMI at
// 10,000 node addresses: heap and stacks (MiB), file descriptors and
// goroutines with the addresses added, then after one Presence Ping to
// every address (each node's endpoint built and serving).
//
//	go test -run='^$' -bench=BenchmarkSharedSocket10000 -benchtime=1x ./wire/ipmibmc
func BenchmarkSharedSocket10000(b *testing.B) {
	for range b.N {
		heap0, fd0 := memNow()
		g0 := runtime.NumGoroutine()
		m, err := ListenShared(SharedConfig{})
		if err != nil {
			b.Fatal(err)
		}
		go m.Serve(context.Background())
		for i := range benchAddrs {
			if _, err := m.Add(benchAddr(i), Config{Name: strconv.Itoa(i), User: testUser, Password: testPass}, &fakeTarget{}); err != nil {
				b.Fatal(err)
			}
		}
		heap1, fd1 := memNow()
		b.ReportMetric(heap1-heap0, "MiB-added")
		b.ReportMetric(float64(fd1-fd0), "fds")
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 64)
		for i := range benchAddrs {
			to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(benchAddr(i), uint16(m.Port())))
			for {
				_, _ = c.WriteTo(asfPing, to)
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, from, err := c.ReadFrom(buf)
				if err == nil && from.(*net.UDPAddr).AddrPort().Addr().Unmap() == benchAddr(i) {
					break
				}
			}
		}
		c.Close()
		heap2, fd2 := memNow()
		b.ReportMetric(heap2-heap0, "MiB-all-open")
		b.ReportMetric(float64(fd2-fd0-1), "fds-all-open")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0), "goroutines-all-open")
		if st := m.Stats(); st.Open != benchAddrs {
			b.Fatalf("open endpoints: %+v", st)
		}
		m.Close()
	}
}

// BenchmarkSocketPerNode10000 is the same 10,000 nodes each on a socket of
// its own (ipmi_listen), serving: the comparison for
// BenchmarkSharedSocket10000.
func BenchmarkSocketPerNode10000(b *testing.B) {
	for range b.N {
		heap0, fd0 := memNow()
		g0 := runtime.NumGoroutine()
		srvs := make([]*Server, 0, benchAddrs)
		for i := range benchAddrs {
			s, err := New(Config{Addr: "127.0.0.1:0", Name: strconv.Itoa(i), User: testUser, Password: testPass}, &fakeTarget{})
			if err != nil {
				b.Fatal(err)
			}
			go s.Serve(context.Background())
			srvs = append(srvs, s)
		}
		heap1, fd1 := memNow()
		b.ReportMetric(heap1-heap0, "MiB-all-open")
		b.ReportMetric(float64(fd1-fd0), "fds-all-open")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0), "goroutines-all-open")
		for _, s := range srvs {
			s.Close()
		}
	}
}
