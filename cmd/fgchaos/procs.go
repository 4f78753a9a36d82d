package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/fishgate/fishgate/internal/redisproc"
)

// waitReady polls a replica's /readyz until 200, the process exits, or the
// wait is over.
func waitReady(ctx context.Context, p *redisproc.Proc, base string, wait time.Duration) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if !p.Running() {
			return fmt.Errorf("%s exited while starting; log tail:\n%s", p.Name, p.Tail(15))
		}
		resp, err := c.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s not ready at %s within %v; log tail:\n%s", p.Name, base, wait, p.Tail(15))
}
