// Package redisproc runs real Redis topologies as child processes, for
// tests and for the chaos check (cmd/fgchaos): one standalone server, a
// Sentinel set-up, or a Cluster; and stops their masters to make them fail
// over. Everything listens on 127.0.0.1 on free ports.
package redisproc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Proc is one child process (a Redis server or sentinel, or any other
// program such as fgchaos's gateway replicas) that can be killed and
// started again with the same command line. Its output goes to one log
// file, appended across restarts.
type Proc struct {
	Name    string
	Bin     string
	Args    []string
	LogPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current run exited
	expect  bool          // the current run is expected to exit (we signalled it)
	starts  int
	crashes []string // unexpected exits: "exit status 2 at ..."
}

// Start runs the process once more. It fails if it is still running.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s: still running", p.Name)
		}
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.starts++
	fmt.Fprintf(logf, "=== fgchaos: start #%d of %s at %s\n", p.starts, p.Name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.expect = cmd, done, false
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		if !p.expect {
			p.crashes = append(p.crashes, fmt.Sprintf("%v at %s", err, time.Now().Format("15:04:05.000")))
		}
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Running reports whether the current run has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop sends sig and waits (at most wait) for the process to exit; after
// that it is killed. It reports whether the process exited within wait.
func (p *Proc) Stop(sig syscall.Signal, wait time.Duration) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if done == nil {
		p.mu.Unlock()
		return true
	}
	p.expect = true
	p.mu.Unlock()
	select {
	case <-done:
		return true
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return true
	case <-time.After(wait):
	}
	_ = cmd.Process.Kill()
	<-done
	return false
}

// Pid is the process id of the current run; 0 when it is not running.
func (p *Proc) Pid() int {
	if !p.Running() {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Crashes returns the unexpected exits so far.
func (p *Proc) Crashes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.crashes...)
}

// Tail returns the last n lines of the process's log.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePort returns a loopback TCP port that was free a moment ago, for a
// server that binds it itself (and binds it again after a restart).
//
// It is drawn below the kernel's ephemeral range, never from it: a port
// the kernel hands out for "127.0.0.1:0" or for the local end of an
// outgoing connection can be handed out again to anyone (a test's HTTP
// server, a client's connection) between our check and the server's bind,
// or while a killed server is down; under load that happened, and a Redis
// client found an HTTP server at its Redis's address. Below the range only
// other callers of FreePort pick ports, at random among thousands.
func FreePort() (int, error) {
	low := ephemeralLow()
	const first = 10000
	if low-first < 1000 {
		return kernelPort()
	}
	for range 100 {
		port := first + rand.IntN(low-first)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken: draw again
		}
		ln.Close()
		return port, nil
	}
	return kernelPort()
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				return n
			}
		}
	}
	return 32768
}

// kernelPort is a port the kernel picks: the fallback when no range below
// the ephemeral one is left.
func kernelPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// WaitRedis pings until Redis answers or the wait is over.
func WaitRedis(ctx context.Context, addr string, wait time.Duration) error {
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	deadline := time.Now().Add(wait)
	var err error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err = rdb.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("redis %s did not answer within %v: %v", addr, wait, err)
}
