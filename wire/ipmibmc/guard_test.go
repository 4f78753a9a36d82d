package ipmibmc

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/crypto"
	"github.com/bougou/go-ipmi/pkg/protocol"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/fishgate/fishgate/internal/testkit"
)

// TestFuzzSeeds runs every seed of FuzzIPMIPacket and checks what the
// server made of it: the valid ones get past the harness's session set-up
// and signing to a successful answer (so that the fuzzer starts from there),
// the malformed ones are dropped by the guard.
func TestFuzzSeeds(t *testing.T) {
	for i, seed := range fuzzSeeds() {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			r := runPacket(t, seed.state, seed.pkt)
			drops := r.s.guard.drops.Load()
			want := seed.want
			if want == "drop" {
				if drops != 1 || len(r.answers) != 0 {
					t.Errorf("stage %#x %x: %d dropped, %d answers; want dropped", seed.state, seed.pkt, drops, len(r.answers))
				}
				return
			}
			if drops != 0 {
				t.Fatalf("stage %#x %x: dropped", seed.state, seed.pkt)
			}
			if want == "silent" {
				if len(r.answers) != 0 {
					t.Errorf("answered % x", r.answers)
				}
				return
			}
			if len(r.answers) != 1 {
				t.Fatalf("stage %#x %x: %d answers, want 1", seed.state, seed.pkt, len(r.answers))
			}
			a := r.answers[0]
			switch {
			case want == "answer":
			case strings.HasPrefix(want, "status="):
				_, _, _, _, payload, ok := protocol.ParseRMCPPlusHeader(a)
				if !ok || len(payload) < 2 || fmt.Sprintf("status=%02x", payload[1]) != want {
					t.Errorf("answer % x, want %s", a, want)
				}
			default:
				cc, err := r.st.answerCC(a)
				if err != nil || cc != 0 {
					t.Errorf("answer % x: cc %#x, %v; want 00h", a, cc, err)
				}
				if call, ok := strings.CutPrefix(want, "call="); ok {
					if calls := r.target.Calls(); len(calls) != 1 || !strings.HasPrefix(calls[0], call) {
						t.Errorf("target calls %q, want %q", calls, call)
					}
				}
			}
		})
	}
}

// answerCC is the completion code of an IPMI answer in the stage's session.
func (st *stage) answerCC(pkt []byte) (uint8, error) {
	var msg []byte
	if len(pkt) > rmcpHeaderLen && pkt[rmcpHeaderLen] == authTypeRMCPPlus {
		_, _, _, flags, payload, ok := protocol.ParseRMCPPlusHeader(pkt)
		if !ok {
			return 0, fmt.Errorf("bad RMCP+ header")
		}
		msg = payload
		if flags&payloadEncrypted != 0 {
			var err error
			if msg, err = crypto.DecryptAESPayload(payload, st.plus.k2); err != nil {
				return 0, err
			}
		}
	} else {
		hdr := rmcpHeaderLen + v15HeaderLen
		if len(pkt) > rmcpHeaderLen && pkt[rmcpHeaderLen] != v15AuthTypeNone {
			hdr += v15AuthCodeLen
		}
		if len(pkt) > hdr {
			msg = pkt[hdr:]
		}
	}
	if len(msg) < 8 {
		return 0, fmt.Errorf("IPMI answer too short: % x", msg)
	}
	return msg[6], nil
}

