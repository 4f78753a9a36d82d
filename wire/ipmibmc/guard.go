package ipmibmc

// The packet guard: no packet may take the process down (issue 10).
//
// go-ipmi v0.9.1's server reads a packet and hands it to a goroutine of its
// own (server.Server.Serve), which parses it with no recover: a panic there
// ends the process, and we cannot wrap that goroutine. Two of its parsers
// panic on bytes a peer controls:
//
//   - RAKP Message 1 (rmcpplus/rakp_message_1_2.go:78-82): the bound check
//     "28+r.UsernameLength" is computed in uint8, so a user name length of
//     228 or more wraps to a small number, passes, and msg[28:28+len]
//     panics (slice bounds out of range). RAKP 1 needs no session and no
//     password: one 44-byte UDP packet from anyone.
//   - Encrypted in-session payloads (crypto/aes.go:41, via
//     DecryptAESPayload, aes.go:104, from server.decryptSessionPayload):
//     only len >= 16 is checked, and cipher.CryptBlocks panics when the
//     ciphertext after the 16-byte IV is not whole AES blocks. The packet
//     must pass the session's integrity check first, so this one needs a
//     logged-in user (or a session without integrity).
//
// So every packet is checked before go-ipmi sees it (guardConn, the
// transport go-ipmi reads from): the RMCP envelope, the session header, the
// payload length, RAKP 1's user name length (at most 16 bytes, v2.0 §13.20)
// and an encrypted payload's shape (IV + whole blocks, §13.29). What
// fails is dropped, as a BMC drops what it cannot parse, and logged at WARN
// with the peer's address (at most once a second). go-ipmi's other
// pre-handler parsing (ASF ping, Open Session, RAKP 3, the v1.5 session
// header, the integrity trailer, the IPMI message) checks its lengths; the
// fuzz target FuzzIPMIPacket drives all of it, through this guard, from
// every session state.
//
// Command handlers (ours and go-ipmi's) run inside a recovering middleware
// (recoverHandler): a panic there answers FFh, is logged at WARN, and the
// server keeps serving. Serve restarts go-ipmi's read loop if it panics.

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bougou/go-ipmi/pkg/handlers"
	"github.com/bougou/go-ipmi/pkg/types"
)

// Wire layout checked by checkPacket.
const (
	rmcpHeaderLen    = 4    // version, reserved, sequence, class (the ASF spec's RMCP header)
	rmcpVersion1     = 0x06 // RMCP version 1.0, the only one defined
	rmcpClassASF     = 0x06
	rmcpClassIPMI    = 0x07
	rmcpClassMask    = 0x1F // bit 7 is the ACK flag
	asfPingLen       = rmcpHeaderLen + 8
	authTypeRMCPPlus = 0x06 // v2.0 Table 13-8: the session header is RMCP+'s

	// IPMI v1.5 session header (v2.0 Table 13-8): auth type, sequence (4),
	// session id (4), auth code (16, absent for auth type none), payload
	// length (1).
	v15HeaderLen     = 10
	v15AuthCodeLen   = 16
	v15AuthTypeNone  = 0x00
	v15PayloadLenOff = 9

	// RMCP+ session header (v2.0 Table 13-8): auth type, payload type (2
	// flag bits and 6 type bits), session id (4), sequence (4), payload
	// length (2, little endian).
	rmcpPlusHeaderLen = 12
	payloadEncrypted  = 0x80
	payloadTypeMask   = 0x3F

	// RAKP Message 1 (v2.0 §13.20): the user name length is byte 28.
	rakp1NameLenOff = 27
	maxUserNameLen  = 16

	aesBlockLen = 16 // AES-CBC-128 (§13.29): a 16-byte IV, then whole blocks
)

// checkPacket returns why pkt must not reach go-ipmi, or "" when it may.
func checkPacket(pkt []byte) string {
	if len(pkt) < rmcpHeaderLen {
		return "shorter than an RMCP header"
	}
	if pkt[0] != rmcpVersion1 {
		return fmt.Sprintf("RMCP version %#02x", pkt[0])
	}
	switch pkt[3] & rmcpClassMask {
	case rmcpClassASF:
		if len(pkt) < asfPingLen {
			return "ASF message too short"
		}
		return ""
	case rmcpClassIPMI:
	default:
		return fmt.Sprintf("RMCP message class %#02x", pkt[3]&rmcpClassMask)
	}
	sess := pkt[rmcpHeaderLen:]
	if len(sess) == 0 {
		return "no session header"
	}
	if sess[0] != authTypeRMCPPlus {
		return checkV15(sess)
	}
	return checkRMCPPlus(sess)
}

