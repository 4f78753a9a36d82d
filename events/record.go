package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
)

// Record is one event as kept in the stream. ID is its Redis stream id
// ("<ms>-<seq>"), which is also its Redfish EventId and its SSE id.
type Record struct {
	ID      string
	Time    time.Time
	Node    string
	Task    string
	Origin  string // under the service root: "/Systems/<node>", "/TaskService/Tasks/<task>"
	Message schemas.Message
}

// fields renders an emitted event as stream entry fields, compactly: at
// 10,000 nodes every event byte counts (an action's four events took 553
// bytes of Redis). A registry message is kept as its key ("id", the full
// MessageId when the key alone is ambiguous: schemas.ShortID) and
// arguments ("args": "T" for [task], "N" for [node]), with a reason
// appended to its text in "more"; any other as its JSON ("msg"). The time
// is in ms; a task of the node is "." and its last part; the origin is
// kept only when it is not the default one (the task's when there is a
// task, else the node's System). Registry events always have the same
// fields, so the stream stores their names once per node of entries.
func fields(e serializer.Event) ([]any, error) {
	f := []any{"time", strconv.FormatInt(e.Time.UnixMilli(), 10), "node", e.Node, "task", shortTask(e.Node, e.Task)}
	if m, more, ok := registryForm(e.Message); ok {
		id, _ := schemas.ShortID(m.MessageID, m.MessageArgs)
		f = append(f, "id", id, "args", argsForm(e.Node, e.Task, m.MessageArgs), "more", more)
	} else {
		msg, err := json.Marshal(e.Message)
		if err != nil {
			return nil, err
		}
		f = append(f, "msg", string(msg))
	}
	if e.Origin != defaultOrigin(e.Node, e.Task) {
		f = append(f, "origin", e.Origin)
	}
	return f, nil
}

// shortTask is task as stored: "." and its last part when it is a task of
// node ("<node>.<suffix>", the suffix without a dot), else whole.
func shortTask(node, task string) string {
	if rest, ok := strings.CutPrefix(task, node+"."); ok && node != "" && rest != "" && !strings.Contains(rest, ".") {
		return "." + rest
	}
	return task
}

// argsForm is a message's arguments as stored: "T" when they are the task
// alone, "N" when the node alone, else their JSON (which starts with "[").
func argsForm(node, task string, args []string) string {
	switch {
	case len(args) == 1 && task != "" && args[0] == task:
		return "T"
	case len(args) == 1 && node != "" && args[0] == node:
		return "N"
	}
	b, _ := json.Marshal(args) // strings always marshal
	return string(b)
}

// registryForm finds the registry message m is, possibly with a reason
// appended to its text (" " + more: a task's end says why): then the entry
// stores the id, the arguments and that reason, not the whole message
// (a TaskCompletedOK with its reason was 300 bytes, two thirds of them
// what the registry says anyway).
func registryForm(m schemas.Message) (reg schemas.Message, more string, ok bool) {
	reg, ok = schemas.MessageByID(m.MessageID, m.MessageArgs)
	if !ok {
		return reg, "", false
	}
	if sameMessage(reg, m) {
		return reg, "", true
	}
	rest, found := strings.CutPrefix(m.Message, reg.Message+" ")
	if !found || rest == "" {
		return reg, "", false
	}
	with := reg
	with.Message = m.Message
	return reg, rest, sameMessage(with, m)
}

// sameMessage reports whether a and b render the same.
func sameMessage(a, b schemas.Message) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// defaultOrigin is the origin an event has unless it says otherwise.
func defaultOrigin(node, task string) string {
	if task != "" {
		return "/TaskService/Tasks/" + task
	}
	return "/Systems/" + node
}

