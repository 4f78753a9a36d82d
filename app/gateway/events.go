package gateway

import (
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/events"
)

// newEvents builds the replica's event bus from the configuration, named
// by the process's replica id.
func newEvents(cfg config.Config, rdb redis.UniversalClient, replica string, log *slog.Logger) (*events.Bus, error) {
	o := cfg.EventsOptions()
	o.Redis, o.ReplicaID, o.Logger = rdb, replica, log
	return events.New(o)
}
