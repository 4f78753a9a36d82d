// This file runs the real ipmitool (Debian's package) against an IPMI
// LAN endpoint, for tests of the simulator's and the gateway's IPMI
// fronts. Without ipmitool the test is skipped, unless the environment
// variable CI is set: then it fails.

package testkit

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// IpmitoolBound is how long one ipmitool call may take against a healthy local
// endpoint. ipmitool waits about 10 s when a BMC leaves a discovery command
// (Get Channel Cipher Suites) unanswered; a call under IpmitoolBound proves it
// did not. It is a functional bound, not a performance figure.
const IpmitoolBound = 5 * time.Second

// IPMITarget says how ipmitool reaches an endpoint.
type IPMITarget struct {
	Addr           string // "127.0.0.1:40123"
	User, Password string
	// Interface is "lanplus" (default) or "lan".
	Interface string
	// CipherSuite is passed as -C when not zero.
	CipherSuite int
	// DefaultTiming leaves out "-R 1 -N 2", so ipmitool uses its own
	// retries and timeouts: what a stalled discovery command costs then
	// (about 10 s) is what IpmitoolBound catches.
	DefaultTiming bool
}

// IpmitoolResult is one ipmitool run.
type IpmitoolResult struct {
	Args   []string
	Output string // stdout and stderr
	Err    error  // nil when ipmitool exited 0
	Took   time.Duration
}

// Path returns the ipmitool binary, skipping t when there is none (failing
// when CI is set).
func IpmitoolPath(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("ipmitool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("ipmitool not found and CI is set: %v", err)
		}
		t.Skipf("ipmitool not installed: %v", err)
	}
	return p
}

// Run runs "ipmitool -I <if> -H host -p port -U user -P pass [-C n] -R 1 -N 2
// args...", bounded by 60 s. -R 1 -N 2: one try, two seconds, so that a lost
// answer shows as a failure instead of being hidden by retries (see
// IPMITarget.DefaultTiming).
func Ipmitool(t testing.TB, to IPMITarget, args ...string) IpmitoolResult {
	t.Helper()
	bin := IpmitoolPath(t)
	host, port, err := net.SplitHostPort(to.Addr)
	if err != nil {
		t.Fatalf("ipmitool target %q: %v", to.Addr, err)
	}
	intf := to.Interface
	if intf == "" {
		intf = "lanplus"
	}
	full := []string{"-I", intf, "-H", host, "-p", port, "-U", to.User, "-P", to.Password}
	if to.CipherSuite != 0 {
		full = append(full, "-C", strconv.Itoa(to.CipherSuite))
	}
	if !to.DefaultTiming {
		full = append(full, "-R", "1", "-N", "2")
	}
	full = append(full, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, bin, full...).CombinedOutput()
	return IpmitoolResult{Args: full, Output: strings.TrimSpace(string(out)), Err: err, Took: time.Since(start)}
}

// MustRun is Run that fails t when ipmitool fails or takes IpmitoolBound or
// longer, and returns the output.
func MustIpmitool(t testing.TB, to IPMITarget, args ...string) string {
	t.Helper()
	r := Ipmitool(t, to, args...)
	if r.Err != nil {
		t.Fatalf("ipmitool %s: %v\n%s", strings.Join(args, " "), r.Err, r.Output)
	}
	if r.Took >= IpmitoolBound {
		t.Fatalf("ipmitool %s took %v (>= %v): a stalled discovery command?\n%s", strings.Join(args, " "), r.Took, IpmitoolBound, r.Output)
	}
	return r.Output
}
