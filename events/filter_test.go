package events

import (
	"testing"

	"github.com/fishgate/fishgate/schemas"
)

func rec(origin string, msg schemas.Message) Record {
	return Record{ID: "1-0", Origin: origin, Message: msg}
}

func TestFilter(t *testing.T) {
	on := rec("/Systems/n1", schemas.ResourceEvent(schemas.MsgResourcePoweredOn, "n1"))
	off2 := rec("/Systems/n2", schemas.ResourceEvent(schemas.MsgResourcePoweredOff, "n2"))
	task := rec("/TaskService/Tasks/n1.x", schemas.TaskEvent(schemas.MsgTaskCompletedOK, "n1.x"))
	all := []Record{on, off2, task}
	cases := []struct {
		filter string
		want   []bool // on, off2, task
	}{
		{"", []bool{true, true, true}},
		{"OriginResource eq '/redfish/v1/Systems/n1'", []bool{true, false, false}},
		{"OriginResource eq '/bmc/n1/redfish/v1/Systems/n1/'", []bool{true, false, false}},
		{"originresource EQ '/redfish/v1/Systems/n2'", []bool{false, true, false}},
		{"MessageId eq 'ResourceEvent.1.4.ResourcePoweredOn'", []bool{true, false, false}},
		{"MessageId eq 'ResourceEvent.ResourcePoweredOn'", []bool{true, false, false}},
		{"MessageId eq 'ResourceEvent.1.ResourcePoweredOn'", []bool{true, false, false}},
		{"MessageId eq 'ResourceEvent.2.ResourcePoweredOn'", []bool{false, false, false}},
		{"MessageId eq ResourceEvent.1.4.ResourcePoweredOff", []bool{false, true, false}},
		{"RegistryPrefix eq 'TaskEvent'", []bool{false, false, true}},
		{"ResourceType eq 'ComputerSystem'", []bool{true, true, false}},
		{"ResourceType ne 'ComputerSystem'", []bool{false, false, true}},
		{"EventFormatType eq 'Event'", []bool{true, true, true}},
		{"EventFormatType eq 'MetricReport'", []bool{false, false, false}},
		{"OriginResource eq '/redfish/v1/Systems/n1' or RegistryPrefix eq 'TaskEvent'", []bool{true, false, true}},
		{"ResourceType eq 'ComputerSystem' and MessageId eq 'ResourceEvent.ResourcePoweredOff'", []bool{false, true, false}},
		// and binds tighter than or
		{"RegistryPrefix eq 'TaskEvent' or ResourceType eq 'ComputerSystem' and OriginResource eq '/redfish/v1/Systems/n2'", []bool{false, true, true}},
		{"(RegistryPrefix eq 'TaskEvent' or ResourceType eq 'ComputerSystem') and OriginResource eq '/redfish/v1/Systems/n2'", []bool{false, true, false}},
		{"((OriginResource eq '/redfish/v1/Systems/n1'))", []bool{true, false, false}},
	}
	for _, c := range cases {
		f, err := ParseFilter(c.filter)
		if err != nil {
			t.Errorf("%q: %v", c.filter, err)
			continue
		}
		for i, r := range all {
			if got := f.Match(r); got != c.want[i] {
				t.Errorf("%q on %s %s: %v, want %v", c.filter, r.Origin, r.Message.MessageID, got, c.want[i])
			}
		}
	}
}

func TestFilterErrors(t *testing.T) {
	for _, s := range []string{
		"Colour eq 'red'",
		"OriginResource gt '/redfish/v1/Systems/n1'",
		"OriginResource eq '/Systems/n1'",
		"OriginResource eq",
		"MessageId eq 'x' and",
		"(MessageId eq 'x'",
		"MessageId eq 'x')",
		"MessageId eq 'unterminated",
		"'MessageId' eq 'x'",
		"MessageId eq 'x' MessageId eq 'y'",
		"MessageId eq )",
	} {
		if _, err := ParseFilter(s); err == nil {
			t.Errorf("%q parsed; want an error", s)
		}
	}
}

func TestQuotedQuote(t *testing.T) {
	f, err := ParseFilter("MessageId eq 'A.it''s'")
	if err != nil {
		t.Fatal(err)
	}
	if !f.Match(Record{Message: schemas.Message{MessageID: "A.it's"}}) {
		t.Error("'' is not read as a quote")
	}
}

func TestSubscriptionMatch(t *testing.T) {
	on := Record{Node: "n1", Origin: "/Systems/n1", Message: schemas.ResourceEvent(schemas.MsgResourcePoweredOn, "n1")}
	task := Record{Node: "n1", Task: "n1.x", Origin: "/TaskService/Tasks/n1.x", Message: schemas.TaskEvent(schemas.MsgTaskStarted, "n1.x")}
	other := Record{Node: "n2", Origin: "/Systems/n2", Message: schemas.ResourceEvent(schemas.MsgResourcePoweredOn, "n2")}
	cases := []struct {
		name string
		sub  Subscription
		want []bool // on, task, other
	}{
		{"everything", Subscription{}, []bool{true, true, true}},
		{"registry", Subscription{RegistryPrefixes: []string{"TaskEvent"}}, []bool{false, true, false}},
		{"resource type", Subscription{ResourceTypes: []string{"ComputerSystem"}}, []bool{true, false, true}},
		{"origin", Subscription{OriginResources: []string{"/Systems/n2"}}, []bool{false, false, true}},
		{"message id", Subscription{MessageIDs: []string{"ResourceEvent.ResourcePoweredOn"}}, []bool{true, false, true}},
		{"node scope", Subscription{Node: "n1"}, []bool{true, true, false}},
		{"all lists must match", Subscription{RegistryPrefixes: []string{"ResourceEvent"}, OriginResources: []string{"/Systems/n1"}}, []bool{true, false, false}},
	}
	for _, c := range cases {
		for i, r := range []Record{on, task, other} {
			if got := c.sub.Match(r); got != c.want[i] {
				t.Errorf("%s on %s: %v, want %v", c.name, r.Message.MessageID, got, c.want[i])
			}
		}
	}
}