// TestMalformedPacketsKeepServing is issue 10's attack on a server on
// loopback: the 44-byte RAKP Message 1 with a user name length of 228 (and
// the other malformed packets), RAKP 1 with a long name for a pending
// session, and an authenticated encrypted payload of a partial AES block in
// an active session. Each is dropped, and a real request is answered
// afterwards.
func TestMalformedPacketsKeepServing(t *testing.T) {
	var logs logBuffer
	s := startServer(t, &fakeTarget{}, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	pending, err := openPlus(s, 17)
	if err != nil {
		t.Fatal(err)
	}
	active, err := openPlus(s, 17)
	if err == nil {
		err = active.rakp1(s)
	}
	if err == nil {
		err = active.rakp3(s)
	}
	if err != nil {
		t.Fatal(err)
	}
	extra := [][]byte{
		testkit.RAKP1(pending.id, 228, ""),
		active.seal(testkit.RMCPPlus(0xc0, active.id, 1, make([]byte, 17)), false),
	}
	testkit.SendMalformed(t, s.Addr())
	sendUDP(t, s.Addr(), extra...)
	want := int64(len(testkit.Malformed()) + len(extra))
	deadline := time.Now().Add(5 * time.Second)
	for s.guard.drops.Load() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.guard.drops.Load(); got != want {
		t.Errorf("%d packets dropped, want %d", got, want)
	}
	c, err := newClient(t, s, testPass, false)
	if err != nil {
		t.Fatalf("no session after the malformed packets: %v", err)
	}
	if _, err := c.GetChassisStatus(context.Background()); err != nil {
		t.Fatalf("Get Chassis Status after the malformed packets: %v", err)
	}
	if n := s.guard.panics.Load(); n != 0 {
		t.Errorf("%d panics recovered", n)
	}
	if out := logs.String(); !strings.Contains(out, "level=WARN msg=\"IPMI packet dropped: malformed\"") || !strings.Contains(out, " remote=127.0.0.1:") {
		t.Errorf("no WARN with the peer's address:\n%s", out)
	}
	t.Run("ipmitool", func(t *testing.T) {
		if out := testkit.MustIpmitool(t, tool(s), "chassis", "power", "status"); out != "Chassis Power is off" {
			t.Errorf("power status: %q", out)
		}
	})
}

func sendUDP(t *testing.T, addr string, pkts ...[]byte) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range pkts {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
}

// panicTarget's PowerState panics while armed.
type panicTarget struct {
	fakeTarget
	armed atomic.Bool
}

func (p *panicTarget) PowerState(ctx context.Context) (bool, error) {
	if p.armed.Load() {
		panic("power target bug")
	}
	return p.fakeTarget.PowerState(ctx)
}

// TestHandlerPanicAnswered: a panic in a command handler (here the power
// target's) answers FFh, is logged at WARN with the peer's address, and the
// server keeps serving.
func TestHandlerPanicAnswered(t *testing.T) {
	var logs logBuffer
	p := &panicTarget{}
	p.armed.Store(true)
	s := startServer(t, p, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	c, err := newClient(t, s, testPass, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = c.GetChassisStatus(ctx)
	if re, ok := types.IsResponseError(err); !ok || uint8(re.CompletionCode()) != ccUnspecified {
		t.Errorf("Get Chassis Status with a panicking target: %v, want cc FFh", err)
	}
	p.armed.Store(false)
	if _, err := c.GetChassisStatus(ctx); err != nil {
		t.Errorf("after the panic: %v", err)
	}
	if n := s.guard.panics.Load(); n != 1 {
		t.Errorf("%d panics recovered, want 1", n)
	}
	out := logs.String()
	for _, want := range []string{"level=WARN", "IPMI request panicked", "remote=127.0.0.1:", "power target bug", "where=\"Get Chassis Status\""} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestCheckPacketAcceptsSeeds: the guard passes every valid seed as it is
// sent (those the harness signs aside) and drops the malformed ones.
func TestCheckPacketAcceptsSeeds(t *testing.T) {
	for _, seed := range fuzzSeeds() {
		if seed.state&stateSign != 0 {
			continue // encrypted only by the harness
		}
		if got := checkPacket(seed.pkt); (got != "") != (seed.want == "drop") {
			t.Errorf("checkPacket(%x) = %q, want drop: %v", seed.pkt, got, seed.want == "drop")
		}
	}
	if !slices.ContainsFunc(fuzzSeeds(), func(s fuzzSeed) bool { return s.want == "drop" }) {
		t.Error("no malformed seed")
	}
}
