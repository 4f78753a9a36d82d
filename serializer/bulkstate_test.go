package serializer

import (
	"testing"

	"github.com/fishgate/fishgate/schemas"
)

func TestSubEncoding(t *testing.T) {
	for _, s := range []sub{
		{},
		{Phase: subAdmitting, Task: "n1.abc"},
		{Phase: subAdmitted, Task: "n1.abc", Outcome: Coalesced},
		{Phase: subFinished, Task: "n1.abc", State: schemas.TaskStateCompleted, Status: "Warning", Reason: "a | reason with bars"},
		failed("refused: busy"),
		cancelledBeforeStart("bulk-x"),
	} {
		v := s.encode()
		if s.Phase == subPending {
			v = ""
		}
		if got := decodeSub(v); got != s {
			t.Errorf("decode(encode(%+v)) = %+v (%q)", s, got, v)
		}
	}
}

func TestBatchBounds(t *testing.T) {
	for _, c := range []struct {
		n, size, count int
		last           [2]int
	}{
		{10, 3, 4, [2]int{9, 10}},
		{10, 0, 1, [2]int{0, 10}},
		{10, 10, 1, [2]int{0, 10}},
		{10, 20, 1, [2]int{0, 10}},
		{1, 1, 1, [2]int{0, 1}},
	} {
		if got := batchCount(c.n, c.size); got != c.count {
			t.Errorf("batchCount(%d, %d) = %d, want %d", c.n, c.size, got, c.count)
		}
		from, to := batchBounds(c.n, c.size, c.count-1)
		if [2]int{from, to} != c.last {
			t.Errorf("last batch of %d by %d: [%d, %d), want %v", c.n, c.size, from, to, c.last)
		}
	}
}

func TestBulkFinal(t *testing.T) {
	for _, c := range []struct {
		rec    BulkRecord
		state  schemas.TaskState
		status string
	}{
		{BulkRecord{Total: 3, Completed: 3}, schemas.TaskStateCompleted, "OK"},
		{BulkRecord{Total: 3, Completed: 3, Warned: 1}, schemas.TaskStateCompleted, "Warning"},
		{BulkRecord{Total: 3, Completed: 2, Cancelled: 1}, schemas.TaskStateCompleted, "Warning"},
		{BulkRecord{Total: 3, Completed: 2, Failed: 1}, schemas.TaskStateException, "Critical"},
		{BulkRecord{Total: 3, Completed: 1, Failed: 1, Cancelled: 1, CancelRequested: true}, schemas.TaskStateCancelled, "OK"},
	} {
		state, status, _ := bulkFinal(c.rec)
		if state != c.state || status != c.status {
			t.Errorf("bulkFinal(%+v) = %s %s, want %s %s", c.rec, state, status, c.state, c.status)
		}
	}
}

func TestPowersOn(t *testing.T) {
	for _, c := range []struct {
		cmd  schemas.ResetType
		last schemas.PowerState
		want bool
	}{
		{schemas.ResetOn, schemas.PowerOff, true},
		{schemas.ResetForceOn, schemas.PowerUnknown, true},
		{schemas.ResetPowerCycle, schemas.PowerOn, true},
		{schemas.ResetPushPowerButton, schemas.PowerOff, true},
		{schemas.ResetPushPowerButton, schemas.PowerOn, false},
		{schemas.ResetForceRestart, schemas.PowerOn, false},
		{schemas.ResetGracefulRestart, schemas.PowerOn, false},
		{schemas.ResetForceOff, schemas.PowerOn, false},
		{schemas.ResetNmi, schemas.PowerOn, false},
	} {
		if got := PowersOn(c.cmd, c.last); got != c.want {
			t.Errorf("PowersOn(%s, %s) = %v, want %v", c.cmd, c.last, got, c.want)
		}
	}
}

func TestIsBulkID(t *testing.T) {
	for id, want := range map[string]bool{"bulk-abc": true, "bulk-": false, "n1.abc": false, "bulk-a.b": false, "bulk-{x}": false, "node": false} {
		if got := IsBulkID(id); got != want {
			t.Errorf("IsBulkID(%q) = %v", id, got)
		}
	}
	if r := (BulkRecord{Total: 4, Done: 3}); r.Percent() != 75 || (BulkRecord{}).Percent() != 100 {
		t.Error("Percent")
	}
}
