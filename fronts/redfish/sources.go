package redfish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/schemas"
)

// AggregationSources are the BMCs the gateway manages, one per node: those
// of the configuration file (read-only) and those enrolled at runtime by a
// POST, kept in Redis by the gateway (app/gateway, Sources) so that every
// replica manages them. ConnectionMethods are the backend kinds, one each.
// Reads need Login; POST, PATCH and DELETE need ConfigureComponents.

// Sources is what the AggregationService needs from the gateway.
type Sources interface {
	// List is every source, sorted by id; Get one of them.
	List() []Source
	Get(id string) (Source, bool)
	// Create enrols a BMC; Update changes a runtime source; Delete removes
	// one once its node's running action has ended (done=false: the
	// removal continues after the call).
	Create(ctx context.Context, spec SourceSpec) (Source, error)
	Update(ctx context.Context, id string, spec SourceSpec) (Source, error)
	Delete(ctx context.Context, id string) (done bool, err error)
}

// Source is one AggregationSource. Its Id is its node's id.
type Source struct {
	ID                string
	Backend           string // redfish, ipmi or amt: its ConnectionMethod
	HostName          string
	UserName          string
	Options           SourceOptions // every field set (IPMIPassword never)
	FromConfiguration bool
	Removing          bool // DELETEd, waiting for its node's running action
}

// SourceSpec is a POST or PATCH body: nil fields are absent.
type SourceSpec struct {
	Backend  *string // from Links.ConnectionMethod
	HostName *string
	UserName *string
	Password *string
	Options  SourceOptions
}

// SourceOptions is Oem.Fishgate of an AggregationSource: the node options
// of the configuration file (app/config Node), with Redfish names.
type SourceOptions struct {
	NodeID          *string `json:"NodeId"`
	Name            *string `json:"Name"`
	SystemID        *string `json:"SystemId"`
	Insecure        *bool   `json:"Insecure"`
	Policy          *string `json:"Policy"`
	SoftOffFallback *string `json:"SoftOffFallback"`
	ReassertDesired *bool   `json:"ReassertDesired"`
	CipherSuite     *int    `json:"CipherSuite"`
	IPMIInterface   *string `json:"IpmiInterface"`
	IPMIListen      *string `json:"IpmiListen"`
	IPMIUser        *string `json:"IpmiUser"`
	IPMIPassword    *string `json:"IpmiPassword"`
	IPMIAllowV15    *bool   `json:"IpmiAllowV15"`
	// BMCAddress is the node's own IP address (docs/architecture.md#node-addresses):
	// given at creation, else the gateway's pool gives one; fixed after.
	BMCAddress *string `json:"BmcAddress"`
}

// Errors of Sources, answered with their Redfish errors (sourceError).
var (
	ErrSourceNotFound = errors.New("no such aggregation source")
	// ErrSourceReadOnly: the source is a node of the configuration file.
	ErrSourceReadOnly = errors.New("the source is a node of the configuration file; change it there")
	// ErrNoSecretsKey: the gateway has no secrets_key_file, so it will
	// not store a BMC password.
	ErrNoSecretsKey = errors.New("enrolment at runtime needs secrets_key_file: the gateway does not store BMC passwords in clear, and this gateway has no key to encrypt them (see README, Enrolling BMCs at runtime)")
)

// SourceExistsError is a POST for a node id in use.
type SourceExistsError struct{ NodeID string }

func (e *SourceExistsError) Error() string { return "node " + e.NodeID + " exists" }

// PropertyProblem says what is wrong with a property of a source.
type PropertyProblem int

const (
	PropertyIncorrect PropertyProblem = iota
	PropertyMissing
	PropertyNotInList
	PropertyNotWritable
)

// SourcePropertyError is a property of a POST or PATCH that cannot be
// taken; Property is its Redfish path ("Oem/Fishgate/Policy").
type SourcePropertyError struct {
	Property, Value, Problem string
	Kind                     PropertyProblem
}

func (e *SourcePropertyError) Error() string { return e.Property + ": " + e.Problem }

// SourceCredentialsError: the BMC refused the source's credentials.
type SourceCredentialsError struct {
	HostName string
	Err      error
}

func (e *SourceCredentialsError) Error() string {
	return "the BMC at " + e.HostName + " refused the credentials: " + e.Err.Error()
}
func (e *SourceCredentialsError) Unwrap() error { return e.Err }

