package redisproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Topology is a running Redis set-up: one standalone server, a Sentinel
// set-up (master, replica, three sentinels) or a Cluster (by default three
// masters with a replica each). Every server writes an AOF in its own directory.
// StopMaster is its chaos: a restart for a standalone server, a failover
// for Sentinel and Cluster (the old master comes back as a replica).
type Topology struct {
	o        Options
	servers  []*Proc // standalone: one; sentinel: master, replica; cluster: 6
	sentinel []*Proc
	addrs    []string // of servers, in order
	sentAddr []string
}

// Options describe a Topology.
type Options struct {
	Mode string // "standalone", "sentinel" or "cluster"
	Dir  string // where the servers keep their data and logs
	// Down is how long a stopped standalone server stays down (a Sentinel
	// or Cluster master stays down until a replica is promoted).
	Down time.Duration
	// Signal stops a master (default SIGKILL).
	Signal syscall.Signal
	// Logf, when set, is told of each stop and start.
	Logf func(string, ...any)
	// Masters and ReplicasPerMaster shape a Cluster. Masters 0 is the
	// default shape, three masters with a replica each (then
	// ReplicasPerMaster is not read); a Cluster needs at least three.
	Masters, ReplicasPerMaster int
	// NodeTimeout is a Cluster's cluster-node-timeout: how long a master
	// may be unreachable before its replica is promoted (default 1s).
	NodeTimeout time.Duration
}

// MasterName is the Sentinel name of the monitored master.
const MasterName = "fishgate"

// Modes are the topologies New knows.
var Modes = []string{"standalone", "sentinel", "cluster"}

// New lays out a topology; Start runs it.
func New(o Options) (*Topology, error) {
	if o.Signal == 0 {
		o.Signal = syscall.SIGKILL
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Masters == 0 {
		o.Masters, o.ReplicasPerMaster = 3, 1
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = time.Second
	}
	t := &Topology{o: o}
	mode, dir := o.Mode, o.Dir
	n := map[string]int{"standalone": 1, "sentinel": 2, "cluster": o.Masters * (1 + o.ReplicasPerMaster)}[mode]
	switch {
	case mode == "cluster" && (o.Masters < 3 || o.ReplicasPerMaster < 0):
		return nil, fmt.Errorf("redis cluster of %d masters with %d replicas each: need at least 3 masters (redis-cli --cluster create) and no negative replica count", o.Masters, o.ReplicasPerMaster)
	case n == 0:
		return nil, fmt.Errorf("redis topology %q: standalone, sentinel or cluster", mode)
	}
	for i := range n {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		var extra []string
		switch {
		case mode == "sentinel" && i == 1:
			extra = []string{"--replicaof", "127.0.0.1", fmt.Sprint(mustPort(t.addrs[0]))}
		case mode == "cluster":
			// The bus port is drawn like the port: its default, port+10000,
			// would fall in the kernel's ephemeral range.
			bus, err := FreePort()
			if err != nil {
				return nil, err
			}
			extra = []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-port", fmt.Sprint(bus),
				"--cluster-node-timeout", fmt.Sprint(o.NodeTimeout.Milliseconds())}
		}
		name := "redis-server"
		if n > 1 {
			name = fmt.Sprintf("redis-%d", i)
		}
		p, err := redisProc(dir, name, port, extra...)
		if err != nil {
			return nil, err
		}
		t.servers = append(t.servers, p)
		t.addrs = append(t.addrs, fmt.Sprintf("127.0.0.1:%d", port))
	}
	if mode == "sentinel" {
		for i := range 3 {
			p, addr, err := sentinelProc(dir, i, t.addrs[0])
			if err != nil {
				return nil, err
			}
			t.sentinel = append(t.sentinel, p)
			t.sentAddr = append(t.sentAddr, addr)
		}
	}
	return t, nil
}

// Mode is the topology's kind.
func (t *Topology) Mode() string { return t.o.Mode }

// Addrs are the servers' addresses (a Cluster's seed nodes).
func (t *Topology) Addrs() []string { return t.addrs }

// SentinelAddrs are the sentinels' addresses (none but for Sentinel).
func (t *Topology) SentinelAddrs() []string { return t.sentAddr }

// mustPort is the port of a host:port address.
func mustPort(addr string) string {
	_, p, _ := strings.Cut(addr, ":")
	return p
}

