package gateway

import (
	"log/slog"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/events"
	"github.com/fishgate/fishgate/internal/metrics"
	"github.com/fishgate/fishgate/internal/redisx"
)

// newEvents builds the replica's event bus from the configuration, named
// by the process's replica id, its writes acknowledged as rdb says.
func newEvents(cfg config.Config, rdb *redisx.Conn, replica string, log *slog.Logger, m *metrics.Metrics) (*events.Bus, error) {
	o := cfg.EventsOptions()
	o.Redis, o.Writes, o.ReplicaID, o.Logger, o.Metrics = rdb.Client, rdb.Writes(), replica, log, m
	return events.New(o)
}
