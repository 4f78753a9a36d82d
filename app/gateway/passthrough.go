package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/fishgate/fishgate/app/config"
	rfbackend "github.com/fishgate/fishgate/backends/redfish"
	"github.com/fishgate/fishgate/fronts/redfish/proxy"
)

// proxies builds, on first use, one pass-through proxy per Redfish-backed
// node: the BMC's resource paths are read once through the node's backend.
// Each node has its own lock, so one slow BMC does not hold up the others.
type proxies struct {
	log   *slog.Logger
	nodes map[string]*proxyEntry // fixed after newProxies
}

type proxyEntry struct {
	node    config.Node
	backend *rfbackend.Backend

	mu sync.Mutex
	h  *proxy.Proxy
}

func newProxies(cfg config.Config, backendsByID map[string]*rfbackend.Backend, log *slog.Logger) *proxies {
	p := &proxies{log: log, nodes: map[string]*proxyEntry{}}
	for _, n := range cfg.Nodes {
		if b, ok := backendsByID[n.ID]; ok {
			p.nodes[n.ID] = &proxyEntry{node: n, backend: b}
		}
	}
	return p
}

// handler returns the node's proxy, or nil for a node whose BMC is not Redfish.
func (p *proxies) handler(ctx context.Context, id string) (http.Handler, error) {
	e, ok := p.nodes[id]
	if !ok {
		return nil, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.h != nil {
		return e.h, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	paths, err := e.backend.ResourcePaths(cctx)
	if err != nil {
		return nil, fmt.Errorf("discover BMC resources: %w", err)
	}
	n := e.node
	h, err := proxy.New(proxy.Target{
		Node: id, Endpoint: n.Address, User: n.User, Password: n.Password, Insecure: n.Insecure,
		SystemPath: paths.System, ManagerPath: paths.Manager, ChassisPath: paths.Chassis,
	}, p.log.With("node", id, "component", "proxy"))
	if err != nil {
		return nil, err
	}
	e.h = h
	return h, nil
}

func (p *proxies) close() {
	for _, e := range p.nodes {
		e.mu.Lock()
		if e.h != nil {
			e.h.Close()
		}
		e.mu.Unlock()
	}
}
