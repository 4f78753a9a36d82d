// Command bmcsim runs a fleet of simulated BMCs
// (docs/architecture.md#simulator): each node serves Redfish on its own
// loopback port, and a control API on --control shows every node's state and
// command log and injects faults.
//
//	bmcsim --nodes 8 --delay-min 1s --delay-max 3s --async
//	bmcsim --nodes 4 --amt     # each node also speaks Intel AMT WS-Man (Digest) at <AMT URL>/wsman
//	bmcsim --nodes 4 --ipmi    # each node also answers IPMI LAN: ipmitool -I lanplus -H 127.0.0.1 -p <port> -U admin -P password power status
//	curl -s http://127.0.0.1:8001/nodes/node01
//	curl -s -X PUT -d '{"FailFirst":2}' http://127.0.0.1:8001/nodes/node01/faults
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/fishgate/fishgate/simulator"
	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newCommand(nil).ExecuteContext(ctx); err != nil {
		os.Exit(1)
	}
}

// options are bmcsim's flags.
type options struct {
	nodes    int
	control  string
	host     string
	basePort int
	delayMin time.Duration
	delayMax time.Duration
	latency  time.Duration
	user     string
	password string
	async    bool
	tls      bool
	seed     uint64
	powerOn  bool
	amt      bool
	amtBase  int
	ipmi     bool
	ipmiBase int
	logLevel string
	ready    func(controlURL string) // test hook: called once everything listens
}

