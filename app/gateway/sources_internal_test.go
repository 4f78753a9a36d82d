package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/internal/testkit"
)

func testSealer(t *testing.T) *sealer {
	t.Helper()
	k := make([]byte, config.SecretsKeySize)
	rand.Read(k)
	s, err := newSealer(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSealer: a sealed password opens with the same key for the same
// source and field only; it does not contain the password; two seals of
// one password differ (fresh nonces).
func TestSealer(t *testing.T) {
	s := testSealer(t)
	const pw = "calvin-and-hobbes"
	a, err := s.seal("n1", "password", pw)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.seal("n1", "password", pw)
	if a == b || strings.Contains(a, pw) || !strings.HasPrefix(a, sealedPrefix) {
		t.Fatalf("sealed values %q, %q", a, b)
	}
	if got, err := s.open("n1", "password", a); err != nil || got != pw {
		t.Fatalf("open: %q, %v", got, err)
	}
	for _, c := range []struct{ id, field, v string }{
		{"n2", "password", a}, {"n1", "ipmi_password", a}, {"n1", "password", a[:len(a)-2] + "AA"}, {"n1", "password", "calvin"},
	} {
		if _, err := s.open(c.id, c.field, c.v); err == nil {
			t.Errorf("open(%s, %s, %.20q) succeeded", c.id, c.field, c.v)
		}
	}
	if _, err := testSealer(t).open("n1", "password", a); !errors.Is(err, errUnsealed) {
		t.Errorf("open with another key: %v, want errUnsealed", err)
	}
	if v, _ := s.seal("n1", "password", ""); v != "" {
		t.Errorf("an empty password sealed as %q", v)
	}
}

// TestSourceRecordScript: the compare-and-set of a record refuses a stale
// read, bumps the version and deletes; on miniredis, redis-server and a
// real Cluster (the testkit clients fail a script whose keys span slots).
func TestSourceRecordScript(t *testing.T) {
	run := func(t *testing.T, s *sources) {
		ctx := context.Background()
		if err := s.put(ctx, "n1", "", "r1"); err != nil {
			t.Fatal(err)
		}
		if err := s.put(ctx, "n1", "", "r1b"); !errors.Is(err, errSourceChanged) {
			t.Fatalf("a second create: %v, want errSourceChanged", err)
		}
		if err := s.put(ctx, "n1", "r1", "r2"); err != nil {
			t.Fatal(err)
		}
		if err := s.put(ctx, "n1", "r1", ""); !errors.Is(err, errSourceChanged) {
			t.Fatalf("a delete of a stale record: %v", err)
		}
		if err := s.put(ctx, "n1", "r2", ""); err != nil {
			t.Fatal(err)
		}
		if v, _ := s.rdb.Get(ctx, sourcesVersionKey).Int(); v != 3 {
			t.Errorf("version %d after three changes", v)
		}
		if n, _ := s.rdb.HLen(ctx, sourcesKey).Result(); n != 0 {
			t.Errorf("%d records left", n)
		}
	}
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) { run(t, &sources{rdb: target.New(t)}) })
	}
	t.Run("cluster", func(t *testing.T) {
		if testing.Short() {
			t.Skip("a real Cluster takes a while to start")
		}
		c := testkit.StartRedisCluster(t, 3, 0)
		run(t, &sources{rdb: c.Client()})
	})
}