// connectionMethods are the backend kinds as ConnectionMethods (ConnectionMethod v1_2_0).
var connectionMethods = []struct{ id, backend, typ, variant string }{
	{"Redfish", "redfish", "Redfish", ""},
	{"IPMI", "ipmi", "IPMI20", ""},
	{"AMT", "amt", "OEM", "IntelAMT"},
}

func methodOfBackend(backend string) string {
	for _, m := range connectionMethods {
		if m.backend == backend {
			return m.id
		}
	}
	return ""
}

func (s *Server) getConnectionMethods(c echo.Context) error {
	sc := scopeOf(c)
	var m []schemas.Link
	for _, cm := range connectionMethods {
		m = append(m, schemas.Link{ODataID: sc.url("/AggregationService/ConnectionMethods/" + cm.id)})
	}
	return send(c, http.StatusOK, schemas.NewCollection(sc.url("/AggregationService/ConnectionMethods"), schemas.TypeConnectionMethodColl, "Connection Methods", m))
}

func (s *Server) getConnectionMethod(c echo.Context) error {
	sc := scopeOf(c)
	for _, cm := range connectionMethods {
		if cm.id != c.Param("id") {
			continue
		}
		var variant *string
		if cm.variant != "" {
			variant = &cm.variant
		}
		return send(c, http.StatusOK, schemas.ConnectionMethod{
			Resource:                schemas.Resource{ODataID: sc.url("/AggregationService/ConnectionMethods/" + cm.id), ODataType: schemas.TypeConnectionMethod, ID: cm.id, Name: cm.id + " BMCs"},
			ConnectionMethodType:    cm.typ,
			ConnectionMethodVariant: variant,
		})
	}
	return notFound("ConnectionMethod", c.Param("id"))
}

// sourcesOrNone answers 404 on a gateway without Sources.
func (s *Server) sourcesOrNone(c echo.Context) (Sources, error) {
	if s.sources == nil {
		return nil, newError(http.StatusNotFound, schemas.Base(schemas.MsgResourceMissingAtURI, c.Request().URL.Path))
	}
	return s.sources, nil
}

func (s *Server) getSources(c echo.Context) error {
	src, err := s.sourcesOrNone(c)
	if err != nil {
		return err
	}
	sc := scopeOf(c)
	var m []schemas.Link
	for _, x := range src.List() {
		if sc.visible(x.ID) {
			m = append(m, schemas.Link{ODataID: sc.url("/AggregationService/AggregationSources/" + x.ID)})
		}
	}
	return send(c, http.StatusOK, schemas.NewCollection(sc.url("/AggregationService/AggregationSources"), schemas.TypeAggregationSourceColl, "Aggregation Sources", m))
}

// source loads the source named by :id, as the principal may see it.
func (s *Server) source(c echo.Context) (Sources, Source, error) {
	src, err := s.sourcesOrNone(c)
	if err != nil {
		return nil, Source{}, err
	}
	id := c.Param("id")
	x, ok := src.Get(id)
	if !ok || !scopeOf(c).visible(id) {
		return nil, Source{}, notFound("AggregationSource", id)
	}
	return src, x, nil
}

func (s *Server) getSource(c echo.Context) error {
	_, x, err := s.source(c)
	if err != nil {
		return err
	}
	return send(c, http.StatusOK, s.renderSource(c, x))
}

// renderSource is x as an AggregationSource; its Status is its node's
// health, with the reason in Oem.Fishgate.LastError.
func (s *Server) renderSource(c echo.Context, x Source) schemas.AggregationSource {
	sc := scopeOf(c)
	st := schemas.Status{State: "Enabled", Health: "Critical"}
	lastErr := "the node is not managed by this replica yet"
	if v, err := s.nodes.View(x.ID); err == nil {
		st.Health, lastErr = v.Health, v.LastError
	}
	if x.Removing {
		st.State, lastErr = "Disabled", "being removed: waiting for the node's running action to end"
	}
	o := x.Options
	o.IPMIPassword = nil
	oem := map[string]any{}
	b, _ := json.Marshal(o)
	json.Unmarshal(b, &oem)
	oem["IpmiPassword"] = nil // write-only, as Password
	oem["FromConfiguration"] = x.FromConfiguration
	oem["LastError"] = lastErr
	var method *schemas.Link
	if m := methodOfBackend(x.Backend); m != "" {
		method = &schemas.Link{ODataID: sc.url("/AggregationService/ConnectionMethods/" + m)}
	}
	system := []schemas.Link{{ODataID: sc.url("/Systems/" + x.ID)}}
	return schemas.AggregationSource{
		Resource:        schemas.Resource{ODataID: sc.url("/AggregationService/AggregationSources/" + x.ID), ODataType: schemas.TypeAggregationSource, ID: x.ID, Name: "BMC of " + x.ID},
		HostName:        x.HostName,
		UserName:        x.UserName,
		AggregationType: "Full",
		Status:          st,
		Links:           schemas.AggregationSourceLinks{ConnectionMethod: method, ResourcesAccessed: system, ResourcesAccessedCount: len(system)},
		Oem:             map[string]any{"Fishgate": oem},
	}
}

