package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/simulator"
)

// MAAS's redfish power driver (docs/clients.md#maas, and MAAS's
// PowerDriver.cycle) against one node of every backend (issue 9): query, on,
// off, on, reset (PXE once + GracefulRestart, not waited for), cycle. Every
// request answers 2xx, the node reaches each state, and the simulator's
// command log shows the boot override and the phases of each action in order,
// one command at a time.

// maasQuery is MAAS's power query: Systems, Members[0], PowerState.
func (m *maasClient) maasQuery(t *testing.T) (sysPath string, on bool) {
	t.Helper()
	sysPath = m.maasSystem(t)
	o, _ := m.object(t, sysPath)
	ps, _ := o["PowerState"].(string)
	on, known := powerIsOn(ps)
	if !known {
		t.Fatalf("MAAS query: PowerState %q is not an answer", ps)
	}
	return sysPath, on
}

// maasOff is MAAS's "off": query, ForceOff and wait if not off, PXE once.
// It returns the Locations of the Resets it sent.
func (m *maasClient) maasOff(t *testing.T) []string {
	t.Helper()
	var locs []string
	sysPath, on := m.maasQuery(t)
	if on {
		locs = append(locs, m.maasReset(t, sysPath, "ForceOff"))
		m.waitPower(t, sysPath, false)
	}
	m.setPXE(t, m.maasSystem(t))
	return locs
}

// maasPowerReset is MAAS's "reset": PXE once, GracefulRestart, no wait.
func (m *maasClient) maasPowerReset(t *testing.T) []string {
	t.Helper()
	sysPath := m.maasSystem(t)
	m.setPXE(t, sysPath)
	return []string{m.maasReset(t, m.maasSystem(t), "GracefulRestart")}
}

// maasCycle is MAAS's "cycle" (PowerDriver.cycle): query, "off" if on,
// then "on".
func (m *maasClient) maasCycle(t *testing.T) []string {
	t.Helper()
	var locs []string
	if _, on := m.maasQuery(t); on {
		locs = m.maasOff(t)
	}
	return append(locs, m.maasOn(t)...)
}

// followTask polls the task monitor loc (a path under the per-node view,
// as the Reset's Location gave it) until it answers 200, and returns the
// finished Task. MAAS itself never looks at tasks: the test does, to know
// an action is over before it reads the command log.
func (m *maasClient) followTask(t *testing.T, node, loc string) map[string]any {
	t.Helper()
	rel, ok := strings.CutPrefix(loc, "/bmc/"+node+"/")
	if !ok || !strings.Contains(loc, monitorPath) {
		t.Fatalf("Reset Location %q is not a task monitor of the per-node view of %s", loc, node)
	}
	var task map[string]any
	waitFor(t, taskTimeout, "task monitor "+loc+" 200", func() (bool, string) {
		st, _, b := m.do(t, http.MethodGet, rel, nil, nil)
		if st == http.StatusOK {
			if err := json.Unmarshal(b, &task); err != nil {
				t.Fatalf("GET %s: 200 with a body that is not JSON: %v\n%s", loc, err, b)
			}
			return true, ""
		}
		return false, fmt.Sprint(st)
	})
	return task
}

// maasNode is one node of the test: its backend, the simulated machine's
// ResetTypes (nil: every type), whether its config says soft_off_fallback:
// force, and the wire commands MAAS's reset (GracefulRestart of a running
// node) becomes after its boot override.
type maasNode struct {
	id, backend string
	types       []string
	force       bool
	reset       []schemas.ResetType
}

