package ipmi

import (
	"errors"
	"testing"
)

func TestChassisCommandMapping(t *testing.T) {
	for c := PowerDown; c <= SoftShutdown; c++ {
		rt := c.ResetType()
		back, ok := CommandFor(rt)
		if rt == "" || !ok || back != c {
			t.Errorf("%v → %q → %v, %v", c, rt, back, ok)
		}
	}
	if c, ok := CommandFor("ForceOn"); !ok || c != PowerUp {
		t.Errorf("ForceOn → %v, %v", c, ok)
	}
	for _, rt := range []string{"GracefulRestart", "PushPowerButton", ""} {
		if _, ok := CommandFor(rt); ok {
			t.Errorf("CommandFor(%q) ok", rt)
		}
	}
	if ChassisCommand(6).Valid() {
		t.Error("action 6 is reserved")
	}
}

func TestBootRedfishMapping(t *testing.T) {
	var none Boot
	if tg, en, mode := none.Redfish(); tg != "None" || en != "Disabled" || mode != "Legacy" {
		t.Errorf("zero Boot = %s %s %s", tg, en, mode)
	}
	b, err := none.WithRedfish("Pxe", "Once", "UEFI")
	if err != nil || b != (Boot{Device: BootPXE, EFI: true}) {
		t.Fatalf("Pxe Once UEFI → %+v, %v", b, err)
	}
	if tg, en, mode := b.Redfish(); tg != "Pxe" || en != "Once" || mode != "UEFI" {
		t.Errorf("round trip = %s %s %s", tg, en, mode)
	}
	b, _ = b.WithRedfish("", "Continuous", "")
	if b != (Boot{Device: BootPXE, Persistent: true, EFI: true}) {
		t.Errorf("Continuous kept the rest? %+v", b)
	}
	b, _ = b.WithRedfish("", "Disabled", "")
	if b.Device != BootNoOverride {
		t.Errorf("Disabled → %+v", b)
	}
	for _, target := range []string{"Hdd", "Cd", "BiosSetup", "Diags", "Floppy", "None"} {
		b, err := none.WithRedfish(target, "", "")
		got, _ := b.Device.RedfishTarget()
		if err != nil || got != target {
			t.Errorf("%s → %+v → %s, %v", target, b, got, err)
		}
	}
	if _, err := none.WithRedfish("UefiHttp", "", ""); !errors.Is(err, ErrUnsupported) {
		t.Errorf("UefiHttp: %v", err)
	}
	for _, b := range []Boot{{}, {Device: BootCDROM, Persistent: true}, {Device: BootBIOSSetup, EFI: true}} {
		got, err := UnpackBootFlags(PackBootFlags(b))
		if err != nil || got != b {
			t.Errorf("pack/unpack %+v → %+v, %v", b, got, err)
		}
	}
	// Flags without the valid bit mean no override, whatever the selector.
	if b, _ := UnpackBootFlags([]byte{0x00, 0x04, 0, 0, 0}); b.Device != BootNoOverride {
		t.Errorf("invalid flags read as %+v", b)
	}
}
