// Package simulator runs simulated BMCs for tests, CI and demos
// (docs/architecture.md#simulator). It depends on nothing else in fishgate.
//
// # Layout
//
//	plan.go     pure core: which power states a ResetType walks through
//	machine.go  Machine: one node's power state machine, faults, command log
//	faults.go   Faults and their JSON form
//	redfish.go  the Redfish front of one node (sessions, System, Reset, Tasks)
//	messages.go Redfish error bodies and Base registry messages, in one place
//	amt.go      the Intel AMT front of one node: WS-Man with Digest auth, CIM power and boot
//	amt_wsman.go SOAP 1.2 / WS-Man XML of the AMT front
//	ipmi.go     the IPMI LAN front of one node: wire/ipmibmc with the Machine behind it
//	fleet.go    Node and Fleet: many nodes, each with its own listener
//	control.go  the control/status API (JSON over HTTP) of a Fleet
//
// A Machine is the simulated hardware; a protocol front (Redfish, AMT, IPMI)
// translates its wire protocol into Machine calls, naming itself in the
// protocol argument so the command log says who asked.
//
// # Power state machine
//
// PowerState is one of On, Off, PoweringOn, PoweringOff. Each accepted
// command draws a transition time d uniformly from [DelayMin, DelayMax] and
// walks through the steps of plan.go:
//
//	On, ForceOn        Off/PoweringOn/PoweringOff → PoweringOn (d) → On; no-op when On
//	ForceOff           → PoweringOff (d/4, a hard off is quick) → Off; no-op when Off
//	GracefulShutdown   → PoweringOff (d) → Off; no-op when Off
//	ForceRestart,      On/PoweringOn/PoweringOff → PoweringOff (d/4) → Off (d/4)
//	PowerCycle           → PoweringOn (d/2) → On; from Off: as On
//	GracefulRestart    as ForceRestart with PoweringOff d/2, Off d/4, PoweringOn d/4
//	Nmi                no state change (accepted and logged, even when Off)
//	PushPowerButton    toggles: from On or PoweringOn as GracefulShutdown,
//	                   from Off or PoweringOff as On
//
// A command accepted while a transition is under way interrupts it: the new
// command's steps start from the current (intermediate) state. Nmi and no-op
// commands never interrupt a transition.
//
// PowerOnCount counts the times the machine entered On through a transition,
// PowerOffCount the times it entered Off through a transition (so a restart
// from On adds one to each). SetPower changes neither.
//
// # In flight, and the overlap counter
//
// A power command (a Reset) is in flight from its arrival at the machine
// (before CommandLatency and Hang) until one of:
//   - it was answered with an error (unsupported type, FailFirst,
//     RefuseOnWithin, context done) or ignored (Ignore);
//   - it was accepted and needs no state change (no-op, Nmi, a soft off the
//     OS ignores): it leaves when it is accepted;
//   - the transition it started settled in its final steady state;
//   - a later command was accepted and took over its transition, or SetPower
//     or Close stopped it.
//
// InFlight is the number in flight now; MaxInFlight the largest InFlight ever
// seen. A client that sends one command at a time and waits for the target
// PowerState before the next (the gateway's invariant 1) keeps MaxInFlight at
// 1: the final steady state becomes visible in the same instant the command
// stops being in flight. Two commands whose lifetimes overlap make it 2.
// Unsupported ResetTypes are refused before they count.
//
// # Command latency
//
// MachineConfig.CommandLatency (SetCommandLatency, PUT /nodes/{id}/latency,
// bmcsim --latency) is how long the machine takes to answer a power command,
// on every front: a synchronous Redfish Reset answers 204 (or its error), an
// AMT RequestPowerStateChange its ReturnValue, an IPMI Chassis Control its
// completion code only after it. (An AsyncReset node answers 202 at once
// and an AMT front with Jobs 4096; the latency then delays the task or job.)
// It is the BMC at work, not a fault: a client that stops waiting does not
// shorten it, and the command is carried out when it ends, as a slow BMC
// does. So a client that times out and sends the command again makes two
// commands in flight (MaxInFlight 2).
//
// # Faults
//
// Faults may be changed at any time (SetFaults, or PUT /nodes/{id}/faults):
//   - FailFirst: the next N power commands fail with "simulated failure (k
//     left)"; each failure decrements the counter. Logged "failed: ...".
//   - Ignore: power commands are answered as accepted but do nothing. Logged
//     "ignored". (An async Redfish task for it completes at once.)
//   - Hang: extra delay before the machine answers each power command, after
//     CommandLatency; a done context ends the wait with its error and the
//     command is not carried out ("failed: context canceled").
//   - RefuseOnWithin: a command that would power the machine on (its steps
//     start with PoweringOn) is refused while a power-off is under way or
//     within this long after the last transition into Off. Restarts from On
//     are not refused: the off is part of them. Logged "refused: ...".
//   - NeverFinishSoftOff: the OS ignores ACPI. GracefulShutdown,
//     GracefulRestart and PushPowerButton from On are accepted and the machine
//     stays On.
//
// Faults are checked in this order: FailFirst, Ignore, RefuseOnWithin.
// SetBoot is not subject to faults. In JSON, Hang and RefuseOnWithin are
// written as integer nanoseconds (encoding/json's time.Duration form) and
// read from either integer nanoseconds or a Go duration string ("1.5s").
//
// # AMT front
//
// With NodeSpec.AMTListen a node also serves Intel AMT's WS-Management
// (DSP0226) at /wsman, HTTP Digest (MD5, qop=auth, the node's User and
// Password; 401 with Digest realm="...", nonce="...", stale="false",
// qop="auth"; nonces are reused with a growing nc, replays refused), HTTPS
// when TLS. It serves Enumerate/Pull/Release (optimized or not, EPR modes),
// Get, Put (AMT_BootSettingData) and Identify (without credentials) on AMT's
// CIM classes, and the methods
//
//	CIM_PowerManagementService.RequestPowerStateChange  PowerState 2 On, 5 PowerCycle,
//	    8 ForceOff, 10 ForceRestart, 11 Nmi, 12 GracefulShutdown, 14 GracefulRestart,
//	    offered in AvailableRequestedPowerStates when the machine offers the type.
//	    Addressed with or without header selectors; ManagedElement must be the
//	    CIM_ComputerSystem "ManagedSystem" (else ReturnValue 5). Logged as
//	    protocol "amt", Action "<ResetType> (<value>)", e.g. "On (2)".
//	CIM_BootConfigSetting.ChangeBootOrder               Source PXE, hard drive or CD/DVD:
//	    Boot {Pxe|Hdd|Cd, Once}; no Source: {None, Disabled}
//	CIM_BootService.SetBootConfigRole                   Role 1 (IsNextSingleUse) only
//
// PowerState reads 2 (On) or 8 (Off-Soft): AMT has no transitional state, so
// a transition reads as the state it leaves until it settles, and one that
// ends On (power-on, restart) reads 8 from its start: a client sees its
// target exactly when the command stops being in flight. Faults: FailFirst
// answers ReturnValue 2 and a SOAP fault (s:Receiver) in turn; Ignore answers
// 0; Hang delays the answer; RefuseOnWithin answers 4099 (Busy). A front
// built with AMTConfig.Jobs answers 4096 and a CIM_ConcreteJob instead, that
// ends Completed, Exception (with the failure) or Terminated (superseded).
//
// # IPMI front
//
// With NodeSpec.IPMIListen a node also answers IPMI over LAN on a UDP port:
// RMCP+ ("ipmitool -I lanplus", cipher suites 3 and 17) and IPMI v1.5
// ("-I lan"), the node's User and Password. Chassis Control power up, power
// down, soft shutdown, hard reset, power cycle and diagnostic interrupt are
// Resets On, ForceOff, GracefulShutdown, ForceRestart, PowerCycle and Nmi,
// logged as protocol "ipmi" with the ResetType as Action; the boot flags are
// the Boot override; a BMC Cold or Warm Reset is logged "ColdReset" or
// "WarmReset" and leaves the host alone. Get Chassis Status, like AMT, reads
// a transition as "not there yet" until it settles (see ipmi.go).
//
// # Redfish front
//
// Each Node serves one ComputerSystem (DSP0266): ServiceRoot, Systems,
// Managers/BMC, SessionService (login → 201 + X-Auth-Token + Location;
// DELETE logs out), and TaskService when NodeSpec.AsyncReset. Everything but
// /redfish, /redfish/v1, /redfish/v1/odata, /redfish/v1/$metadata and the
// session login needs Basic credentials or a session token (401
// NoValidSession otherwise). Trailing slashes are ignored. MessageIds are
// Base.1.22.<Key> (DSP0266 MessageId format: Registry.Major.Minor.Key).
//
// POST .../Actions/ComputerSystem.Reset {"ResetType": ...} answers, once the
// machine has answered:
//
//	204                 accepted (synchronous nodes)
//	202 + Location      a Task (AsyncReset nodes): Running, then Completed
//	                    (transition settled, or ignored), Exception (machine
//	                    error text in Messages) or Cancelled (superseded)
//	400                 ActionParameterValueNotInList for a ResetType the
//	                    machine does not offer; other 400s for bad bodies
//	500                 GeneralError with the machine's text (FailFirst, a hang
//	                    cut short by the client)
//	503 + Retry-After   power-on refused (RefuseOnWithin)
//
// PATCH of the System accepts {"Boot": {BootSourceOverrideTarget, ...Enabled,
// ...Mode}} and answers 200 with the System. The System's weak ETag covers
// the Boot override only, so If-Match fails when Boot changed, not when
// PowerState moved on.
//
// Each Machine has its own random source (math/rand/v2 PCG), seeded from
// MachineConfig.Seed or at random; the package has no mutable global state.
package simulator