// checkV15 checks an IPMI v1.5 session header and its payload length.
func checkV15(sess []byte) string {
	hdr := v15HeaderLen
	if sess[0] != v15AuthTypeNone {
		hdr += v15AuthCodeLen
	}
	if len(sess) < hdr {
		return "IPMI v1.5 session header truncated"
	}
	if n := int(sess[hdr-v15HeaderLen+v15PayloadLenOff]); len(sess) < hdr+n {
		return fmt.Sprintf("IPMI v1.5 payload length %d, %d bytes follow", n, len(sess)-hdr)
	}
	return ""
}

// checkRMCPPlus checks an RMCP+ session header and the payloads go-ipmi
// mis-parses.
func checkRMCPPlus(sess []byte) string {
	if len(sess) < rmcpPlusHeaderLen {
		return "RMCP+ session header truncated"
	}
	flags := sess[1]
	n := int(binary.LittleEndian.Uint16(sess[10:12]))
	if len(sess) < rmcpPlusHeaderLen+n {
		return fmt.Sprintf("RMCP+ payload length %d, %d bytes follow", n, len(sess)-rmcpPlusHeaderLen)
	}
	payload := sess[rmcpPlusHeaderLen : rmcpPlusHeaderLen+n]
	switch types.PayloadType(flags & payloadTypeMask) {
	case types.PayloadTypeRAKPMessage1:
		// A shorter message is answered "illegal parameter" by go-ipmi.
		if len(payload) > rakp1NameLenOff && payload[rakp1NameLenOff] > maxUserNameLen {
			return fmt.Sprintf("RAKP Message 1 user name length %d", payload[rakp1NameLenOff])
		}
	case types.PayloadTypeIPMI, types.PayloadTypeSOL:
		if flags&payloadEncrypted != 0 && (n < 2*aesBlockLen || n%aesBlockLen != 0) {
			return fmt.Sprintf("encrypted payload of %d bytes is not an IV and whole AES blocks", n)
		}
	}
	return ""
}

// guardConn is the transport go-ipmi reads from: packets checkPacket
// refuses are dropped here.
type guardConn struct {
	packetConn
	s *Server
}

func (g *guardConn) ReadFrom(buf []byte) (int, net.Addr, error) {
	for {
		n, addr, err := g.packetConn.ReadFrom(buf)
		if err != nil {
			return n, addr, err
		}
		reason := g.s.check(buf[:n])
		if reason == "" {
			return n, addr, nil
		}
		g.s.dropped(addr, n, reason)
	}
}

// guardStats counts drops and recovered panics, and limits their WARN logs.
type guardStats struct {
	drops, panics atomic.Int64

	mu         sync.Mutex
	lastWarn   time.Time
	suppressed int
}

// warnEvery is the least time between two WARN logs of dropped packets.
const warnEvery = time.Second

// check is checkPacket, made unable to take the read loop down.
func (s *Server) check(pkt []byte) (reason string) {
	defer func() {
		if v := recover(); v != nil {
			s.guard.panics.Add(1)
			reason = fmt.Sprintf("packet check panicked: %v", v)
		}
	}()
	return checkPacket(pkt)
}

// dropped records a packet the guard dropped.
func (s *Server) dropped(addr net.Addr, n int, reason string) {
	s.guard.drops.Add(1)
	g := &s.guard
	g.mu.Lock()
	now := time.Now()
	if now.Sub(g.lastWarn) < warnEvery {
		g.suppressed++
		g.mu.Unlock()
		s.log.Debug("IPMI packet dropped", "remote", addrString(addr), "bytes", n, "reason", reason)
		return
	}
	suppressed := g.suppressed
	g.lastWarn, g.suppressed = now, 0
	g.mu.Unlock()
	s.log.Warn("IPMI packet dropped: malformed", "remote", addrString(addr), "bytes", n, "reason", reason,
		"dropped_since_last_warning", suppressed)
}

// recoverHandler is the outermost middleware of every command handler: a
// panic answers FFh (unspecified error) instead of ending the process.
func (s *Server) recoverHandler(next handlers.Handler) handlers.Handler {
	return handlers.HandlerFunc(func(ctx context.Context, hctx *handlers.HandlerContext, req []byte) (resp []byte, cc types.CompletionCode, err error) {
		defer func() {
			if v := recover(); v != nil {
				cmd := ""
				if hctx != nil {
					cmd = hctx.Command.Name
				}
				s.recovered(v, hctx, cmd)
				resp, cc, err = nil, types.CompletionCode(ccUnspecified), nil
			}
		}()
		return next.Handle(ctx, hctx, req)
	})
}

// recovered logs a recovered panic at WARN with the peer's address when
// known (RMCP+ sessions record it; v1.5 sessions and session-less requests
// do not).
func (s *Server) recovered(v any, hctx *handlers.HandlerContext, where string) {
	s.guard.panics.Add(1)
	remote := ""
	if hctx != nil && hctx.Session != nil {
		remote = addrString(hctx.Session.GetAddr())
	}
	s.log.Warn("IPMI request panicked: dropped, still serving", "remote", remote, "where", where,
		"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
