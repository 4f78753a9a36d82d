package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// TestMountedOnEcho mounts proxies the way redfish/ is meant to (see the
// package documentation): a catch-all per collection and view, behind the
// gateway's own static routes.
func TestMountedOnEcho(t *testing.T) {
	t.Parallel()
	bmc := newFakeBMC(t, false)
	g := newGateway(t, bmc, nil)
	proxies := map[string]*Proxy{"n17": g.p} // Redfish-backed nodes only

	e := echo.New()
	e.Pre(middleware.RemoveTrailingSlash())
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc { // like redfish.headersMiddleware
		return func(c echo.Context) error {
			c.Response().Header().Set("OData-Version", "4.0")
			c.Response().Header().Set("Cache-Control", "no-cache")
			return next(c)
		}
	})
	passThrough := func(c echo.Context) error {
		p, ok := proxies[c.Param("id")]
		if !ok {
			return echo.ErrNotFound
		}
		withTestCaller(p).ServeHTTP(c.Response(), c.Request())
		return nil
	}
	reset := func(c echo.Context) error { return c.String(http.StatusAccepted, "serializer") }
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete}
	for _, base := range []string{"", "/bmc/:node"} {
		e.POST(base+"/redfish/v1/Systems/:id/Actions/ComputerSystem.Reset", reset)
		for _, coll := range []string{"Systems", "Managers", "Chassis"} {
			e.Match(methods, base+"/redfish/v1/"+coll+"/:id/*", passThrough)
		}
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	g.srv = srv // send the requests through echo

	r := g.do(t, "POST", "/bmc/n17/redfish/v1/Systems/n17/Actions/ComputerSystem.Reset", `{"ResetType":"On"}`)
	wantEq(t, "Reset handled by", string(r.raw), "serializer")

	for _, base := range bases {
		r = g.do(t, "GET", base+"/redfish/v1/Systems/n17/Bios/", "")
		wantEq(t, "status", r.status, http.StatusOK)
		wantEq(t, "BMC path", bmc.last().RawPath, "/redfish/v1/Systems/1/Bios")
		wantEq(t, "@odata.id", get(t, r.body, "@odata.id"), base+"/redfish/v1/Systems/n17/Bios")
		wantEq(t, "OData-Version values", len(r.header.Values("OData-Version")), 1)
		wantEq(t, "Cache-Control", r.header.Get("Cache-Control"), "no-cache")

		r = g.do(t, "GET", base+"/redfish/v1/Managers/n17/NetworkProtocol", "")
		wantEq(t, "Manager @odata.id", get(t, r.body, "@odata.id"), base+"/redfish/v1/Managers/n17/NetworkProtocol")
		// The BMC's header replaces the router's instead of adding to it.
		wantEq(t, "Cache-Control from the BMC", strings.Join(r.header.Values("Cache-Control"), " | "), "no-store")
	}
	r = g.do(t, "GET", "/redfish/v1/Systems/n99/Bios", "")
	wantEq(t, "unknown node", r.status, http.StatusNotFound)
	n := len(bmc.requests())
	r = g.do(t, "GET", "/redfish/v1/Systems/n17/%2e%2e/%2e%2e/Managers/BMC", "")
	wantRedfishError(t, r, http.StatusBadRequest, "InvalidURI")
	if len(bmc.requests()) != n {
		t.Errorf("traversal through echo reached the BMC: %s", bmc.last().RawPath)
	}

	// Through the router, every spelling of a Reset below the System is
	// either the gateway's own handler or refused; none reaches the BMC.
	for _, base := range bases {
		sys := base + "/redfish/v1/Systems/n17"
		for path, want := range map[string]string{
			sys + "/Actions/ComputerSystem.Reset/":    "serializer",
			sys + "/Actions/ComputerSystem.Reset;x=1": "InvalidURI",
			sys + "/Actions/ComputerSystem.Reset%3Bx": "InvalidURI",
			sys + "/Actions/ComputerSystem.Reset.":    "InvalidURI",
			sys + "/Actions/ComputerSystem.Reset%20":  "InvalidURI",
			sys + "/Actions/ComputerSystem.Reset%2Fx": "InvalidURI",
			// RemoveTrailingSlash keeps an escaped '/' (echo v4.16.4 on),
			// so the proxy sees ".../ComputerSystem.Reset%2F".
			sys + "/Actions/ComputerSystem.Reset%2F":   "InvalidURI",
			sys + "/Actions/ComputerSystem%2EReset":    "ActionNotSupported",
			sys + "/Actions/ComputerSystem%2EReset/":   "ActionNotSupported",
			sys + "/actions/computersystem.reset":      "ActionNotSupported",
			sys + "/Actions/ComputerSystem.Reset/x/..": "InvalidURI",
			sys + "/Actions/x/../ComputerSystem.Reset": "InvalidURI",
			sys + "/Actions//ComputerSystem.Reset":     "InvalidURI",
			sys + "/Actions/Oem/ComputerSystem.Reset":  "ActionNotSupported",
			sys + "/Settings":                          "OperationNotAllowed",
		} {
			r := g.do(t, "POST", path, `{"ResetType":"ForceOff"}`)
			switch want {
			case "serializer":
				wantEq(t, "POST "+path+" handled by", string(r.raw), "serializer")
			case "OperationNotAllowed":
				wantRedfishError(t, r, http.StatusMethodNotAllowed, want)
			default:
				wantRedfishError(t, r, http.StatusBadRequest, want)
			}
		}
	}
	if len(bmc.requests()) != n {
		t.Errorf("a Reset through echo reached the BMC: %s %s", bmc.last().Method, bmc.last().RawPath)
	}
}
