package marks

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestMarkedOnceInFirstOrder(t *testing.T) {
	s := New[string]()
	for _, k := range []string{"b", "a", "b", "c", "a"} {
		s.Mark(k)
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d, want 3", s.Len())
	}
	var got []string
	for k, ok := s.Next(); ok; k, ok = s.Next() {
		got = append(got, k)
	}
	if want := []string{"b", "a", "c"}; !slices.Equal(got, want) {
		t.Fatalf("taken %v, want %v", got, want)
	}
	s.Mark("a") // taken: marking it again adds it again
	if k, ok := s.Next(); !ok || k != "a" {
		t.Fatalf("after a second Mark, Next = %q, %v", k, ok)
	}
}

func TestWakeSignalsMarksAndBacklog(t *testing.T) {
	s := New[int]()
	select {
	case <-s.Wake():
		t.Fatal("Wake before any Mark")
	default:
	}
	s.Mark(1)
	s.Mark(2)
	<-s.Wake() // the two marks left one signal
	select {
	case <-s.Wake():
		t.Fatal("two signals for two marks: Wake holds one")
	default:
	}
	if _, ok := s.Next(); !ok {
		t.Fatal("Next found nothing")
	}
	select {
	case <-s.Wake(): // one left: another taker is woken
	default:
		t.Fatal("Next left a backlog without a signal")
	}
	s.Next()
	select {
	case <-s.Wake():
		t.Fatal("a signal with nothing left")
	default:
	}
}

// Many markers and takers: every key marked is taken, none twice while
// it stays marked.
func TestConcurrentMarkers(t *testing.T) {
	s := New[int]()
	var wg sync.WaitGroup
	for m := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				s.Mark((i + m) % 100)
			}
		})
	}
	wg.Wait()
	seen := map[int]bool{}
	for k, ok := s.Next(); ok; k, ok = s.Next() {
		if seen[k] {
			t.Fatalf("%d taken twice", k)
		}
		seen[k] = true
	}
	if len(seen) != 100 {
		t.Fatalf("took %d keys, want 100", len(seen))
	}
}

func TestDrainHandsOnUntilClosedOrDone(t *testing.T) {
	ch := make(chan *redis.Message, 3)
	ch <- &redis.Message{Payload: "a"}
	ch <- &redis.Message{Payload: "b"}
	ch <- &redis.Message{Payload: "a"}
	close(ch)
	s := New[string]()
	<-Drain(context.Background(), ch, s.Mark) // closes once ch is closed
	if s.Len() != 2 {
		t.Fatalf("%d marked, want 2", s.Len())
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := Drain(ctx, make(chan *redis.Message), s.Mark)
	cancel()
	<-done // stops when ctx ends
}
