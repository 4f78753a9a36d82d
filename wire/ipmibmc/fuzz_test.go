package ipmibmc

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/bmc"
	"github.com/bougou/go-ipmi/pkg/crypto"
	"github.com/bougou/go-ipmi/pkg/handlers"
	"github.com/bougou/go-ipmi/pkg/protocol"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/fishgate/fishgate/internal/testkit"
)

// FuzzIPMIPacket feeds one UDP packet to a fresh server, through the same
// path a packet read from the socket takes (the guard, then go-ipmi's read
// loop, its per-packet goroutine and the handlers), from one of several
// session states (the stage constants). It fails when the process would have died
// (a panic in go-ipmi's goroutine ends the fuzzing process), when a panic
// had to be recovered, or when handling does not finish.
//
// state's low bits select the stage; bit 7 has the harness sign the packet
// for that stage's session (RAKP 3's auth code, an RMCP+ integrity trailer
// and encryption, a v1.5 auth code) so that the fuzzer gets past the
// cryptographic checks; bit 6 keeps an RMCP+ payload as it is rather than
// encrypting it. In the packet, "SID#", "SEQ#" and "CHALLENGE-MARK16" are
// replaced by the stage's session id, next sequence number and v1.5
// challenge.
func FuzzIPMIPacket(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed.state, seed.pkt)
	}
	f.Fuzz(func(t *testing.T, state uint8, pkt []byte) {
		runPacket(t, state, pkt)
	})
}

// The session state a fuzzed packet meets.
const (
	stageNone              = iota // no session
	stageOpened                   // RMCP+ (suite 17) after Open Session
	stageRAKP1                    // RMCP+ (suite 17) after RAKP 1: RAKP 3 next
	stageActive                   // RMCP+ suite 17 (HMAC-SHA256, AES), active
	stageActiveNoIntegrity        // RMCP+ suite 1 (HMAC-SHA1, no integrity), active
	stageV15Challenged            // IPMI v1.5 after Get Session Challenge (MD5)
	stageV15Active                // IPMI v1.5 MD5 session, active
	stageCount

	stateSign = 0x80 // sign (and encrypt) the packet for the stage's session
	stateRaw  = 0x40 // with stateSign: do not encrypt an RMCP+ payload
)

// Placeholders in fuzzed packets.
var (
	sidMark       = []byte("SID#")
	seqMark       = []byte("SEQ#")
	challengeMark = []byte("CHALLENGE-MARK16")
)

// fuzzCipherSuites are what the fuzzed server offers: the defaults, and
// suite 1 (no integrity) so that in-session paths are reachable without a
// valid MAC.
var fuzzCipherSuites = []int{3, 17, 1}

type fuzzSeed struct {
	state uint8
	pkt   []byte
	// want is what TestFuzzSeeds checks: "answer" (something is sent),
	// "status=00" (an RMCP+ session setup answer with that status),
	// "cc=00" (an IPMI answer with that completion code), "call=..." (the
	// target was called so, and answered 00h), "drop" (the guard dropped
	// it), "silent" (no answer, not dropped).
	want string
}

