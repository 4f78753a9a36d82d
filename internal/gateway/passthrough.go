package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	rfbackend "github.com/fishgate/fishgate/backends/redfish"
	"github.com/fishgate/fishgate/internal/config"
	"github.com/fishgate/fishgate/proxy"
)

// proxies builds, on first use, one pass-through proxy per Redfish-backed
// node: the BMC's resource paths are read once through the node's backend.
type proxies struct {
	log   *slog.Logger
	nodes map[string]config.Node
	paths map[string]*rfbackend.Backend

	mu    sync.Mutex
	built map[string]*proxy.Proxy
}

func newProxies(cfg config.Config, backendsByID map[string]*rfbackend.Backend, log *slog.Logger) *proxies {
	p := &proxies{log: log, nodes: map[string]config.Node{}, paths: backendsByID, built: map[string]*proxy.Proxy{}}
	for _, n := range cfg.Nodes {
		p.nodes[n.ID] = n
	}
	return p
}

// handler returns the node's proxy, or nil for a node whose BMC is not Redfish.
func (p *proxies) handler(ctx context.Context, id string) (http.Handler, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if h, ok := p.built[id]; ok {
		return h, nil
	}
	b, ok := p.paths[id]
	if !ok {
		return nil, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	paths, err := b.ResourcePaths(cctx)
	if err != nil {
		return nil, fmt.Errorf("discover BMC resources: %w", err)
	}
	n := p.nodes[id]
	h, err := proxy.New(proxy.Target{
		Node: id, Endpoint: n.Address, User: n.User, Password: n.Password, Insecure: n.Insecure,
		SystemPath: paths.System, ManagerPath: paths.Manager, ChassisPath: paths.Chassis,
	}, p.log.With("node", id, "component", "proxy"))
	if err != nil {
		return nil, err
	}
	p.built[id] = h
	return h, nil
}

func (p *proxies) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, h := range p.built {
		h.Close()
	}
}
