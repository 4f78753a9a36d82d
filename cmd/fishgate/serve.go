package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/app/gateway"
)

// serveFlags are the flags that override the config file.
type serveFlags struct {
	config   string
	listen   string
	redisURL string
	log      logFlags
	// insecureHTTP serves plain HTTP (tls.disabled).
	insecureHTTP bool
	// pprof is the older name of debug_listen (hidden; kept so that
	// scripts written for it go on working).
	pprof string
}

func (f *serveFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.config, "config", "c", "fishgate.yaml", "configuration file (YAML)")
	cmd.Flags().StringVar(&f.listen, "listen", "", "override listen address (host:port)")
	cmd.Flags().StringVar(&f.redisURL, "redis-url", "", "use this Redis (redis://host:port/db) instead of the file's redis_url and redis servers")
	f.log.register(cmd)
	cmd.Flags().BoolVar(&f.insecureHTTP, "insecure-http", false, "serve plain HTTP, not HTTPS (overrides tls: in the config)")
	cmd.Flags().StringVar(&f.pprof, "pprof", "", "serve Go's pprof profiles on this loopback host:port (overrides debug_listen)")
	_ = cmd.Flags().MarkHidden("pprof")
}

// load reads the config file and applies the flags; any problem is a usage
// error (exit code 2).
func (f *serveFlags) load(cmd *cobra.Command) (config.Config, error) {
	cfg, err := config.Load(f.config)
	if err != nil {
		return cfg, usageError(fmt.Errorf("%s: %w", f.config, err))
	}
	if cmd.Flags().Changed("listen") {
		cfg.Listen = f.listen
	}
	if cmd.Flags().Changed("redis-url") {
		cfg.SetRedisURL(f.redisURL)
	}
	if f.insecureHTTP {
		cfg.TLS = config.TLS{Disabled: true}
	}
	if cmd.Flags().Changed("pprof") {
		cfg.DebugListen = f.pprof
	}
	if err := cfg.Validate(); err != nil {
		return cfg, usageError(err)
	}
	return cfg, nil
}

func serveCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the Redfish gateway for the nodes of a config file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			log, err := f.log.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			for _, w := range cfg.Warnings() {
				log.Warn("configuration: " + w)
			}
			setMemoryLimit(len(cfg.Nodes), cfg.EmbeddedRedis(), log)
			// SIGHUP reloads the configuration file; it must not end the
			// process (its default action), so it is caught from the start.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			info, _ := debug.ReadBuildInfo()
			stamp := stamped(info)
			g, err := gateway.New(cmd.Context(), cfg, log, gateway.WithBuild(stamp.Version, stamp.Commit))
			if err != nil {
				return err
			}
			go reloadOnHUP(cmd.Context(), hup, g, log, func() (config.Config, error) { return f.load(cmd) })
			if cfg.DebugListen != "" {
				if err := servePprof(cmd.Context(), cfg.DebugListen, log); err != nil {
					return err
				}
			}
			nodePort := ""
			if p := g.NodeRedfishPort(); p != 0 {
				nodePort = fmt.Sprintf(", node addresses at port %d", p)
			}
			if fp := g.TLSFingerprint(); fp != "" {
				log.Info("fishgate serving", "url", g.URL(), "tls_sha256", fp, "nodes", len(cfg.Nodes), "node_redfish_port", g.NodeRedfishPort(), "version", buildVersion())
				fmt.Fprintf(cmd.OutOrStdout(), "fishgate serving %s, TLS certificate SHA-256 fingerprint %s%s\n", g.URL(), fp, nodePort)
			} else {
				log.Info("fishgate serving", "url", g.URL(), "nodes", len(cfg.Nodes), "node_redfish_port", g.NodeRedfishPort(), "version", buildVersion())
				fmt.Fprintf(cmd.OutOrStdout(), "fishgate serving %s (plain HTTP)%s\n", g.URL(), nodePort)
			}
			return g.Serve(cmd.Context())
		},
	}
	f.register(cmd)
	return cmd
}

// reloadOnHUP reloads the configuration (the file read again, with the
// command line's overrides) at every SIGHUP until ctx ends. A file that
// does not load is logged and the running configuration stays.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, g *gateway.Gateway, log *slog.Logger, load func() (config.Config, error)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			cfg, err := load()
			if err == nil {
				for _, w := range cfg.Warnings() {
					log.Warn("configuration: " + w)
				}
				var changes []gateway.Change
				if changes, err = g.Reload(ctx, cfg); err == nil {
					log.Info("SIGHUP: configuration reloaded", "changes", len(changes), "tls_sha256", g.TLSFingerprint())
					continue
				}
			}
			log.Error("SIGHUP: configuration not reloaded; the running one stays", "err", err)
		}
	}
}

func configCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the configuration in effect (file + flags + defaults), secrets hidden",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			for _, w := range cfg.Warnings() {
				fmt.Fprintln(cmd.ErrOrStderr(), "fishgate: warning:", w)
			}
			enc := yaml.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent(2)
			return enc.Encode(cfg.Redacted())
		},
	}
	f.register(cmd)
	return cmd
}