// sourceBody is what POST and PATCH of an AggregationSource may carry.
type sourceBody struct {
	HostName *string `json:"HostName"`
	UserName *string `json:"UserName"`
	Password *string `json:"Password"`
	Links    *struct {
		ConnectionMethod *schemas.Link `json:"ConnectionMethod"`
	} `json:"Links"`
	Oem *struct {
		Fishgate *SourceOptions `json:"Fishgate"`
	} `json:"Oem"`
}

// decodeSourceBody decodes a POST or PATCH body strictly into a spec: the
// connection method is named by its URI (either view's).
func decodeSourceBody(body []byte, patch bool) (SourceSpec, error) {
	var b sourceBody
	if err := decodeStrict(body, &b, decodeKind{patch: patch}); err != nil {
		return SourceSpec{}, err
	}
	spec := SourceSpec{HostName: b.HostName, UserName: b.UserName, Password: b.Password}
	if b.Oem != nil && b.Oem.Fishgate != nil {
		spec.Options = *b.Oem.Fishgate
	}
	if b.Links != nil && b.Links.ConnectionMethod != nil {
		uri := strings.TrimSuffix(b.Links.ConnectionMethod.ODataID, "/")
		i := strings.LastIndex(uri, "/AggregationService/ConnectionMethods/")
		if i >= 0 {
			id := uri[i+len("/AggregationService/ConnectionMethods/"):]
			for _, m := range connectionMethods {
				if m.id == id {
					spec.Backend = &m.backend
				}
			}
		}
		if spec.Backend == nil {
			return spec, newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyValueNotInList, b.Links.ConnectionMethod.ODataID, "Links/ConnectionMethod")).
				withDetail("Links/ConnectionMethod must name one of /redfish/v1/AggregationService/ConnectionMethods/Redfish, IPMI or AMT")
		}
	}
	return spec, nil
}

// mayChangeSource is ConfigureComponents, on a node the principal sees.
func mayChangeSource(c echo.Context, id string) error {
	if err := canOperate(c); err != nil {
		return err
	}
	if !scopeOf(c).visible(id) {
		return newError(http.StatusForbidden, schemas.Base(schemas.MsgInsufficientPrivilege)).withDetail("the account may not manage node " + id)
	}
	return nil
}

func (s *Server) postSource(c echo.Context) error {
	src, err := s.sourcesOrNone(c)
	if err != nil {
		return err
	}
	if err := canOperate(c); err != nil {
		return err
	}
	body, err := readBody(c, s.maxBody)
	if err != nil {
		return err
	}
	spec, err := decodeSourceBody(body, false)
	if err != nil {
		return err
	}
	if spec.Options.NodeID != nil {
		if err := mayChangeSource(c, *spec.Options.NodeID); err != nil {
			return err
		}
	}
	ctx, cancel := withTimeout(c)
	defer cancel()
	x, err := src.Create(ctx, spec)
	if err != nil {
		s.audit(c.Request().Context(), auditOf(c, "source-create", "", "refused").with(err.Error()))
		return sourceError(err, "")
	}
	s.log.Info("BMC enrolled", "node", x.ID, "backend", x.Backend, "host", x.HostName, "by", principalOf(c).User, "remote", c.RealIP())
	s.audit(c.Request().Context(), auditOf(c, "source-create", x.ID, "201").with(x.Backend+" "+x.HostName))
	c.Response().Header().Set("Location", scopeOf(c).url("/AggregationService/AggregationSources/"+x.ID))
	return send(c, http.StatusCreated, s.renderSource(c, x))
}

