// Command fishgate is the BMC-emulating Redfish gateway.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/fishgate/fishgate/app/config"
)

// exitCode carries a process exit code through cobra's error return.
type exitCode struct {
	code int
	err  error
}

func (e exitCode) Error() string { return e.err.Error() }
func (e exitCode) Unwrap() error { return e.err }

func usageError(err error) error { return exitCode{code: 2, err: err} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the process exit code:
// 0 success, 1 runtime failure, 2 bad usage or configuration.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "fishgate",
		Short:         "A Redfish gateway that serializes power actions in front of BMCs",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(serveCmd(), demoCmd(), configCmd(), versionCmd(), waitCmd(), powerCmd())
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "fishgate:", err)
	var ec exitCode
	if errors.As(err, &ec) {
		return ec.code
	}
	if strings.Contains(err.Error(), "unknown command") || strings.Contains(err.Error(), "flag") {
		return 2
	}
	return 1
}

// logFlags are the logging flags of serve and demo.
type logFlags struct{ level, format string }

func (f *logFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.level, "log-level", config.DefaultLogLevel, "debug, info, warn or error")
	fs.StringVar(&f.format, "log-format", config.DefaultLogFormat, "text (key=value) or json (one object per line)")
}

// logger is the process's logger writing to w, as the flags ask.
func (f *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(f.level)); err != nil {
		return nil, usageError(fmt.Errorf("--log-level: %q is not debug, info, warn or error", f.level))
	}
	opts := &slog.HandlerOptions{Level: l}
	switch f.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError(fmt.Errorf("--log-format: %q is not one of %s", f.format, strings.Join(config.LogFormats, ", ")))
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build date",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			info, _ := debug.ReadBuildInfo()
			fmt.Fprint(cmd.OutOrStdout(), versionText(stamped(info)))
		},
	}
}
