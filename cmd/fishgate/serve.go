package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/fishgate/fishgate/internal/config"
	"github.com/fishgate/fishgate/internal/gateway"
)

// serveFlags are the flags that override the config file.
type serveFlags struct {
	config   string
	listen   string
	redisURL string
	logLevel string
}

func (f *serveFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.config, "config", "c", "fishgate.yaml", "configuration file (YAML)")
	cmd.Flags().StringVar(&f.listen, "listen", "", "override listen address (host:port)")
	cmd.Flags().StringVar(&f.redisURL, "redis-url", "", "override Redis URL (redis://host:port/db)")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
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
		cfg.RedisURL = f.redisURL
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
			log, err := newLogger(f.logLevel)
			if err != nil {
				return err
			}
			g, err := gateway.New(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			log.Info("fishgate serving", "url", g.URL(), "nodes", len(cfg.Nodes), "version", version)
			return g.Serve(cmd.Context())
		},
	}
	f.register(cmd)
	return cmd
}

func configCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the configuration in effect (file + flags + defaults), passwords hidden",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			for i := range cfg.Accounts {
				cfg.Accounts[i].Password = "<hidden>"
			}
			for i := range cfg.Nodes {
				cfg.Nodes[i].Password = "<hidden>"
			}
			enc := yaml.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent(2)
			return enc.Encode(cfg)
		},
	}
	f.register(cmd)
	return cmd
}
