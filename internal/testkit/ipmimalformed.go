package testkit

import (
	"encoding/binary"
	"net"
	"testing"
)

// RAKP1 returns an RMCP+ RAKP Message 1 (v2.0 §13.20) for the BMC
// session id sid, with user name length nameLen and len(name) name bytes.
// RAKP1(0, 228, "") is the 44-byte packet that made go-ipmi v0.9.1 panic
// and the whole process exit (issue 10): its length check wraps at 256.
func RAKP1(sid uint32, nameLen uint8, name string) []byte {
	payload := make([]byte, 28, 28+len(name))
	payload[0] = 0x01 // message tag
	binary.LittleEndian.PutUint32(payload[4:8], sid)
	for i := range 16 {
		payload[8+i] = byte(i) // console random number
	}
	payload[24] = 0x14 // name-only lookup, Administrator
	payload[27] = nameLen
	payload = append(payload, name...)
	return RMCPPlus(0x12, 0, 0, payload)
}

// RMCPPlus returns an RMCP+ packet: the RMCP header, the session header
// (v2.0 Table 13-8) with payload type byte ptype (flags included), and
// payload.
func RMCPPlus(ptype uint8, sid, seq uint32, payload []byte) []byte {
	p := []byte{0x06, 0x00, 0xff, 0x07, 0x06, ptype}
	p = binary.LittleEndian.AppendUint32(p, sid)
	p = binary.LittleEndian.AppendUint32(p, seq)
	p = binary.LittleEndian.AppendUint16(p, uint16(len(payload)))
	return append(p, payload...)
}

// Malformed is a set of packets an IPMI LAN endpoint must drop without
// answering, each of which session-less and unauthenticated: the RAKP 1
// user name lengths that crashed go-ipmi v0.9.1, and truncated or
// inconsistent envelopes.
func Malformed() [][]byte {
	hugeLen := RMCPPlus(0x12, 0, 0, make([]byte, 28))
	binary.LittleEndian.PutUint16(hugeLen[14:16], 0xffff)
	return [][]byte{
		RAKP1(0, 228, ""),
		RAKP1(0, 255, ""),
		RAKP1(0, 17, "seventeen-bytes!!"),
		{0x06, 0x00}, // shorter than an RMCP header
		{0x07, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x01, 0x00, 0x00}, // ASF ping, RMCP version 07h
		{0x06, 0x00, 0xff, 0x08, 0x00, 0x00, 0x00, 0x00},                         // message class 08h
		{0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe},                         // ASF ping truncated
		{0x06, 0x00, 0xff, 0x07, 0x06, 0x12, 0x00, 0x00},                         // RMCP+ session header truncated
		hugeLen, // RMCP+ payload length beyond the packet
		{0x06, 0x00, 0xff, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 200, 0x20, 0x18}, // v1.5 payload length beyond the packet
		{0x06, 0x00, 0xff, 0x07, 0x02, 0, 0, 0, 0, 1, 0, 0, 0, 0},               // v1.5 MD5 header without its auth code
		RMCPPlus(0x80, 0, 0, make([]byte, 17)),                                  // encrypted IPMI payload: IV and a partial block
	}
}

// SendMalformed sends every Malformed packet to the UDP address addr.
func SendMalformed(t testing.TB, addr string) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range Malformed() {
		if _, err := c.Write(p); err != nil {
			t.Fatalf("send %x: %v", p, err)
		}
	}
}

// MalformedThenStatus sends every Malformed packet to the endpoint, then
// returns what "ipmitool chassis power status" says: the endpoint must
// still answer. (Without ipmitool the test is skipped after sending; a
// packet that panics the endpoint still ends the test binary.)
func MalformedThenStatus(t testing.TB, to IPMITarget) string {
	t.Helper()
	SendMalformed(t, to.Addr)
	return MustIpmitool(t, to, "chassis", "power", "status")
}
