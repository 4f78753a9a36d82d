package redfish

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/schemas"
)

// Aggregates (Redfish Aggregate): named groups of Systems, shared by every
// replica through Redis (docs/architecture.md#aggregates). Their keys share
// the hash tag {aggregates}, so one script changes an aggregate and the
// index together (decision 0018):
//
//	fg:{aggregates}:ids          sorted set: aggregate id by creation time
//	fg:{aggregates}:names        hash: aggregate id -> Name
//	fg:{aggregates}:e:<id>       set: the aggregate's node ids
//
// An element is a node id; a node removed from the gateway stays an
// element until it is removed from the aggregate, shown apart
// (Oem.Fishgate.ElementsNotManaged, not linked), and a bulk reset ends that
// node's sub-task with the reason.
const (
	aggIDs   = "fg:{aggregates}:ids"
	aggNames = "fg:{aggregates}:names"
)

func aggElements(id string) string { return "fg:{aggregates}:e:" + id }

var (
	// KEYS: ids, names, elements. ARGV: id, name, created (ms), nodes...
	aggCreateScript = redis.NewScript(`
local IDS, NAMES, ELEMS = KEYS[1], KEYS[2], KEYS[3]
if redis.call('ZSCORE', IDS, ARGV[1]) then return 0 end
redis.call('ZADD', IDS, ARGV[3], ARGV[1])
redis.call('HSET', NAMES, ARGV[1], ARGV[2])
redis.call('DEL', ELEMS)
for i = 4, #ARGV do redis.call('SADD', ELEMS, ARGV[i]) end
return 1`)
	// KEYS: ids, elements. ARGV: id, add (1) or remove (0), nodes...
	aggChangeScript = redis.NewScript(`
local IDS, ELEMS = KEYS[1], KEYS[2]
if not redis.call('ZSCORE', IDS, ARGV[1]) then return 0 end
for i = 3, #ARGV do
  if ARGV[2] == '1' then redis.call('SADD', ELEMS, ARGV[i]) else redis.call('SREM', ELEMS, ARGV[i]) end
end
return 1`)
	// KEYS: ids, names, elements. ARGV: id.
	aggDeleteScript = redis.NewScript(`
local IDS, NAMES, ELEMS = KEYS[1], KEYS[2], KEYS[3]
if redis.call('ZREM', IDS, ARGV[1]) == 0 then return 0 end
redis.call('HDEL', NAMES, ARGV[1])
redis.call('DEL', ELEMS)
return 1`)
)

// aggregateID is what an Aggregate's Id (its Name, when the client gives
// one) may be: it goes into a URL and a Redis key.
var aggregateID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// aggregate is a stored aggregate.
type aggregate struct {
	ID, Name string
	Nodes    []string // sorted
}

// errNoAggregate is an unknown aggregate.
var errNoAggregate = errors.New("aggregate not found")

func (s *Server) loadAggregate(ctx context.Context, id string) (aggregate, error) {
	if !aggregateID.MatchString(id) {
		return aggregate{}, errNoAggregate
	}
	var name *redis.StringCmd
	var nodes *redis.StringSliceCmd
	_, err := s.redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		name = p.HGet(ctx, aggNames, id)
		nodes = p.SMembers(ctx, aggElements(id))
		return nil
	})
	if errors.Is(name.Err(), redis.Nil) {
		return aggregate{}, errNoAggregate
	}
	if err != nil {
		return aggregate{}, err
	}
	a := aggregate{ID: id, Name: name.Val(), Nodes: nodes.Val()}
	sort.Strings(a.Nodes)
	return a, nil
}

// aggregateOf loads the aggregate named by :agg (Id, or Name for the CLI's
// --aggregate NAME: they are the same unless the client gave no Name).
func (s *Server) aggregateOf(c echo.Context) (aggregate, error) {
	id := c.Param("agg")
	a, err := s.loadAggregate(c.Request().Context(), id)
	if errors.Is(err, errNoAggregate) {
		return a, notFound("Aggregate", id)
	}
	if err != nil {
		return a, unavailable(2, err.Error())
	}
	return a, nil
}