func (s *Server) patchSource(c echo.Context) error {
	src, x, err := s.source(c)
	if err != nil {
		return err
	}
	if err := mayChangeSource(c, x.ID); err != nil {
		return err
	}
	cur, _ := json.Marshal(s.renderSource(c, x))
	if err := ifMatch(c, etagOf(cur)); err != nil {
		return err
	}
	body, err := readBody(c, s.maxBody)
	if err != nil {
		return err
	}
	spec, err := decodeSourceBody(body, true)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(c)
	defer cancel()
	x, err = src.Update(ctx, x.ID, spec)
	if errors.Is(err, ErrSourceReadOnly) {
		e := newError(http.StatusMethodNotAllowed, schemas.Base(schemas.MsgOperationNotAllowed)).withDetail("aggregation source " + c.Param("id") + ": " + err.Error())
		e.header = http.Header{"Allow": {"GET, HEAD"}}
		return e
	}
	if err != nil {
		return sourceError(err, c.Param("id"))
	}
	s.log.Info("BMC source changed", "node", x.ID, "by", principalOf(c).User, "remote", c.RealIP(), "password_changed", spec.Password != nil)
	s.audit(c.Request().Context(), auditOf(c, "source-change", x.ID, "200"))
	return send(c, http.StatusOK, s.renderSource(c, x))
}

func (s *Server) deleteSource(c echo.Context) error {
	src, x, err := s.source(c)
	if err != nil {
		return err
	}
	if err := mayChangeSource(c, x.ID); err != nil {
		return err
	}
	ctx, cancel := withTimeout(c)
	defer cancel()
	done, err := src.Delete(ctx, x.ID)
	if err != nil {
		return sourceError(err, x.ID)
	}
	s.log.Info("BMC source deleted", "node", x.ID, "done", done, "by", principalOf(c).User, "remote", c.RealIP())
	s.audit(c.Request().Context(), auditOf(c, "source-delete", x.ID, fmt.Sprint(map[bool]int{true: 204, false: 202}[done])))
	if !done {
		// the node's running action still runs: the removal ends with it
		x.Removing = true
		return send(c, http.StatusAccepted, s.renderSource(c, x))
	}
	return c.NoContent(http.StatusNoContent)
}

// sourceError maps a Sources error to its Redfish error.
func sourceError(err error, id string) error {
	var (
		exists *SourceExistsError
		prop   *SourcePropertyError
		cred   *SourceCredentialsError
	)
	switch {
	case errors.Is(err, ErrSourceNotFound):
		return notFound("AggregationSource", id)
	case errors.Is(err, ErrSourceReadOnly):
		e := newError(http.StatusMethodNotAllowed, schemas.Base(schemas.MsgResourceCannotBeDeleted)).withDetail("aggregation source " + id + ": " + err.Error())
		e.header = http.Header{"Allow": {"GET, HEAD"}}
		return e
	case errors.Is(err, ErrNoSecretsKey):
		return newError(http.StatusMethodNotAllowed, schemas.Base(schemas.MsgOperationNotAllowed)).withDetail(err.Error())
	case errors.As(err, &exists):
		return newError(http.StatusConflict, schemas.Base(schemas.MsgResourceAlreadyExists, "AggregationSource", "Oem/Fishgate/NodeId", exists.NodeID)).
			withDetail("node " + exists.NodeID + " exists (in the configuration file or enrolled already): choose another Oem/Fishgate/NodeId")
	case errors.As(err, &prop):
		var m schemas.Message
		switch prop.Kind {
		case PropertyMissing:
			m = schemas.Base(schemas.MsgPropertyMissing, prop.Property)
		case PropertyNotInList:
			m = schemas.Base(schemas.MsgPropertyValueNotInList, prop.Value, prop.Property)
		case PropertyNotWritable:
			m = schemas.Base(schemas.MsgPropertyNotWritable, prop.Property)
		default:
			m = schemas.Base(schemas.MsgPropertyValueIncorrect, prop.Property, prop.Value)
		}
		return newError(http.StatusBadRequest, m).withDetail(prop.Property + ": " + prop.Problem)
	case errors.As(err, &cred):
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgResourceAtUriUnauthorized, cred.HostName, cred.Err.Error())).withDetail(cred.Error())
	}
	return unavailable(5, "aggregation sources: "+err.Error())
}
