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

// fields renders an emitted event as stream entry fields.
func fields(e serializer.Event) ([]any, error) {
	msg, err := json.Marshal(e.Message)
	if err != nil {
		return nil, err
	}
	return []any{
		"time", e.Time.UTC().Format(time.RFC3339Nano),
		"node", e.Node, "task", e.Task, "origin", e.Origin, "msg", string(msg),
	}, nil
}

// parseRecord reads a stream entry; an entry that cannot be read keeps its
// id (so readers move past it) and an empty message.
func parseRecord(x redis.XMessage) (Record, error) {
	s := func(k string) string { v, _ := x.Values[k].(string); return v }
	r := Record{ID: x.ID, Node: s("node"), Task: s("task"), Origin: s("origin")}
	var err error
	if r.Time, err = time.Parse(time.RFC3339Nano, s("time")); err != nil {
		return r, fmt.Errorf("event %s: time: %w", x.ID, err)
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