// renderAggregate shows the elements the gateway manages; an element whose
// node was removed from the gateway is listed apart (Oem), so that no link
// of the aggregate leads nowhere, until it is removed from the aggregate.
func (s *Server) renderAggregate(sc scope, a aggregate) schemas.Aggregate {
	base := sc.url("/AggregationService/Aggregates/" + a.ID)
	els := make([]schemas.Link, 0, len(a.Nodes))
	var gone []string
	for _, n := range a.Nodes {
		if !sc.visible(n) {
			continue
		}
		if _, err := s.nodes.View(n); err != nil {
			gone = append(gone, n)
			continue
		}
		els = append(els, schemas.Link{ODataID: sc.url("/Systems/" + n)})
	}
	var oem map[string]any
	if gone != nil {
		oem = map[string]any{"Fishgate": map[string]any{"ElementsNotManaged": gone}}
	}
	return schemas.Aggregate{
		Oem:           oem,
		Resource:      schemas.Resource{ODataID: base, ODataType: schemas.TypeAggregate, ID: a.ID, Name: a.Name},
		Elements:      els,
		ElementsCount: len(els),
		Actions: schemas.AggregateActions{
			Reset:          schemas.BulkResetAction{Target: base + "/Actions/Aggregate.Reset", AllowableResets: schemas.AllResetTypes},
			AddElements:    schemas.ActionTarget{Target: base + "/Actions/Aggregate.AddElements"},
			RemoveElements: schemas.ActionTarget{Target: base + "/Actions/Aggregate.RemoveElements"},
		},
	}
}

func (s *Server) getAggregates(c echo.Context) error {
	sc := scopeOf(c)
	ids, err := s.redis.ZRange(c.Request().Context(), aggIDs, 0, -1).Result()
	if err != nil {
		return unavailable(2, err.Error())
	}
	m := make([]schemas.Link, 0, len(ids))
	for _, id := range ids {
		m = append(m, schemas.Link{ODataID: sc.url("/AggregationService/Aggregates/" + id)})
	}
	return send(c, http.StatusOK, schemas.NewCollection(sc.url("/AggregationService/Aggregates"), schemas.TypeAggregateColl, "Aggregate Collection", m))
}

func (s *Server) getAggregate(c echo.Context) error {
	a, err := s.aggregateOf(c)
	if err != nil {
		return err
	}
	return send(c, http.StatusOK, s.renderAggregate(scopeOf(c), a))
}

// linkList is an array of resource links in a request body.
type linkList []struct {
	ODataID string `json:"@odata.id"`
}

// systemsOf resolves links to Systems the caller may see and the gateway
// manages into node ids (duplicates once, in order). what names the
// property or parameter for errors; action is the action, "" for a
// resource's property.
func (s *Server) systemsOf(c echo.Context, links linkList, what, action string) ([]string, error) {
	sc := scopeOf(c)
	prefix := sc.url("/Systems/")
	seen := map[string]bool{}
	var out []string
	for _, l := range links {
		uri := strings.TrimSuffix(l.ODataID, "/")
		id, ok := strings.CutPrefix(uri, prefix)
		if !ok || id == "" || strings.Contains(id, "/") {
			if action != "" {
				return nil, newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterValueError, what, action)).
					withDetail(fmt.Sprintf("%s: %q is not the link of a System (%s<id>)", what, l.ODataID, prefix))
			}
			return nil, newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyValueIncorrect, what, l.ODataID)).
				withDetail(fmt.Sprintf("%s: %q is not the link of a System (%s<id>)", what, l.ODataID, prefix))
		}
		if _, err := s.nodes.View(id); err != nil || !sc.visible(id) {
			return nil, newError(http.StatusBadRequest, schemas.Base(schemas.MsgResourceMissingAtURI, l.ODataID)).
				withDetail(fmt.Sprintf("%s: there is no System %s", what, l.ODataID))
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

func (s *Server) postAggregate(c echo.Context) error {
	if err := canOperate(c); err != nil {
		return err
	}
	body, err := readBody(c, s.bulkBodyBytes())
	if err != nil {
		return err
	}
	var p struct {
		Name     *string   `json:"Name"`
		Elements *linkList `json:"Elements"`
	}
	if err := decodeStrict(body, &p, decodeKind{}); err != nil {
		return err
	}
	if p.Elements == nil {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyMissing, "Elements"))
	}
	nodes, err := s.systemsOf(c, *p.Elements, "Elements", "")
	if err != nil {
		return err
	}
	id := "aggregate-" + newRef()
	name := id
	if p.Name != nil {
		if !aggregateID.MatchString(*p.Name) {
			return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyValueFormatError, *p.Name, "Name")).
				withDetail("Name: " + fmt.Sprintf("%q", *p.Name) + " must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit (it is the Aggregate's Id)")
		}
		id, name = *p.Name, *p.Name
	}
	ctx := c.Request().Context()
	argv := []any{id, name, nowMillis()}
	for _, n := range nodes {
		argv = append(argv, n)
	}
	ok, err := aggCreateScript.Run(ctx, s.redis, []string{aggIDs, aggNames, aggElements(id)}, argv...).Int()
	if err != nil {
		return unavailable(2, err.Error())
	}
	if ok == 0 {
		return newError(http.StatusConflict, schemas.Base(schemas.MsgResourceAlreadyExists, "Aggregate", "Name", name))
	}
	s.audit(ctx, auditOf(c, "aggregate-create", id, "created").with(fmt.Sprintf("%d elements", len(nodes))))
	a, err := s.loadAggregate(ctx, id)
	if err != nil {
		return unavailable(2, err.Error())
	}
	sc := scopeOf(c)
	c.Response().Header().Set("Location", sc.url("/AggregationService/Aggregates/"+id))
	return send(c, http.StatusCreated, s.renderAggregate(sc, a))
}

