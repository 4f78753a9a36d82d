package main

// `fgbench addresses` (issue 16, docs/architecture.md#node-addresses): what
// it costs to give every node an address of its own. bmcsim serves N
// Redfish BMCs; `fishgate serve` runs for them twice, without node
// addresses and with fronts.address_pool 127.1.0.0/18 (N addresses on the
// loopback, one wildcard listener); after each has read every node, this
// process reads the gateway's RSS and counts its sockets (/proc/<pid>/fd)
// and, with addresses, GETs /redfish/v1/Systems at a sample of node
// addresses (each must list that node alone).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// addrReport is what `fgbench addresses` measured.
type addrReport struct {
	Nodes          int     `json:"nodes"`
	Pool           string  `json:"pool"`
	RSSPlainMiB    float64 `json:"rss_without_addresses_mib"`
	RSSAddrMiB     float64 `json:"rss_with_addresses_mib"`
	RSSRatio       float64 `json:"rss_ratio"`
	SocketsPlain   int     `json:"sockets_without_addresses"`
	SocketsAddr    int     `json:"sockets_with_addresses"`
	ListenPlain    int     `json:"listening_without_addresses"`
	ListenAddr     int     `json:"listening_with_addresses"`
	Sampled        int     `json:"sampled_node_addresses"`
	SampledOK      int     `json:"sampled_node_addresses_ok"`
	SampleMedianMs float64 `json:"sample_median_ms"`
	Errors         int64   `json:"errors"`
	FirstError     string  `json:"first_error,omitempty"`
}

func (r *addrReport) failed() (int64, string) { return r.Errors, r.FirstError }

func addressesMain(args []string) int {
	fs := flag.NewFlagSet("fgbench addresses", flag.ContinueOnError)
	c := fleetConfig{Rounds: 1, Concurrency: 64, Timeout: 10 * time.Minute}
	var pool string
	var sample int
	fs.IntVar(&c.Nodes, "nodes", 10000, "simulated BMCs, each given an address of its own")
	fs.StringVar(&pool, "pool", "127.1.0.0/18", "fronts.address_pool (loopback: Linux routes 127/8 to lo; not holding the gateway's own 127.0.0.1, which the pool would skip)")
	fs.IntVar(&sample, "sample", 200, "node addresses GET /redfish/v1/Systems is sent to")
	fs.StringVar(&c.Bin, "bin", "", "directory holding fishgate and bmcsim (default: built from this module into a temporary directory)")
	asJSON := fs.Bool("json", false, "write the results as JSON to stdout (the report goes to stderr)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	p, err := netip.ParsePrefix(pool)
	if err != nil || fs.NArg() > 0 || c.Nodes < 1 || c.Nodes > 30000 || sample < 1 {
		fmt.Fprintln(os.Stderr, "fgbench addresses: -pool must be a prefix, -nodes in 1..30000, -sample at least 1")
		return 2
	}
	return runReport("fgbench addresses", "REQUESTS", *asJSON, func(ctx context.Context, out io.Writer) (*addrReport, error) {
		return benchAddresses(ctx, c, p, sample, out)
	})
}

func benchAddresses(ctx context.Context, c fleetConfig, pool netip.Prefix, sample int, out io.Writer) (*addrReport, error) {
	bin, cleanup, err := buildBins(ctx, c.Bin, "fgbench addresses", out)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	sim, err := startSim(ctx, filepath.Join(bin, "bmcsim"), c.Nodes)
	if err != nil {
		return nil, err
	}
	defer sim.stop()
	cl := newFleetClient(c.Concurrency)
	rep := &addrReport{Nodes: c.Nodes, Pool: pool.String()}

	// Without addresses.
	g, err := startGateway(ctx, c, bin, sim, "", 0, cl)
	if err != nil {
		return nil, err
	}
	if _, err := waitAllRead(ctx, c, g, cl); err != nil {
		g.stop()
		return nil, err
	}
	rep.RSSPlainMiB = rssMiB(g.pid())
	rep.SocketsPlain, rep.ListenPlain = sockets(g.pid())
	g.stop()
	fmt.Fprintf(out, "without node addresses: RSS %.0f MiB, %d sockets (%d listening TCP; the others are mostly connections to the BMCs)\n", rep.RSSPlainMiB, rep.SocketsPlain, rep.ListenPlain)

	// With an address per node, on a port the gateway picks (and prints).
	c.Extra = fmt.Sprintf("fronts: {address_pool: %s, redfish_port: 0}\n", pool)
	if g, err = startGateway(ctx, c, bin, sim, "", 0, cl); err != nil {
		return nil, err
	}
	defer g.stop()
	port := g.nodePort
	if port == 0 {
		return nil, errors.New("the gateway printed no node-address port")
	}
	if _, err := waitAllRead(ctx, c, g, cl); err != nil {
		return nil, err
	}
	rep.RSSAddrMiB = rssMiB(g.pid())
	rep.SocketsAddr, rep.ListenAddr = sockets(g.pid())
	rep.RSSRatio = rep.RSSAddrMiB / rep.RSSPlainMiB
	// Node i has the pool's i-th address (the network address is not
	// given); a sample over the whole fleet, each answering for itself.
	var ms []float64
	step := max(1, c.Nodes/sample)
	for i := 1; i <= c.Nodes; i += step {
		a := pool.Addr()
		for range i {
			a = a.Next()
		}
		id := simNodeID(i, c.Nodes)
		url := "http://" + net.JoinHostPort(a.String(), strconv.Itoa(port)) + "/redfish/v1/Systems"
		t0 := time.Now()
		code, body, err := cl.get(ctx, url)
		ms = append(ms, float64(time.Since(t0).Microseconds())/1000)
		rep.Sampled++
		var coll struct{ Members []map[string]string }
		switch {
		case err != nil:
			rep.fail(err)
		case code != 200 || json.Unmarshal(body, &coll) != nil || len(coll.Members) != 1 || coll.Members[0]["@odata.id"] != "/redfish/v1/Systems/"+id:
			rep.fail(fmt.Errorf("GET %s: %d %.200s (want %s alone)", url, code, body, id))
		default:
			rep.SampledOK++
		}
	}
	rep.SampleMedianMs = median(ms)
	fmt.Fprintf(out, "with %d node addresses (%s, port %d): RSS %.0f MiB, %d sockets (%d listening TCP)\n", c.Nodes, pool, port, rep.RSSAddrMiB, rep.SocketsAddr, rep.ListenAddr)
	fmt.Fprintf(out, "RSS ratio with/without %.2f; listening sockets %d -> %d; %d/%d sampled node addresses answered with their node alone (median %.2f ms)\n",
		rep.RSSRatio, rep.ListenPlain, rep.ListenAddr, rep.SampledOK, rep.Sampled, rep.SampleMedianMs)
	return rep, nil
}

func (r *addrReport) fail(err error) {
	if r.Errors == 0 {
		r.FirstError = err.Error()
	}
	r.Errors++
}

// sockets counts a process's open sockets (/proc/<pid>/fd), and among
// them its listening TCP sockets (/proc/<pid>/net/tcp, tcp6: state 0A):
// the total moves with the connections to the BMCs, the listeners with
// the design.
func sockets(pid int) (total, listening int) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return -1, -1
	}
	inodes := map[string]bool{}
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/" + f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if x := strings.Fields(line); len(x) > 9 && x[3] == "0A" && inodes[x[9]] {
				listening++
			}
		}
	}
	return len(inodes), listening
}
