package events

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// AllowList says which event destinations the gateway may connect to
// besides public addresses: without it, a subscription could turn the
// gateway against the management network it sits in (SSRF). Loopback,
// link-local, unspecified, multicast, private and other reserved addresses
// are refused unless a prefix covers them or the destination's host name is
// listed exactly.
type AllowList struct {
	prefixes []netip.Prefix
	hosts    map[string]bool
}

var hostnameRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$`)

// ParseAllowList reads entries: a CIDR ("10.0.0.0/8", "fd00::/8"), one
// address ("192.0.2.7", "::1") or a host name ("hooks.example.net").
func ParseAllowList(entries []string) (AllowList, error) {
	a := AllowList{hosts: map[string]bool{}}
	var errs []error
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if p, err := netip.ParsePrefix(e); err == nil {
			a.prefixes = append(a.prefixes, p.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(e); err == nil && ip.Zone() == "" {
			ip = ip.Unmap()
			a.prefixes = append(a.prefixes, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		if hostnameRe.MatchString(e) && strings.ContainsAny(e, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") && !numericHost(e) {
			a.hosts[strings.ToLower(strings.TrimSuffix(e, "."))] = true
			continue
		}
		errs = append(errs, fmt.Errorf("[%d]: %q is not a CIDR, an IP address or a host name", i, e))
	}
	return a, errors.Join(errs...)
}

// HostAllowed reports whether host is listed by name.
func (a AllowList) HostAllowed(host string) bool {
	return a.hosts[strings.ToLower(strings.TrimSuffix(host, "."))]
}

// reserved are non-public ranges beyond those netip classifies.
var reserved = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // shared address space (CGNAT)
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, broadcast
	netip.MustParsePrefix("fec0::/10"),     // deprecated site-local
	netip.MustParsePrefix("100::/64"),      // discard-only
	netip.MustParsePrefix("2001::/23"),     // IETF protocol assignments (Teredo, benchmarking, ORCHID)
	netip.MustParsePrefix("5f00::/16"),     // SRv6 SIDs
}

// embedded are the IPv6 forms that carry an IPv4 address, which the
// network (a translator, a relay, or the host's own stack) may send to:
// ::7f00:1 is 127.0.0.1 in IPv4-compatible form. Each is refused as a
// whole unless an allowed IPv6 prefix covers it; the embedded address, when
// it has a fixed place, is named in the refusal. (IPv4-mapped ::ffff:a.b.c.d
// is unmapped and judged as IPv4 before these are looked at.)
var embedded = []struct {
	prefix netip.Prefix
	name   string
	v4     func(b [16]byte) netip.Addr // nil: no fixed place
}{
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible IPv6 address", func(b [16]byte) netip.Addr { return netip.AddrFrom4([4]byte(b[12:16])) }},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "an IPv4-translated address", func(b [16]byte) netip.Addr { return netip.AddrFrom4([4]byte(b[12:16])) }},
	{netip.MustParsePrefix("64:ff9b::/96"), "a NAT64 address", func(b [16]byte) netip.Addr { return netip.AddrFrom4([4]byte(b[12:16])) }},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local-use NAT64 address", nil},
	{netip.MustParsePrefix("2002::/16"), "a 6to4 address", func(b [16]byte) netip.Addr { return netip.AddrFrom4([4]byte(b[2:6])) }},
	{netip.MustParsePrefix("2001::/32"), "a Teredo address", func(b [16]byte) netip.Addr {
		// the client's address is the last 32 bits, inverted
		return netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
	}},
}

// classify names why ip is not a public address, or "" when it is. An
// IPv4-mapped address is judged as the IPv4 address it maps.
func classify(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "an invalid address"
	case ip.IsUnspecified():
		return "an unspecified address"
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsLinkLocalUnicast():
		return "a link-local address"
	case ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast(), ip.IsMulticast():
		return "a multicast address"
	case ip.IsPrivate():
		return "a private address"
	}
	for _, e := range embedded {
		if !e.prefix.Contains(ip) {
			continue
		}
		if e.v4 == nil {
			return e.name + " (" + e.prefix.String() + ")"
		}
		v4 := e.v4(ip.As16())
		if why := classify(v4); why != "" {
			return fmt.Sprintf("%s embedding %s, %s", e.name, v4, why)
		}
		return fmt.Sprintf("%s embedding %s (%s)", e.name, v4, e.prefix)
	}
	for _, p := range reserved {
		if p.Contains(ip) {
			return "a reserved address (" + p.String() + ")"
		}
	}
	return ""
}

// numericHost reports whether host ends in a number label ("2130706433",
// "0x7f.1", "0177.0.0.1", "127.1"): browsers and the C library's resolver
// read such names as IPv4 addresses in decimal, octal or hex, so one that
// is not a dotted-quad netip accepts is refused rather than resolved.
func numericHost(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndex(host, ".")+1:]
	if last == "" {
		return false
	}
	digits := last
	if len(last) >= 2 && (last[:2] == "0x" || last[:2] == "0X") {
		digits = last[2:]
		if digits == "" {
			return true
		}
		return strings.Trim(digits, "0123456789abcdefABCDEF") == ""
	}
	return strings.Trim(digits, "0123456789") == ""
}

// CheckIP returns nil when the gateway may connect to ip: a public address,
// or one covered by an allowed prefix.
func (a AllowList) CheckIP(ip netip.Addr) error {
	ip = ip.WithZone("").Unmap()
	why := classify(ip)
	if why == "" {
		return nil
	}
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return nil
		}
	}
	return fmt.Errorf("%s is %s and not on events.allow_destinations", ip, why)
}

// Resolver resolves host names (net.DefaultResolver; tests fake it).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// CheckDestination parses a subscription's Destination and decides whether
// the gateway may send to it: an absolute http(s) URL without credentials
// (they belong in HttpHeaders), whose host is listed by name or whose
// every address is allowed. Each connection is checked again against the
// address actually dialled (Dialer), so a name that later resolves
// elsewhere (DNS rebinding) is refused then.
func (a AllowList) CheckDestination(ctx context.Context, r Resolver, dest string) (*url.URL, error) {
	u, err := url.Parse(dest)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, &InvalidError{Property: "Destination", Value: dest, Kind: Format,
			Reason: fmt.Sprintf("Destination %q is not an absolute http:// or https:// URL", dest)}
	}
	if u.User != nil {
		return nil, &InvalidError{Property: "Destination", Value: dest, Kind: Format,
			Reason: "Destination must not carry credentials; send them in HttpHeaders"}
	}
	if u.Fragment != "" {
		return nil, &InvalidError{Property: "Destination", Value: dest, Kind: Format, Reason: "Destination must not have a fragment"}
	}
	host := u.Hostname()
	refused := func(why string) error {
		return &InvalidError{Property: "Destination", Value: dest, Kind: Refused,
			Reason: fmt.Sprintf("Destination %s refused: %s", dest, why)}
	}
	ip, ipErr := netip.ParseAddr(host)
	if ipErr != nil && numericHost(host) {
		return nil, &InvalidError{Property: "Destination", Value: dest, Kind: Format,
			Reason: fmt.Sprintf("%q is not an IPv4 address in dotted-decimal form (a.b.c.d)", host)}
	}
	if a.HostAllowed(host) {
		return u, nil
	}
	if ipErr == nil {
		if ip.Zone() != "" {
			return nil, refused("addresses with a zone are not accepted")
		}
		if err := a.CheckIP(ip); err != nil {
			return nil, refused(err.Error())
		}
		return u, nil
	}
	if !hostnameRe.MatchString(host) {
		return nil, &InvalidError{Property: "Destination", Value: dest, Kind: Format, Reason: fmt.Sprintf("%q is not a host name", host)}
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ips, err := r.LookupNetIP(rctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return nil, refused(fmt.Sprintf("cannot resolve %s: %v", host, err))
	}
	for _, ip := range ips {
		if err := a.CheckIP(ip); err != nil {
			return nil, refused(fmt.Sprintf("%s resolves to %v", host, err))
		}
	}
	return u, nil
}

// Dialer dials event destinations. A host listed by name is dialled as
// is; for any other, the address chosen after resolution is checked in the
// dialer's Control hook, just before connect(2), so that what was allowed
// at subscription time cannot be redirected to an internal address later.
func (a AllowList) Dialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if _, err := netip.ParseAddr(host); err != nil && numericHost(host) {
			return nil, fmt.Errorf("refused connection to %s: %q is not an IPv4 address in dotted-decimal form", addr, host)
		}
		d := net.Dialer{Timeout: timeout}
		if !a.HostAllowed(host) {
			d.Control = func(_, address string, _ syscall.RawConn) error {
				h, _, err := net.SplitHostPort(address)
				if err != nil {
					return err
				}
				ip, err := netip.ParseAddr(h)
				if err != nil {
					return fmt.Errorf("refused %s: %w", address, err)
				}
				if err := a.CheckIP(ip); err != nil {
					return fmt.Errorf("refused connection to %s: %w", addr, err)
				}
				return nil
			}
		}
		return d.DialContext(ctx, network, addr)
	}
}
