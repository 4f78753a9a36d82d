package redfish

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/schemas"
)

// A node may have an address of its own, or a host name
// (docs/architecture.md#node-addresses): a request that reaches the
// gateway there sees that node as a whole BMC at the root, /redfish/v1
// being the node's own view (the same as /bmc/<node>/redfish/v1, with
// links that carry no prefix). The gateway tells which node a request
// addressed (the connection's local address, the Host header, TLS SNI);
// this front only renders the view.

// NodeAddresses is what the front needs to know of the nodes' own
// addresses.
type NodeAddresses interface {
	// RootNode is the node whose own BMC the request addressed, "" for
	// the aggregate service. ok is false when the request reached an
	// address that serves neither (a node-address listener, at an address
	// that no node has): it is answered 404.
	RootNode(r *http.Request) (node string, ok bool)
	// Address is node id's own IP address, "" without one.
	Address(id string) string
}

const ctxRootNode = "fishgate.rootnode"

// nodeRootMiddleware (before routing) marks a request to a node's own
// address or host name with that node. There, /bmc/<node> paths and the
// AggregationService do not exist: that address is one BMC.
func (s *Server) nodeRootMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	if s.addrs == nil {
		return next
	}
	return func(c echo.Context) error {
		req := c.Request()
		node, ok := s.addrs.RootNode(req)
		if !ok {
			return newError(http.StatusNotFound, schemas.Base(schemas.MsgResourceMissingAtURI, req.URL.Path)).
				withDetail("no BMC is served at this address")
		}
		if node == "" {
			return next(c)
		}
		if strings.HasPrefix(req.URL.Path, "/bmc/") {
			return newError(http.StatusNotFound, schemas.Base(schemas.MsgResourceMissingAtURI, req.URL.Path)).
				withDetail("this is node " + node + "'s own address: its service is at /redfish/v1")
		}
		if _, err := s.nodes.View(node); err != nil && !publicPath(req.URL.Path) {
			return notFound("Manager", node)
		}
		c.Set(ctxRootNode, node)
		return next(c)
	}
}

// rootNodeOf is the node whose own address or host name the request
// addressed, "" otherwise.
func rootNodeOf(c echo.Context) string {
	n, _ := c.Get(ctxRootNode).(string)
	return n
}

// aggregateOnly answers 404 for the routes of the aggregate service
// (AggregationService, bulk tasks) at a node's own address.
func (s *Server) aggregateOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if rootNodeOf(c) != "" {
			return newError(http.StatusNotFound, schemas.Base(schemas.MsgResourceMissingAtURI, c.Request().URL.Path))
		}
		return next(c)
	}
}

// nodeAddress is node id's own address, "" without one.
func (s *Server) nodeAddress(id string) string {
	if s.addrs == nil {
		return ""
	}
	return s.addrs.Address(id)
}

// managerOem is the Oem of a node's Manager: Fishgate.BmcAddress, the
// node's own address, when it has one.
func (s *Server) managerOem(id string) map[string]any {
	if a := s.nodeAddress(id); a != "" {
		return map[string]any{"Fishgate": map[string]any{"BmcAddress": a}}
	}
	return nil
}
