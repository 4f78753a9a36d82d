package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/fishgate/fishgate/backends"
	"github.com/fishgate/fishgate/fronts/redfish/proxy"
)

// proxies builds, on first use, one pass-through proxy per node whose
// backend offers it (backends.PassThrough): where the node's resources are
// on its BMC is asked of the backend once. Each node has its own lock, so
// one slow BMC does not hold up the others. Nodes enrolled or removed at
// runtime come and go (set, drop).
type proxies struct {
	log   *slog.Logger
	mu    sync.RWMutex
	nodes map[string]*proxyEntry
}

type proxyEntry struct {
	backend backends.PassThrough

	mu sync.Mutex
	h  *proxy.Proxy
}

// newProxies keeps, of the nodes' backends (by node id), those that offer
// pass-through.
func newProxies(backendsByID map[string]backends.Backend, log *slog.Logger) *proxies {
	p := &proxies{log: log, nodes: map[string]*proxyEntry{}}
	for id, b := range backendsByID {
		if pt, ok := b.(backends.PassThrough); ok {
			p.nodes[id] = &proxyEntry{backend: pt}
		}
	}
	return p
}

// handler returns the node's proxy, or nil for a node whose backend offers
// no pass-through.
func (p *proxies) handler(ctx context.Context, id string) (http.Handler, error) {
	p.mu.RLock()
	e, ok := p.nodes[id]
	p.mu.RUnlock()
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
	t, err := e.backend.PassThroughTarget(cctx)
	if err != nil {
		return nil, fmt.Errorf("discover BMC resources: %w", err)
	}
	h, err := proxy.New(proxy.Target{
		Node: id, Endpoint: t.Endpoint, User: t.User, Password: t.Password, Insecure: t.Insecure,
		SystemPath: t.SystemPath, ManagerPath: t.ManagerPath, ChassisPath: t.ChassisPath,
	}, p.log.With("node", id, "component", "proxy"))
	if err != nil {
		return nil, err
	}
	e.h = h
	return h, nil
}

// set gives node id the backend b (a new node, or new credentials): its
// proxy is made again on first use.
func (p *proxies) set(id string, b backends.Backend) {
	p.drop(id)
	if pt, ok := b.(backends.PassThrough); ok {
		p.mu.Lock()
		p.nodes[id] = &proxyEntry{backend: pt}
		p.mu.Unlock()
	}
}

// drop forgets node id's proxy.
func (p *proxies) drop(id string) {
	p.mu.Lock()
	e := p.nodes[id]
	delete(p.nodes, id)
	p.mu.Unlock()
	if e != nil {
		e.mu.Lock()
		if e.h != nil {
			e.h.Close()
		}
		e.mu.Unlock()
	}
}

func (p *proxies) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.nodes {
		e.mu.Lock()
		if e.h != nil {
			e.h.Close()
		}
		e.mu.Unlock()
	}
}
