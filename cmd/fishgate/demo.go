package main

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fishgate/fishgate/app/demo"
)

func demoCmd() *cobra.Command {
	var (
		o  demo.Options
		lf logFlags
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the gateway on an embedded Redis in front of simulated BMCs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := lf.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			o.Logger = log
			if o.Nodes < 1 {
				return usageError(fmt.Errorf("--nodes: %d is out of range 1..5000", o.Nodes))
			}
			o.Instant = o.DelayMax == 0
			d, err := demo.Start(cmd.Context(), o)
			if err != nil {
				return usageError(err)
			}
			printDemo(cmd, d)
			return d.Serve(cmd.Context())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Listen, "listen", "127.0.0.1:8000", "gateway listen address")
	fl.StringVar(&o.SimListen, "sim-listen", "127.0.0.1:8001", "simulator control API listen address")
	fl.IntVar(&o.Nodes, "nodes", 8, "number of simulated nodes (1..5000)")
	fl.StringVar(&o.User, "user", "admin", "gateway user name")
	fl.StringVar(&o.Password, "password", "fishgate", "gateway password")
	fl.DurationVar(&o.DelayMin, "delay-min", time.Second, "shortest simulated power transition")
	fl.DurationVar(&o.DelayMax, "delay-max", 3*time.Second, "longest simulated power transition (0 = instant)")
	fl.StringSliceVar(&o.Backends, "backends", []string{"redfish", "ipmi", "amt"}, "BMC protocols of the simulated nodes, assigned in turn")
	fl.BoolVar(&o.IPMIFront, "ipmi-front", true, "the gateway also answers IPMI over LAN for every node")
	fl.IntVar(&o.RedfishPort, "node-redfish-port", 0, "TCP port of Redfish at every node's own address (127.0.10.N; 0: a free port)")
	fl.IntVar(&o.IPMIPort, "node-ipmi-port", 0, "UDP port of IPMI at every node's own address (0: a free port)")
	lf.register(cmd)
	return cmd
}

func printDemo(cmd *cobra.Command, d *demo.Demo) {
	w := cmd.OutOrStdout()
	url, u, p := d.URL(), d.User, d.Pass
	first := d.Config.Nodes[0].ID
	fmt.Fprintf(w, `Operator page  %s/ui/   (log in as %q, password %q)

fishgate demo: %d simulated BMCs (%s) behind the gateway, embedded Redis.
Each was enrolled at runtime through the AggregationService (BMC passwords
sealed with the generated key %s).

  Redfish API    %s/redfish/v1   (user %q, password %q)
  per-node BMC   %s/bmc/%s/redfish/v1
  simulator      %s/nodes   (what each simulated BMC saw)

Try:
  curl -s -u %s:%s %s/redfish/v1/AggregationService/AggregationSources/%s
  curl -s -u %s:%s %s/redfish/v1/Systems
  curl -s -u %s:%s %s/redfish/v1/Systems/%s
  curl -s -u %s:%s -H 'Content-Type: application/json' -d '{"ResetType":"On"}' %s/redfish/v1/Systems/%s/Actions/ComputerSystem.Reset

%s
Every node is also a BMC of its own, at its own loopback address: there
/redfish/v1 is that node alone (no system name needed).
%s
Ctrl-C stops it.
`, url, u, p, len(d.Config.Nodes), strings.Join(d.Backends(), ", "), d.KeyFile, url, u, p, url, first, d.SimURL,
		u, p, url, first,
		u, p, url,
		u, p, url, first,
		u, p, url, first, ipmiExample(d, u, p, first), nodeLines(d))
}

// nodeLines is one line per node: its Redfish URL at its own address and,
// with the IPMI fronts, an ipmitool command for IPMI at that address.
func nodeLines(d *demo.Demo) string {
	var b strings.Builder
	for _, n := range d.Config.Nodes {
		fmt.Fprintf(&b, "  %s  redfish %s/redfish/v1/Systems/%s", n.ID, d.NodeURL(n.ID), n.ID)
		if port := d.Gateway.NodeIPMIPort(); port != 0 && n.IPMIUser != "" {
			fmt.Fprintf(&b, "   ipmitool -I lanplus -H %s -p %d -U %s -P %s chassis power status", n.BMCAddress, port, n.IPMIUser, n.IPMIPassword)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// ipmiHostPort is where node's IPMI front answers ("" without one).
func ipmiHostPort(d *demo.Demo, node string) (host, port string) {
	addr := d.Gateway.IPMIAddr(node)
	if addr == "" {
		return "", ""
	}
	host, port, _ = net.SplitHostPort(addr)
	return host, port
}

// ipmiExample is an ipmitool line for the gateway's IPMI front of node, if any.
func ipmiExample(d *demo.Demo, user, pass, node string) string {
	host, port := ipmiHostPort(d, node)
	if host == "" {
		return ""
	}
	return fmt.Sprintf("  ipmitool -I lanplus -H %s -p %s -U %s -P %s chassis power status   # %s through the gateway's IPMI front\n", host, port, user, pass, node)
}