// parseRecord reads a stream entry; an entry that cannot be read keeps its
// id (so readers move past it) and an empty message. Entries of the
// earlier forms (full MessageId, args as JSON, whole task; before that,
// RFC 3339 time, "msg", "origin" always) read too.
func parseRecord(x redis.XMessage) (Record, error) {
	s := func(k string) string { v, _ := x.Values[k].(string); return v }
	r := Record{ID: x.ID, Node: s("node"), Task: s("task"), Origin: s("origin")}
	if strings.HasPrefix(r.Task, ".") {
		r.Task = r.Node + r.Task
	}
	if r.Origin == "" {
		r.Origin = defaultOrigin(r.Node, r.Task)
	}
	if ms, err := strconv.ParseInt(s("time"), 10, 64); err == nil {
		r.Time = time.UnixMilli(ms).UTC()
	} else if r.Time, err = time.Parse(time.RFC3339Nano, s("time")); err != nil {
		return r, fmt.Errorf("event %s: time: %w", x.ID, err)
	}
	if id := s("id"); id != "" {
		var args []string
		switch a := s("args"); a {
		case "T":
			args = []string{r.Task}
		case "N":
			args = []string{r.Node}
		default:
			if err := json.Unmarshal([]byte(a), &args); err != nil {
				return r, fmt.Errorf("event %s: message arguments: %w", x.ID, err)
			}
		}
		var m schemas.Message
		var ok bool
		if strings.Contains(id, ".") {
			m, ok = schemas.MessageByID(id, args)
		} else {
			m, ok = schemas.MessageByKey(id, args)
		}
		if !ok {
			return r, fmt.Errorf("event %s: message %s with %d arguments is in no registry", x.ID, id, len(args))
		}
		if more := s("more"); more != "" {
			m.Message += " " + more
		}
		r.Message = m
		return r, nil
	}
	if err := json.Unmarshal([]byte(s("msg")), &r.Message); err != nil {
		return r, fmt.Errorf("event %s: message: %w", x.ID, err)
	}
	return r, nil
}

// ResourceType is the schema name of the record's OriginOfCondition
// (the values of EventService.ResourceTypes).
func (r Record) ResourceType() string { return resourceType(r.Origin) }

func resourceType(origin string) string {
	switch {
	case strings.HasPrefix(origin, "/Systems/"):
		return "ComputerSystem"
	case strings.HasPrefix(origin, "/TaskService/Tasks/"):
		return "Task"
	}
	return ""
}

// RegistryPrefix is the registry of the record's MessageId ("ResourceEvent").
func (r Record) RegistryPrefix() string {
	p, _, _ := strings.Cut(r.Message.MessageID, ".")
	return p
}

// ResourceTypes and RegistryPrefixes are what the gateway's events carry
// (EventService.ResourceTypes and RegistryPrefixes).
var (
	ResourceTypes    = []string{"ComputerSystem", "Task"}
	RegistryPrefixes = []string{"ResourceEvent", "TaskEvent"}
)

// Payload renders records as one Redfish Event (Event v1_13_0). base is
// the URL prefix of the view the reader uses ("" or "/bmc/<node>"): the
// OriginOfCondition is a URI of that view. The Event's Id is the last
// record's id.
func Payload(base, context string, recs ...Record) schemas.Event {
	ev := schemas.Event{ODataType: schemas.TypeEvent, Name: "fishgate event", Context: context,
		Events: make([]schemas.EventRecord, 0, len(recs)), EventsCount: len(recs)}
	for i, r := range recs {
		ev.ID = r.ID
		args := r.Message.MessageArgs
		if args == nil {
			args = []string{}
		}
		er := schemas.EventRecord{
			EventType:       "Other",
			EventID:         r.ID,
			EventTimestamp:  r.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
			MemberID:        strconv.Itoa(i),
			MessageID:       r.Message.MessageID,
			Message:         r.Message.Message,
			MessageArgs:     args,
			MessageSeverity: r.Message.MessageSeverity,
			Resolution:      r.Message.Resolution,
		}
		if r.Origin != "" {
			er.OriginOfCondition = &schemas.Link{ODataID: base + "/redfish/v1" + r.Origin}
		}
		ev.Events = append(ev.Events, er)
	}
	return ev
}

// streamID is a parsed stream id, for ordering.
type streamID struct{ ms, seq uint64 }

func parseID(s string) (streamID, bool) {
	a, b, found := strings.Cut(s, "-")
	ms, err := strconv.ParseUint(a, 10, 64)
	if err != nil {
		return streamID{}, false
	}
	var seq uint64
	if found {
		if seq, err = strconv.ParseUint(b, 10, 64); err != nil {
			return streamID{}, false
		}
	}
	return streamID{ms, seq}, true
}

func (a streamID) less(b streamID) bool {
	return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq)
}

func (a streamID) String() string { return fmt.Sprintf("%d-%d", a.ms, a.seq) }

// ValidID reports whether s is a stream id a reader may resume after
// (the SSE Last-Event-ID).
func ValidID(s string) bool {
	_, ok := parseID(s)
	return ok
}
