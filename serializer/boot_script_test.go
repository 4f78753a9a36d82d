package serializer

import (
	"context"
	"testing"
	"time"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/schemas"
)

// TestBootOverridesMerge: overrides requested before the lease holder
// applied any merge into one, later fields winning (README "Power
// actions"), with the sequence number of the last.
func TestBootOverridesMerge(t *testing.T) {
	for _, target := range testkit.RedisTargets() {
		t.Run(target.Name, func(t *testing.T) {
			st := NewStore(target.New(t))
			ctx, now := context.Background(), time.UnixMilli(1_700_000_000_000)
			if _, err := st.RequestBoot(ctx, "bm", schemas.BootOverride{Target: "Pxe", Enabled: "Once"}, now); err != nil {
				t.Fatal(err)
			}
			seq, err := st.RequestBoot(ctx, "bm", schemas.BootOverride{Target: "Hdd", Mode: "UEFI"}, now)
			if err != nil {
				t.Fatal(err)
			}
			b, ok, err := st.pendingBoot(ctx, "bm")
			if err != nil || !ok {
				t.Fatalf("pending: %v %v", ok, err)
			}
			if b.Target != "Hdd" || b.Enabled != "Once" || b.Mode != "UEFI" || b.Seq != seq || seq != 2 {
				t.Fatalf("merged override %+v (seq %d), want Hdd Once UEFI seq 2", b, seq)
			}
			if ns, _ := st.State(ctx, "bm"); !ns.BootPending {
				t.Fatal("node state does not show the pending override")
			}
		})
	}
}
