package gateway

import (
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/events"
)

// newEvents builds the replica's event bus from the events: section.
func newEvents(c config.Events, rdb redis.UniversalClient, log *slog.Logger) (*events.Bus, error) {
	attempts := c.DeliveryRetryAttempts
	if attempts == 0 {
		attempts = -1 // none (the bus reads 0 as its default)
	}
	return events.New(events.Options{
		Redis: rdb, AllowDestinations: c.AllowDestinations, RetryAttempts: attempts,
		RetryInterval: time.Duration(c.DeliveryRetryInterval), RetryPolicy: c.DeliveryRetryPolicy,
		MaxSubscriptions: c.MaxSubscriptions, MaxSubscriptionsPerOwner: c.MaxSubscriptionsPerUser, MaxLen: c.StreamMaxLen, Logger: log,
	})
}
