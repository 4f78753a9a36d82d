package redisx_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/internal/redisx"
	"github.com/fishgate/fishgate/internal/testkit"
)

// setScript writes ARGV[1] to KEYS[1] and answers it.
var setScript = redis.NewScript(`redis.call('SET', KEYS[1], ARGV[1]); return ARGV[1]`)

// An acknowledged write is on the replica the moment Run returns; with
// fewer replicas than asked, Run says so and keeps the master's answer.
func TestAckedWaitsForReplicas(t *testing.T) {
	ctx := context.Background()
	master := testkit.RealRedis(t)
	replica := testkit.RedisReplica(t, master)

	acked := redisx.Acked{Client: master, Replicas: 1, Timeout: 5 * time.Second}
	for i := range 20 {
		v := "v" + string(rune('a'+i))
		if got, err := acked.Run(ctx, setScript, []string{"k"}, v).Text(); err != nil || got != v {
			t.Fatalf("Run = %q, %v; want %q", got, err, v)
		}
		// no wait, no retry: WAIT has confirmed the replica has it
		if got, err := replica.Get(ctx, "k").Result(); err != nil || got != v {
			t.Fatalf("replica has %q (%v) right after an acknowledged write of %q", got, err, v)
		}
	}

	two := redisx.Acked{Client: master, Replicas: 2, Timeout: 100 * time.Millisecond}
	cmd := two.Run(ctx, setScript, []string{"k"}, "more")
	if !errors.Is(cmd.Err(), redisx.ErrNotReplicated) {
		t.Fatalf("two replicas asked of one: err %v, want ErrNotReplicated", cmd.Err())
	}
	if cmd.Val() != "more" {
		t.Errorf("the master's answer is lost: Val %v", cmd.Val())
	}
	if !strings.Contains(cmd.Err().Error(), "1 of 2") {
		t.Errorf("error %q does not say how many acknowledged", cmd.Err())
	}

	// The context's deadline bounds the wait even when Timeout is longer.
	long := redisx.Acked{Client: master, Replicas: 2, Timeout: time.Hour}
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := long.Run(dctx, setScript, []string{"k"}, "x").Err(); !errors.Is(err, redisx.ErrNotReplicated) {
		t.Fatalf("err %v, want ErrNotReplicated", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the wait took %s with a 300ms deadline", took)
	}

	// A script error is the script's, not a replication failure.
	bad := redis.NewScript(`return redis.error_reply('nope')`)
	if err := acked.Run(ctx, bad, []string{"k"}).Err(); err == nil || errors.Is(err, redisx.ErrNotReplicated) {
		t.Errorf("script error came back as %v", err)
	}
}

// With no replica at all, nothing is acknowledged: the write happened on
// the master only, and Run reports it.
func TestAckedWithoutReplicas(t *testing.T) {
	ctx := context.Background()
	c := testkit.RealRedis(t)
	a := redisx.Acked{Client: c, Replicas: 1, Timeout: 50 * time.Millisecond}
	if err := a.Run(ctx, setScript, []string{"k"}, "v").Err(); !errors.Is(err, redisx.ErrNotReplicated) {
		t.Fatalf("err %v, want ErrNotReplicated", err)
	}
	if got, _ := c.Get(ctx, "k").Result(); got != "v" {
		t.Errorf("master has %q, want the write made", got)
	}
	// Replicas 0 is a plain run.
	off := redisx.Acked{Client: c}
	if got, err := off.Run(ctx, setScript, []string{"k"}, "w").Text(); err != nil || got != "w" {
		t.Errorf("Replicas 0: %q, %v", got, err)
	}
	if got, err := redisx.Plain(c).Run(ctx, setScript, []string{"k"}, "p").Text(); err != nil || got != "p" {
		t.Errorf("Plain: %q, %v", got, err)
	}
}
