package amt

import (
	"fmt"
	"slices"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/schemas"
)

// The pure core of the backend: the ResetType ↔ PowerState mapping, the
// reading of AMT power states, and the meaning of ReturnValues. No I/O.

// powerRequests maps ResetTypes to the PowerState values of
// CIM_PowerManagementService.RequestPowerStateChange (DMTF DSP1027 Power
// State Management Profile; docs/architecture.md#backends).
var powerRequests = []struct {
	resetType schemas.ResetType
	value     int
	graceful  bool // sent only when AvailableRequestedPowerStates offers it
}{
	{schemas.ResetOn, 2, false},               // Power On
	{schemas.ResetPowerCycle, 5, false},       // Power Cycle (Off - Soft)
	{schemas.ResetForceOff, 8, false},         // Power Off - Soft: AMT's immediate off
	{schemas.ResetForceRestart, 10, false},    // Master Bus Reset
	{schemas.ResetNmi, 11, false},             // Diagnostic Interrupt (NMI)
	{schemas.ResetGracefulShutdown, 12, true}, // Power Off - Soft Graceful (needs the OS)
	{schemas.ResetGracefulRestart, 14, true},  // Master Bus Reset Graceful (needs the OS)
}

// PowerStateValue returns the RequestPowerStateChange PowerState value that
// carries out r, and whether AMT must offer it first (the graceful ones). ok
// is false for ResetTypes AMT has no value for (ForceOn, PushPowerButton).
func PowerStateValue(r schemas.ResetType) (value int, graceful, ok bool) {
	for _, p := range powerRequests {
		if p.resetType == r {
			return p.value, p.graceful, true
		}
	}
	return 0, false, false
}

// resetTypeOf returns the ResetType that requests PowerState value v.
func resetTypeOf(v int) (schemas.ResetType, bool) {
	for _, p := range powerRequests {
		if p.value == v {
			return p.resetType, true
		}
	}
	return "", false
}

// ResetTypesOffered returns the ResetTypes that the PowerState values in
// available carry out, in the order of schemas.AllResetTypes.
func ResetTypesOffered(available []int) []schemas.ResetType {
	var out []schemas.ResetType
	for _, r := range schemas.AllResetTypes {
		if v, _, ok := PowerStateValue(r); ok && slices.Contains(available, v) {
			out = append(out, r)
		}
	}
	return out
}

// ReadPowerState reads CIM_AssociatedPowerManagementService.PowerState
// (docs/architecture.md#backends): 2 On, 3-4 sleeping, 5 and 9 power cycle, 7
// hibernate, 10 and 14-16 resets read On; 6 and 8 (hard and soft off), 12 and
// 13 (graceful offs) read Off. Others (0 Unknown, 1 Other, 11 NMI, 17 INIT,
// vendor values) are an error.
func ReadPowerState(v int) (schemas.PowerState, error) {
	switch v {
	case 2, 3, 4, 5, 7, 9, 10, 14, 15, 16:
		return schemas.PowerOn, nil
	case 6, 8, 12, 13:
		return schemas.PowerOff, nil
	}
	return schemas.PowerUnknown, fmt.Errorf("%w: AMT PowerState %d", ErrUnknownPowerState, v)
}

// Return values of the CIM methods the backend calls
// (CIM_PowerManagementService.RequestPowerStateChange ValueMap; the boot
// methods share the low ones).
const (
	rvCompleted  = 0
	rvTimeout    = 3 // the method may yet take effect: not a refusal
	rvJobStarted = 4096
)

var returnValueNames = map[int]string{
	0:    "Completed with No Error",
	1:    "Not Supported",
	2:    "Unknown or Unspecified Error",
	3:    "Cannot complete within Timeout Period",
	4:    "Failed",
	5:    "Invalid Parameter",
	6:    "In Use",
	4096: "Method Parameters Checked - Job Started",
	4097: "Invalid State Transition",
	4098: "Use of Timeout Parameter Not Supported",
	4099: "Busy",
}

// ReturnValueError is a CIM method's non-zero ReturnValue. It wraps
// backends.ErrUnsupported for 1 (Not Supported).
type ReturnValueError struct {
	Method string
	Value  int
}

func (e *ReturnValueError) Error() string {
	name, ok := returnValueNames[e.Value]
	if !ok {
		name = "vendor or reserved value"
	}
	return fmt.Sprintf("%s returned %d (%s)", e.Method, e.Value, name)
}

func (e *ReturnValueError) Unwrap() error {
	if e.Value == 1 {
		return backends.ErrUnsupported
	}
	return nil
}

// permanent reports whether retrying cannot change the answer: the method
// or a parameter is refused. The others (2 failed, 3 timeout, 4 failed, 6
// in use, 4097 invalid state transition, 4099 busy, ...) are what a flaky
// AMT answers to a command it may carry out when asked again (but Reset
// takes 3 as a lost answer: see the package comment).
func (e *ReturnValueError) permanent() bool {
	return e.Value == 1 || e.Value == 5 || e.Value == 4098
}

// CIM_ConcreteJob.JobState values (CIM_ConcreteJob ValueMap).
const (
	jobCompleted  = 7
	jobTerminated = 8
	jobKilled     = 9
	jobException  = 10
)

// jobDone reports whether a job in state s has ended, and whether well.
func jobDone(s int) (done, ok bool) {
	switch s {
	case jobCompleted:
		return true, true
	case jobTerminated, jobKilled, jobException:
		return true, false
	}
	return false, false // 2 New, 3 Starting, 4 Running, 5 Suspended, 6 Shutting Down, 11 Service
}

// Boot sources: AMT's CIM_BootSourceSetting InstanceIDs (DSP1012 Boot
// Control Profile, as Intel AMT names them) for the Redfish targets.
var bootSources = map[string]string{
	"Pxe": "Intel(r) AMT: Force PXE Boot",
	"Hdd": "Intel(r) AMT: Force Hard-drive Boot",
	"Cd":  "Intel(r) AMT: Force CD/DVD Boot",
}

// bootTargets are the BootSourceOverrideTargets the backend offers.
var bootTargets = []string{"None", "Pxe", "Hdd", "Cd"}
