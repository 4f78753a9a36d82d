package serializer

import (
	"context"
	"sort"
	"time"
)

// Draining (SIGTERM, docs/architecture.md#signals): a replica that is
// going away stops taking leases, lets the actions it runs finish, and
// when its time is up stops the rest and releases their leases, telling
// the other replicas (fg:node) so that one takes each node over at once
// instead of after the lease TTL. An action stopped so is resumed by its
// new holder as after a crash (the recovery path), never re-sent blindly.

// DrainReport says how a drain ended: the tasks this replica was running
// when it began, by how they ended here.
type DrainReport struct {
	// Finished ran to their end on this replica.
	Finished []string
	// HandedOver were stopped when the time was up; their leases were
	// released for another replica (or this one, restarted) to resume them.
	HandedOver []string
}

// drainPoll is how often Drain looks whether its workers stopped.
const drainPoll = 20 * time.Millisecond

// Drain stops this replica from starting actions (no new lease: work
// admitted from now on, here or elsewhere, is left to the other
// replicas), waits until the actions it runs have finished, or ctx ends,
// then stops the service's background work: actions still running are
// abandoned and their leases released at once. Call Close afterwards.
func (s *Service) Drain(ctx context.Context) DrainReport {
	s.draining.Store(true)
	running := map[string]string{} // node -> its task when the drain began
	for _, n := range s.snapshot() {
		if n.isWorking() {
			n.mu.RLock()
			if t := n.view.State.Slots.Now.Task; t != "" {
				running[n.ID] = t
			}
			n.mu.RUnlock()
		}
	}
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
wait:
	for s.anyWorking() {
		select {
		case <-ctx.Done():
			break wait
		case <-tick.C:
		}
	}
	s.cancel()
	s.wg.Wait() // every worker has released its lease and announced it (work)
	var rep DrainReport
	rctx, cancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
	defer cancel()
	for _, id := range running {
		if t, err := s.store.Task(rctx, id); err == nil && t.State.Terminal() {
			rep.Finished = append(rep.Finished, id)
		} else {
			rep.HandedOver = append(rep.HandedOver, id)
		}
	}
	sort.Strings(rep.Finished)
	sort.Strings(rep.HandedOver)
	return rep
}

// Draining reports whether Drain began.
func (s *Service) Draining() bool { return s.draining.Load() }

// anyWorking reports whether a worker of this replica runs.
func (s *Service) anyWorking() bool {
	for _, n := range s.snapshot() {
		if n.isWorking() {
			return true
		}
	}
	return false
}

// handOver tells every replica that node's lease is free: they re-read
// the node and the first to take the lease resumes its work (or runs the
// action waiting next).
func (s *Service) handOver(node string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CallTimeout)
	defer cancel()
	if err := s.opts.Redis.Publish(ctx, "fg:node", node).Err(); err != nil {
		s.opts.Logger.Warn("hand-over not announced; another replica takes the node over at its next scan", "node", node, "err", err)
	}
}
