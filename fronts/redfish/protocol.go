package redfish

import (
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/schemas"
)

// Protocol rules of DSP0266 that every response or request follows.

// odataVersionOK: a request that names an OData-Version other than the
// service's 4.0 is refused with 412 (DSP0266 §8.2, request headers).
func odataVersionOK(c echo.Context) error {
	if v := c.Request().Header.Get("OData-Version"); v != "" && v != "4.0" {
		return newError(http.StatusPreconditionFailed, schemas.Base(schemas.MsgPreconditionFailed)).
			withDetail("this service supports OData-Version 4.0, not " + v)
	}
	return nil
}

// allowOf lists the methods of every route pattern, for the Allow header
// of GET and HEAD responses (DSP0266 §8.3, response headers).
func allowOf(routes []*echo.Route) map[string]string {
	methods := map[string][]string{}
	for _, r := range routes {
		if !slices.Contains(methods[r.Path], r.Method) {
			methods[r.Path] = append(methods[r.Path], r.Method)
		}
	}
	out := map[string]string{}
	for p, ms := range methods {
		if slices.Contains(ms, http.MethodGet) && !slices.Contains(ms, http.MethodHead) {
			ms = append(ms, http.MethodHead)
		}
		slices.Sort(ms)
		out[p] = strings.Join(ms, ", ")
	}
	return out
}

// describedBy is the Link header of a resource of odata type t: its JSON
// schema at the DMTF (DSP0266 §8.3: Link with rel=describedby), versioned
// as the @odata.type is.
func describedBy(t string) string {
	t = strings.TrimPrefix(t, "#")
	i := strings.LastIndexByte(t, '.')
	if i <= 0 {
		return ""
	}
	ns := t[:i] // "ServiceRoot.v1_17_0", or "ComputerSystemCollection"
	return "<https://redfish.dmtf.org/schemas/v1/" + ns + ".json>; rel=describedby"
}

// hasODataAnnotation reports whether m has a top-level OData annotation.
func hasODataAnnotation(m map[string]any) bool {
	for k := range m {
		if strings.HasPrefix(k, "@odata.") {
			return true
		}
	}
	return false
}

// stripODataAnnotations removes the OData annotations (@odata.id,
// @odata.type, @odata.etag, ...) a client may send back in a PATCH body
// (DSP0266: the service ignores them) and reports whether anything else
// remains.
func stripODataAnnotations(m map[string]any) bool {
	for k := range m {
		if strings.HasPrefix(k, "@odata.") {
			delete(m, k)
		}
	}
	return len(m) > 0
}
