package config

import (
	"strings"
	"testing"
	"time"
)

func TestEventsSection(t *testing.T) {
	c, err := Parse([]byte(`
accounts: [{user: a, password: b}]
events:
  allow_destinations: [10.20.0.0/16, 192.0.2.7, "fd00::/8", hooks.lab.example]
  delivery_retry_attempts: 0
  delivery_retry_interval: 30s
  delivery_retry_policy: TerminateAfterRetries
`))
	if err != nil {
		t.Fatal(err)
	}
	e := c.Events
	if len(e.AllowDestinations) != 4 || e.DeliveryRetryAttempts != 0 || time.Duration(e.DeliveryRetryInterval) != 30*time.Second ||
		e.DeliveryRetryPolicy != "TerminateAfterRetries" || e.MaxSubscriptions != 100 || e.StreamMaxLen != EmbeddedKeep ||
		time.Duration(e.SSEKeepAlive) != 15*time.Second {
		t.Errorf("events: %+v", e)
	}
	d := Default().Events
	if d.DeliveryRetryAttempts != 3 || time.Duration(d.DeliveryRetryInterval) != 10*time.Second || d.DeliveryRetryPolicy != "SuspendRetries" ||
		d.MaxSubscriptionsPerUser != 10 || d.MaxSSEStreams != 256 || d.MaxSSEStreamsPerUser != 16 {
		t.Errorf("defaults: %+v", d)
	}
	for _, c := range []struct{ yaml, field string }{
		{"allow_destinations: [10.0.0.0/33]", "events.allow_destinations[0]"},
		{"allow_destinations: [ok.example, 'not a host']", "events.allow_destinations[1]"},
		{"allow_destinations: [ok.example, 0x7f.1]", "events.allow_destinations[1]"}, // an IPv4 address in hex, not a name
		{"delivery_retry_attempts: -1", "events.delivery_retry_attempts"},
		{"delivery_retry_interval: 10ms", "events.delivery_retry_interval"},
		{"delivery_retry_policy: Sometimes", "events.delivery_retry_policy"},
		{"max_subscriptions: 0", "events.max_subscriptions"},
		{"max_subscriptions_per_user: 0", "events.max_subscriptions_per_user"},
		{"max_sse_streams: -1", "events.max_sse_streams"},
		{"max_sse_streams_per_user: 0", "events.max_sse_streams_per_user"},
		{"stream_max_len: 10", "events.stream_max_len"},
		{"sse_keep_alive: 1h", "events.sse_keep_alive"},
		{"colour: red", "colour"},
	} {
		_, err := Parse([]byte("accounts: [{user: a, password: b}]\nevents:\n  " + c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: %v; want an error naming %s", c.yaml, err, c.field)
		}
	}
}
