package testkit

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// TestSlot: the CRC16 is Redis Cluster's (the check value of
// CRC-16/XMODEM, and the Redis Cluster specification's example), and
// hash tags are read as Redis reads them.
func TestSlot(t *testing.T) {
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#x, want 0x31c3", got)
	}
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"fg:node:{n1}:slots", "fg:node:{n1}:lease", true},
		{"fg:node:{n1}:slots", "fg:node:{n2}:slots", false},
		{"{user1000}.following", "{user1000}.followers", true},
		{"foo{}{bar}", "foo{}{bar}x", false}, // empty first tag: the whole key
		{"foo{{bar}}zap", "x{{bar}", true},   // the tag is "{bar"
		{"foo{bar}{zap}", "bar", true},       // only the first tag counts
		{"fg:{user:}:locked", "fg:{user:}:failures", true},
		{"fg:{user:}a}:locked", "fg:{user:}b}:failures", true},
	} {
		if same := Slot(c.a) == Slot(c.b); same != c.same {
			t.Errorf("Slot(%q)=%d, Slot(%q)=%d: same %v, want %v", c.a, Slot(c.a), c.b, Slot(c.b), same, c.same)
		}
	}
}

func TestSlotViolation(t *testing.T) {
	a, b := "fg:node:{n1}:slots", "fg:node:{n2}:slots"
	a2 := "fg:node:{n1}:tasks"
	for _, c := range []struct {
		args []any
		want string // part of the violation; "" none
	}{
		{[]any{"get", a}, ""},
		{[]any{"del", a, a2}, ""},
		{[]any{"del", a, b}, "more than one hash slot"},
		{[]any{"mset", a, "1", b, "2"}, "more than one hash slot"},
		{[]any{"mset", a, b, a2, "2"}, ""}, // b is a value
		{[]any{"evalsha", "abc", 2, a, a2, b}, ""},
		{[]any{"evalsha", "abc", 2, a, b}, "more than one hash slot"},
		{[]any{"eval", "return 1", 0}, "with no KEYS"},
		{[]any{"xread", "count", 10, "block", 0, "streams", a, b, "0", "0"}, "more than one hash slot"},
		{[]any{"xread", "streams", a, "0"}, ""},
		{[]any{"blpop", a, b, 0}, "more than one hash slot"},
		{[]any{"zunionstore", a, 2, a2, b}, "more than one hash slot"},
		{[]any{"publish", "fg:node", "n1"}, ""},
		{[]any{"hset", a, b, "x"}, ""}, // b is a field
	} {
		got := SlotViolation(c.args)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%v: %q, want %q", c.args, got, c.want)
		}
	}
}

// TestSlotCheckHook: the hook sees single commands, scripts and MULTI
// transactions, and lets plain pipelines span slots (a Cluster client
// splits them by node).
func TestSlotCheckHook(t *testing.T) {
	// not MiniRedis: its own check would fail this test
	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	defer rdb.Close()
	var mu sync.Mutex
	var seen []string
	rdb.AddHook(NewSlotCheck(func(v string) { mu.Lock(); seen = append(seen, v); mu.Unlock() }))
	take := func() []string { mu.Lock(); defer mu.Unlock(); s := seen; seen = nil; return s }
	ctx := context.Background()
	a, b, a2 := "fg:node:{n1}:slots", "fg:node:{n2}:slots", "fg:node:{n1}:tasks"

	rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, a, 1, 0)
		p.Set(ctx, b, 1, 0)
		return nil
	})
	if s := take(); len(s) != 0 {
		t.Errorf("a plain pipeline over two slots was reported: %v", s)
	}
	rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, a, 1, 0)
		p.Publish(ctx, "fg:node", "n1")
		p.HSet(ctx, a2, "f", 1)
		return nil
	})
	if s := take(); len(s) != 0 {
		t.Errorf("a transaction over one slot was reported: %v", s)
	}
	rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, a, 1, 0)
		p.Set(ctx, b, 1, 0)
		return nil
	})
	if s := take(); len(s) != 1 || !strings.Contains(s[0], "MULTI") {
		t.Errorf("a transaction over two slots: reported %v, want one report", s)
	}
	script := redis.NewScript(`return redis.call('GET', KEYS[1])`)
	script.Run(ctx, rdb, []string{a, b})
	if s := take(); len(s) == 0 {
		t.Error("a script given keys of two slots was not reported")
	}
	redis.NewScript(`return 1`).Run(ctx, rdb, nil)
	if s := take(); len(s) == 0 || !strings.Contains(s[0], "no KEYS") {
		t.Errorf("a script run with no KEYS: reported %v", s)
	}
	rdb.Del(ctx, a, b)
	if s := take(); len(s) != 1 {
		t.Errorf("DEL of two slots: reported %v", s)
	}
}
