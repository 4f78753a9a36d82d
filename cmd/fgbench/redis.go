package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a throwaway redis-server on a free loopback port, without
// persistence, that fgbench starts and stops itself.
type redisServer struct {
	Addr string
	PID  int
	cmd  *exec.Cmd
	dir  string
	done chan error
}

// startRedisServer starts bin (redis-server) on 127.0.0.1 and a free port
// and waits (at most 10 s) until it answers PING.
func startRedisServer(ctx context.Context, bin string) (*redisServer, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("%s not found (%v): the admission benchmark needs a real Redis; install Debian's redis-server (apt-get install redis-server) or pass -redis-server PATH", bin, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir, err := os.MkdirTemp("", "fgbench-redis-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir, "--protected-mode", "yes", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = nil, os.Stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	s := &redisServer{Addr: fmt.Sprintf("127.0.0.1:%d", port), PID: cmd.Process.Pid, cmd: cmd, dir: dir, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case werr := <-s.done:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("%s on %s exited at start: %v (last ping: %v)", path, s.Addr, werr, err)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Stop()
			return nil, fmt.Errorf("%s on %s did not answer within 10s: %w", path, s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop terminates the server (SIGTERM, then SIGKILL after 5 s) and removes
// its directory.
func (s *redisServer) Stop() error {
	defer os.RemoveAll(s.dir)
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("redis-server %d did not stop on SIGTERM; killed", s.PID)
	}
}

// redisStats is a snapshot of server-side counters.
type redisStats struct {
	commands int64            // total_commands_processed (script bodies' calls included)
	calls    map[string]int64 // commandstats calls by lower-case command name
	cpu      time.Duration    // the server process's CPU time, -1 if unknown
}

// sampleRedis reads INFO stats and commandstats (one INFO, which itself
// counts as one command) and the server's CPU time.
func sampleRedis(ctx context.Context, c *redis.Client, pid int) (redisStats, error) {
	s := redisStats{calls: map[string]int64{}, cpu: procCPU(pid)}
	info, err := c.Info(ctx, "stats", "commandstats").Result()
	if err != nil {
		return s, fmt.Errorf("INFO: %w", err)
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			s.commands, _ = strconv.ParseInt(v, 10, 64)
			continue
		}
		// cmdstat_evalsha:calls=12,usec=...
		rest, ok := strings.CutPrefix(line, "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		for _, f := range strings.Split(fields, ",") {
			if v, ok := strings.CutPrefix(f, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				s.calls[strings.ToLower(name)] = n
			}
		}
	}
	if s.commands == 0 && len(s.calls) == 0 {
		return s, errors.New("INFO: no counters in the reply")
	}
	return s, nil
}

// delta is b-a for the counters (INFO's own command subtracted).
func (a redisStats) delta(b redisStats) redisStats {
	d := redisStats{commands: b.commands - a.commands - 1, calls: map[string]int64{}, cpu: -1}
	for k, v := range b.calls {
		if n := v - a.calls[k]; n > 0 {
			d.calls[k] = n
		}
	}
	if d.calls["info"] > 0 {
		d.calls["info"]--
	}
	if a.cpu >= 0 && b.cpu >= 0 {
		d.cpu = b.cpu - a.cpu
	}
	return d
}

// tripCounter is a go-redis hook that counts what the client sends: one
// round trip per command processed alone (EVALSHA is one) or per pipeline,
// and the commands in them. It counts what reaches the hook chain: a
// NOSCRIPT fall-back from EVALSHA to EVAL is two round trips.
type tripCounter struct {
	trips, cmds, evalsha, eval atomic.Int64
}

func (c *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.trips.Add(1)
		c.cmds.Add(1)
		switch cmd.Name() {
		case "evalsha":
			c.evalsha.Add(1)
		case "eval":
			c.eval.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.trips.Add(1)
		c.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// tripSnapshot is a reading of a tripCounter.
type tripSnapshot struct{ trips, cmds, evalsha, eval int64 }

func (c *tripCounter) snapshot() tripSnapshot {
	return tripSnapshot{c.trips.Load(), c.cmds.Load(), c.evalsha.Load(), c.eval.Load()}
}

func (a tripSnapshot) sub(b tripSnapshot) tripSnapshot {
	return tripSnapshot{a.trips - b.trips, a.cmds - b.cmds, a.evalsha - b.evalsha, a.eval - b.eval}
}