// start starts every server and waits until the topology serves: the
// replica linked, the sentinels agreeing on the master, the cluster's
// slots all covered.
func (t *Topology) Start(ctx context.Context) error {
	for i, p := range t.servers {
		if err := p.Start(); err != nil {
			return err
		}
		if err := WaitRedis(ctx, t.addrs[i], 10*time.Second); err != nil {
			return err
		}
	}
	switch t.o.Mode {
	case "sentinel":
		for i, p := range t.sentinel {
			if err := p.Start(); err != nil {
				return err
			}
			if err := WaitRedis(ctx, t.sentAddr[i], 10*time.Second); err != nil {
				return err
			}
		}
		return t.waitSentinels(ctx, t.addrs[0], 30*time.Second)
	case "cluster":
		return t.createCluster(ctx)
	}
	return nil
}

// createCluster joins the servers into the Cluster's masters and replicas.
func (t *Topology) createCluster(ctx context.Context) error {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return errors.New("redis-cli not found in PATH: a Cluster is created with it (Debian: apt-get install redis-tools)")
	}
	args := append([]string{"--cluster", "create"}, t.addrs...)
	args = append(args, "--cluster-replicas", fmt.Sprint(t.o.ReplicasPerMaster), "--cluster-yes")
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(cctx, cli, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	return t.waitClusterOK(ctx, 60*time.Second)
}

// waitClusterOK waits until every running server says cluster_state:ok
// and the masters serve the slots, each with its replicas linked.
func (t *Topology) waitClusterOK(ctx context.Context, wait time.Duration) error {
	return pollUntil(ctx, wait, "the cluster to be ok", func(ctx context.Context) (bool, string) {
		for i, p := range t.servers {
			if !p.Running() {
				continue
			}
			c := redis.NewClient(&redis.Options{Addr: t.addrs[i], MaxRetries: -1})
			info, err := c.ClusterInfo(ctx).Result()
			nodes, nerr := c.ClusterNodes(ctx).Result()
			c.Close()
			if err != nil || nerr != nil {
				return false, fmt.Sprint(err, nerr)
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return false, t.addrs[i] + ": " + firstLine(info)
			}
			if masters, linked := countRoles(nodes); masters != t.o.Masters || linked < t.o.Masters*t.o.ReplicasPerMaster {
				return false, fmt.Sprintf("%s: %d masters, %d replicas linked", t.addrs[i], masters, linked)
			}
		}
		return true, ""
	})
}

// countRoles counts the serving masters and the connected replicas in
// CLUSTER NODES output.
func countRoles(nodes string) (masters, replicas int) {
	for _, l := range strings.Split(strings.TrimSpace(nodes), "\n") {
		f := strings.Fields(l)
		if len(f) < 8 || strings.Contains(f[2], "fail") || f[7] != "connected" {
			continue
		}
		switch {
		case strings.Contains(f[2], "master") && len(f) > 8:
			masters++
		case strings.Contains(f[2], "slave"):
			replicas++
		}
	}
	return masters, replicas
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(l)
}

// waitSentinels waits until every running sentinel names master and knows
// a replica.
func (t *Topology) waitSentinels(ctx context.Context, master string, wait time.Duration) error {
	return pollUntil(ctx, wait, "the sentinels to agree on "+master, func(ctx context.Context) (bool, string) {
		for i, p := range t.sentinel {
			if !p.Running() {
				continue
			}
			s := redis.NewSentinelClient(&redis.Options{Addr: t.sentAddr[i], MaxRetries: -1})
			addr, err := s.GetMasterAddrByName(ctx, MasterName).Result()
			reps, rerr := s.Replicas(ctx, MasterName).Result()
			s.Close()
			if err != nil || rerr != nil {
				return false, fmt.Sprint(err, rerr)
			}
			if got := strings.Join(addr, ":"); got != master {
				return false, fmt.Sprintf("sentinel %s names %s", t.sentAddr[i], got)
			}
			if len(reps) == 0 {
				return false, "no replica known to sentinel " + t.sentAddr[i]
			}
		}
		return true, ""
	})
}

// master is the index of the server that is master now (for a Cluster:
// of the slot of key).
func (t *Topology) masterIndex(ctx context.Context, key string) (int, error) {
	switch t.o.Mode {
	case "standalone":
		return 0, nil
	case "sentinel":
		for i, p := range t.sentinel {
			if !p.Running() {
				continue
			}
			s := redis.NewSentinelClient(&redis.Options{Addr: t.sentAddr[i]})
			addr, err := s.GetMasterAddrByName(ctx, MasterName).Result()
			s.Close()
			if err == nil {
				return t.index(strings.Join(addr, ":"))
			}
		}
		return 0, errors.New("no sentinel names a master")
	}
	c := t.Client()
	defer c.Close()
	m, err := c.(*redis.ClusterClient).MasterForKey(ctx, key)
	if err != nil {
		return 0, err
	}
	return t.index(m.Options().Addr)
}

