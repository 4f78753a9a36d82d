package simulator

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestMachineTranscripts runs testdata/machine/*.txt. Each file runs in a
// synctest bubble, so time is virtual: transcripts show exact times and run
// in microseconds. Directives:
//
//	machine [delay=D | min=D max=D] [latency=D] [power=On] [types=(A,B)] [seed=N]
//	    a new machine; prints its state. Times print relative to its creation.
//	reset <ResetType> [timeout=D]   Reset, waiting for the answer
//	go <name> <ResetType> [timeout=D] Reset in a goroutine; its answer shows in run
//	async <name> <ResetType>        ResetAsync; its Outcome shows in run
//	run <D>                         let D pass, printing state changes, answers, outcomes
//	status                          the counters
//	log                             command log entries since the last log
//	faults [FailFirst=N] [Ignore] [Hang=D] [RefuseOnWithin=D] [NeverFinishSoftOff]
//	setpower <On|Off>
//	setboot [Target=X] [Enabled=X] [Mode=X]
//	close
func TestMachineTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/machine/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := &harness{}
				t.Cleanup(h.close)
				datadriven.RunTest(t, path, h.run)
			})
		})
	}
}

type harness struct {
	m       *Machine
	epoch   time.Time
	logSeen int

	mu     sync.Mutex
	events []event // answers and outcomes not yet printed
}

type event struct {
	at   time.Duration
	text string
}

func (h *harness) close() {
	if h.m != nil {
		h.m.Close()
	}
}

func (h *harness) since() time.Duration { return time.Since(h.epoch) }

func (h *harness) event(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, event{h.since(), fmt.Sprintf(format, args...)})
}

// takeEvents returns the events not yet printed, as lines. Events of the
// same instant are sorted, since goroutines woken together run in any order.
func (h *harness) takeEvents() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	slices.SortFunc(h.events, func(a, b event) int {
		return cmp.Or(cmp.Compare(a.at, b.at), strings.Compare(a.text, b.text))
	})
	lines := make([]string, len(h.events))
	for i, e := range h.events {
		lines[i] = fmt.Sprintf("%-7v %s", e.at, e.text)
	}
	h.events = nil
	return lines
}

func durArg(t *testing.T, d *datadriven.TestData, key string) (time.Duration, bool) {
	if !d.HasArg(key) {
		return 0, false
	}
	var s string
	d.ScanArgs(t, key, &s)
	v, err := time.ParseDuration(s)
	if err != nil {
		d.Fatalf(t, "%s: %v", key, err)
	}
	return v, true
}

// positional returns the i-th argument without a value.
func positional(t *testing.T, d *datadriven.TestData, i int) string {
	var keys []string
	for _, a := range d.CmdArgs {
		if len(a.Vals) == 0 {
			keys = append(keys, a.Key)
		}
	}
	if i >= len(keys) {
		d.Fatalf(t, "%s: missing argument %d", d.Cmd, i+1)
	}
	return keys[i]
}

func (h *harness) ctx(t *testing.T, d *datadriven.TestData) (context.Context, context.CancelFunc) {
	if timeout, ok := durArg(t, d, "timeout"); ok {
		return context.WithTimeout(context.Background(), timeout)
	}
	return context.WithCancel(context.Background())
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return "error: " + err.Error()
}

// run runs one directive; events that happened during it follow its output.
func (h *harness) run(t *testing.T, d *datadriven.TestData) string {
	out := h.directive(t, d)
	synctest.Wait()
	if ev := h.takeEvents(); len(ev) > 0 {
		out = strings.TrimSuffix(out, "\n") + "\n" + strings.Join(ev, "\n")
	}
	return out
}

func (h *harness) directive(t *testing.T, d *datadriven.TestData) string {
	if d.Cmd != "machine" && h.m == nil {
		d.Fatalf(t, "no machine yet")
	}
	switch d.Cmd {
	case "machine":
		h.close()
		var cfg MachineConfig
		if v, ok := durArg(t, d, "delay"); ok {
			cfg.DelayMin, cfg.DelayMax = v, v
		}
		if v, ok := durArg(t, d, "min"); ok {
			cfg.DelayMin = v
		}
		if v, ok := durArg(t, d, "max"); ok {
			cfg.DelayMax = v
		}
		if v, ok := durArg(t, d, "latency"); ok {
			cfg.CommandLatency = v
		}
		if d.HasArg("power") {
			d.ScanArgs(t, "power", &cfg.InitialPower)
		}
		for _, a := range d.CmdArgs {
			if a.Key == "types" {
				cfg.ResetTypes = a.Vals
			}
		}
		if d.HasArg("seed") {
			d.ScanArgs(t, "seed", &cfg.Seed)
		}
		h.m = NewMachine("n1", cfg)
		h.epoch = time.Now()
		h.logSeen = 0
		return h.m.PowerState()

	case "reset":
		ctx, cancel := h.ctx(t, d)
		defer cancel()
		start := time.Now()
		err := h.m.Reset(ctx, "redfish", positional(t, d, 0))
		return fmt.Sprintf("%s (answered after %v; now %s)", errText(err), time.Since(start), h.m.PowerState())

	case "go":
		name, rt := positional(t, d, 0), positional(t, d, 1)
		ctx, cancel := h.ctx(t, d)
		go func() {
			defer cancel()
			err := h.m.Reset(ctx, "redfish", rt)
			h.event("%s answered: %s", name, errText(err))
		}()
		synctest.Wait()
		return "now " + h.m.PowerState()

	case "async":
		name, rt := positional(t, d, 0), positional(t, d, 1)
		ch, err := h.m.ResetAsync(context.Background(), "redfish", rt)
		if err != nil {
			return errText(err)
		}
		go func() {
			o := <-ch
			switch {
			case o.Err != nil:
				h.event("%s ended: %s", name, errText(o.Err))
			case o.Superseded:
				h.event("%s ended: superseded", name)
			default:
				h.event("%s ended: settled", name)
			}
		}()
		synctest.Wait()
		return "now " + h.m.PowerState()

	case "run":
		total, err := time.ParseDuration(positional(t, d, 0))
		if err != nil {
			d.Fatalf(t, "run: %v", err)
		}
		var out strings.Builder
		state := h.m.PowerState()
		for end := time.Now().Add(total); time.Now().Before(end); {
			time.Sleep(time.Millisecond)
			synctest.Wait()
			for _, e := range h.takeEvents() {
				out.WriteString(e + "\n")
			}
			if s := h.m.PowerState(); s != state {
				fmt.Fprintf(&out, "%-7v %s\n", h.since(), s)
				state = s
			}
		}
		if out.Len() == 0 {
			return "(nothing happened)"
		}
		return out.String()

	case "status":
		s := h.m.Status()
		return fmt.Sprintf("PowerState=%s InFlight=%d MaxInFlight=%d PowerOnCount=%d PowerOffCount=%d CommandCount=%d FailFirst=%d",
			s.PowerState, s.InFlight, s.MaxInFlight, s.PowerOnCount, s.PowerOffCount, s.CommandCount, s.Faults.FailFirst)

	case "log":
		var out strings.Builder
		for _, c := range h.m.Status().Commands {
			if c.Seq <= h.logSeen {
				continue
			}
			h.logSeen = c.Seq
			fmt.Fprintf(&out, "#%-2d %-7v %s %s: %s\n", c.Seq, c.Time.Sub(h.epoch), c.Protocol, c.Action, c.Result)
		}
		return out.String()

	case "faults":
		var f Faults
		if d.HasArg("FailFirst") {
			d.ScanArgs(t, "FailFirst", &f.FailFirst)
		}
		f.Ignore = d.HasArg("Ignore")
		f.NeverFinishSoftOff = d.HasArg("NeverFinishSoftOff")
		f.Hang, _ = durArg(t, d, "Hang")
		f.RefuseOnWithin, _ = durArg(t, d, "RefuseOnWithin")
		h.m.SetFaults(f)
		return "ok"

	case "setpower":
		h.m.SetPower(positional(t, d, 0))
		return h.m.PowerState()

	case "setboot":
		var b Boot
		for _, a := range d.CmdArgs {
			switch a.Key {
			case "Target":
				b.Target = a.Vals[0]
			case "Enabled":
				b.Enabled = a.Vals[0]
			case "Mode":
				b.Mode = a.Vals[0]
			}
		}
		err := h.m.SetBoot("redfish", b)
		bo := h.m.Boot()
		return fmt.Sprintf("%s; %s/%s/%s", errText(err), bo.Target, bo.Enabled, bo.Mode)

	case "close":
		h.m.Close()
		return "closed"
	}
	d.Fatalf(t, "unknown command %q", d.Cmd)
	return ""
}

// TestMachineDelayWithinBounds draws many transitions and checks that each
// takes a time in [DelayMin, DelayMax] and that they are not all the same.
func TestMachineDelayWithinBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMachine("n1", MachineConfig{DelayMin: 20 * time.Millisecond, DelayMax: 60 * time.Millisecond, Seed: 7})
		defer m.Close()
		seen := map[time.Duration]bool{}
		for range 50 {
			ch, err := m.ResetAsync(t.Context(), "redfish", ResetOn)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if o := <-ch; o.Err != nil || o.Superseded {
				t.Fatalf("outcome %+v", o)
			}
			took := time.Since(start)
			if took < 20*time.Millisecond || took > 60*time.Millisecond {
				t.Fatalf("power-on took %v, want within [20ms, 60ms]", took)
			}
			seen[took] = true
			m.SetPower(PowerOff)
		}
		if len(seen) < 10 {
			t.Errorf("only %d distinct delays in 50 draws: %v", len(seen), seen)
		}
	})
}

// TestMachineSeedRepeats: the same seed gives the same delays.
func TestMachineSeedRepeats(t *testing.T) {
	draw := func(seed uint64) []time.Duration {
		m := NewMachine("n1", MachineConfig{DelayMin: time.Millisecond, DelayMax: time.Second, Seed: seed})
		defer m.Close()
		var ds []time.Duration
		for range 5 {
			ds = append(ds, m.delay())
		}
		return ds
	}
	a, b, c := draw(42), draw(42), draw(43)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("seed 42 gave %v then %v", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Errorf("seeds 42 and 43 both gave %v", a)
	}
}

// TestMachineCommandLogKeepsLast1000 sends 2500 commands: Status keeps the
// last 1000 in order and counts all.
func TestMachineCommandLogKeepsLast1000(t *testing.T) {
	m := NewMachine("n1", MachineConfig{})
	defer m.Close()
	for range 2500 {
		if err := m.Reset(t.Context(), "redfish", ResetNmi); err != nil {
			t.Fatal(err)
		}
	}
	s := m.Status()
	if s.CommandCount != 2500 || len(s.Commands) != 1000 {
		t.Fatalf("CommandCount %d, %d commands; want 2500, 1000", s.CommandCount, len(s.Commands))
	}
	for i, c := range s.Commands {
		if c.Seq != 1501+i {
			t.Fatalf("Commands[%d].Seq = %d, want %d", i, c.Seq, 1501+i)
		}
	}
}

// TestMachineConcurrent hammers one machine from many goroutines (run with
// -race): every command ends, nothing stays in flight, and the overlap
// counter saw the overlap.
func TestMachineConcurrent(t *testing.T) {
	m := NewMachine("n1", MachineConfig{DelayMin: time.Millisecond, DelayMax: 3 * time.Millisecond})
	defer m.Close()
	types := DefaultResetTypes()
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 40 {
				rt := types[(g+i)%len(types)]
				if i%2 == 0 {
					if err := m.Reset(t.Context(), "redfish", rt); err != nil {
						t.Error(err)
					}
					continue
				}
				ch, err := m.ResetAsync(t.Context(), "redfish", rt)
				if err != nil {
					t.Error(err)
					continue
				}
				if o := <-ch; o.Err != nil {
					t.Error(o.Err)
				}
				_ = m.Status()
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for m.Status().InFlight != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	s := m.Status()
	if s.InFlight != 0 {
		t.Errorf("InFlight = %d after every command ended", s.InFlight)
	}
	if s.MaxInFlight < 2 {
		t.Errorf("MaxInFlight = %d with 16 concurrent clients", s.MaxInFlight)
	}
	if s.CommandCount != 16*40 {
		t.Errorf("CommandCount = %d, want %d", s.CommandCount, 16*40)
	}
	if s.PowerState != PowerOn && s.PowerState != PowerOff {
		t.Errorf("PowerState %s after everything settled", s.PowerState)
	}
}

// TestMachineClose: Close ends pending commands with ErrClosed and later
// commands fail.
func TestMachineClose(t *testing.T) {
	m := NewMachine("n1", MachineConfig{DelayMin: time.Hour, DelayMax: time.Hour, CommandLatency: time.Hour})
	ch, err := m.ResetAsync(context.Background(), "redfish", ResetOn)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if o := <-ch; !errors.Is(o.Err, ErrClosed) {
		t.Errorf("pending command ended with %+v, want ErrClosed", o)
	}
	if err := m.Reset(context.Background(), "redfish", ResetOn); !errors.Is(err, ErrClosed) {
		t.Errorf("Reset after Close: %v, want ErrClosed", err)
	}
	if err := m.SetBoot("redfish", Boot{Target: "Pxe"}); !errors.Is(err, ErrClosed) {
		t.Errorf("SetBoot after Close: %v, want ErrClosed", err)
	}
	m.Close() // twice is fine
}

func TestFaultsJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Faults
		err  bool
	}{
		{in: `{"FailFirst":2,"Ignore":true,"Hang":1500000000,"RefuseOnWithin":"2s","NeverFinishSoftOff":true}`,
			want: Faults{FailFirst: 2, Ignore: true, Hang: 1500 * time.Millisecond, RefuseOnWithin: 2 * time.Second, NeverFinishSoftOff: true}},
		{in: `{"Hang":"250ms"}`, want: Faults{Hang: 250 * time.Millisecond}},
		{in: `{}`, want: Faults{}},
		{in: `{"Hang":"soon"}`, err: true},
		{in: `{"Hang":1.5}`, err: true},
		{in: `{"FailFrist":1}`, err: true},
		{in: `{"FailFirst":"1"}`, err: true},
	} {
		var f Faults
		err := json.Unmarshal([]byte(tc.in), &f)
		if (err != nil) != tc.err {
			t.Errorf("%s: err %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if !tc.err && f != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.in, f, tc.want)
		}
	}
	// Written as nanoseconds; read back the same.
	f := Faults{FailFirst: 1, Hang: time.Second, RefuseOnWithin: time.Minute}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"FailFirst":1,"Ignore":false,"Hang":1000000000,"RefuseOnWithin":60000000000,"NeverFinishSoftOff":false}`; string(b) != want {
		t.Errorf("Marshal: %s, want %s", b, want)
	}
	var back Faults
	if err := json.Unmarshal(b, &back); err != nil || back != f {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

// TestStatusJSON checks the field names others decode.
func TestStatusJSON(t *testing.T) {
	m := NewMachine("n7", MachineConfig{InitialPower: PowerOn})
	defer m.Close()
	if err := m.Reset(t.Context(), "redfish", ResetNmi); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m.Status())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Id", "PowerState", "Boot", "Commands", "CommandCount", "InFlight",
		"MaxInFlight", "PowerOnCount", "PowerOffCount", "Faults", "CommandLatency"} {
		if _, ok := got[k]; !ok {
			t.Errorf("Status JSON lacks %s: %s", k, b)
		}
	}
	if got["Id"] != "n7" || got["PowerState"] != "On" {
		t.Errorf("Status JSON %s", b)
	}
	boot := got["Boot"].(map[string]any)
	if boot["BootSourceOverrideTarget"] != "None" || boot["BootSourceOverrideEnabled"] != "Disabled" || boot["BootSourceOverrideMode"] != "UEFI" {
		t.Errorf("Boot JSON %v", boot)
	}
	cmds := got["Commands"].([]any)
	c := cmds[0].(map[string]any)
	if c["Seq"] != 1.0 || c["Protocol"] != "redfish" || c["Action"] != "Nmi" || c["Result"] != "accepted" || c["Time"] == nil {
		t.Errorf("Command JSON %v", c)
	}
	// A fresh machine has an empty list, not null.
	fresh := NewMachine("n8", MachineConfig{})
	defer fresh.Close()
	b, _ = json.Marshal(fresh.Status())
	if !strings.Contains(string(b), `"Commands":[]`) {
		t.Errorf("fresh Status JSON %s", b)
	}
}

// TestMachineHold: a held machine keeps power commands in flight until
// release; then they are carried out in order. A done ctx ends a held
// command without carrying it out.
func TestMachineHold(t *testing.T) {
	m := NewMachine("n1", MachineConfig{})
	defer m.Close()
	release := m.Hold()
	done := make(chan error, 1)
	go func() { done <- m.Reset(context.Background(), "redfish", "On") }()
	deadline := time.Now().Add(10 * time.Second)
	for m.Status().InFlight != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the On never reached the machine")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("a held command was answered (%v)", err)
	default:
	}
	if s := m.Status().PowerState; s != PowerOff {
		t.Fatalf("state %s while the On is held, want Off", s)
	}
	release()
	release() // twice is fine
	if err := <-done; err != nil {
		t.Fatalf("On after release: %v", err)
	}
	if in := m.Status().InFlight; in != 0 {
		t.Errorf("in flight after release: %d", in)
	}

	// Held, and the caller gives up: not carried out.
	release = m.Hold()
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- m.Reset(ctx, "redfish", "ForceOff") }()
	for m.Status().InFlight != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the ForceOff never reached the machine")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("held ForceOff with its ctx cancelled: %v, want context.Canceled", err)
	}
	st := m.Status()
	if last := st.Commands[len(st.Commands)-1]; last.Action != "ForceOff" || !strings.HasPrefix(last.Result, "failed") {
		t.Errorf("last command %+v, want a failed ForceOff", last)
	}
	if st.PowerOffCount != 0 {
		t.Errorf("the cancelled ForceOff was carried out: %d power-offs", st.PowerOffCount)
	}
}

// TestMachineHoldTransitions: a held transition stays in its transitional
// state past its time, and ends when released.
func TestMachineHoldTransitions(t *testing.T) {
	m := NewMachine("n1", MachineConfig{DelayMin: time.Millisecond, DelayMax: time.Millisecond})
	defer m.Close()
	release := m.HoldTransitions()
	defer release()
	ch, err := m.ResetAsync(context.Background(), "redfish", ResetOn)
	if err != nil {
		t.Fatal(err)
	}
	// The On's dwell (1 ms) is long past when this timer fires; the
	// machine is still powering on.
	select {
	case o := <-ch:
		t.Fatalf("the On ended (%+v) while transitions were held", o)
	case <-time.After(100 * time.Millisecond):
	}
	if s := m.Status().PowerState; s != PowerPoweringOn {
		t.Fatalf("state %s while held, want %s", s, PowerPoweringOn)
	}
	release()
	if o := <-ch; o.Err != nil {
		t.Fatalf("the On after release: %+v", o)
	}
	if s := m.Status().PowerState; s != PowerOn {
		t.Errorf("state %s after release, want On", s)
	}
}
