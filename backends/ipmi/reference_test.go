package ipmi

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/bougou/go-ipmi/pkg/bmc"
	"github.com/bougou/go-ipmi/pkg/hal/mock"
	"github.com/bougou/go-ipmi/pkg/server"
	"github.com/bougou/go-ipmi/pkg/transport/udp"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/fishgate/fishgate/schemas"
)

// TestAgainstGoIPMIReferenceBMC drives go-ipmi's own reference BMC (its
// default handlers, a mock HAL): another implementation than ours, which
// lacks boot parameter 0 and refuses the diagnostic interrupt.
func TestAgainstGoIPMIReferenceBMC(t *testing.T) {
	h := mock.New()
	b := bmc.New(bmc.DeviceInfo{DeviceID: 1, IPMIVersion: 0x02}, [16]byte{1}, h)
	if err := b.Users.Upsert(2, func(u *bmc.User) error {
		u.Name = "admin"
		u.SetPassword([]byte("password"))
		u.Enabled = true
		u.ChannelAccess[1] = bmc.UserChannelAccess{MaxPrivilege: bmc.PrivilegeLevelAdministrator, Enabled: true}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.NewServer(b, udp.Wrap(uc))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); srv.Close(); <-done })
	be := newBackend(t, uc.LocalAddr().String(), nil)
	ch := h.Chassis().(*mock.Chassis)
	if err := be.Reset(ctxT(t), schemas.ResetOn); err != nil {
		t.Fatal(err)
	}
	if p, err := be.PowerState(ctxT(t)); err != nil || p != schemas.PowerOn {
		t.Fatalf("power %s, %v", p, err)
	}
	if err := be.SetBoot(ctxT(t), schemas.BootOverride{Target: "Pxe", Enabled: "Once", Mode: "UEFI"}); err != nil {
		t.Fatalf("SetBoot on a BMC without parameter 0: %v", err)
	}
	if f, err := ch.GetBootFlags(ctxT(t)); err != nil || f.BootDeviceSelector != types.BootDeviceSelectorForcePXE || !f.BootFlagsValid || f.Persist || !bool(f.BIOSBootType) {
		t.Errorf("boot flags %+v", f)
	}
	if o, err := be.Boot(ctxT(t)); err != nil || o != (schemas.BootOverride{Target: "Pxe", Enabled: "Once", Mode: "UEFI"}) {
		t.Errorf("Boot %+v, %v", o, err)
	}
	err = be.Reset(ctxT(t), schemas.ResetNmi)
	var re *types.ResponseError
	if !errors.As(err, &re) || errors.Is(err, ErrNoAnswer) {
		t.Errorf("Nmi on go-ipmi's reference BMC: %v, want its completion code", err)
	}
}
