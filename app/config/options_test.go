package config

import (
	"reflect"
	"testing"
	"time"

	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
)

// TestOptionsPassedDown: what the file says is what the serializer and the
// event bus get.
func TestOptionsPassedDown(t *testing.T) {
	c, err := Parse([]byte(good + `
lease_ttl: 30s
sync_interval: 45s
sync_concurrency: 7
sync_per_backend: 3
verify_timeout: 90s
soft_off_timeout: 2m
soft_off_fallback: force
restart_evidence: 4s
retries: 0
tasks: {keep: 12, keep_for: 2h}
admission: {policy: queue, queue_max: 5, flip_limit: 0}
events:
  allow_destinations: [10.0.0.0/8]
  delivery_retry_attempts: 0
  delivery_retry_interval: 20s
  delivery_retry_policy: TerminateAfterRetries
  max_subscriptions: 40
  max_subscriptions_per_user: 4
  stream_max_len: 5000
`))
	if err != nil {
		t.Fatal(err)
	}
	s := c.SerializerOptions()
	if s.LeaseTTL != 30*time.Second || s.SyncInterval != 45*time.Second || s.SyncConcurrency != 7 || s.SyncPerKind != 3 ||
		s.VerifyTimeout != 90*time.Second || s.SoftOffTimeout != 2*time.Minute || s.SoftOffFallback != "force" ||
		s.RestartEvidence != 4*time.Second || s.Retries != 0 || s.KeepTasks != 12 || s.KeepTaskAge != 2*time.Hour {
		t.Errorf("serializer options %+v", s)
	}
	want := serializer.Rules{Policy: serializer.PolicyQueue, QueueMax: 5, FlipLimit: 0, FlipWindow: time.Minute,
		Precedence: serializer.Precedence{schemas.ResetForceOff: 2, schemas.ResetGracefulShutdown: 1}}
	if s.Rules == nil || !reflect.DeepEqual(*s.Rules, want) {
		t.Errorf("rules %+v, want %+v", s.Rules, want)
	}
	c.Admission.Precedence = map[string]int{"On": 3}
	if p := c.Admission.Rules().Precedence; !reflect.DeepEqual(p, serializer.Precedence{schemas.ResetOn: 3}) {
		t.Errorf("precedence %v, want On: 3 only", p)
	}
	e := c.EventsOptions()
	if e.LeaseTTL != 30*time.Second || !reflect.DeepEqual(e.AllowDestinations, []string{"10.0.0.0/8"}) || e.RetryAttempts != 0 ||
		e.RetryInterval != 20*time.Second || e.RetryPolicy != "TerminateAfterRetries" || e.MaxSubscriptions != 40 ||
		e.MaxSubscriptionsPerOwner != 4 || e.MaxLen != 5000 {
		t.Errorf("event bus options %+v", e)
	}
}

// TestSerializerHelpersAgree: the serializer's DefaultRules and a bare
// Store's retention (for tests and tools that use the Store without a
// configuration) are the default configuration's.
func TestSerializerHelpersAgree(t *testing.T) {
	d := Default()
	if r := d.Admission.Rules(); !reflect.DeepEqual(r, serializer.DefaultRules()) {
		t.Errorf("default admission %+v, serializer.DefaultRules %+v", r, serializer.DefaultRules())
	}
	st := serializer.NewStore(nil)
	if st.KeepTasks != d.Tasks.Keep || st.KeepTaskAge != time.Duration(d.Tasks.KeepFor) {
		t.Errorf("NewStore keeps %d tasks for %s; the default configuration %d for %s",
			st.KeepTasks, st.KeepTaskAge, d.Tasks.Keep, time.Duration(d.Tasks.KeepFor))
	}
}
