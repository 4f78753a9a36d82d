package ipmibmc

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/fishgate/fishgate/wire/ipmi"

	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/handlers"
	"github.com/bougou/go-ipmi/pkg/types"
)

// handlerFunc is one of our command handlers: request data in, response data
// and completion code out. ctx is bounded by CommandTimeout and cancelled by
// Close.
type handlerFunc func(ctx context.Context, hctx *handlers.HandlerContext, req []byte) ([]byte, uint8)

// handle adapts h to go-ipmi's handler signature. go-ipmi hands handlers a
// background context; ours get one that Close cancels, with a deadline.
func (s *Server) handle(h handlerFunc) func(context.Context, *handlers.HandlerContext, []byte) ([]byte, types.CompletionCode, error) {
	return func(_ context.Context, hctx *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
		if !s.enter() {
			return nil, types.CompletionCode(ccNodeBusy), nil
		}
		defer s.calls.Done()
		ctx, cancel := context.WithTimeout(s.base, s.cfg.CommandTimeout)
		defer cancel()
		ctx = context.WithValue(ctx, requestKey{}, requestOf(hctx))
		resp, cc := h(ctx, hctx, req)
		return resp, types.CompletionCode(cc), nil
	}
}

// Request describes the IPMI request a PowerTarget call serves, for logs
// and the gateway's command log.
type Request struct {
	User    string // the session's user name
	Remote  string // the client's address ("" for IPMI v1.5 sessions)
	Command string // the IPMI command, "Chassis Control"
}

func (r Request) String() string {
	s := "ipmi user=" + r.User
	if r.Remote != "" {
		s += " remote=" + r.Remote
	}
	return s + " command=" + strconv.Quote(r.Command)
}

type requestKey struct{}

// RequestFrom returns the Request a PowerTarget call serves.
func RequestFrom(ctx context.Context) (Request, bool) {
	r, ok := ctx.Value(requestKey{}).(Request)
	return r, ok
}

func requestOf(hctx *handlers.HandlerContext) Request {
	var r Request
	if hctx == nil {
		return r
	}
	r.Command = hctx.Command.Name
	if hctx.User != nil {
		r.User = hctx.User.Name
	}
	if hctx.Session != nil {
		if a := hctx.Session.GetAddr(); a != nil {
			r.Remote = a.String()
		}
	}
	return r
}

// getChassisStatus implements Get Chassis Status (v2.0 §28.2, Table 28-3):
// the power bit from the target; no faults, restore policy "always off",
// identify supported.
func (s *Server) getChassisStatus(ctx context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, uint8) {
	on, err := s.target.PowerState(ctx)
	if err != nil {
		s.log.Debug("Get Chassis Status failed", "err", err)
		return nil, completionCode(err)
	}
	resp := chassis.GetChassisStatusResponse{PowerIsOn: on, ChassisIdentifySupported: true}
	return resp.Pack(), ccOK
}

// chassisControl implements Chassis Control (v2.0 §28.3, Table 28-4): all
// six actions, the diagnostic interrupt included. Reserved actions answer
// CCh.
func (s *Server) chassisControl(ctx context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, uint8) {
	if len(req) < 1 {
		return nil, ccRequestLenInvalid
	}
	cmd := ipmi.ChassisCommand(req[0] & 0x0F)
	if !cmd.Valid() {
		return nil, ccInvalidDataField
	}
	err := s.target.Control(ctx, cmd)
	s.log.Debug("Chassis Control", "action", cmd.String(), "err", err)
	return nil, completionCode(err)
}

// bmcReset implements Cold Reset (v2.0 §20.2) and Warm Reset (§20.3). The
// BMC's reset must not touch the host: the target is only told. Sessions
// are kept, so the client can close its own.
func (s *Server) bmcReset(cold bool) handlerFunc {
	return func(ctx context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, uint8) {
		err := s.target.BMCReset(ctx, cold)
		s.log.Debug("BMC reset", "cold", cold, "err", err)
		return nil, completionCode(err)
	}
}

// Boot option parameter selectors (v2.0 Table 28-14).
const (
	bootParamSetInProgress = 0
	bootParamValidBitClear = 3
	bootParamInfoAck       = 4
	bootParamBootFlags     = 5
)

