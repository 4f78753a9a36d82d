package redfish

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/schemas"
)

// typeAggregationService is the AggregationService's @odata.type.
const typeAggregationService = "#AggregationService.v1_0_3.AggregationService"

// aggregationLink is the service root's link to the AggregationService:
// the aggregate service has one; a node's own view (/bmc/<node>) does not.
func aggregationLink(sc scope) *schemas.Link {
	if sc.node != "" {
		return nil
	}
	return &schemas.Link{ODataID: sc.url("/AggregationService")}
}

func (s *Server) getAggregationService(c echo.Context) error {
	sc := scopeOf(c)
	body := map[string]any{
		"@odata.id":      sc.url("/AggregationService"),
		"@odata.type":    typeAggregationService,
		"Id":             "AggregationService",
		"Name":           "Aggregation Service",
		"ServiceEnabled": true,
		"Status":         schemas.Status{State: "Enabled", Health: "OK"},
		"Aggregates":     schemas.Link{ODataID: sc.url("/AggregationService/Aggregates")},
		"Actions": map[string]any{
			"#AggregationService.Reset": schemas.BulkResetAction{
				Target: sc.url("/AggregationService/Actions/AggregationService.Reset"), AllowableResets: schemas.AllResetTypes},
		},
	}
	if s.sources != nil { // BMCs enrolled at runtime (sources.go)
		body["AggregationSources"] = schemas.Link{ODataID: sc.url("/AggregationService/AggregationSources")}
		body["ConnectionMethods"] = schemas.Link{ODataID: sc.url("/AggregationService/ConnectionMethods")}
	}
	return send(c, http.StatusOK, body)
}
