package redfish_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/simulator"
)

// TestEmulatedResetTypesShowPhases: a BMC that offers only On and ForceOff.
// The System offers the other types too, says how each is emulated, and a
// PowerCycle's Task lists its phases as TaskProgressChanged messages.
func TestEmulatedResetTypesShowPhases(t *testing.T) {
	e := newEnvWith(t, testkit.MiniRedis(t), time.Minute, envConfig{nodes: 1, machine: simulator.MachineConfig{
		InitialPower: simulator.PowerOn, ResetTypes: []string{simulator.ResetOn, simulator.ResetForceOff},
		DelayMin: 100 * time.Millisecond, DelayMax: 100 * time.Millisecond}})
	sys := e.do("GET", "/redfish/v1/Systems/node1", "").json(t)
	allowed := sys["Actions"].(map[string]any)["#ComputerSystem.Reset"].(map[string]any)["ResetType@Redfish.AllowableValues"].([]any)
	for _, want := range []string{"On", "ForceOff", "PowerCycle", "ForceRestart", "ForceOn"} {
		if !slices.Contains(allowed, any(want)) {
			t.Errorf("AllowableValues %v lack %s", allowed, want)
		}
	}
	for _, no := range []string{"Nmi", "GracefulShutdown", "GracefulRestart", "PushPowerButton"} {
		if slices.Contains(allowed, any(no)) {
			t.Errorf("AllowableValues %v offer %s, which On and ForceOff cannot build", allowed, no)
		}
	}
	how := sys["Oem"].(map[string]any)["Fishgate"].(map[string]any)["ResetTypes"].(map[string]any)
	if how["PowerCycle"] != "ForceOff, then On" || how["On"] != "native" || how["ForceOn"] != "On" {
		t.Errorf("Oem.Fishgate.ResetTypes %v", how)
	}
	if r := e.do("POST", "/redfish/v1/Systems/node1/Actions/ComputerSystem.Reset", `{"ResetType":"Nmi"}`); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "ActionParameterValueNotInList") {
		t.Errorf("Nmi on a BMC without one: %d %s", r.Status, r.Body)
	}

	_, task := e.startTask("", "PowerCycle")
	deadline := time.Now().Add(10 * time.Second)
	var tk map[string]any
	for {
		tk = e.do("GET", task, "").json(t)
		if tk["TaskState"] == "Completed" || tk["TaskState"] == "Exception" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tk["TaskState"] != "Completed" {
		t.Fatalf("PowerCycle: %v", tk)
	}
	var texts []string
	for _, m := range tk["Messages"].([]any) {
		m := m.(map[string]any)
		if strings.HasSuffix(m["MessageId"].(string), "TaskProgressChanged") {
			texts = append(texts, m["Message"].(string))
		}
	}
	joined := strings.Join(texts, "\n")
	for _, want := range []string{"phase 1/2: ForceOff", "phase 1/2 done: Off confirmed", "phase 2/2: On"} {
		if !strings.Contains(joined, want) {
			t.Errorf("task messages lack %q:\n%s", want, joined)
		}
	}
	sn, _ := e.fleet.Node("node1")
	var cmds []string
	for _, c := range sn.Machine().Status().Commands {
		cmds = append(cmds, c.Action+":"+c.Result)
	}
	if !slices.Equal(cmds, []string{"ForceOff:accepted", "On:accepted"}) {
		t.Errorf("machine got %v", cmds)
	}
}
