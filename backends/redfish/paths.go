package redfish

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/stmcginnis/gofish"
	rf "github.com/stmcginnis/gofish/schemas"

	"github.com/fishgate/fishgate/backends"
)

// Paths are the BMC's own paths of the node's ComputerSystem and of the
// Manager and Chassis it links to ("" when the System does not link one).
type Paths struct {
	System, Manager, Chassis string
}

// ResourcePaths reads the System and its Links (ManagedBy[0], Chassis[0]):
// what the pass-through proxy maps the gateway's resources onto.
func (b *Backend) ResourcePaths(ctx context.Context) (Paths, error) {
	var p Paths
	err := b.do(ctx, func(c *gofish.APIClient) error {
		sp, err := b.systemPath(c)
		if err != nil {
			return err
		}
		resp, err := c.Get(sp)
		defer rf.DeferredCleanupHTTPResponse(resp)
		if err != nil {
			return fmt.Errorf("read %s: %w", sp, err)
		}
		var sys struct {
			Links struct {
				ManagedBy []struct {
					ID string `json:"@odata.id"`
				}
				Chassis []struct {
					ID string `json:"@odata.id"`
				}
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&sys); err != nil {
			return fmt.Errorf("read %s: %w", sp, err)
		}
		p.System = sp
		if len(sys.Links.ManagedBy) > 0 {
			p.Manager = systemPathOf(sys.Links.ManagedBy[0].ID)
		}
		if len(sys.Links.Chassis) > 0 {
			p.Chassis = systemPathOf(sys.Links.Chassis[0].ID)
		}
		return nil
	})
	if err != nil {
		return Paths{}, b.errorf("resource paths", err)
	}
	return p, nil
}

var _ backends.PassThrough = (*Backend)(nil)

// PassThroughTarget is the backend's backends.PassThrough: the BMC's
// endpoint and account, and its resource paths (ResourcePaths).
func (b *Backend) PassThroughTarget(ctx context.Context) (backends.RedfishTarget, error) {
	p, err := b.ResourcePaths(ctx)
	if err != nil {
		return backends.RedfishTarget{}, err
	}
	return backends.RedfishTarget{
		Endpoint: b.endpoint, User: b.cfg.User, Password: b.cfg.Password, Insecure: b.cfg.Insecure,
		SystemPath: p.System, ManagerPath: p.Manager, ChassisPath: p.Chassis,
	}, nil
}
