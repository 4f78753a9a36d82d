package redfish

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/schemas"
)

func (s *Server) getVersions(c echo.Context) error {
	return send(c, http.StatusOK, map[string]string{"v1": scopeOf(c).url("/")})
}

func (s *Server) getServiceRoot(c echo.Context) error {
	sc := scopeOf(c)
	name, id := "fishgate", "RootService"
	uuid := s.uuid
	if sc.node != "" {
		name = "fishgate BMC for " + sc.node
		uuid = uuidFrom(s.uuid + "/" + sc.node)
	}
	link := func(p string) *schemas.Link { return &schemas.Link{ODataID: sc.url(p)} }
	var eventService *schemas.Link
	if s.events != nil {
		eventService = link("/EventService")
	}
	return send(c, http.StatusOK, schemas.ServiceRoot{
		Resource:           schemas.Resource{ODataID: sc.url(""), ODataType: schemas.TypeServiceRoot, ID: id, Name: name},
		RedfishVersion:     schemas.RedfishVersion,
		UUID:               uuid,
		Product:            "fishgate",
		Vendor:             "fishgate",
		Systems:            link("/Systems"),
		Managers:           link("/Managers"),
		Chassis:            link("/Chassis"),
		SessionService:     link("/SessionService"),
		AccountService:     link("/AccountService"),
		TaskService:        link("/TaskService"),
		EventService:       eventService,
		AggregationService: aggregationLink(sc),
		Links:              schemas.ServiceRootLink{Sessions: schemas.Link{ODataID: sc.url("/SessionService/Sessions")}},
	})
}

// getOData is the OData service document (DSP0266 §8.4.2).
func (s *Server) getOData(c echo.Context) error {
	sc := scopeOf(c)
	type entry struct {
		Name string `json:"name"`
		Kind string `json:"kind"`
		URL  string `json:"url"`
	}
	v := []entry{{"Service", "Singleton", sc.url("/")}}
	services := []string{"Systems", "Managers", "Chassis", "SessionService", "AccountService", "TaskService"}
	if s.events != nil {
		services = append(services, "EventService")
	}
	if sc.node == "" { // as the service root links it (aggregationLink)
		services = append(services, "AggregationService")
	}
	for _, n := range services {
		v = append(v, entry{n, "Singleton", sc.url("/" + n)})
	}
	return send(c, http.StatusOK, map[string]any{"@odata.context": sc.url("/$metadata"), "value": v})
}

// metadataRefs are the schema namespaces the service uses, for $metadata
// (DSP0266 §8.4.1).
var metadataRefs = []struct{ file, ns string }{
	{"ServiceRoot_v1.xml", "ServiceRoot.v1_17_0"},
	{"ComputerSystemCollection_v1.xml", "ComputerSystemCollection"},
	{"ComputerSystem_v1.xml", "ComputerSystem.v1_20_0"},
	{"ManagerCollection_v1.xml", "ManagerCollection"},
	{"Manager_v1.xml", "Manager.v1_17_0"},
	{"ChassisCollection_v1.xml", "ChassisCollection"},
	{"Chassis_v1.xml", "Chassis.v1_23_0"},
	{"SessionService_v1.xml", "SessionService.v1_1_9"},
	{"SessionCollection_v1.xml", "SessionCollection"},
	{"Session_v1.xml", "Session.v1_7_0"},
	{"AccountService_v1.xml", "AccountService.v1_15_0"},
	{"ManagerAccountCollection_v1.xml", "ManagerAccountCollection"},
	{"ManagerAccount_v1.xml", "ManagerAccount.v1_12_0"},
	{"Message_v1.xml", "Message.v1_1_1"},
	{"TaskService_v1.xml", "TaskService.v1_2_1"},
	{"TaskCollection_v1.xml", "TaskCollection"},
	{"Task_v1.xml", "Task.v1_7_0"},
	{"EventService_v1.xml", "EventService.v1_12_0"},
	{"EventDestinationCollection_v1.xml", "EventDestinationCollection"},
	{"EventDestination_v1.xml", "EventDestination.v1_16_0"},
	{"Event_v1.xml", "Event.v1_13_0"},
	{"AggregationService_v1.xml", "AggregationService.v1_0_3"},
	{"AggregationSourceCollection_v1.xml", "AggregationSourceCollection"},
	{"AggregationSource_v1.xml", "AggregationSource.v1_5_0"},
	{"ConnectionMethodCollection_v1.xml", "ConnectionMethodCollection"},
	{"ConnectionMethod_v1.xml", "ConnectionMethod.v1_2_0"},
	{"AggregateCollection_v1.xml", "AggregateCollection"},
	{"Aggregate_v1.xml", "Aggregate.v1_0_3"},
	{"Resource_v1.xml", "Resource.v1_0_0"},
}

func (s *Server) getMetadata(c echo.Context) error {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">` + "\n")
	for _, r := range metadataRefs {
		ns := r.ns
		b.WriteString(`  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/` + r.file + `">` + "\n")
		b.WriteString(`    <edmx:Include Namespace="` + ns + `"/>` + "\n")
		if base, _, ok := strings.Cut(ns, "."); ok {
			b.WriteString(`    <edmx:Include Namespace="` + base + `"/>` + "\n")
		}
		b.WriteString("  </edmx:Reference>\n")
	}
	b.WriteString(`  <edmx:DataServices>
    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">
      <EntityContainer Name="Service" Extends="ServiceRoot.v1_17_0.ServiceContainer"/>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
`)
	return c.Blob(http.StatusOK, "application/xml", []byte(b.String()))
}
