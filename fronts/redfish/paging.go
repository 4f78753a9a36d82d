package redfish

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/schemas"
)

// pageSize is the most members one page of a large collection (Systems,
// Tasks) holds: with 10,000 nodes and 100,000 tasks a whole collection
// would be megabytes. A client's $top may ask for fewer; the rest follows
// by Members@odata.nextLink (DSP0266 §7.3.4: server-driven paging), which
// gofish and sushy follow. Members@odata.count is always the total.
const pageSize = 1000

// scopedTaskLimit bounds the tasks listed for an account or /bmc/<node>
// scope that sees some nodes only (the fleet-wide index serves the others).
const scopedTaskLimit = 1000000

// page is the part of a collection a request asks for: $skip members
// skipped, at most top returned. asked tells whether $top was given, so
// that the next link repeats it.
type page struct {
	skip, top int
	asked     bool
}

// pageOf reads $skip and $top (non-negative integers, DSP0266 §7.3.4).
func pageOf(c echo.Context) (page, error) {
	p := page{top: pageSize}
	for _, q := range []struct {
		name string
		into *int
	}{{"$skip", &p.skip}, {"$top", &p.top}} {
		raw := c.QueryParam(q.name)
		if raw == "" {
			continue
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 {
			return p, newError(http.StatusBadRequest, schemas.Base(schemas.MsgQueryParameterValueFormatError, raw, q.name)).
				withDetail(q.name + " must be a non-negative integer")
		}
		*q.into = n
		if q.name == "$top" {
			p.asked, p.top = true, min(n, pageSize)
		}
	}
	return p, nil
}

// cut takes the page out of a whole listing, and returns it with the
// listing's length.
func (p page) cut(all []string) ([]string, int) {
	n := len(all)
	return all[min(p.skip, n):min(p.skip+p.top, n)], n
}

// collection builds the page of a collection of total members: its next
// link when members remain after it.
func (p page) collection(id, odataType, name string, members []schemas.Link, total int) schemas.Collection {
	c := schemas.NewCollection(id, odataType, name, members)
	c.MembersCount = total
	if end := p.skip + len(members); end < total && len(members) > 0 {
		c.NextLink = id + "?$skip=" + strconv.Itoa(end)
		if p.asked {
			c.NextLink += "&$top=" + strconv.Itoa(p.top)
		}
	}
	return c
}
