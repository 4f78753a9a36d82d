package events

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
)

// TestRecordsAreCompactAndReadBack: an event is stored as its MessageId and
// arguments, its time in ms and no default origin, and reads back as the
// event emitted; a message of no registry keeps its JSON, and an entry of
// the earlier form (RFC 3339 time, "msg", "origin") still reads.
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
	for _, e := range []serializer.Event{
		{Time: at, Node: "n1", Task: "n1.t1", Origin: "/TaskService/Tasks/n1.t1", Message: schemas.TaskEvent(schemas.MsgTaskStarted, "n1.t1")},
		{Time: at, Node: "n1", Origin: "/Systems/n1", Message: schemas.ResourceEvent(schemas.MsgResourcePoweredOn, "n1")},
		{Time: at, Node: "n1", Task: "n1.t2", Origin: "/Systems/n1", Message: schemas.ResourceEvent(schemas.MsgResourceErrorsDetected, "n1", "x")},
		{Time: at, Node: "n2", Origin: "/Systems/n2", Message: custom},
		{Time: at, Node: "n1", Task: "n1.t3", Origin: "/TaskService/Tasks/n1.t3", Message: withReason},
		{Time: at, Node: "n1", Task: "n1.t4", Origin: "/TaskService/Tasks/n1.t4", Message: otherText},
		{Time: at, Node: "n1", Task: "n1.t5", Origin: "/TaskService/Tasks/n1.t5", Message: otherSeverity},
	} {
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
	old := redis.XMessage{ID: "2-0", Values: map[string]any{"time": at.Format(time.RFC3339Nano), "node": "n1", "task": "",
		"origin": "/Systems/n1", "msg": `{"MessageId":"ResourceEvent.1.4.ResourcePoweredOn","Message":"m","MessageArgs":["n1"]}`}}
	if r, err := parseRecord(old); err != nil || !r.Time.Equal(at) || r.Message.MessageID != "ResourceEvent.1.4.ResourcePoweredOn" || r.Origin != "/Systems/n1" {
		t.Errorf("entry of the earlier form: %+v, %v", r, err)
	}
}
