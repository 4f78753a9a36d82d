// Package demo runs a complete fishgate in one process: an embedded Redis, a
// fleet of simulated BMCs and the gateway in front of them, its nodes
// enrolled at runtime through the AggregationService as a client would
// (POST .../AggregationSources). `fishgate demo` and the end-to-end tests
// use it.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/app/gateway"
	"github.com/fishgate/fishgate/simulator"
)

// Options configures a demo. Zero values take the defaults noted.
type Options struct {
	Listen    string // gateway address (default 127.0.0.1:8000; tests use 127.0.0.1:0)
	SimListen string // simulator control API address (default 127.0.0.1:8001)
	Nodes     int    // default 8
	User      string // default admin
	Password  string // default fishgate
	// DelayMin/DelayMax bound simulated power transitions. Unset (both zero
	// and Instant false) means 1s..3s.
	DelayMin, DelayMax time.Duration
	Instant            bool // transitions take no time (tests)
	SyncInterval       time.Duration
	// IPMIFront makes the gateway answer IPMI over LAN for every node (on a
	// free loopback UDP port each; user = the gateway user, password = the
	// gateway password).
	IPMIFront bool
	// Backends are the BMC protocols of the simulated nodes, assigned in
	// turn: node01 the first, node02 the second, ... (default redfish only).
	Backends []string
	Logger   *slog.Logger
	// RedfishPort is the TCP port where every node's own address
	// (127.0.10.1, 127.0.10.2, ...; from 127.10.0.1 with more than 254
	// nodes) answers Redfish as that node's BMC; IPMIPort the UDP port of
	// their IPMI (0: free ports, chosen at start).
	RedfishPort, IPMIPort int
	// BMCDomain is fronts.bmc_domain: <node>.<BMCDomain> selects a node by
	// host name (default none).
	BMCDomain string
	// Tune, when set, adjusts the gateway's configuration (tests).
	Tune func(*config.Config)
}

// Demo is a running demo.
type Demo struct {
	Fleet   *simulator.Fleet
	Gateway *gateway.Gateway
	// Config is the gateway's configuration, with Nodes the nodes the demo
	// enrolled over the AggregationService (the gateway's own file-based
	// node list is empty).
	Config config.Config
	// KeyFile is the secrets_key_file the demo generated (removed by Serve
	// at its end: the embedded Redis's records go with it).
	KeyFile string
	SimURL  string
	User    string
	Pass    string

	simLn  net.Listener
	simSrv *http.Server
}

// NodeID names node i of n: node01..node08, node001.. for more than 99.
func NodeID(i, n int) string {
	width := max(len(fmt.Sprint(n)), 2)
	return fmt.Sprintf("node%0*d", width, i)
}

// Start builds the fleet and the gateway and binds both listeners; Serve
// serves them.
func Start(ctx context.Context, o Options) (*Demo, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:8000"
	}
	if o.SimListen == "" {
		o.SimListen = "127.0.0.1:8001"
	}
	if o.Nodes == 0 {
		o.Nodes = 8
	}
	if o.User == "" {
		o.User = "admin"
	}
	if o.Password == "" {
		o.Password = "fishgate"
	}
	if !o.Instant && o.DelayMin == 0 && o.DelayMax == 0 {
		o.DelayMin, o.DelayMax = time.Second, 3*time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if len(o.Backends) == 0 {
		o.Backends = []string{"redfish"}
	}
	for _, b := range o.Backends {
		if !slices.Contains(config.Backends, b) {
			return nil, fmt.Errorf("backends: %q is not one of %s", b, strings.Join(config.Backends, ", "))
		}
	}
	if o.Nodes < 1 || o.Nodes > 5000 {
		return nil, fmt.Errorf("nodes: %d is out of range 1..5000", o.Nodes)
	}
	if o.DelayMin < 0 || o.DelayMax < o.DelayMin {
		return nil, errors.New("delays: need 0 <= min <= max")
	}
	d := &Demo{Fleet: simulator.NewFleet(o.Logger.With("component", "bmcsim")), User: o.User, Pass: o.Password}
	cfg := config.Default()
	cfg.Listen = o.Listen
	cfg.TLS.Disabled = true // the demo is plain HTTP (warned about off loopback)
	if o.SyncInterval > 0 {
		cfg.SyncInterval = config.Duration(o.SyncInterval)
	}
	cfg.Accounts = []config.Account{{User: o.User, Password: o.Password, Role: "Administrator"}}
	cfg.Fronts.AddressPool = netip.MustParsePrefix("127.0.10.0/24")
	if o.Nodes > 254 {
		cfg.Fronts.AddressPool = netip.MustParsePrefix("127.10.0.0/16")
	}
	cfg.Fronts.RedfishPort, cfg.Fronts.IPMIPort, cfg.Fronts.BMCDomain = o.RedfishPort, o.IPMIPort, o.BMCDomain
	addr := cfg.Fronts.AddressPool.Addr()
	for i := 1; i <= o.Nodes; i++ {
		id := NodeID(i, o.Nodes)
		kind := o.Backends[(i-1)%len(o.Backends)]
		spec := simulator.NodeSpec{
			ID: id, User: "bmc-" + id, Password: "bmc-secret",
			Machine: simulator.MachineConfig{DelayMin: o.DelayMin, DelayMax: o.DelayMax, InitialPower: "Off"},
		}
		switch kind {
		case "amt":
			spec.AMTListen = "127.0.0.1:0"
		case "ipmi":
			spec.IPMIListen = "127.0.0.1:0"
		}
		n, err := d.Fleet.Add(spec)
		if err != nil {
			d.Fleet.Close()
			return nil, err
		}
		addr = addr.Next()
		if addr.Is4() && addr.As4()[3] == 255 { // 127.10.0.255: a broadcast address of a /24 to some tools
			addr = addr.Next().Next()
		}
		node := config.Node{ID: id, Backend: kind, Address: n.URL(), User: "bmc-" + id, Password: "bmc-secret", BMCAddress: addr}
		if o.IPMIFront {
			node.IPMIListen, node.IPMIUser, node.IPMIPassword = "127.0.0.1:0", o.User, o.Password
		}
		switch kind {
		case "amt":
			node.Address = n.AMTURL()
		case "ipmi":
			node.Address = "ipmi://" + n.IPMIAddr()
		}
		cfg.Nodes = append(cfg.Nodes, node)
	}
	var err error
	if d.KeyFile, err = newKeyFile(); err != nil {
		d.Fleet.Close()
		return nil, err
	}
	cfg.SecretsKeyFile = d.KeyFile
	d.Config = cfg
	gcfg := cfg
	gcfg.Nodes = nil // enrolled below, through the AggregationService
	if d.simLn, err = net.Listen("tcp", o.SimListen); err != nil {
		d.Fleet.Close()
		return nil, fmt.Errorf("simulator control API %s: %w", o.SimListen, err)
	}
	d.SimURL = "http://" + d.simLn.Addr().String()
	d.simSrv = &http.Server{Handler: d.Fleet.ControlHandler(), ReadHeaderTimeout: 10 * time.Second}
	if o.Tune != nil {
		o.Tune(&gcfg)
	}
	if d.Gateway, err = gateway.New(ctx, gcfg, o.Logger); err != nil {
		d.simLn.Close()
		d.Fleet.Close()
		os.RemoveAll(filepath.Dir(d.KeyFile))
		return nil, err
	}
	for _, n := range cfg.Nodes {
		if err := d.enrol(n); err != nil {
			d.simLn.Close()
			d.Fleet.Close()
			os.RemoveAll(filepath.Dir(d.KeyFile))
			return nil, err
		}
	}
	return d, nil
}