// fuzzSeeds are valid packets of every kind a console sends, for the stage
// each is meant for, and the known crashers.
func fuzzSeeds() []fuzzSeed {
	rmcp := testkit.RMCPPlus
	plus := func(ptype uint8, payload []byte) []byte {
		p := rmcp(ptype, 0, 0, payload)
		copy(p[6:10], sidMark)
		copy(p[10:14], seqMark)
		return p
	}
	name16 := make([]byte, 16)
	copy(name16, testUser)
	openReq := func(suite types.CipherSuiteID) []byte {
		auth, integ, conf, _ := types.GetCipherSuiteAlgorithms(suite)
		return openSessionRequest(0x2a, uint8(auth), uint8(integ), uint8(conf))
	}
	rakp1 := testkit.RAKP1(0, uint8(len(testUser)), testUser)
	copy(rakp1[16+4:], sidMark)
	rakp3 := rmcp(0x14, 0, 0, append(append([]byte{0x01, 0, 0, 0}, sidMark...), make([]byte, 32)...))
	activate := append(append([]byte{0x02, 0x04}, challengeMark...), 1, 0, 0, 0)
	v15 := func(seq, sid []byte, msg []byte) []byte {
		p := append([]byte{0x06, 0x00, 0xff, 0x07, 0x02}, seq...)
		p = append(append(append(p, sid...), make([]byte, 16)...), byte(len(msg)))
		return append(p, msg...)
	}
	seeds := []fuzzSeed{
		{stageNone, []byte{0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x07, 0x00, 0x00}, "answer"}, // ASF ping
		// Get Channel Auth Capabilities in a v1.5 envelope (as ipmitool
		// sends it) and an RMCP+ one; Get Channel Cipher Suites.
		{stageNone, v15None(ipmiRequest(0x06, 0x38, 0, 0x8e, 0x04)), "cc=00"},
		{stageNone, rmcp(0x00, 0, 0, ipmiRequest(0x06, 0x38, 1, 0x8e, 0x04)), "cc=00"},
		{stageNone, rmcp(0x00, 0, 0, ipmiRequest(0x06, 0x54, 2, 0x0e, 0x00, 0x80)), "cc=00"},
		{stageNone, rmcp(0x10, 0, 0, openReq(17)), "status=00"},
		{stageNone, rmcp(0x10, 0, 0, openReq(3)), "status=00"},
		{stageOpened, rakp1, "status=00"},
		{stageOpened, func() []byte { p := testkit.RAKP1(0, 228, ""); copy(p[16+4:], sidMark); return p }(), "drop"},
		{stageRAKP1 | stateSign, rakp3, "status=00"},
		{stageActive | stateSign, plus(0xc0, ipmiRequest(0x00, 0x01, 3)), "cc=00"},                                // Get Chassis Status
		{stageActive | stateSign, plus(0xc0, ipmiRequest(0x00, 0x02, 4, 0x01)), "call=control power up"},          // Chassis Control
		{stageActive | stateSign, plus(0xc0, ipmiRequest(0x00, 0x08, 5, 5, 0xa0, 0x04, 0, 0, 0)), "call=setboot"}, // Set System Boot Options: PXE, EFI
		{stageActive | stateSign, plus(0xc0, ipmiRequest(0x00, 0x09, 6, 5, 0, 0)), "cc=00"},                       // Get System Boot Options
		{stageActive | stateSign, plus(0xc0, ipmiRequest(0x06, 0x3b, 7, 0x04)), "cc=00"},                          // Set Session Privilege Level
		{stageActive | stateSign, plus(0xc0, ipmiRequest(0x06, 0x3c, 8, sidMark...)), "cc=00"},                    // Close Session
		// An authenticated encrypted payload of an IV and a partial block
		// (go-ipmi v0.9.1: panic in cipher.CryptBlocks).
		{stageActive | stateSign | stateRaw, plus(0xc0, make([]byte, 17)), "drop"},
		{stageActiveNoIntegrity, plus(0x00, ipmiRequest(0x06, 0x01, 9)), "cc=00"}, // Get Device ID
		{stageActiveNoIntegrity, plus(0x80, make([]byte, 33)), "drop"},
		{stageActiveNoIntegrity, plus(0x01, []byte{1, 0, 0, 0, 'x'}), "silent"},                        // SOL: no payload active
		{stageNone, v15None(ipmiRequest(0x06, 0x39, 10, append([]byte{0x02}, name16...)...)), "cc=00"}, // Get Session Challenge
		{stageV15Challenged | stateSign, v15([]byte{0, 0, 0, 0}, sidMark, ipmiRequest(0x06, 0x3a, 11, activate...)), "cc=00"},
		{stageV15Active | stateSign, v15(seqMark, sidMark, ipmiRequest(0x00, 0x01, 12)), "cc=00"},
		{stageV15Active | stateSign, v15(seqMark, sidMark, ipmiRequest(0x00, 0x02, 13, 0x02)), "call=control power cycle"},
	}
	for _, p := range testkit.Malformed() {
		seeds = append(seeds, fuzzSeed{stageNone, p, "drop"})
	}
	return seeds
}

// v15None wraps msg in an IPMI v1.5 session-less envelope (auth type none).
func v15None(msg []byte) []byte {
	p := []byte{0x06, 0x00, 0xff, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, byte(len(msg))}
	return append(p, msg...)
}

// ipmiRequest is an IPMI LAN request message (v2.0 Table 13-8): BMC
// address, NetFn, checksum, console address, sequence, command, data,
// checksum.
func ipmiRequest(netFn, cmd, seq uint8, data ...byte) []byte {
	m := []byte{0x20, netFn << 2, 0, 0x81, seq << 2, cmd}
	m[2] = protocol.Checksum(m[0:2])
	m = append(m, data...)
	return append(m, protocol.Checksum(m[3:]))
}

// openSessionRequest is an RMCP+ Open Session Request (v2.0 §13.17)
// asking for Administrator.
func openSessionRequest(consoleID uint32, auth, integ, conf uint8) []byte {
	p := make([]byte, 32)
	p[0], p[1] = 0x01, 0x04
	binary.LittleEndian.PutUint32(p[4:8], consoleID)
	for i, alg := range []uint8{auth, integ, conf} {
		rec := p[8+8*i:]
		rec[0], rec[3], rec[4] = uint8(i), 0x08, alg
	}
	return p
}

