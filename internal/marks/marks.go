// Package marks is a set of things to look at again, taken in the order
// they were first marked; marking one already marked adds nothing, so a
// burst of notifications about the same few things costs one entry each.
//
// It lets a Redis subscriber hand its messages on without ever waiting:
// the embedded Redis (miniredis) writes a PUBLISH to each subscriber's
// connection while it holds its one lock, so a subscriber that stops
// reading its connection, because it waits for a reply to a call of its
// own, stops the whole server once the connection's buffers are full.
package marks

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Set is a set of marked keys. The zero value is not usable: use New.
type Set[K comparable] struct {
	mu     sync.Mutex
	marked map[K]bool
	order  []K
	wake   chan struct{}
}

// New returns an empty set.
func New[K comparable]() *Set[K] {
	return &Set[K]{marked: map[K]bool{}, wake: make(chan struct{}, 1)}
}

// Mark adds k unless it is marked already; it never blocks.
func (s *Set[K]) Mark(k K) {
	s.mu.Lock()
	if !s.marked[k] {
		s.marked[k] = true
		s.order = append(s.order, k)
	}
	s.mu.Unlock()
	s.signal()
}

// Wake receives after a Mark (one receive may stand for several).
func (s *Set[K]) Wake() <-chan struct{} { return s.wake }

func (s *Set[K]) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Next takes the oldest marked key, if any; marking it again from now on
// adds it again. When more remain it signals Wake, so that several
// takers share a backlog.
func (s *Set[K]) Next() (K, bool) {
	s.mu.Lock()
	if len(s.order) == 0 {
		s.mu.Unlock()
		var zero K
		return zero, false
	}
	k := s.order[0]
	var zero K
	s.order[0] = zero
	s.order = s.order[1:]
	if len(s.order) == 0 {
		s.order = nil // the backing array of a burst goes with it
	}
	delete(s.marked, k)
	more := len(s.order) > 0
	s.mu.Unlock()
	if more {
		s.signal()
	}
	return k, true
}

// Len is how many keys are marked and not taken.
func (s *Set[K]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

// Drain reads a subscription's channel until ctx ends or the channel
// closes, giving each message's payload to take, which must not block
// (Set.Mark does not). The returned channel closes when it stops.
func Drain(ctx context.Context, ch <-chan *redis.Message, take func(payload string)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				take(m.Payload)
			}
		}
	}()
	return done
}
