package events

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
)

// TestRecordsAreCompactAndReadBack: an event is stored as its message key
// and arguments, its time in ms and no default origin, a task of its node as
// "." and the rest of its id, arguments that are just the task or the node
// as "T" or "N", and reads back as the event emitted; a message of no
// registry keeps its JSON, and entries of the earlier forms (RFC 3339 time,
// "msg", "origin"; whole task id and JSON arguments) still read.
func TestRecordsAreCompactAndReadBack(t *testing.T) {
	at := time.Date(2026, 12, 5, 9, 0, 0, 123456789, time.UTC)
	custom := schemas.Message{MessageID: "Oem.1.0.Custom", Message: "custom", MessageArgs: []string{}, Severity: "OK"}
	withReason := schemas.TaskEvent(schemas.MsgTaskCompletedOK, "n1.t3")
	withReason.Message += " On confirmed by the BMC"
	otherText := schemas.TaskEvent(schemas.MsgTaskCompletedOK, "n1.t4")
	otherText.Message = "Something else entirely."
	otherSeverity := schemas.TaskEvent(schemas.MsgTaskCompletedOK, "n1.t5")
	otherSeverity.Message += " reason"
	otherSeverity.MessageSeverity = "Warning"
	// task and args are the values stored ("" for args: the JSON in "msg").
	for _, c := range []struct {
		e          serializer.Event
		task, args string
	}{
		{serializer.Event{Time: at, Node: "n1", Task: "n1.t1", Origin: "/TaskService/Tasks/n1.t1", Message: schemas.TaskEvent(schemas.MsgTaskStarted, "n1.t1")}, ".t1", "T"},
		{serializer.Event{Time: at, Node: "n1", Origin: "/Systems/n1", Message: schemas.ResourceEvent(schemas.MsgResourcePoweredOn, "n1")}, "", "N"},
		{serializer.Event{Time: at, Node: "n1", Task: "n1.t2", Origin: "/Systems/n1", Message: schemas.ResourceEvent(schemas.MsgResourceErrorsDetected, "n1", "x")}, ".t2", `["n1","x"]`},
		{serializer.Event{Time: at, Node: "n2", Origin: "/Systems/n2", Message: custom}, "", ""},
		{serializer.Event{Time: at, Node: "n1", Task: "n1.t3", Origin: "/TaskService/Tasks/n1.t3", Message: withReason}, ".t3", "T"},
		{serializer.Event{Time: at, Node: "n1", Task: "n1.t4", Origin: "/TaskService/Tasks/n1.t4", Message: otherText}, ".t4", ""},
		{serializer.Event{Time: at, Node: "n1", Task: "n1.t5", Origin: "/TaskService/Tasks/n1.t5", Message: otherSeverity}, ".t5", ""},
		// The node's argument under a task of the node, and an argument
		// that is neither.
		{serializer.Event{Time: at, Node: "n1", Task: "n1.t6", Origin: "/Systems/n1", Message: schemas.ResourceEvent(schemas.MsgResourcePoweredOff, "n1")}, ".t6", "N"},
		{serializer.Event{Time: at, Node: "n1", Origin: "/Systems/n1", Message: schemas.ResourceEvent(schemas.MsgResourcePoweredOn, "n2")}, "", `["n2"]`},
		// A node id with a dot: only its whole id and a dot are cut.
		{serializer.Event{Time: at, Node: "rack1.n1", Task: "rack1.n1.abc", Origin: "/TaskService/Tasks/rack1.n1.abc", Message: schemas.TaskEvent(schemas.MsgTaskStarted, "rack1.n1.abc")}, ".abc", "T"},
		{serializer.Event{Time: at, Node: "rack1.n1", Origin: "/Systems/rack1.n1", Message: schemas.ResourceEvent(schemas.MsgResourcePoweredOn, "rack1.n1")}, "", "N"},
		// Tasks not of the node are stored whole.
		{serializer.Event{Time: at, Node: "n1", Task: "n2.t7", Origin: "/TaskService/Tasks/n2.t7", Message: schemas.TaskEvent(schemas.MsgTaskStarted, "n2.t7")}, "n2.t7", "T"},
		{serializer.Event{Time: at, Node: "n1", Task: "n1x.t8", Origin: "/TaskService/Tasks/n1x.t8", Message: schemas.TaskEvent(schemas.MsgTaskStarted, "n1x.t8")}, "n1x.t8", "T"},
	} {
		e := c.e
		f, err := fields(e)
		if err != nil {
			t.Fatal(err)
		}
		x := redis.XMessage{ID: "1-0", Values: map[string]any{}}
		for i := 0; i+1 < len(f); i += 2 {
			x.Values[f[i].(string)] = f[i+1]
		}
		wantFull := e.Message.MessageID == custom.MessageID || e.Task == "n1.t4" || e.Task == "n1.t5"
		if _, full := x.Values["msg"]; full != wantFull {
			t.Errorf("%s: stored %v; want the JSON only for a message of no registry or that differs from it other than by a reason", e.Message.MessageID, x.Values)
		}
		if more, _ := x.Values["more"].(string); (more == "On confirmed by the BMC") != (e.Task == "n1.t3") {
			t.Errorf("%s: stored %v; want the appended reason alone in \"more\"", e.Message.MessageID, x.Values)
		}
		if _, has := x.Values["origin"]; has != (e.Origin == "/Systems/n1" && e.Task != "") {
			t.Errorf("%s: stored %v; want origin only when it is not the default", e.Message.MessageID, x.Values)
		}
		if task, _ := x.Values["task"].(string); task != c.task {
			t.Errorf("%s %s: stored task %q, want %q", e.Node, e.Task, task, c.task)
		}
		if args, _ := x.Values["args"].(string); args != c.args {
			t.Errorf("%s %s: stored args %q, want %q", e.Node, e.Message.MessageArgs, args, c.args)
		}
		// A registry message is stored by its bare key.
		if id, _ := x.Values["id"].(string); !wantFull && strings.Contains(id, ".") {
			t.Errorf("%s: id stored as %q, want the bare key", e.Message.MessageID, id)
		}
		r, err := parseRecord(x)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(e.Message)
		got, _ := json.Marshal(r.Message)
		if string(got) != string(want) || r.Origin != e.Origin || r.Node != e.Node || r.Task != e.Task || !r.Time.Equal(at.Truncate(time.Millisecond)) {
			t.Errorf("read back %+v (%s), want %+v (%s)", r, got, e, want)
		}
	}
	// The form before the abbreviations.
	prev := redis.XMessage{ID: "3-0", Values: map[string]any{"time": "1796536389451", "node": "n1", "task": "n1.t7",
		"id": "TaskEvent.1.0.TaskCompletedOK", "args": `["n1.t7"]`, "more": "On confirmed by the BMC"}}
	if r, err := parseRecord(prev); err != nil || r.Task != "n1.t7" || r.Message.MessageID != "TaskEvent.1.0.TaskCompletedOK" ||
		!strings.HasSuffix(r.Message.Message, " On confirmed by the BMC") || r.Origin != "/TaskService/Tasks/n1.t7" {
		t.Errorf("entry of the form before the abbreviations: %+v, %v", r, err)
	}
	old := redis.XMessage{ID: "2-0", Values: map[string]any{"time": at.Format(time.RFC3339Nano), "node": "n1", "task": "",
		"origin": "/Systems/n1", "msg": `{"MessageId":"ResourceEvent.1.4.ResourcePoweredOn","Message":"m","MessageArgs":["n1"]}`}}
	if r, err := parseRecord(old); err != nil || !r.Time.Equal(at) || r.Message.MessageID != "ResourceEvent.1.4.ResourcePoweredOn" || r.Origin != "/Systems/n1" {
		t.Errorf("entry of the earlier form: %+v, %v", r, err)
	}
	// The compact form before the task and arguments were shortened.
	for _, x := range []redis.XMessage{
		{ID: "3-0", Values: map[string]any{"time": "1796461200123", "node": "n1", "task": "n1.t1",
			"id": "TaskEvent.1.0.TaskStarted", "args": `["n1.t1"]`}},
		{ID: "4-0", Values: map[string]any{"time": "1796461200123", "node": "n1", "task": "",
			"id": "ResourceEvent.1.4.ResourcePoweredOn", "args": `["n1"]`}},
	} {
		r, err := parseRecord(x)
		want := schemas.ResourceEvent(schemas.MsgResourcePoweredOn, "n1")
		wantTask, wantOrigin := "", "/Systems/n1"
		if x.Values["task"] != "" {
			want = schemas.TaskEvent(schemas.MsgTaskStarted, "n1.t1")
			wantTask, wantOrigin = "n1.t1", "/TaskService/Tasks/n1.t1"
		}
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(r.Message)
		if err != nil || string(gj) != string(wj) || r.Node != "n1" || r.Task != wantTask || r.Origin != wantOrigin || !r.Time.Equal(at.Truncate(time.Millisecond)) {
			t.Errorf("entry of the compact form with whole task and JSON arguments: %+v (%s), %v; want %s", r, gj, err, wj)
		}
	}
}
