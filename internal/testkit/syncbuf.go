// SyncBuffer (this file) is a bytes.Buffer that one goroutine may write (a
// logger, a command's output) while another reads it: what tests watch.

package testkit

import (
	"bytes"
	"sync"
)

// SyncBuffer is safe for concurrent Write and String.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
