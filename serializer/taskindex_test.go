package serializer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
)

// TestTaskPage: the fleet-wide index pages tasks newest first with the
// total, and takes out what it is told to.
func TestTaskPage(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			st := NewStore(target.New(t))
			ctx := context.Background()
			var add []redis.Z
			var want []string // newest first
			for i := range 25 {
				id := fmt.Sprintf("n%d.t%02d", i%4, i)
				add = append(add, redis.Z{Score: float64(1_700_000_000_000 + i), Member: id})
				want = append([]string{id}, want...)
			}
			if err := st.indexTasks(ctx, add, nil); err != nil {
				t.Fatal(err)
			}
			var got []string
			for skip := 0; ; skip += 10 {
				ids, total, err := st.TaskPage(ctx, skip, 10)
				if err != nil {
					t.Fatal(err)
				}
				if total != 25 {
					t.Fatalf("page at %d: total %d, want 25", skip, total)
				}
				if len(ids) == 0 {
					break
				}
				got = append(got, ids...)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("pages:\n got %v\nwant %v", got, want)
			}
			if err := st.indexTasks(ctx, nil, want[:5]); err != nil {
				t.Fatal(err)
			}
			if ids, total, err := st.TaskPage(ctx, 0, 1); err != nil || total != 20 || len(ids) != 1 || ids[0] != want[5] {
				t.Fatalf("after removing the 5 newest: %v total %d (%v), want [%s] of 20", ids, total, err, want[5])
			}
		})
	}
}

// TestFleetRetention: over keep_total tasks in all, the oldest go from
// their node and the index once finished for the minimum age; a running
// task or one finished more recently stays, however old.
func TestFleetRetention(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			e := newScriptEnv(t, target)
			ctx := context.Background()
			rules := DefaultRules()
			rules.FlipLimit = 0
			var all []string // oldest first
			running := map[string]bool{}
			for _, node := range []string{"fa", "fb"} {
				e.node = node
				// On runs throughout; each ForceOff waits and is dropped
				// (Cancelled) by the On after it, which joins the running one.
				for i := range 4 {
					e.now = e.now.Add(time.Second)
					r := schemas.ResetForceOff
					if i == 0 {
						r = schemas.ResetOn
					}
					a := e.admit(rules, r)
					if i == 0 {
						running[a.Task] = true
					}
					all = append(all, a.Task)
					if err := e.st.indexTasks(ctx, []redis.Z{{Score: float64(e.now.UnixMilli()), Member: a.Task}}, nil); err != nil {
						t.Fatal(err)
					}
					e.admit(rules, schemas.ResetOn)
				}
			}
			// A minute on, nothing has been finished for 10 minutes.
			if n, err := e.st.trimTasks(ctx, 3, 1000, e.now.Add(time.Minute), 10*time.Minute); err != nil || n != 0 {
				t.Fatalf("trim a minute on: %d removed (%v), want 0", n, err)
			}
			n, err := e.st.trimTasks(ctx, 3, 1000, e.now.Add(11*time.Minute), 10*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			// The 5 oldest of 8 are over the limit: fa's four, the first of
			// them running, and fb's running On.
			if n != 3 {
				t.Errorf("removed %d, want the 3 finished of the 5 oldest", n)
			}
			ids, total, err := e.st.TaskPage(ctx, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			if total != 5 {
				t.Errorf("index holds %d tasks (%v), want 5", total, ids)
			}
			for i, id := range all {
				_, err := e.st.Task(ctx, id)
				gone := errors.Is(err, ErrTaskNotFound)
				if wantGone := i < 5 && !running[id]; gone != wantGone || (!gone && err != nil) {
					t.Errorf("task %s (age rank %d, running %v): gone %v (%v), want gone %v", id, i, running[id], gone, err, wantGone)
				}
				if inIndex := slices.Contains(ids, id); inIndex == gone {
					t.Errorf("task %s: in the index %v, gone from its node %v", id, inIndex, gone)
				}
			}
		})
	}
}

// TestCommandLogIsCapped: the node's command log keeps its newest LogMax
// entries, newest first, each with an id whose count goes down the list.
func TestCommandLogIsCapped(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			e := newScriptEnv(t, target)
			rules := DefaultRules()
			rules.Policy = PolicyReject
			e.admit(rules, schemas.ResetOn) // runs; every ForceOff after it is refused, and logged
			for range LogMax + 30 {
				if a := e.admit(rules, schemas.ResetForceOff); a.Outcome != Refused {
					t.Fatalf("ForceOff while On runs: %+v, want refused", a)
				}
			}
			xs, err := e.st.LogEntries(context.Background(), e.node)
			if err != nil {
				t.Fatal(err)
			}
			if len(xs) != LogMax {
				t.Fatalf("%d entries, want the newest %d", len(xs), LogMax)
			}
			for i, x := range xs {
				_, n, _ := strings.Cut(x.ID, "-")
				if want := strconv.Itoa(LogMax + 31 - i); n != want || x.Values["event"] != "refused" {
					t.Fatalf("entry %d: id %s %v, want count %s, refused", i, x.ID, x.Values, want)
				}
			}
		})
	}
}