// setBootOptions implements Set System Boot Options (v2.0 §28.12) for
// parameters 0 (set in progress, accepted and reported, never refused), 3 (boot flag valid bit clearing, kept,
// the flags are never cleared automatically), 4 (boot info acknowledge,
// kept) and 5 (boot flags, written to the target). Others answer 80h.
func (s *Server) setBootOptions(ctx context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, uint8) {
	if len(req) < 1 {
		return nil, ccRequestLenInvalid
	}
	sel, data := req[0]&0x7F, req[1:]
	switch sel {
	case bootParamSetInProgress:
		if len(data) < 1 {
			return nil, ccRequestDataTruncated
		}
		// Kept for Get only: every write is applied at once, and a client
		// that left "set in progress" behind must not lock the others out
		// (81h is optional).
		switch v := data[0] & 0x03; v {
		case 3:
			return nil, ccInvalidDataField
		case 2: // commit write
		default:
			s.bootMu.Lock()
			s.setInProg = v
			s.bootMu.Unlock()
		}
		return nil, ccOK
	case bootParamValidBitClear:
		if len(data) < 1 {
			return nil, ccRequestDataTruncated
		}
		s.bootMu.Lock()
		s.validClear = data[0] & 0x1F
		s.bootMu.Unlock()
		return nil, ccOK
	case bootParamInfoAck:
		if len(data) < 2 {
			return nil, ccRequestDataTruncated
		}
		s.bootMu.Lock()
		// Byte 1 is a write mask for byte 2 (Table 28-14 #4).
		s.bootAck[1] = s.bootAck[1]&^data[0] | data[1]&data[0]
		s.bootMu.Unlock()
		return nil, ccOK
	case bootParamBootFlags:
		b, err := ipmi.UnpackBootFlags(data)
		if err != nil {
			return nil, ccRequestDataTruncated
		}
		err = s.target.SetBoot(ctx, b)
		s.log.Debug("Set Boot Flags", "device", b.Device, "persistent", b.Persistent, "efi", b.EFI, "err", err)
		return nil, completionCode(err)
	}
	return nil, ccParamNotSupported
}

// getBootOptions implements Get System Boot Options (v2.0 §28.13) for the
// parameters setBootOptions takes. The answer is: parameter version (1),
// parameter valid + selector, data.
func (s *Server) getBootOptions(ctx context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, uint8) {
	if len(req) < 1 {
		return nil, ccRequestLenInvalid
	}
	sel := req[0] & 0x7F
	resp := []byte{0x01, sel}
	switch sel {
	case bootParamSetInProgress:
		s.bootMu.Lock()
		resp = append(resp, s.setInProg)
		s.bootMu.Unlock()
	case bootParamValidBitClear:
		s.bootMu.Lock()
		resp = append(resp, s.validClear)
		s.bootMu.Unlock()
	case bootParamInfoAck:
		s.bootMu.Lock()
		resp = append(resp, s.bootAck[:]...)
		s.bootMu.Unlock()
	case bootParamBootFlags:
		b, err := s.target.Boot(ctx)
		if err != nil {
			return nil, completionCode(err)
		}
		resp = append(resp, ipmi.PackBootFlags(b)...)
	default:
		return nil, ccParamNotSupported
	}
	return resp, ccOK
}

// retransmitCache remembers, per RMCP+ session, the last state-changing
// request and its answer.
type retransmitCache struct {
	mu      sync.Mutex
	entries map[uint32]retransmit // by BMC session id
}

type retransmit struct {
	seq  uint32 // the session sequence number of the request
	cmd  uint16 // NetFn<<8 | command
	req  string
	resp []byte
	cc   uint8
	at   time.Time
}

// retransmitSafe makes h answer a retransmission (same RMCP+ session, same
// session sequence number, same request) with the first answer instead of
// running again. go-ipmi's inbound window (v2.0 §6.12.13, +15/-16) accepts
// the last sequence number again, and a repeated power cycle is a second
// cycle. The handler runs under the session's ProcMu, so requests of one
// session come here one at a time. IPMI v1.5 sessions need none of this:
// go-ipmi refuses a repeated v1.5 sequence number.
func (s *Server) retransmitSafe(h handlerFunc) handlerFunc {
	return func(ctx context.Context, hctx *handlers.HandlerContext, req []byte) ([]byte, uint8) {
		if hctx == nil || hctx.Session == nil {
			return h(ctx, hctx, req)
		}
		id, seq := hctx.Session.BMCID, hctx.Session.InboundSeq
		cmd := uint16(hctx.Command.NetFn)<<8 | uint16(hctx.Command.ID)
		c := &s.retransmits
		c.mu.Lock()
		if e, ok := c.entries[id]; ok && e.seq == seq && e.cmd == cmd && e.req == string(req) {
			c.mu.Unlock()
			s.log.Debug("retransmitted request answered again", "cmd", hctx.Command.Name, "session", id, "seq", seq)
			return e.resp, e.cc
		}
		c.mu.Unlock()

		resp, cc := h(ctx, hctx, req)

		now := time.Now()
		c.mu.Lock()
		for k, e := range c.entries {
			if now.Sub(e.at) > retransmitMemory {
				delete(c.entries, k)
			}
		}
		c.entries[id] = retransmit{seq: seq, cmd: cmd, req: string(req), resp: resp, cc: cc, at: now}
		c.mu.Unlock()
		return resp, cc
	}
}