// TestMAASPowerSequenceEveryBackend: MAAS's power sequence on a Redfish, an
// IPMI and an AMT node, and on an AMT machine without graceful power states
// whose node says soft_off_fallback: force (its GracefulRestart is a
// PowerCycle).
func TestMAASPowerSequenceEveryBackend(t *testing.T) {
	t.Parallel()
	noGraceful := []string{simulator.ResetOn, simulator.ResetForceOff, simulator.ResetPowerCycle, simulator.ResetNmi,
		simulator.ResetForceOn, simulator.ResetPushPowerButton}
	nodes := []maasNode{
		{"rf", "redfish", nil, false, []schemas.ResetType{schemas.ResetGracefulRestart}},
		{"ipmi", "ipmi", nil, false, []schemas.ResetType{schemas.ResetGracefulShutdown, schemas.ResetOn}},
		{"amt", "amt", nil, false, []schemas.ResetType{schemas.ResetGracefulRestart}},
		{"amt-nograce", "amt", noGraceful, true, []schemas.ResetType{schemas.ResetPowerCycle}},
	}
	var specs []gwNode
	for _, n := range nodes {
		spec := simulator.NodeSpec{ID: n.id, Machine: simulator.MachineConfig{DelayMin: delayMin, DelayMax: delayMax, ResetTypes: n.types}}
		switch n.backend {
		case "ipmi":
			spec.IPMIListen = "127.0.0.1:0"
		case "amt":
			spec.AMTListen = "127.0.0.1:0"
		}
		specs = append(specs, gwNode{n.backend, spec})
	}
	g := startGateway(t, specs, func(c *config.Config) {
		for i, n := range nodes {
			if n.force {
				c.Nodes[i].SoftOffFallback = "force"
			}
		}
	})

	for _, n := range nodes {
		t.Run(n.id, func(t *testing.T) {
			t.Parallel()
			m := g.machine(t, n.id)
			maas := newMAASClientAt(g.url, gwUser, gwPass, n.id)
			if allowed := g.allowedResets(t, n.id); !slices.Contains(allowed, schemas.ResetGracefulRestart) {
				t.Fatalf("%s does not offer GracefulRestart (MAAS's reset): %v", n.id, allowed)
			}
			if n.force {
				oem, _ := g.system(t, n.id)["Oem"].(map[string]any)
				fg, _ := oem["Fishgate"].(map[string]any)
				how, _ := fg["ResetTypes"].(map[string]any)
				if s, _ := how[string(schemas.ResetGracefulRestart)].(string); !strings.Contains(s, "soft_off_fallback: force") {
					t.Errorf("%s: Oem.Fishgate.ResetTypes.GracefulRestart %q does not say it is forced", n.id, s)
				}
			}
			proto := n.backend
			wire := func(rts ...schemas.ResetType) []string {
				var out []string
				for _, r := range rts {
					out = append(out, proto+" "+wireAction(proto, r)+": accepted")
				}
				return out
			}
			boot := proto + " SetBoot: accepted"

			// step runs one MAAS action, waits until every task it started
			// has ended, and checks the machine's power state and the
			// commands it received. A native restart of these fast
			// machines goes through Off too briefly to be seen between
			// power reads: its task ends Completed with a Warning saying
			// so (MAAS does not look). The phases of an emulated one are
			// each confirmed: OK, and the task names them in order.
			step := func(name string, action func(*testing.T) []string, state string, want []string, phases []schemas.ResetType) {
				t.Helper()
				seq0 := lastSeq(m)
				start := time.Now()
				locs := action(t)
				for _, loc := range locs {
					task := maas.followTask(t, n.id, loc)
					ids, res := taskMessages(task)
					if len(ids) == 0 {
						t.Fatalf("%s %s: finished task %s has no Messages", n.id, name, loc)
					}
					final := res[ids[len(ids)-1]]
					switch status, _ := task["TaskStatus"].(string); {
					case taskState(task) != "Completed":
						t.Fatalf("%s %s: task %s ended %s: %v %v; machine got %q", n.id, name, loc, taskState(task), ids, res, commandsSince(m, seq0))
					case status == "Warning" && len(phases) == 1 && strings.Contains(final, "not seen going through Off after "+string(phases[0])):
						t.Logf("%s %s: task Completed with Warning: %q", n.id, name, messageTexts(task))
					case status != "OK":
						t.Errorf("%s %s: task Completed with TaskStatus %q: %s", n.id, name, status, final)
					case len(phases) > 1:
						if !inOrder(final, phases) {
							t.Errorf("%s %s: the task's final message %q does not name the phases %v in order", n.id, name, final, phases)
						}
						t.Logf("%s %s: task Completed OK: %s", n.id, name, final)
					}
					// An emulated GracefulRestart (IPMI's two phases, or the
					// forced PowerCycle) says what was sent, as it was sent.
					if len(phases) > 0 && !slices.Equal(phases, []schemas.ResetType{schemas.ResetGracefulRestart}) {
						if texts := messageTexts(task); !stepsInOrder(texts, phaseSteps(phases)) {
							t.Errorf("%s %s: the task's messages %q do not show the steps %q in order", n.id, name, texts, phaseSteps(phases))
						}
					}
				}
				waitMachineState(t, m, state)
				got := commandsSince(m, seq0)
				if !slices.Equal(got, want) {
					t.Errorf("%s %s: the machine got %q, want %q", n.id, name, got, want)
				}
				t.Logf("%s %s: %v, %d Resets, machine got %q", n.id, name, time.Since(start).Round(time.Millisecond), len(locs), got)
			}

			sysPath, on := maas.maasQuery(t)
			if on {
				t.Fatalf("%s starts on", n.id)
			}
			if c := commandsSince(m, 0); len(c) != 0 {
				t.Fatalf("%s: the query sent commands: %q", n.id, c)
			}
			step("on", maas.maasOn, simulator.PowerOn, append([]string{boot}, wire(schemas.ResetOn)...), nil)
			step("off", maas.maasOff, simulator.PowerOff, append(wire(schemas.ResetForceOff), boot), nil)
			step("on again", maas.maasOn, simulator.PowerOn, append([]string{boot}, wire(schemas.ResetOn)...), nil)
			step("reset", maas.maasPowerReset, simulator.PowerOn, append([]string{boot}, wire(n.reset...)...), n.reset)
			maas.waitPower(t, sysPath, true)
			step("cycle", maas.maasCycle, simulator.PowerOn,
				slices.Concat(wire(schemas.ResetForceOff), []string{boot, boot}, wire(schemas.ResetOn)), nil)

			st := m.Status()
			if st.MaxInFlight != 1 || st.PowerState != simulator.PowerOn || st.Boot.Target != "Pxe" || st.Boot.Enabled != "Once" {
				t.Errorf("%s machine: MaxInFlight %d, %s, boot %+v; want 1, On, Pxe/Once", n.id, st.MaxInFlight, st.PowerState, st.Boot)
			}
		})
	}
}

