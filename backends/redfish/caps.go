package redfish

import (
	"encoding/json"
	"fmt"
	"slices"

	rf "github.com/stmcginnis/gofish/schemas"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/schemas"
)

// DefaultResetTypes is the set assumed when a BMC advertises neither
// ResetType@Redfish.AllowableValues nor an ActionInfo for
// ComputerSystem.Reset: the five types that practically every BMC
// implements (On, ForceOff, GracefulShutdown, GracefulRestart, ForceRestart).
func DefaultResetTypes() []schemas.ResetType {
	return []schemas.ResetType{
		schemas.ResetOn, schemas.ResetForceOff, schemas.ResetGracefulShutdown,
		schemas.ResetGracefulRestart, schemas.ResetForceRestart,
	}
}

// DefaultBootTargets is reported by Capabilities when a BMC advertises no
// BootSourceOverrideTarget@Redfish.AllowableValues: the common targets
// (None, Pxe, Cd, Usb, Hdd, BiosSetup). SetBoot does not check targets
// against it; it leaves the decision to the BMC.
func DefaultBootTargets() []string {
	return []string{"None", "Pxe", "Cd", "Usb", "Hdd", "BiosSetup"}
}

// resetInfo is what the system's #ComputerSystem.Reset action offers.
type resetInfo struct {
	target string // action URI, "" when the system has no Reset action
	types  []schemas.ResetType
}

func (ri *resetInfo) supports(r schemas.ResetType) bool {
	return slices.Contains(ri.types, r)
}

// resetTarget reads Actions["#ComputerSystem.Reset"].target from a
// ComputerSystem's JSON (gofish keeps it unexported).
func resetTarget(raw []byte) (string, error) {
	var sys struct {
		Actions struct {
			Reset struct {
				Target string `json:"target"`
			} `json:"#ComputerSystem.Reset"`
		}
	}
	if err := json.Unmarshal(raw, &sys); err != nil {
		return "", fmt.Errorf("decode ComputerSystem: %w", err)
	}
	return sys.Actions.Reset.Target, nil
}

// resetTypes turns the ResetType names a BMC advertises into ResetTypes, in
// the BMC's order. Names outside the Resource schema's ResetType enum are
// returned in unknown. No names at all means the BMC did not say:
// DefaultResetTypes.
func resetTypes(names []string) (types []schemas.ResetType, unknown []string) {
	if len(names) == 0 {
		return DefaultResetTypes(), nil
	}
	types = []schemas.ResetType{}
	for _, n := range names {
		r, err := schemas.ParseResetType(n)
		if err != nil {
			unknown = append(unknown, n)
			continue
		}
		if !slices.Contains(types, r) {
			types = append(types, r)
		}
	}
	return types, unknown
}

// bootValues are the AllowableValues a system advertises for its Boot
// override properties; nil where it advertises none.
type bootValues struct {
	targets, enabled, modes []string
}

// bootAllowed reads the Boot override AllowableValues from sys. gofish
// decodes only the target's; the others come from the raw JSON.
func bootAllowed(sys *rf.ComputerSystem) bootValues {
	var v bootValues
	for _, t := range sys.Boot.AllowableBootSourceOverrideTargetValues {
		v.targets = append(v.targets, string(t))
	}
	var raw struct {
		Boot struct {
			Enabled []string `json:"BootSourceOverrideEnabled@Redfish.AllowableValues"`
			Modes   []string `json:"BootSourceOverrideMode@Redfish.AllowableValues"`
		}
	}
	if json.Unmarshal(sys.RawData, &raw) == nil {
		v.enabled, v.modes = raw.Boot.Enabled, raw.Boot.Modes
	}
	return v
}

// check refuses, with backends.ErrUnsupported, a non-empty field of o whose
// value the BMC advertises AllowableValues for and does not list.
func (v bootValues) check(o schemas.BootOverride) error {
	for _, f := range []struct {
		name, value string
		allowed     []string
	}{
		{"BootSourceOverrideTarget", o.Target, v.targets},
		{"BootSourceOverrideEnabled", o.Enabled, v.enabled},
		{"BootSourceOverrideMode", o.Mode, v.modes},
	} {
		if f.value != "" && len(f.allowed) > 0 && !slices.Contains(f.allowed, f.value) {
			return fmt.Errorf("%s %q not in %v: %w", f.name, f.value, f.allowed, backends.ErrUnsupported)
		}
	}
	return nil
}
