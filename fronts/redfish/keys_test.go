package redfish

import (
	"testing"

	"github.com/fishgate/fishgate/internal/testkit"
)

// TestUserKeysShareASlot: every key of one user is in one Redis Cluster
// hash slot, whatever the name (any name can be tried at a login), so that
// the lockout script may touch its two keys on a Cluster.
func TestUserKeysShareASlot(t *testing.T) {
	for _, user := range []string{"admin", "", "}", "}x", "a}b", "{", "{}", "{x}", "a{b}c", "ünï", "user:1"} {
		want := testkit.Slot(userKey(user, "failures"))
		for _, what := range []string{"locked", "sessions"} {
			if got := testkit.Slot(userKey(user, what)); got != want {
				t.Errorf("user %q: %s in slot %d, failures in slot %d", user, userKey(user, what), got, want)
			}
		}
	}
	if testkit.Slot(userKey("alice", "locked")) == testkit.Slot(userKey("bob", "locked")) {
		t.Error("two users' keys share a slot: users should spread over the slots")
	}
}