// inOrder reports whether s names every phase, in order.
func inOrder(s string, phases []schemas.ResetType) bool {
	for _, p := range phases {
		i := strings.Index(s, string(p))
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}

// phaseSteps is what the Task of an action emulated in phases says as each
// happens: "phase i/n: <command>" when it is sent, "phase i/n done" when
// confirmed (but the last, which the final message covers).
func phaseSteps(phases []schemas.ResetType) []string {
	var out []string
	for i, p := range phases {
		out = append(out, fmt.Sprintf("phase %d/%d: %s", i+1, len(phases), p))
		if i+1 < len(phases) {
			out = append(out, fmt.Sprintf("phase %d/%d done", i+1, len(phases)))
		}
	}
	return out
}

// stepsInOrder reports whether msgs holds, in order, one message for each
// of steps (containing it).
func stepsInOrder(msgs, steps []string) bool {
	for _, m := range msgs {
		if len(steps) > 0 && strings.Contains(m, steps[0]) {
			steps = steps[1:]
		}
	}
	return len(steps) == 0
}

// messageTexts lists a task's Messages' Message texts, in order.
func messageTexts(task map[string]any) []string {
	var out []string
	msgs, _ := task["Messages"].([]any)
	for _, m := range msgs {
		mm, _ := m.(map[string]any)
		s, _ := mm["Message"].(string)
		out = append(out, s)
	}
	return out
}