func newCommand(ready func(string)) *cobra.Command {
	o := &options{ready: ready}
	cmd := &cobra.Command{
		Use:   "bmcsim",
		Short: "Run simulated BMCs (Redfish) with a control API",
		Long: `bmcsim starts --nodes simulated machines named node01, node02, ... Each
serves Redfish on its own port (HTTP Basic or session login with --user and
--password) and has a power state machine whose transitions take a random
time in [--delay-min, --delay-max].

The control API on --control (JSON):
  GET /nodes                 every node's status and command log
  GET /nodes/{id}            one node, with its RedfishURL
  PUT /nodes/{id}/faults     {"FailFirst":N,"Ignore":b,"Hang":"2s","RefuseOnWithin":"5s","NeverFinishSoftOff":b}
  PUT /nodes/{id}/power      {"PowerState":"On"|"Off"}  (setup jump, not a command)
  PUT /nodes/{id}/latency    {"CommandLatency":"3s"}  (how long the BMC takes to answer
                             power commands from now on; --latency sets it for all at start)

With --amt each node also serves Intel AMT's WS-Management at /wsman on a
port of its own (HTTP Digest, the same --user and --password; HTTPS with
--tls), printed after its Redfish URL.

With --ipmi each node also answers IPMI over LAN (RMCP+ "lanplus" and IPMI
1.5 "lan", the same --user and --password) on a UDP port of its own, printed
as "<node>	ipmi	<host:port>".

It runs until SIGINT or SIGTERM.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: false,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.nodes, "nodes", 8, "number of simulated nodes")
	fl.StringVar(&o.control, "control", "127.0.0.1:8001", "listen address of the control API")
	fl.StringVar(&o.host, "host", "127.0.0.1", "IP address the nodes' Redfish services listen on")
	fl.IntVar(&o.basePort, "base-port", 0, "node i listens on base-port+i-1; 0 picks free ports")
	fl.DurationVar(&o.delayMin, "delay-min", time.Second, "shortest power transition")
	fl.DurationVar(&o.delayMax, "delay-max", 3*time.Second, "longest power transition")
	fl.DurationVar(&o.latency, "latency", 0, "how long each BMC takes to answer a power command")
	fl.StringVar(&o.user, "user", "admin", "Redfish user name of every node")
	fl.StringVar(&o.password, "password", "password", "Redfish password of every node")
	fl.BoolVar(&o.async, "async", false, "Reset answers 202 with a Task instead of 204")
	fl.BoolVar(&o.tls, "tls", false, "serve Redfish over HTTPS with self-signed certificates")
	fl.Uint64Var(&o.seed, "seed", 0, "seed of the transition times (node i uses seed+i); 0 is random")
	fl.BoolVar(&o.powerOn, "power-on", false, "start every node On instead of Off")
	fl.BoolVar(&o.amt, "amt", false, "also serve Intel AMT WS-Man (Digest auth) per node")
	fl.IntVar(&o.amtBase, "amt-base-port", 0, "with --amt, node i's AMT listens on amt-base-port+i-1; 0 picks free ports")
	fl.BoolVar(&o.ipmi, "ipmi", false, "also answer IPMI over LAN (UDP) per node")
	fl.IntVar(&o.ipmiBase, "ipmi-base-port", 0, "with --ipmi, node i's IPMI listens on UDP ipmi-base-port+i-1; 0 picks free ports")
	fl.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// nodeID names node i (1-based) of n: node01..node99, then wider as needed.
func nodeID(i, n int) string {
	width := max(2, len(strconv.Itoa(n)))
	return fmt.Sprintf("node%0*d", width, i)
}

func (o *options) validate() error {
	switch {
	case o.nodes < 1:
		return fmt.Errorf("--nodes %d: want at least 1", o.nodes)
	case o.delayMin < 0 || o.delayMax < 0:
		return errors.New("--delay-min and --delay-max must not be negative")
	case o.delayMax < o.delayMin:
		return fmt.Errorf("--delay-max %v is shorter than --delay-min %v", o.delayMax, o.delayMin)
	case o.latency < 0:
		return errors.New("--latency must not be negative")
	case o.basePort < 0 || o.basePort+o.nodes-1 > 65535:
		return fmt.Errorf("--base-port %d: ports out of range for %d nodes", o.basePort, o.nodes)
	case o.amtBase < 0 || o.amtBase+o.nodes-1 > 65535:
		return fmt.Errorf("--amt-base-port %d: ports out of range for %d nodes", o.amtBase, o.nodes)
	case o.ipmiBase < 0 || o.ipmiBase+o.nodes-1 > 65535:
		return fmt.Errorf("--ipmi-base-port %d: ports out of range for %d nodes", o.ipmiBase, o.nodes)
	case net.ParseIP(o.host) == nil:
		return fmt.Errorf("--host %q: want an IP address", o.host)
	}
	return nil
}

func run(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	fleet := simulator.NewFleet(log)
	defer func() {
		if err := fleet.Close(); err != nil {
			log.Error("closing nodes", "err", err)
		}
	}()
	initial := simulator.PowerOff
	if o.powerOn {
		initial = simulator.PowerOn
	}
	for i := 1; i <= o.nodes; i++ {
		port := 0
		if o.basePort != 0 {
			port = o.basePort + i - 1
		}
		seed := uint64(0)
		if o.seed != 0 {
			seed = o.seed + uint64(i)
		}
		amtListen := ""
		if o.amt {
			amtPort := 0
			if o.amtBase != 0 {
				amtPort = o.amtBase + i - 1
			}
			amtListen = net.JoinHostPort(o.host, strconv.Itoa(amtPort))
		}
		ipmiListen := ""
		if o.ipmi {
			ipmiPort := 0
			if o.ipmiBase != 0 {
				ipmiPort = o.ipmiBase + i - 1
			}
			ipmiListen = net.JoinHostPort(o.host, strconv.Itoa(ipmiPort))
		}
		n, err := fleet.Add(simulator.NodeSpec{
			ID:         nodeID(i, o.nodes),
			IPMIListen: ipmiListen,
			AMTListen:  amtListen,
			Listen:     net.JoinHostPort(o.host, strconv.Itoa(port)),
			User:       o.user,
			Password:   o.password,
			AsyncReset: o.async,
			TLS:        o.tls,
			Machine: simulator.MachineConfig{
				DelayMin:       o.delayMin,
				DelayMax:       o.delayMax,
				CommandLatency: o.latency,
				InitialPower:   initial,
				Seed:           seed,
			},
		})
		if err != nil {
			return err
		}
		if n.AMTURL() != "" {
			fmt.Fprintf(stdout, "%s\t%s%s\t%s/wsman\n", n.ID(), n.URL(), n.SystemPath(), n.AMTURL())
		} else {
			fmt.Fprintf(stdout, "%s\t%s%s\n", n.ID(), n.URL(), n.SystemPath())
		}
		if n.IPMIAddr() != "" {
			fmt.Fprintf(stdout, "%s\tipmi\t%s\n", n.ID(), n.IPMIAddr())
		}
	}

	ln, err := net.Listen("tcp", o.control)
	if err != nil {
		return fmt.Errorf("control API: %w", err)
	}
	srv := &http.Server{
		Handler:           fleet.ControlHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	controlURL := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "control\t%s/nodes\n", controlURL)
	log.Info("bmcsim running", "nodes", o.nodes, "control", controlURL, "async", o.async)
	if o.ready != nil {
		o.ready(controlURL)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-served:
		return fmt.Errorf("control API: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("control API shutdown: %w", err)
	}
	return nil
}