// packetRun is what runPacket saw.
type packetRun struct {
	s       *Server
	st      *stage
	target  *fakeTarget
	answers [][]byte // what the server sent
}

// runPacket is one fuzz execution: a fresh server on an in-memory conn,
// the stage's session set up with go-ipmi's own handlers, the packet
// injected, handling waited for.
func runPacket(t testing.TB, state uint8, pkt []byte) packetRun {
	var logs logBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	conn := newMemConn()
	target := &fakeTarget{}
	s, err := build(Config{Addr: "mem", User: testUser, Password: testPass, CipherSuites: fuzzCipherSuites, Logger: logger},
		target, func(string) (packetConn, error) { return conn, nil })
	if err != nil {
		t.Fatal(err)
	}
	stage := int(state&^(stateSign|stateRaw)) % stageCount
	st, err := setUp(s, stage)
	if err != nil {
		t.Fatalf("stage %d: %v", stage, err)
	}
	pkt = st.prepare(pkt, state)

	idle := runtime.NumGoroutine()
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	<-conn.reading // the read loop is up: its goroutines are running
	running := runtime.NumGoroutine()
	conn.in <- pkt
	<-conn.reading // the read loop took pkt and handed it on
	if !solRouted(pkt) {
		// Its goroutine ends, unless it deadlocked. (A SOL packet goes to
		// a per-session worker that idles on: Close ends it.)
		waitGoroutines(t, running, &logs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	waitGoroutines(t, idle, &logs)
	if n := s.guard.panics.Load(); n > 0 {
		t.Fatalf("%d panic(s) recovered handling %x (stage %d):\n%s", n, pkt, state, &logs)
	}
	conn.mu.Lock()
	defer conn.mu.Unlock()
	return packetRun{s: s, st: st, target: target, answers: conn.out}
}

// solRouted reports whether go-ipmi's read loop queues pkt for a SOL worker
// (server.solSessionPacket) instead of a goroutine of its own.
func solRouted(pkt []byte) bool {
	if len(pkt) < 5 || pkt[3]&0x1F != 0x07 || pkt[4] != 0x06 {
		return false
	}
	sid, _, ptype, _, _, ok := protocol.ParseRMCPPlusHeader(pkt)
	return ok && sid != 0 && ptype == uint8(types.PayloadTypeSOL)
}

func waitGoroutines(t testing.TB, want int, logs *logBuffer) {
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; runtime.NumGoroutine() > want; i++ {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("packet handling did not finish in 10s (%d goroutines, want %d):\n%s\n%s", runtime.NumGoroutine(), want, logs, buf)
		}
		if i < 1000 {
			runtime.Gosched()
		} else {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// logBuffer collects a server's logs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// memConn is an in-memory packetConn: packets sent on in are read by the
// server; reading has a value each time the server calls ReadFrom.
type memConn struct {
	in      chan []byte
	reading chan struct{}
	done    chan struct{}
	once    sync.Once

	mu  sync.Mutex
	out [][]byte
}

var memPeer = &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40623}

func newMemConn() *memConn {
	return &memConn{in: make(chan []byte), reading: make(chan struct{}, 1), done: make(chan struct{})}
}

func (c *memConn) ReadFrom(buf []byte) (int, net.Addr, error) {
	select {
	case c.reading <- struct{}{}:
	default:
	}
	select {
	case p := <-c.in:
		return copy(buf, p), memPeer, nil
	case <-c.done:
		return 0, nil, net.ErrClosed
	}
}

func (c *memConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = append(c.out, slices.Clone(b))
	return len(b), nil
}

func (c *memConn) Close() error        { c.once.Do(func() { close(c.done) }); return nil }
func (c *memConn) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 623} }

// stage is the session state a packet meets, and how to sign for it.
type stage struct {
	id   int
	plus *plusSession
	v15  *v15Session
}

func setUp(s *Server, id int) (*stage, error) {
	st := &stage{id: id}
	var err error
	switch id {
	case stageOpened, stageRAKP1, stageActive:
		st.plus, err = openPlus(s, 17)
		if err == nil && id >= stageRAKP1 {
			err = st.plus.rakp1(s)
		}
		if err == nil && id == stageActive {
			err = st.plus.rakp3(s)
		}
	case stageActiveNoIntegrity:
		st.plus, err = openPlus(s, 1)
		if err == nil {
			err = st.plus.rakp1(s)
		}
		if err == nil {
			err = st.plus.rakp3(s)
		}
	case stageV15Challenged, stageV15Active:
		st.v15, err = challengeV15(s)
		if err == nil && id == stageV15Active {
			err = st.v15.activate(s)
		}
	}
	return st, err
}

// prepare fills the placeholders of pkt and, with stateSign, signs it.
func (st *stage) prepare(pkt []byte, state uint8) []byte {
	var sid, seq uint32
	switch {
	case st.plus != nil:
		sid, seq = st.plus.id, st.plus.sess.InboundSeq+1
	case st.v15 != nil:
		sid, seq = st.v15.sessionID(), st.v15.sess.InboundSeq+1
		pkt = bytes.ReplaceAll(pkt, challengeMark, st.v15.sess.Challenge[:])
	default:
		return pkt
	}
	pkt = bytes.ReplaceAll(pkt, sidMark, binary.LittleEndian.AppendUint32(nil, sid))
	pkt = bytes.ReplaceAll(pkt, seqMark, binary.LittleEndian.AppendUint32(nil, seq))
	if state&stateSign == 0 {
		return pkt
	}
	switch st.id {
	case stageRAKP1:
		return st.plus.signRAKP3(pkt)
	case stageActive, stageActiveNoIntegrity:
		return st.plus.seal(pkt, state&stateRaw == 0)
	case stageV15Challenged, stageV15Active:
		return st.v15.sign(pkt)
	}
	return pkt
}

// plusSession is the console's side of an RMCP+ session, set up in-process
// with go-ipmi's own handshake handlers.
type plusSession struct {
	auth                     types.AuthAlg
	integ                    types.IntegrityAlg
	consoleID, id            uint32
	consoleRand, bmcRand, k1 []byte
	k2                       []byte
	sess                     *bmc.Session
}

const plusRole = 0x14 // name-only lookup, Administrator

func openPlus(s *Server, suite types.CipherSuiteID) (*plusSession, error) {
	auth, integ, conf, ok := types.GetCipherSuiteAlgorithms(suite)
	if !ok {
		return nil, fmt.Errorf("cipher suite %d", suite)
	}
	p := &plusSession{auth: auth, integ: integ, consoleID: 0xc0de0001}
	resp, err := handlers.HandleOpenSession(context.Background(), s.bmc, openSessionRequest(p.consoleID, uint8(auth), uint8(integ), uint8(conf)))
	if err != nil || len(resp) < 12 || resp[1] != 0 {
		return nil, fmt.Errorf("open session: % x, %v", resp, err)
	}
	p.id = binary.LittleEndian.Uint32(resp[8:12])
	sess, err := s.bmc.Sessions.Get(p.id)
	if err != nil {
		return nil, err
	}
	p.sess = sess
	return p, nil
}

func (p *plusSession) rakp1(s *Server) error {
	msg := testkit.RAKP1(p.id, uint8(len(testUser)), testUser)[16:]
	p.consoleRand = slices.Clone(msg[8:24])
	resp, err := handlers.HandleRAKP1(context.Background(), s.bmc, msg)
	if err != nil || len(resp) < 24 || resp[1] != 0 {
		return fmt.Errorf("RAKP 1: % x, %v", resp, err)
	}
	p.bmcRand = slices.Clone(resp[8:24])
	return nil
}

func (p *plusSession) rakp3Code() []byte {
	code, err := crypto.RAKP3AuthCode(p.auth, p.bmcRand, p.consoleID, plusRole, testUser, crypto.PadPassword20([]byte(testPass)))
	if err != nil {
		panic(err)
	}
	return code
}

func (p *plusSession) rakp3(s *Server) error {
	msg := append(binary.LittleEndian.AppendUint32([]byte{0x02, 0, 0, 0}, p.id), p.rakp3Code()...)
	resp, err := handlers.HandleRAKP3(context.Background(), s.bmc, msg)
	if err != nil || len(resp) < 8 || resp[1] != 0 {
		return fmt.Errorf("RAKP 3: % x, %v", resp, err)
	}
	_, p.k1, p.k2, err = crypto.DeriveSessionKeys(p.auth, p.consoleRand, p.bmcRand, plusRole, testUser, crypto.PadPassword20([]byte(testPass)))
	return err
}

// signRAKP3 puts the right key exchange auth code into a RAKP 3 packet.
func (p *plusSession) signRAKP3(pkt []byte) []byte {
	sid, _, ptype, _, payload, ok := protocol.ParseRMCPPlusHeader(pkt)
	code := p.rakp3Code()
	if ok && sid == 0 && ptype == uint8(types.PayloadTypeRAKPMessage3) && len(payload) >= 8+len(code) {
		copy(payload[8:], code)
	}
	return pkt
}

// seal encrypts (when its flag asks and encrypt is set) and authenticates
// (when its flag asks) an in-session RMCP+ packet as a console does
// (v2.0 §13.28, §13.29). What follows the payload is replaced.
func (p *plusSession) seal(pkt []byte, encrypt bool) []byte {
	_, _, _, flags, payload, ok := protocol.ParseRMCPPlusHeader(pkt)
	if !ok || pkt[4] != authTypeRMCPPlus {
		return pkt
	}
	out := slices.Clone(pkt[:16])
	if encrypt && flags&payloadEncrypted != 0 {
		iv := bytes.Repeat([]byte{0x5a}, 16)
		enc, err := crypto.EncryptAESPayload(payload, p.k2, iv)
		if err != nil {
			panic(err)
		}
		payload = enc
	}
	binary.LittleEndian.PutUint16(out[14:16], uint16(len(payload)))
	out = append(out, payload...)
	codeLen, _ := crypto.IntegrityAuthCodeLen(p.integ)
	if flags&types.PayloadFlagAuthenticated == 0 || codeLen == 0 {
		return out
	}
	pad := types.IntegrityPadLen(rmcpPlusHeaderLen, len(payload))
	out = append(out, bytes.Repeat([]byte{0xff}, pad)...)
	out = append(out, byte(pad), 0x07)
	code, err := crypto.SessionIntegrityAuthCode(p.integ, out[4:], p.k1, "")
	if err != nil {
		panic(err)
	}
	return append(out, code...)
}

// v15Session is the console's side of an IPMI v1.5 MD5 session.
type v15Session struct {
	sess     *bmc.V15Session
	password []byte
}

func challengeV15(s *Server) (*v15Session, error) {
	name := make([]byte, 16)
	copy(name, testUser)
	resp, cc, err := s.reg.Dispatch(context.Background(), &handlers.HandlerContext{BMC: s.bmc}, 0x06, 0x39, append([]byte{0x02}, name...))
	if err != nil || cc != types.CodeOK || len(resp) < 20 {
		return nil, fmt.Errorf("get session challenge: % x %v %v", resp, cc, err)
	}
	sess, err := s.bmc.V15Sessions.Get(binary.LittleEndian.Uint32(resp[0:4]))
	if err != nil {
		return nil, err
	}
	password := make([]byte, 16)
	copy(password, testPass)
	return &v15Session{sess: sess, password: password}, nil
}

func (v *v15Session) activate(s *Server) error {
	sess := v.sess
	ch, _ := s.bmc.Channels.Get(sess.Channel)
	hctx := &handlers.HandlerContext{BMC: s.bmc, V15Session: sess, Channel: ch, User: sess.User}
	data := append(append([]byte{0x02, 0x04}, sess.Challenge[:]...), 1, 0, 0, 0)
	resp, cc, err := s.reg.Dispatch(context.Background(), hctx, 0x06, 0x3a, data)
	if err != nil || cc != types.CodeOK {
		return fmt.Errorf("activate session: % x %v %v", resp, cc, err)
	}
	// A v1.5 session starts at User level: ask for Administrator (§22.18).
	resp, cc, err = s.reg.Dispatch(context.Background(), hctx, 0x06, 0x3b, []byte{0x04})
	if err != nil || cc != types.CodeOK {
		return fmt.Errorf("set session privilege level: % x %v %v", resp, cc, err)
	}
	return nil
}

func (v *v15Session) sessionID() uint32 {
	if v.sess.SessionID != 0 {
		return v.sess.SessionID
	}
	return v.sess.TempSessionID
}

// sign puts the v1.5 (MD5) auth code into a v1.5 packet with an
// auth code, for the session id and sequence number its header carries.
func (v *v15Session) sign(pkt []byte) []byte {
	const hdr = rmcpHeaderLen + v15HeaderLen + v15AuthCodeLen
	if len(pkt) < hdr || pkt[3]&rmcpClassMask != rmcpClassIPMI || pkt[4] == v15AuthTypeNone || pkt[4] == authTypeRMCPPlus {
		return pkt
	}
	n := int(pkt[hdr-1])
	if len(pkt) < hdr+n {
		return pkt
	}
	seq := binary.LittleEndian.Uint32(pkt[5:9])
	sid := binary.LittleEndian.Uint32(pkt[9:13])
	code := crypto.AuthCodeMultiSession(types.AuthType(pkt[4]), v.password, sid, seq, pkt[hdr:hdr+n])
	copy(pkt[13:13+v15AuthCodeLen], code)
	return pkt
}