// newKeyFile writes a new secrets key in a private temporary folder.
func newKeyFile() (string, error) {
	dir, err := os.MkdirTemp("", "fishgate-demo-")
	if err != nil {
		return "", err
	}
	f := filepath.Join(dir, "secrets.key")
	if err := config.WriteSecretsKey(f); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return f, nil
}

// enrol POSTs node n to the gateway's AggregationSources, as a client
// would (in process: the gateway does not serve yet).
func (d *Demo) enrol(n config.Node) error {
	method := map[string]string{"redfish": "Redfish", "ipmi": "IPMI", "amt": "AMT"}[n.Backend]
	oem := map[string]any{"NodeId": n.ID, "BmcAddress": n.BMCAddress.String()}
	if n.IPMIListen != "" {
		oem["IpmiListen"], oem["IpmiUser"], oem["IpmiPassword"] = n.IPMIListen, n.IPMIUser, n.IPMIPassword
	}
	body, _ := json.Marshal(map[string]any{
		"HostName": n.Address, "UserName": n.User, "Password": n.Password,
		"Links": map[string]any{"ConnectionMethod": map[string]string{"@odata.id": "/redfish/v1/AggregationService/ConnectionMethods/" + method}},
		"Oem":   map[string]any{"Fishgate": oem},
	})
	req := httptest.NewRequest(http.MethodPost, "/redfish/v1/AggregationService/AggregationSources", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(d.User, d.Pass)
	rec := httptest.NewRecorder()
	d.Gateway.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		return fmt.Errorf("enrol %s: %d %s", n.ID, rec.Code, rec.Body.String())
	}
	return nil
}

// URL is the gateway's base URL.
func (d *Demo) URL() string { return d.Gateway.URL() }

// NodeURL is the base URL of node id's own address, where it is a BMC by
// itself ("" for no such node): http://127.0.10.1:PORT.
func (d *Demo) NodeURL(id string) string {
	for _, n := range d.Config.Nodes {
		if n.ID == id {
			return "http://" + net.JoinHostPort(n.BMCAddress.String(), strconv.Itoa(d.Gateway.NodeRedfishPort()))
		}
	}
	return ""
}

// Serve runs the simulator control API and the gateway until ctx ends.
func (d *Demo) Serve(ctx context.Context) error {
	go d.simSrv.Serve(d.simLn)
	err := d.Gateway.Serve(ctx)
	d.simSrv.Close()
	os.RemoveAll(filepath.Dir(d.KeyFile))
	return errors.Join(err, d.Fleet.Close())
}

// Backends lists each node's backend kind, as "node01=redfish".
func (d *Demo) Backends() []string {
	var out []string
	for _, n := range d.Config.Nodes {
		out = append(out, n.ID+"="+n.Backend)
	}
	return out
}
