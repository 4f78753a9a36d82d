package proxy

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Memory: what one pass-through request may make the gateway hold.
//
// A request body is read whole before anything is sent to the BMC, up to
// the caller's MaxBodyBytes (the gateway's max_body_bytes): a larger one is
// 413 PayloadTooLarge and never reaches the BMC. A JSON response is read
// whole to rewrite its links, up to Target.MaxRewriteBytes: a larger one is
// 502 (its links cannot be rewritten, and passed on unrewritten they would
// point at other gateway resources). Other responses (not JSON, compressed)
// are streamed. And at most Limiter's slots of JSON responses are held at
// once, from the first byte read until the client has the last: memory for
// rewriting is about slots × MaxRewriteBytes × 2 (read and rewritten),
// whatever the number of clients; responses of at most smallBody bytes
// (Content-Length) need no slot.

const (
	// DefaultMaxBodyBytes bounds a request body when the caller says
	// nothing (the gateway's max_body_bytes default).
	DefaultMaxBodyBytes = 64 << 10
	// DefaultMaxRewriteBytes is the largest JSON response whose links are
	// rewritten when Target.MaxRewriteBytes is zero: a Redfish resource or
	// a page of a collection is far smaller.
	DefaultMaxRewriteBytes = 1 << 20
	// DefaultRewriteSlots is the size of DefaultLimiter.
	DefaultRewriteSlots = 16
	// smallBody is the largest response (by Content-Length) rewritten
	// without a slot: as much as a request body may hold.
	smallBody = DefaultMaxBodyBytes
	// rewriteWait bounds the wait for a slot; then 503 with Retry-After.
	rewriteWait = 5 * time.Second
	// busyRetryAfter is that 503's Retry-After, in seconds.
	busyRetryAfter = 1
)

// Limiter bounds how many JSON responses are held for link rewriting at
// once by the Proxies that share it. It is safe for concurrent use.
type Limiter struct {
	slots chan struct{}
	inUse atomic.Int64
	peak  atomic.Int64
	wait  atomic.Int64
}

// NewLimiter returns a Limiter of n slots (at least 1).
func NewLimiter(n int) *Limiter {
	return &Limiter{slots: make(chan struct{}, max(n, 1))}
}

// DefaultLimiter is shared by every Proxy whose Target.Limiter is nil, so
// that the bound holds for the whole process, however many nodes it has.
var DefaultLimiter = NewLimiter(DefaultRewriteSlots)

// InUse is the number of slots held now; Peak the most ever held at once;
// Waiting the number of requests waiting for one.
func (l *Limiter) InUse() int   { return int(l.inUse.Load()) }
func (l *Limiter) Peak() int    { return int(l.peak.Load()) }
func (l *Limiter) Waiting() int { return int(l.wait.Load()) }

// acquire takes a slot, waiting at most until ctx is done or wait has
// passed. The returned release gives it back; it may be called more than
// once.
func (l *Limiter) acquire(ctx context.Context, wait time.Duration) (release func(), err error) {
	l.wait.Add(1)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		l.wait.Add(-1)
		return nil, ctx.Err()
	case <-t.C:
		l.wait.Add(-1)
		return nil, errRewriteBusy
	}
	l.wait.Add(-1)
	n := l.inUse.Add(1)
	for p := l.peak.Load(); n > p && !l.peak.CompareAndSwap(p, n); p = l.peak.Load() {
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.inUse.Add(-1)
			<-l.slots
		})
	}, nil
}

// errRewriteBusy: every slot stayed taken for rewriteWait; 503.
var errRewriteBusy = fmt.Errorf("too many large answers are being passed on at once")

// tooLargeError is a JSON response larger than MaxRewriteBytes; 502.
type tooLargeError struct {
	limit int64
	size  int64 // -1: unknown (more than limit was read)
}

func (e *tooLargeError) Error() string {
	size := "more than " + byteCount(e.limit)
	if e.size >= 0 {
		size = byteCount(e.size)
	}
	return fmt.Sprintf("its JSON answer is %s, more than the %s the gateway rewrites the links of", size, byteCount(e.limit))
}

// byteCount renders n bytes for a message: "1 MiB", "65536 bytes".
func byteCount(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// releasingBody gives back a rewrite slot when the body is closed, after
// ReverseProxy has copied it to the client (or failed to).
type releasingBody struct {
	*bytes.Reader
	release func()
}

func (b *releasingBody) Close() error { b.release(); return nil }