// Master is the address of the master that holds key (for Standalone and
// Sentinel: the master).
func (t *Topology) Master(ctx context.Context, key string) (string, error) {
	i, err := t.masterIndex(ctx, key)
	if err != nil {
		return "", err
	}
	return t.addrs[i], nil
}

func (t *Topology) index(addr string) (int, error) {
	for i, a := range t.addrs {
		if a == addr {
			return i, nil
		}
	}
	return 0, fmt.Errorf("master %s is none of ours", addr)
}

// StopMaster is the Redis chaos: the master (of key's slot) is stopped
// with Options.Signal, stays down a moment and starts again. With
// Sentinel and Cluster a replica is promoted meanwhile, and the old master
// comes back as its replica; StopMaster returns once the topology serves
// again.
func (t *Topology) StopMaster(ctx context.Context, key string) error {
	addr, err := t.KillMaster(ctx, key)
	if err != nil {
		return err
	}
	if t.o.Mode == "standalone" {
		sleep(ctx, t.o.Down)
	} else if err := t.WaitPromoted(ctx, addr); err != nil {
		return err
	}
	i, _ := t.index(addr)
	p := t.servers[i]
	if err := p.Start(); err != nil {
		return err
	}
	if err := WaitRedis(context.WithoutCancel(ctx), addr, 20*time.Second); err != nil {
		return err
	}
	t.o.Logf("%s back", p.Name)
	return nil
}

// KillMaster stops the master (of key's slot) with Options.Signal and
// returns its address; it stays down (EnsureUp starts it again).
func (t *Topology) KillMaster(ctx context.Context, key string) (string, error) {
	i, err := t.masterIndex(ctx, key)
	if err != nil {
		return "", err
	}
	p := t.servers[i]
	t.o.Logf("stopping %s (%s, master) with %s", p.Name, t.addrs[i], t.o.Signal)
	p.Stop(t.o.Signal, 10*time.Second)
	return t.addrs[i], nil
}

// WaitPromoted waits until a replica has taken over from the stopped
// master at addr: the sentinels name another master, or the Cluster's
// other servers are ok again with as many serving masters as before.
func (t *Topology) WaitPromoted(ctx context.Context, addr string) error {
	i, err := t.index(addr)
	if err != nil {
		return err
	}
	switch t.o.Mode {
	case "sentinel":
		return pollUntil(ctx, 60*time.Second, "a replica to be promoted", func(ctx context.Context) (bool, string) {
			j, err := t.masterIndex(ctx, "")
			return err == nil && j != i, fmt.Sprint("master index ", j, " ", err)
		})
	case "cluster":
		return t.waitClusterFailover(ctx, i)
	}
	return fmt.Errorf("redis %s: no replica to promote", t.o.Mode)
}

// Server is one Redis server of a topology as it is now.
type Server struct {
	Addr    string
	Role    string // "master" or "slave" (ROLE's words); "" when not running or not answering
	PID     int    // 0 when not running
	Running bool
}

// Servers describes every Redis server (not the sentinels), in the order
// of Addrs.
func (t *Topology) Servers(ctx context.Context) []Server {
	out := make([]Server, len(t.servers))
	for i, p := range t.servers {
		s := Server{Addr: t.addrs[i], PID: p.Pid(), Running: p.Running()}
		if s.Running {
			c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
			if r, err := c.Do(ctx, "ROLE").Slice(); err == nil && len(r) > 0 {
				s.Role, _ = r[0].(string)
			}
			c.Close()
		}
		out[i] = s
	}
	return out
}

// waitClusterFailover waits until the other servers say cluster_state:ok
// and count three serving masters, server i not among them.
func (t *Topology) waitClusterFailover(ctx context.Context, i int) error {
	return pollUntil(ctx, 60*time.Second, "a cluster replica to be promoted", func(ctx context.Context) (bool, string) {
		for j, p := range t.servers {
			if j == i || !p.Running() {
				continue
			}
			c := redis.NewClient(&redis.Options{Addr: t.addrs[j], MaxRetries: -1})
			info, err := c.ClusterInfo(ctx).Result()
			nodes, nerr := c.ClusterNodes(ctx).Result()
			c.Close()
			if err != nil || nerr != nil || !strings.Contains(info, "cluster_state:ok") {
				return false, fmt.Sprint(t.addrs[j], ": ", err, nerr, firstLine(info))
			}
			if masters, _ := countRoles(nodes); masters != t.o.Masters {
				return false, fmt.Sprintf("%s counts %d serving masters", t.addrs[j], masters)
			}
		}
		return true, ""
	})
}

