package serializer

import (
	"sync"
)

// changeReaders is how many goroutines re-read the nodes that the fg:node
// channel says changed.
const changeReaders = 4

// changes holds the nodes whose state changed (an fg:node message) and has
// not been read again since. The subscriber only marks a node: it never
// waits for Redis. That matters with the embedded Redis (miniredis), which
// writes a PUBLISH to each subscriber's connection while it holds its one
// lock: a subscriber that stops reading its connection, because it waits
// for a reply to a read of its own, stops the whole server once the
// connection's buffers are full (a fleet-wide action at 10,000 nodes did
// that: every Redis call of the gateway hung). Readers take the marked
// nodes in order; a node marked again before it is read is read once, so
// the backlog is at most one entry per node.
type changes struct {
	mu     sync.Mutex
	marked map[*node]bool
	order  []*node
	wake   chan struct{}
}

func newChanges() *changes {
	return &changes{marked: map[*node]bool{}, wake: make(chan struct{}, 1)}
}

// mark records that n changed; it never blocks.
func (c *changes) mark(n *node) {
	c.mu.Lock()
	if !c.marked[n] {
		c.marked[n] = true
		c.order = append(c.order, n)
	}
	c.mu.Unlock()
	c.signal()
}

func (c *changes) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// next takes the oldest marked node, if any. When more remain it wakes
// another reader, so that a backlog is read by all of them.
func (c *changes) next() (*node, bool) {
	c.mu.Lock()
	if len(c.order) == 0 {
		c.mu.Unlock()
		return nil, false
	}
	n := c.order[0]
	c.order[0] = nil
	c.order = c.order[1:]
	if len(c.order) == 0 {
		c.order = nil // the backing array of a burst goes with it
	}
	delete(c.marked, n)
	more := len(c.order) > 0
	c.mu.Unlock()
	if more {
		c.signal()
	}
	return n, true
}

// pending is how many nodes are marked and not taken yet.
func (c *changes) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.order)
}
