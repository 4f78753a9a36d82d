package schemas

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestTaskStatesAreDMTFs: every TaskState fishgate uses is a value of the
// DMTF Task schema's TaskState enum (DSP8010, Task v1_7), not deprecated.
func TestTaskStatesAreDMTFs(t *testing.T) {
	b := dmtfFile(t, "json-schema", "FISHGATE_REDFISH_SCHEMAS", "Task.v1_7_4.json")
	var sch struct {
		Definitions map[string]struct {
			Enum           []string
			EnumDeprecated map[string]string
		}
	}
	if err := json.Unmarshal(b, &sch); err != nil {
		t.Fatal(err)
	}
	def, ok := sch.Definitions["TaskState"]
	if !ok || len(def.Enum) == 0 {
		t.Fatal("Task.v1_7_4.json: no TaskState enum")
	}
	for _, s := range TaskStates {
		if !slices.Contains(def.Enum, string(s)) {
			t.Errorf("TaskState %q is not in the DMTF enum %v", s, def.Enum)
		}
		if why, dep := def.EnumDeprecated[string(s)]; dep {
			t.Errorf("TaskState %q is deprecated: %s", s, why)
		}
	}
}

func TestTaskStateTerminal(t *testing.T) {
	var terminal []TaskState
	for _, s := range TaskStates {
		if s.Terminal() {
			terminal = append(terminal, s)
		}
	}
	want := []TaskState{TaskStateCompleted, TaskStateException, TaskStateCancelled}
	if !slices.Equal(terminal, want) {
		t.Errorf("terminal states %v, want %v", terminal, want)
	}
}