// ensureUp starts every stopped server and waits until the topology
// serves again.
func (t *Topology) EnsureUp(ctx context.Context) error {
	for i, p := range append(append([]*Proc{}, t.servers...), t.sentinel...) {
		if p.Running() {
			continue
		}
		if err := p.Start(); err != nil {
			return err
		}
		addr := ""
		if i < len(t.addrs) {
			addr = t.addrs[i]
		} else {
			addr = t.sentAddr[i-len(t.addrs)]
		}
		if err := WaitRedis(ctx, addr, 20*time.Second); err != nil {
			return err
		}
	}
	if t.o.Mode == "cluster" {
		return t.waitClusterOK(ctx, 60*time.Second)
	}
	return nil
}

// stop ends every process.
func (t *Topology) Stop() {
	for _, p := range append(append([]*Proc{}, t.sentinel...), t.servers...) {
		p.Stop(syscall.SIGTERM, 10*time.Second)
	}
}

// crashes are the unexpected exits of any Redis process.
func (t *Topology) Crashes() []string {
	var out []string
	for _, p := range append(append([]*Proc{}, t.servers...), t.sentinel...) {
		for _, c := range p.Crashes() {
			out = append(out, p.Name+": "+c)
		}
	}
	return out
}

// client is a client of the topology as the gateway sees it.
func (t *Topology) Client() redis.UniversalClient {
	switch t.o.Mode {
	case "sentinel":
		return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: MasterName, SentinelAddrs: t.sentAddr})
	case "cluster":
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: t.addrs})
	}
	return redis.NewClient(&redis.Options{Addr: t.addrs[0]})
}

// describe names the servers for the progress log.
func (t *Topology) Describe() string {
	s := t.o.Mode + " " + strings.Join(t.addrs, ",")
	if len(t.sentAddr) > 0 {
		s += " sentinels " + strings.Join(t.sentAddr, ",")
	}
	return s
}

// redisProc is a real redis-server with AOF on, in its own directory under
// dir, on a loopback port.
func redisProc(dir, name string, port int, extra ...string) (*Proc, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found in PATH: the chaos check needs a real Redis (Debian: apt-get install redis-server)")
	}
	data := filepath.Join(dir, name)
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	args := []string{
		"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
		"--dir", data, "--daemonize", "no", "--logfile", "",
	}
	return &Proc{Name: name, Bin: bin, Args: append(args, extra...), LogPath: filepath.Join(dir, name+".log")}, nil
}

// sentinelProc is Sentinel number i watching master (redis-sentinel, or
// redis-server --sentinel: the same program), failing over after 1 s.
func sentinelProc(dir string, i int, master string) (*Proc, string, error) {
	port, err := FreePort()
	if err != nil {
		return nil, "", err
	}
	host, mport, _ := strings.Cut(master, ":")
	conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", i))
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 2\n"+
		"sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n",
		port, dir, MasterName, host, mport, MasterName, MasterName, MasterName)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return nil, "", err
	}
	bin, args := "redis-sentinel", []string{conf}
	if _, err := exec.LookPath(bin); err != nil {
		if bin, err = exec.LookPath("redis-server"); err != nil {
			return nil, "", errors.New("neither redis-sentinel nor redis-server in PATH (Debian: apt-get install redis-sentinel)")
		}
		args = []string{conf, "--sentinel"}
	}
	name := fmt.Sprintf("sentinel-%d", i)
	return &Proc{Name: name, Bin: bin, Args: args, LogPath: filepath.Join(dir, name+".log")}, fmt.Sprintf("127.0.0.1:%d", port), nil
}

// pollUntil runs cond every 100 ms until it holds, ctx ends or wait is
// over (then the error says what was last seen).
func pollUntil(ctx context.Context, wait time.Duration, what string, cond func(context.Context) (bool, string)) error {
	deadline := time.Now().Add(wait)
	last := ""
	for time.Now().Before(deadline) && ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, seen := cond(cctx)
		cancel()
		if ok {
			return nil
		}
		last = seen
		sleep(ctx, 100*time.Millisecond)
	}
	return fmt.Errorf("waited %v for %s: last seen: %s", wait, what, last)
}

// sleep waits d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
