package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/simulator"
)

// sysView is the part of a gateway ComputerSystem the check reads.
type sysView struct {
	PowerState string `json:"PowerState"`
	Oem        struct {
		Fishgate struct {
			DesiredPowerState *string `json:"DesiredPowerState"`
			RunningTask       *struct {
				ID         string `json:"@odata.id"`
				ResetType  string `json:"ResetType"`
				Cancelling bool   `json:"Cancelling"`
			} `json:"RunningTask"`
			QueuedTasks []struct {
				ID string `json:"@odata.id"`
			} `json:"QueuedTasks"`
			LastError string `json:"LastError"`
		} `json:"Fishgate"`
	} `json:"Oem"`
}

func (v sysView) desired() string {
	if d := v.Oem.Fishgate.DesiredPowerState; d != nil {
		return *d
	}
	return ""
}

func (v sysView) busy() bool {
	return v.Oem.Fishgate.RunningTask != nil || len(v.Oem.Fishgate.QueuedTasks) > 0
}

// taskView is the part of a gateway Task the check reads.
type taskView struct {
	Status     int               `json:"-"` // HTTP status of the GET; 0: no answer
	TaskState  schemas.TaskState `json:"TaskState"`
	TaskStatus string            `json:"TaskStatus"`
	Messages   []struct {
		MessageID string `json:"MessageId"`
		Message   string `json:"Message"`
	} `json:"Messages"`
}

func (t taskView) terminal() bool {
	return t.TaskState.Terminal() && t.Status == http.StatusOK
}

func (t taskView) String() string {
	if t.Status != http.StatusOK {
		if t.Status == 0 {
			return "unreadable (no answer)"
		}
		return fmt.Sprintf("unreadable (HTTP %d)", t.Status)
	}
	s := string(t.TaskState) + "/" + t.TaskStatus
	if n := len(t.Messages); n > 0 {
		s += ": " + t.Messages[n-1].Message
	}
	return s
}

// nodeFacts is everything the verdict on one node depends on.
type nodeFacts struct {
	ID          string
	SimPower    string // the simulated machine's power state
	SimInFlight int
	MaxInFlight int
	ViewOK      bool   // the gateway's System was read
	Desired     string // Oem.Fishgate.DesiredPowerState ("" = null)
	Busy        bool   // a running or queued task is still listed
	HasLast     bool   // some Reset was accepted
	LastType    string // its ResetType
	LastTask    string
	LastState   schemas.TaskState // final TaskState of its task ("" unknown)
	Pending     string            // an unanswered Reset after it (ambiguous), or ""
}

// judge returns what is wrong with one node after the run settled (empty:
// nothing). Overlaps (MaxInFlight > 1) are counted apart.
func judge(f nodeFacts) []string {
	var p []string
	if f.SimPower != simulator.PowerOn && f.SimPower != simulator.PowerOff {
		p = append(p, fmt.Sprintf("simulated power %s is not steady", f.SimPower))
	}
	if f.SimInFlight != 0 {
		p = append(p, fmt.Sprintf("%d command(s) still in flight at the BMC", f.SimInFlight))
	}
	if !f.ViewOK {
		return append(p, "the gateway's System could not be read")
	}
	if f.Busy {
		p = append(p, "the gateway still lists a running or queued task")
	}
	switch {
	case f.Desired == "" && f.HasLast:
		p = append(p, "DesiredPowerState is null although a Reset was accepted")
	case f.Desired != "" && f.Desired != f.SimPower:
		p = append(p, fmt.Sprintf("simulated power %s != DesiredPowerState %s", f.SimPower, f.Desired))
	}
	if !f.HasLast {
		return p
	}
	want := targetOf(f.LastType)
	switch f.LastState {
	case schemas.TaskStateCompleted:
		alt := targetOf(f.Pending)
		if f.SimPower != want && (alt == "" || f.SimPower != alt) {
			w := want
			if alt != "" && alt != want {
				w += " or " + alt
			}
			s := fmt.Sprintf("last accepted %s (task %s) Completed, but simulated power is %s (want %s)", f.LastType, f.LastTask, f.SimPower, w)
			if alt != "" {
				s += "; an unanswered " + f.Pending + " followed it"
			}
			p = append(p, s)
		}
	case schemas.TaskStateCancelled, schemas.TaskStateException:
		// the node's power must equal its desired state: checked above.
	case "":
		p = append(p, fmt.Sprintf("last accepted %s: task %s is unreadable (lost)", f.LastType, f.LastTask))
	default:
		p = append(p, fmt.Sprintf("last accepted %s: task %s is not terminal (%s)", f.LastType, f.LastTask, f.LastState))
	}
	return p
}

