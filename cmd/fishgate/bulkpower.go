package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/fishgate/fishgate/schemas"
)

// `fishgate power --aggregate NAME <action>`: one Aggregate.Reset, and with
// --wait a progress bar of its parent task (on a terminal only).

// bulkTask is what the client reads of a parent task.
type bulkTask struct {
	task
	Oem struct {
		Fishgate struct {
			Nodes, Done, Completed, Failed, Cancelled, BatchesBegun int
		}
	} `json:"Oem"`
}

// aggregateReset posts an Aggregate.Reset and returns its parent task.
func (c *apiClient) aggregateReset(ctx context.Context, agg, resetType string, batch int, delay time.Duration) (bulkTask, error) {
	body := map[string]any{"ResetType": resetType}
	if batch > 0 {
		body["BatchSize"] = batch
	}
	if delay > 0 {
		body["DelayBetweenBatchesInSeconds"] = int(delay / time.Second)
	}
	var t bulkTask
	_, err := c.do(ctx, http.MethodPost, "/redfish/v1/AggregationService/Aggregates/"+url.PathEscape(agg)+"/Actions/Aggregate.Reset", body, &t)
	return t, err
}

func (c *apiClient) bulkTask(ctx context.Context, id string) (bulkTask, error) {
	var t bulkTask
	_, err := c.do(ctx, http.MethodGet, "/redfish/v1/TaskService/Tasks/"+url.PathEscape(id), nil, &t)
	return t, err
}

// bulkPollInterval is how often --wait reads the parent task: one small
// GET, whatever the number of nodes.
const bulkPollInterval = 500 * time.Millisecond

// checkBulkFlags validates --batch and --delay.
func checkBulkFlags(batch int, delay time.Duration) error {
	if batch < 0 {
		return fail("--batch %d: give at least 1 (or leave it out: every node at once)", batch)
	}
	if delay < 0 || delay%time.Second != 0 {
		return fail("--delay %s: give whole seconds (Redfish's DelayBetweenBatchesInSeconds)", delay)
	}
	return nil
}

// powerAggregate runs `power --aggregate`.
func powerAggregate(ctx context.Context, c *apiClient, agg string, plan []string, batch int, delay time.Duration, wait bool, out, errOut io.Writer) error {
	if len(plan) != 1 {
		return fail("--aggregate takes one ResetType; for a reboot use cycle (PowerCycle) or ForceRestart")
	}
	t, err := c.aggregateReset(ctx, agg, plan[0], batch, delay)
	if err != nil {
		if v, ok := ended(ctx); ok {
			return exitCode{code: v.code, err: fmt.Errorf("%s", v.why)}
		}
		return fail("aggregate %s: %s: %v", agg, plan[0], err)
	}
	fmt.Fprintf(out, "aggregate %s: %s: task %s (%d nodes)\n", agg, plan[0], t.ID, t.Oem.Fishgate.Nodes)
	if !wait {
		return nil
	}
	bar := newProgress(errOut)
	tick := time.NewTicker(bulkPollInterval)
	defer tick.Stop()
	for {
		if cur, err := c.bulkTask(ctx, t.ID); err == nil {
			t = cur
			bar.show(t)
		} else if refused(err) {
			bar.done()
			return fail("task %s: %v", t.ID, err)
		}
		if t.terminal() {
			bar.done()
			f := t.Oem.Fishgate
			fmt.Fprintf(out, "task %s: %s: %d of %d nodes completed, %d failed, %d cancelled\n",
				t.ID, t.TaskState, f.Completed, f.Nodes, f.Failed, f.Cancelled)
			if t.TaskState != schemas.TaskStateCompleted {
				return exitCode{code: exitFailed, err: fmt.Errorf("task %s ended %s: %s", t.ID, t.TaskState, t.summary())}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			bar.done()
			return exitCode{code: exitTimeout, err: fmt.Errorf("timed out: task %s is %s, %d%% done", t.ID, t.TaskState, t.PercentComplete)}
		case <-tick.C:
		}
	}
}

// progress draws a one-line progress bar on a terminal, and nothing
// elsewhere (a log file or a pipe gets the final line only).
type progress struct {
	w     io.Writer // nil: not a terminal
	drawn bool
}

func newProgress(w io.Writer) *progress {
	if isTerminal(w) {
		return &progress{w: w}
	}
	return &progress{}
}

// isTerminal reports whether w is a terminal (a character device): where
// progress is drawn. A pipe, a file or a test's buffer is not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressOut is where progress goes: w, or nowhere with --quiet.
func progressOut(w io.Writer, quiet bool) io.Writer {
	if quiet {
		return io.Discard
	}
	return w
}

func (p *progress) show(t bulkTask) {
	if p.w == nil {
		return
	}
	f := t.Oem.Fishgate
	fmt.Fprintf(p.w, "\r%s", progressLine(f.Done, f.Nodes, f.Failed, f.Cancelled, 30))
	p.drawn = true
}

func (p *progress) done() {
	if p.w != nil && p.drawn {
		fmt.Fprintln(p.w)
	}
}

// progressLine renders "[#####.....]  50%  5/10 nodes (1 failed)" with a
// bar of width characters.
func progressLine(done, total, failed, cancelled, width int) string {
	pct := 100
	if total > 0 {
		pct = done * 100 / total
	}
	fill := width * pct / 100
	line := fmt.Sprintf("[%s%s] %3d%%  %d/%d nodes", strings.Repeat("#", fill), strings.Repeat(".", width-fill), pct, done, total)
	var extra []string
	if failed > 0 {
		extra = append(extra, fmt.Sprintf("%d failed", failed))
	}
	if cancelled > 0 {
		extra = append(extra, fmt.Sprintf("%d cancelled", cancelled))
	}
	if len(extra) > 0 {
		line += " (" + strings.Join(extra, ", ") + ")"
	}
	return line
}
