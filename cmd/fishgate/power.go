package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fishgate/fishgate/schemas"
)

// powerActions are the short names of `fishgate power`. reboot is two
// actions, ForceOff then On, each verified (as ipmitool-driven Ironic
// does): the node is seen Off and then On, which a single ForceRestart
// does not guarantee (the BMC may restart too fast for anyone to see Off).
var powerActions = map[string][]string{
	"on":     {"On"},
	"off":    {"ForceOff"},
	"soft":   {"GracefulShutdown"},
	"reboot": {"ForceOff", "On"},
	"cycle":  {"PowerCycle"},
	"reset":  {"ForceRestart"},
	"nmi":    {"Nmi"},
}

// powerPlan maps a `fishgate power` action to the ResetTypes it posts:
// a short name, or any Redfish ResetType (case-insensitive).
func powerPlan(action string) ([]string, error) {
	if p, ok := powerActions[strings.ToLower(action)]; ok {
		return p, nil
	}
	for _, r := range schemas.AllResetTypes {
		if strings.EqualFold(string(r), action) {
			return []string{string(r)}, nil
		}
	}
	return nil, fmt.Errorf("%q is not on, off, soft, reboot, cycle, reset, nmi or a ResetType", action)
}

func powerCmd() *cobra.Command {
	var (
		f         clientFlags
		node      string
		wait      bool
		aggregate string
		batch     int
		delay     time.Duration
		quiet     bool
	)
	cmd := &cobra.Command{
		Use:   "power <on|off|soft|reboot|cycle|reset|nmi|ResetType> (--node ID | --aggregate NAME [--batch N] [--delay D]) [--wait]",
		Short: "Power a node on, off or through a restart, optionally waiting for the result",
		Long: `power posts a ComputerSystem.Reset to the gateway and prints the task id.

  on      On                  soft   GracefulShutdown      reset  ForceRestart
  off     ForceOff            cycle  PowerCycle            nmi    Nmi
  reboot  ForceOff, then On once the node is confirmed Off (two tasks)

Any Redfish ResetType (ForceOn, GracefulRestart, PushPowerButton, ...) is
accepted as well. With --wait it waits for the (last) task to end.

With --wait, when stderr is a terminal, a status line shows the task's
TaskState, PercentComplete and phase, the node's PowerState and the time
waited (nothing otherwise, or with --quiet); on a timeout it prints the last
task state and PowerState seen.

With --aggregate it posts one Aggregate.Reset for every System of the
aggregate (reboot is not offered: use cycle), --batch nodes at a time with
--delay (whole seconds) between the end of a batch and the next; --wait
then shows a progress bar when stderr is a terminal (nothing otherwise, or
with --quiet) and prints how the parent task ended.

Exit codes: 0 accepted (with --wait: Completed); 1 --timeout passed; 2 a task
ended in Exception or Cancelled; 3 bad arguments, or the gateway refused the
request or could not be reached.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fail("give one action: on, off, soft, reboot, cycle, reset, nmi or a ResetType")
			}
			plan, err := powerPlan(args[0])
			if err != nil {
				return fail("%v", err)
			}
			if (node == "") == (aggregate == "") {
				return fail("give one of --node and --aggregate")
			}
			if node != "" && (batch != 0 || delay != 0) {
				return fail("--batch and --delay go with --aggregate")
			}
			if err := checkBulkFlags(batch, delay); err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			out := cmd.OutOrStdout()
			if aggregate != "" {
				return powerAggregate(ctx, c, aggregate, plan, batch, delay, wait, out, progressOut(cmd.ErrOrStderr(), quiet))
			}
			for i, rt := range plan {
				t, err := c.reset(ctx, node, rt)
				if err != nil {
					if v, ok := ended(ctx); ok {
						return finish(cmd, v)
					}
					return fail("node %s: %s: %v", node, rt, err)
				}
				fmt.Fprintf(out, "node %s: %s: task %s\n", node, rt, t.ID)
				if i == len(plan)-1 && !wait {
					break
				}
				v := c.follow(ctx, &watch{task: t.ID}, newWaitUI(cmd.ErrOrStderr(), quiet), cmd.ErrOrStderr())
				if v.code != exitOK {
					return finish(cmd, v)
				}
				fmt.Fprintln(out, v.why)
			}
			return nil
		},
	}
	f.register(cmd, 10*time.Minute)
	cmd.Flags().StringVar(&node, "node", "", "node id")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the task to end")
	cmd.Flags().StringVar(&aggregate, "aggregate", "", "Aggregate id (its Name when it was created with one): power its Systems in one bulk request")
	cmd.Flags().IntVar(&batch, "batch", 0, "with --aggregate: nodes per batch (default: all at once)")
	cmd.Flags().DurationVar(&delay, "delay", 0, "with --aggregate: pause between batches, whole seconds")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "with --wait: no progress, even on a terminal")
	return cmd
}