// checker reads the gateway and the simulator after the load.
type checker struct {
	http     *http.Client
	replicas []string
	nodes    []*simNode
	hist     []*history
}

func (c *checker) get(ctx context.Context, base, path string, into any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth(gwUser, gwPassword)
	req.Header.Set("User-Agent", "fgchaos-check")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, into); err != nil {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

// parallel runs f(i) for i in [0,n) on at most workers goroutines.
func parallel(n, workers int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// views reads every node's System, spreading the reads over the replicas.
func (c *checker) views(ctx context.Context) []*sysView {
	out := make([]*sysView, len(c.nodes))
	parallel(len(c.nodes), 16, func(i int) {
		for a := 0; a < len(c.replicas); a++ {
			var v sysView
			base := c.replicas[(i+a)%len(c.replicas)]
			if st, err := c.get(ctx, base, "/redfish/v1/Systems/"+c.nodes[i].id, &v); err == nil && st == http.StatusOK {
				out[i] = &v
				return
			}
		}
	})
	return out
}

// tasks reads every task any request was answered with.
func (c *checker) tasks(ctx context.Context) map[string]taskView {
	var ids []string
	for _, h := range c.hist {
		ids = append(ids, h.tasks...)
	}
	out := make([]taskView, len(ids))
	parallel(len(ids), 16, func(i int) {
		for a := 0; a < len(c.replicas); a++ {
			var t taskView
			st, err := c.get(ctx, c.replicas[(i+a)%len(c.replicas)], "/redfish/v1/TaskService/Tasks/"+ids[i], &t)
			if err != nil {
				continue
			}
			t.Status = st
			out[i] = t
			return
		}
	})
	m := make(map[string]taskView, len(ids))
	for i, id := range ids {
		m[id] = out[i]
	}
	return m
}

// quiet reports whether the gateway lists no work and the simulator has
// nothing in flight on any node.
func (c *checker) quiet(vs []*sysView) (bool, []string) {
	var busy []string
	for i, v := range vs {
		st := c.nodes[i].node.Machine().Status()
		steady := st.PowerState == simulator.PowerOn || st.PowerState == simulator.PowerOff
		if v == nil || v.busy() || st.InFlight != 0 || !steady {
			busy = append(busy, c.nodes[i].id)
		}
	}
	return len(busy) == 0, busy
}

// settle waits (at most wait) until the gateway and the simulator are quiet
// in two reads a second apart and every task is terminal, then returns the
// last reads. ok is false when the wait ran out. stalled lists the nodes
// still busy stallAfter after the wait began, with how long they stayed busy.
func (c *checker) settle(ctx context.Context, wait, stallAfter time.Duration, logf func(string, ...any)) (vs []*sysView, tasks map[string]taskView, ok bool, stalled map[string]time.Duration) {
	start := time.Now()
	deadline := start.Add(wait)
	lastBusy := map[string]time.Time{}
	defer func() {
		stalled = map[string]time.Duration{}
		for id, t := range lastBusy {
			if d := t.Sub(start); d >= stallAfter {
				stalled[id] = d
			}
		}
	}()
	quietRounds := 0
	for {
		vs = c.views(ctx)
		q, busy := c.quiet(vs)
		now := time.Now()
		for _, id := range busy {
			lastBusy[id] = now
		}
		if q {
			quietRounds++
		} else {
			quietRounds = 0
		}
		switch {
		case quietRounds >= 2:
			tasks = c.tasks(ctx)
			open := 0
			for _, t := range tasks {
				if !t.terminal() {
					open++
				}
			}
			if open == 0 {
				return vs, tasks, true, nil
			}
			logf("quiet, but %d task(s) not terminal yet", open)
		case q:
			logf("quiet (confirming)")
		case len(busy) <= 5:
			logf("waiting for quiescence: busy %s", strings.Join(busy, ","))
		default:
			logf("waiting for quiescence: %d node(s) busy", len(busy))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if tasks == nil {
				tasks = c.tasks(context.Background())
			}
			return vs, tasks, false, nil
		}
		if !sleepCtx(ctx, time.Second) {
			return vs, c.tasks(context.Background()), false, nil
		}
	}
}

// facts gathers the facts of node i.
func (c *checker) facts(i int, v *sysView, tasks map[string]taskView) nodeFacts {
	st := c.nodes[i].node.Machine().Status()
	h := c.hist[i]
	f := nodeFacts{ID: h.id, SimPower: st.PowerState, SimInFlight: st.InFlight, MaxInFlight: st.MaxInFlight, Pending: h.pending}
	if v != nil {
		f.ViewOK, f.Desired, f.Busy = true, v.desired(), v.busy()
	}
	if e, ok := h.lastAccepted(); ok {
		f.HasLast, f.LastType, f.LastTask = true, e.Op, e.Task
		if t, ok := tasks[e.Task]; ok && t.Status == http.StatusOK {
			f.LastState = t.TaskState
		}
	}
	return f
}

// report is what the check found.
type report struct {
	tasksByState map[schemas.TaskState]int // final TaskState of every distinct task
	lost         []string                  // tasks not readable or not terminal
	overlaps     []string                  // nodes with MaxInFlight > 1
	unconverged  map[string][]string
	stalled      map[string]time.Duration // busy long after the load (informative)
	settled      bool
}

func (c *checker) judgeAll(vs []*sysView, tasks map[string]taskView, settled bool) report {
	r := report{tasksByState: map[schemas.TaskState]int{}, unconverged: map[string][]string{}, settled: settled}
	for id, t := range tasks {
		if t.terminal() {
			r.tasksByState[t.TaskState]++
		} else {
			r.lost = append(r.lost, id)
		}
	}
	sort.Strings(r.lost)
	for i := range c.nodes {
		f := c.facts(i, vs[i], tasks)
		if f.MaxInFlight > 1 {
			r.overlaps = append(r.overlaps, f.ID)
		}
		if p := judge(f); len(p) > 0 {
			r.unconverged[f.ID] = p
		}
	}
	return r
}

// explain prints everything known about one node, to debug a failure.
func (c *checker) explain(w io.Writer, i int, v *sysView, tasks map[string]taskView, redisLog func(node string) []string) {
	sn, h := c.nodes[i], c.hist[i]
	st := sn.node.Machine().Status()
	fmt.Fprintf(w, "--- node %s: simulated power %s, MaxInFlight %d, InFlight %d, commands %d, faults %+v, async %v\n",
		h.id, st.PowerState, st.MaxInFlight, st.InFlight, st.CommandCount, st.Faults, sn.node.Spec().AsyncReset)
	if v != nil {
		fg := v.Oem.Fishgate
		running := "null"
		if fg.RunningTask != nil {
			running = fmt.Sprintf("%s %s cancelling=%v", fg.RunningTask.ID, fg.RunningTask.ResetType, fg.RunningTask.Cancelling)
		}
		fmt.Fprintf(w, "    gateway: PowerState %s, DesiredPowerState %q, RunningTask %s, QueuedTasks %d, LastError %q\n",
			v.PowerState, v.desired(), running, len(fg.QueuedTasks), fg.LastError)
	} else {
		fmt.Fprintf(w, "    gateway: System not readable\n")
	}
	if h.pending != "" {
		fmt.Fprintf(w, "    an unanswered %s followed the last accepted request\n", h.pending)
	}
	fmt.Fprintf(w, "    requests (client order; * = last accepted):\n")
	for j, e := range h.events {
		mark := " "
		if j == h.last {
			mark = "*"
		}
		fmt.Fprintf(w, "    %s %s\n", mark, e)
	}
	fmt.Fprintf(w, "    tasks (final state):\n")
	for _, id := range h.tasks {
		fmt.Fprintf(w, "      %s: %s\n", id, tasks[id])
	}
	fmt.Fprintf(w, "    simulator command log:\n")
	cmds := st.Commands
	if len(cmds) > 60 {
		fmt.Fprintf(w, "      (%d earlier)\n", len(cmds)-60)
		cmds = cmds[len(cmds)-60:]
	}
	for _, cmd := range cmds {
		fmt.Fprintf(w, "      #%d %s %s %s: %s\n", cmd.Seq, cmd.Time.Format("15:04:05.000"), cmd.Protocol, cmd.Action, cmd.Result)
	}
	if redisLog != nil {
		if lines := redisLog(h.id); len(lines) > 0 {
			fmt.Fprintf(w, "    gateway node log (Redis):\n")
			for _, l := range lines {
				fmt.Fprintf(w, "      %s\n", l)
			}
		}
	}
}

// joinSorted lists map keys, sorted, comma-separated.
func joinSorted[V any](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}
