package config

import (
	"time"

	"github.com/fishgate/fishgate/events"
	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
)

// The configuration passed down: the serializer and the event bus take
// every setting the file states from here, and have no defaults of their
// own for them.

// SerializerOptions are the serializer's settings from the configuration.
// The caller adds what a file does not state: Redis, the process's
// ReplicaID (the event bus gets the same), Events and Logger.
func (c Config) SerializerOptions() serializer.Options {
	rules := c.Admission.Rules()
	return serializer.Options{
		Rules:           &rules,
		LeaseTTL:        time.Duration(c.LeaseTTL),
		SyncInterval:    time.Duration(c.SyncInterval),
		SyncConcurrency: c.SyncConcurrency,
		SyncPerKind:     c.SyncPerBackend,
		VerifyTimeout:   time.Duration(c.VerifyTimeout),
		SoftOffTimeout:  time.Duration(c.SoftOffTimeout),
		SoftOffFallback: c.SoftOffFallback,
		RestartEvidence: time.Duration(c.RestartEvidence),
		Retries:         c.Retries,
		KeepTasks:       c.Tasks.Keep,
		KeepTaskAge:     time.Duration(c.Tasks.KeepFor),
		KeepTasksTotal:  c.Tasks.KeepTotal,

		MaxPowerOnPerSecond: c.MaxPowerOnPerSecond,
	}
}

// EventsOptions are the event bus's settings from the configuration. The
// caller adds Redis, the process's ReplicaID (the serializer's) and Logger.
func (c Config) EventsOptions() events.Options {
	e := c.Events
	return events.Options{
		MaxLen:                   e.StreamMaxLen,
		AllowDestinations:        e.AllowDestinations,
		RetryAttempts:            e.DeliveryRetryAttempts,
		RetryInterval:            time.Duration(e.DeliveryRetryInterval),
		RetryPolicy:              e.DeliveryRetryPolicy,
		MaxSubscriptions:         e.MaxSubscriptions,
		MaxSubscriptionsPerOwner: e.MaxSubscriptionsPerUser,
		LeaseTTL:                 time.Duration(c.LeaseTTL),
	}
}

// Rules are the serializer's admission rules from the admission section.
func (a Admission) Rules() serializer.Rules {
	r := serializer.Rules{
		Policy:     serializer.Policy(a.Policy),
		Precedence: serializer.Precedence{},
		QueueMax:   a.QueueMax,
		FlipLimit:  a.FlipLimit,
		FlipWindow: time.Duration(a.FlipWindow),
	}
	for k, v := range a.Precedence {
		r.Precedence[schemas.ResetType(k)] = v
	}
	return r
}
