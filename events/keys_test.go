package events

import (
	"testing"

	"github.com/fishgate/fishgate/internal/testkit"
)

// TestKeysShareASlot: every key of the events is in the slot of the hash
// tag {events}, so that their scripts and transactions run on one Redis
// Cluster master.
func TestKeysShareASlot(t *testing.T) {
	want := testkit.Slot("{events}")
	for _, k := range []string{keyStream, keySubs, keyCursors, keySeq, leaseKeys.Holder, leaseKeys.Fence} {
		if got := testkit.Slot(k); got != want {
			t.Errorf("%s is in slot %d, not in {events}'s %d", k, got, want)
		}
	}
}
