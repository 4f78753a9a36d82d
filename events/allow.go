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
		if hostnameRe.MatchString(e) && strings.ContainsAny(e, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
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
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGNAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: may reach any IPv4
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds an IPv4 address
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated
}

// classify names why ip is not a public address, or "" when it is.
func classify(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return "an invalid address"
	case ip.IsUnspecified():
		return "an unspecified address"
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsLinkLocalUnicast():
		return "a link-local address"
	case ip.IsMulticast():
		return "a multicast address"
	case ip.IsPrivate():
		return "a private address"
	}
	for _, p := range reserved {
		if p.Contains(ip) {
			return "a reserved address (" + p.String() + ")"
		}
	}
	return ""
}

// CheckIP returns nil when the gateway may connect to ip: a public address,
// or one covered by an allowed prefix.
func (a AllowList) CheckIP(ip netip.Addr) error {
	ip = ip.Unmap()
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
	if a.HostAllowed(host) {
		return u, nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
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
