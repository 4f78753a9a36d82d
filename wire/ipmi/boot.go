package ipmi

import (
	"fmt"
	"slices"
)

// BootDevice is the boot device selector of the boot flags (IPMI v2.0
// §28.13 Table 28-14, parameter 5, data byte 2 bits [5:2]).
type BootDevice uint8

// The boot device selectors, with the ipmitool "chassis bootdev" argument
// that sends each.
const (
	BootNoOverride   BootDevice = 0x0 // none
	BootPXE          BootDevice = 0x1 // pxe
	BootDisk         BootDevice = 0x2 // disk
	BootDiskSafe     BootDevice = 0x3 // safe
	BootDiagnostic   BootDevice = 0x4 // diag
	BootCDROM        BootDevice = 0x5 // cdrom
	BootBIOSSetup    BootDevice = 0x6 // bios
	BootRemoteFloppy BootDevice = 0x7 // floppy (remote floppy / primary removable media)
	BootRemoteCDROM  BootDevice = 0x8
	BootRemoteMedia  BootDevice = 0x9
	BootRemoteDisk   BootDevice = 0xB
	BootFloppy       BootDevice = 0xF
)

// Boot is the part of the boot flags (Table 28-14 parameter 5) fishgate
// uses: which device, once or for every boot, and UEFI or legacy BIOS.
type Boot struct {
	// Device is the forced boot device; BootNoOverride means no override
	// (also what a flags block without the "valid" bit reads as).
	Device BootDevice
	// Persistent: data 1 bit 6, the override applies to all future boots,
	// not only the next one.
	Persistent bool
	// EFI: data 1 bit 5, boot in UEFI mode rather than "PC compatible".
	EFI bool
}

// BootFlagsLen is the length of parameter 5's data.
const BootFlagsLen = 5

// PackBootFlags encodes b as the five data bytes of parameter 5. The valid
// bit (data 1 bit 7) is set when a device is forced.
func PackBootFlags(b Boot) []byte {
	out := make([]byte, BootFlagsLen)
	if b.Device != BootNoOverride {
		out[0] |= 0x80
	}
	if b.Persistent {
		out[0] |= 0x40
	}
	if b.EFI {
		out[0] |= 0x20
	}
	out[1] = uint8(b.Device&0x0F) << 2
	return out
}

// UnpackBootFlags decodes parameter 5's data. Flags without the valid bit
// mean no override. The other bits (CMOS clear, keyboard lock, verbosity,
// console redirection, ...) are not modelled and read back as zero.
func UnpackBootFlags(data []byte) (Boot, error) {
	if len(data) < BootFlagsLen {
		return Boot{}, fmt.Errorf("boot flags: %d bytes, want %d", len(data), BootFlagsLen)
	}
	b := Boot{
		Persistent: data[0]&0x40 != 0,
		EFI:        data[0]&0x20 != 0,
		Device:     BootDevice((data[1] >> 2) & 0x0F),
	}
	if data[0]&0x80 == 0 {
		b.Device = BootNoOverride
	}
	return b, nil
}

// bootTargets maps boot device selectors to Redfish BootSourceOverrideTarget
// values. The first entry for a target is the selector written for it.
var bootTargets = []struct {
	dev    BootDevice
	target string
}{
	{BootNoOverride, "None"},
	{BootPXE, "Pxe"},
	{BootDisk, "Hdd"},
	{BootDiskSafe, "Hdd"},
	{BootDiagnostic, "Diags"},
	{BootCDROM, "Cd"},
	{BootRemoteCDROM, "Cd"},
	{BootBIOSSetup, "BiosSetup"},
	{BootFloppy, "Floppy"},
	{BootRemoteFloppy, "Floppy"},
}

// RedfishBootTargets are the BootSourceOverrideTarget values that have a
// boot device selector.
func RedfishBootTargets() []string {
	var out []string
	for _, e := range bootTargets {
		if !slices.Contains(out, e.target) {
			out = append(out, e.target)
		}
	}
	return out
}

// RedfishTarget is the BootSourceOverrideTarget for d (ok false for the
// remote media selectors, which Redfish has no name for).
func (d BootDevice) RedfishTarget() (string, bool) {
	for _, e := range bootTargets {
		if e.dev == d {
			return e.target, true
		}
	}
	return "", false
}

// DeviceForTarget is the boot device selector written for a Redfish
// BootSourceOverrideTarget.
func DeviceForTarget(target string) (BootDevice, bool) {
	for _, e := range bootTargets {
		if e.target == target {
			return e.dev, true
		}
	}
	return 0, false
}

// Redfish renders b as Redfish Boot properties: BootSourceOverrideTarget,
// BootSourceOverrideEnabled (Disabled when no device is forced, else Once
// or Continuous) and BootSourceOverrideMode (UEFI or Legacy).
func (b Boot) Redfish() (target, enabled, mode string) {
	target, ok := b.Device.RedfishTarget()
	if !ok {
		target = "None"
	}
	switch {
	case b.Device == BootNoOverride:
		enabled = "Disabled"
	case b.Persistent:
		enabled = "Continuous"
	default:
		enabled = "Once"
	}
	mode = "Legacy"
	if b.EFI {
		mode = "UEFI"
	}
	return target, enabled, mode
}

// WithRedfish returns cur changed by Redfish Boot properties; empty values
// keep cur's. Target None or Enabled Disabled clear the override; Once and
// Continuous choose Persistent; UEFI and Legacy choose EFI.
func (cur Boot) WithRedfish(target, enabled, mode string) (Boot, error) {
	b := cur
	if target != "" {
		dev, ok := DeviceForTarget(target)
		if !ok {
			return cur, fmt.Errorf("%w: boot target %q (IPMI offers %v)", ErrUnsupported, target, RedfishBootTargets())
		}
		b.Device = dev
	}
	switch enabled {
	case "":
	case "Disabled":
		b.Device = BootNoOverride
	case "Once":
		b.Persistent = false
	case "Continuous":
		b.Persistent = true
	default:
		return cur, fmt.Errorf("%w: BootSourceOverrideEnabled %q", ErrUnsupported, enabled)
	}
	switch mode {
	case "":
	case "UEFI":
		b.EFI = true
	case "Legacy":
		b.EFI = false
	default:
		return cur, fmt.Errorf("%w: BootSourceOverrideMode %q", ErrUnsupported, mode)
	}
	return b, nil
}