func (s *Server) deleteAggregate(c echo.Context) error {
	if err := canOperate(c); err != nil {
		return err
	}
	a, err := s.aggregateOf(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ok, err := aggDeleteScript.Run(ctx, s.redis, []string{aggIDs, aggNames, aggElements(a.ID)}, a.ID).Int()
	if err != nil {
		return unavailable(2, err.Error())
	}
	if ok == 0 {
		return notFound("Aggregate", a.ID)
	}
	s.audit(ctx, auditOf(c, "aggregate-delete", a.ID, "deleted"))
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) postAddElements(c echo.Context) error {
	return s.changeElements(c, true, "Aggregate.AddElements")
}

func (s *Server) postRemoveElements(c echo.Context) error {
	return s.changeElements(c, false, "Aggregate.RemoveElements")
}

// changeElements is AddElements (add) or RemoveElements. Added elements
// must be Systems the gateway manages; a removed one need not be (a node
// removed from the gateway can be removed from its aggregates).
func (s *Server) changeElements(c echo.Context, add bool, action string) error {
	if err := canOperate(c); err != nil {
		return err
	}
	a, err := s.aggregateOf(c)
	if err != nil {
		return err
	}
	body, err := readBody(c, s.bulkBodyBytes())
	if err != nil {
		return err
	}
	var p struct {
		Elements *linkList `json:"Elements"`
	}
	if err := decodeStrict(body, &p, decodeKind{action: action}); err != nil {
		return err
	}
	if p.Elements == nil {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterMissing, action, "Elements"))
	}
	var nodes []string
	if add {
		if nodes, err = s.systemsOf(c, *p.Elements, "Elements", action); err != nil {
			return err
		}
	} else {
		prefix := scopeOf(c).url("/Systems/")
		for _, l := range *p.Elements {
			id, ok := strings.CutPrefix(strings.TrimSuffix(l.ODataID, "/"), prefix)
			if !ok || !contains(a.Nodes, id) {
				return newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterValueError, "Elements", action)).
					withDetail(fmt.Sprintf("Elements: %q is not an element of aggregate %s", l.ODataID, a.ID))
			}
			nodes = append(nodes, id)
		}
	}
	ctx := c.Request().Context()
	argv := []any{a.ID, boolFlag(add)}
	for _, n := range nodes {
		argv = append(argv, n)
	}
	ok, err := aggChangeScript.Run(ctx, s.redis, []string{aggIDs, aggElements(a.ID)}, argv...).Int()
	if err != nil {
		return unavailable(2, err.Error())
	}
	if ok == 0 {
		return notFound("Aggregate", a.ID)
	}
	s.audit(ctx, auditOf(c, "aggregate-"+map[bool]string{true: "add", false: "remove"}[add], a.ID, "done").with(strings.Join(nodes, " ")))
	if a, err = s.loadAggregate(ctx, a.ID); err != nil {
		return unavailable(2, err.Error())
	}
	return send(c, http.StatusOK, s.renderAggregate(scopeOf(c), a))
}

func boolFlag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func contains(xs []string, x string) bool {
	i := sort.SearchStrings(xs, x)
	return i < len(xs) && xs[i] == x
}

// bulkBodyBytes bounds the body of the requests that list many Systems
// (an Aggregate's Elements, TargetURIs): about 50 bytes a System, so
// 10,000 nodes fit.
func (s *Server) bulkBodyBytes() int64 { return max(s.maxBody, 4<<20) }
