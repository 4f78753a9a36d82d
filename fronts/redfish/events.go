package redfish

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/events"
	"github.com/fishgate/fishgate/schemas"
)

// The EventService (DSP0266 §10 "Eventing"): push subscriptions
// (EventDestination) and the SSE stream (§10.5). Events come from the
// serializer through the shared Redis stream of package events; the
// per-node view (/bmc/<node>) sees only that node's events and subscribes
// to only those.

// sseKeepAlive is the default pause between SSE keep-alive comments.
const sseKeepAlive = 15 * time.Second

// Default bounds of the SSE streams open at once on one server.
const (
	DefaultMaxSSEStreams        = 256
	DefaultMaxSSEStreamsPerUser = 16
)

// sseRetryAfter is the Retry-After of a stream refused for the limits.
const sseRetryAfter = 10

// sseLimiter counts the SSE streams open on this server, in all and per
// account: each holds a goroutine, a Redis reader and a socket for as long
// as the client keeps it, so without a bound a few clients could hold
// them all (issue 10, item 6: 1,000 streams were held).
type sseLimiter struct {
	mu           sync.Mutex
	max, perUser int
	total        int
	users        map[string]int
}

func newSSELimiter(max, perUser int) *sseLimiter {
	if max <= 0 {
		max = DefaultMaxSSEStreams
	}
	if perUser <= 0 {
		perUser = DefaultMaxSSEStreamsPerUser
	}
	return &sseLimiter{max: max, perUser: perUser, users: map[string]int{}}
}

// acquire takes a stream for user, or says which limit it would pass.
func (l *sseLimiter) acquire(user string) (release func(), refused string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.users[user] >= l.perUser:
		return nil, fmt.Sprintf("account %s has %d SSE streams open, its limit (events.max_sse_streams_per_user); close one and retry", user, l.users[user])
	case l.total >= l.max:
		return nil, fmt.Sprintf("%d SSE streams are open on this gateway, its limit (events.max_sse_streams); retry later", l.total)
	}
	l.total++
	l.users[user]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.total--
			if l.users[user]--; l.users[user] <= 0 {
				delete(l.users, user)
			}
		})
	}, ""
}

func (s *Server) eventsEnabled(c echo.Context) error {
	if s.events == nil {
		return newError(http.StatusNotFound, schemas.Base(schemas.MsgResourceMissingAtURI, c.Request().URL.Path))
	}
	return nil
}

func (s *Server) getEventService(c echo.Context) error {
	if err := s.eventsEnabled(c); err != nil {
		return err
	}
	sc := scopeOf(c)
	return send(c, http.StatusOK, schemas.EventService{
		Resource:                     schemas.Resource{ODataID: sc.url("/EventService"), ODataType: schemas.TypeEventService, ID: "EventService", Name: "Event Service"},
		ServiceEnabled:               true,
		DeliveryRetryAttempts:        s.events.RetryAttempts(),
		DeliveryRetryIntervalSeconds: int((s.events.RetryInterval() + time.Second - 1) / time.Second),
		EventFormatTypes:             []string{"Event"},
		RegistryPrefixes:             events.RegistryPrefixes,
		ResourceTypes:                events.ResourceTypes,
		ServerSentEventURI:           sc.url("/EventService/SSE"),
		SSEFilterPropertiesSupported: schemas.SSEFilterProperties{
			EventFormatType: true, MessageID: true, OriginResource: true, RegistryPrefix: true, ResourceType: true,
		},
		Subscriptions: schemas.Link{ODataID: sc.url("/EventService/Subscriptions")},
		Status:        schemas.Status{State: "Enabled", Health: "OK"},
	})
}

func renderSubscription(sc scope, sub events.Subscription) schemas.EventDestination {
	nonNil := func(v []string) []string {
		if v == nil {
			return []string{}
		}
		return v
	}
	origins := []schemas.Link{}
	for _, o := range sub.OriginResources {
		origins = append(origins, schemas.Link{ODataID: sub.Base() + "/redfish/v1" + o})
	}
	health := "OK"
	if sub.State != "Enabled" {
		health = "Warning"
	}
	return schemas.EventDestination{
		Resource: schemas.Resource{ODataID: sc.url("/EventService/Subscriptions/" + sub.ID),
			ODataType: schemas.TypeEventDestination, ID: sub.ID, Name: "Event Subscription " + sub.ID},
		Destination:         sub.Destination,
		Context:             sub.Context,
		Protocol:            "Redfish",
		SubscriptionType:    "RedfishEvent",
		EventFormatType:     "Event",
		RegistryPrefixes:    nonNil(sub.RegistryPrefixes),
		ResourceTypes:       nonNil(sub.ResourceTypes),
		MessageIDs:          nonNil(sub.MessageIDs),
		OriginResources:     origins,
		DeliveryRetryPolicy: sub.RetryPolicy,
		HTTPHeaders:         []map[string]string{}, // may hold credentials: never shown
		Status:              schemas.Status{State: sub.State, Health: health},
	}
}

func (s *Server) getSubscriptions(c echo.Context) error {
	if err := s.eventsEnabled(c); err != nil {
		return err
	}
	sc := scopeOf(c)
	subs, err := s.events.Subscriptions(c.Request().Context())
	if err != nil {
		return unavailable(2, err.Error())
	}
	var m []schemas.Link
	for _, sub := range subs {
		if subVisible(sc, principalOf(c), sub) {
			m = append(m, schemas.Link{ODataID: sc.url("/EventService/Subscriptions/" + sub.ID)})
		}
	}
	return send(c, http.StatusOK, schemas.NewCollection(sc.url("/EventService/Subscriptions"),
		schemas.TypeEventDestinationColl, "Event Subscriptions", m))
}

// subscriptionRequest is the body of a subscription POST (EventDestination
// v1_16_0 properties the gateway implements).
type subscriptionRequest struct {
	Destination         *string             `json:"Destination"`
	Context             *string             `json:"Context"`
	Protocol            *string             `json:"Protocol"`
	SubscriptionType    *string             `json:"SubscriptionType"`
	EventFormatType     *string             `json:"EventFormatType"`
	RegistryPrefixes    []string            `json:"RegistryPrefixes"`
	ResourceTypes       []string            `json:"ResourceTypes"`
	MessageIDs          []string            `json:"MessageIds"`
	OriginResources     []schemas.Link      `json:"OriginResources"`
	DeliveryRetryPolicy *string             `json:"DeliveryRetryPolicy"`
	HTTPHeaders         []map[string]string `json:"HttpHeaders"`
	// EventTypes is deprecated (Event v1_3): accepted for older clients and
	// ignored; subscriptions filter by RegistryPrefixes and ResourceTypes.
	EventTypes []string `json:"EventTypes"`
}

var eventTypes = []string{"StatusChange", "ResourceUpdated", "ResourceAdded", "ResourceRemoved", "Alert", "MetricReport", "Other"}

// postSubscription creates a push subscription (DSP0266 §10.3): 201 and
// Location. The destination must pass the allow-list.
func (s *Server) postSubscription(c echo.Context) error {
	if err := s.eventsEnabled(c); err != nil {
		return err
	}
	if err := canOperate(c); err != nil {
		return err
	}
	body, err := readBody(c, s.maxBody)
	if err != nil {
		return err
	}
	var req subscriptionRequest
	if err := decodeStrict(body, &req, decodeKind{}); err != nil {
		return err
	}
	notInList := func(v, prop string) error {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyValueNotInList, v, prop))
	}
	switch {
	case req.Destination == nil:
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyMissing, "Destination"))
	case req.Protocol == nil:
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyMissing, "Protocol"))
	case *req.Protocol != "Redfish":
		return notInList(*req.Protocol, "Protocol")
	case req.SubscriptionType != nil && *req.SubscriptionType != "RedfishEvent":
		return notInList(*req.SubscriptionType, "SubscriptionType")
	case req.EventFormatType != nil && *req.EventFormatType != "Event":
		return notInList(*req.EventFormatType, "EventFormatType")
	}
	for _, t := range req.EventTypes {
		if !slices.Contains(eventTypes, t) {
			return notInList(t, "EventTypes")
		}
	}
	sc := scopeOf(c)
	if len(principalOf(c).Nodes) > 0 && sc.node == "" {
		// the aggregate stream carries every node's events
		return newError(http.StatusForbidden, schemas.Base(schemas.MsgInsufficientPrivilege)).
			withDetail("this account is limited to some nodes: subscribe through a node's own service (/bmc/<node>/redfish/v1/EventService/Subscriptions)")
	}
	sub := events.Subscription{
		Destination: *req.Destination, RegistryPrefixes: req.RegistryPrefixes, ResourceTypes: req.ResourceTypes,
		MessageIDs: req.MessageIDs, Node: sc.node, Owner: principalOf(c).User,
	}
	if req.Context != nil {
		sub.Context = *req.Context
	}
	if req.DeliveryRetryPolicy != nil {
		sub.RetryPolicy = *req.DeliveryRetryPolicy
		if sub.RetryPolicy == "" {
			return notInList("", "DeliveryRetryPolicy")
		}
	}
	for _, o := range req.OriginResources {
		p, err := events.OriginPath(o.ODataID)
		if err != nil {
			return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyValueFormatError, o.ODataID, "OriginResources")).withDetail(err.Error())
		}
		sub.OriginResources = append(sub.OriginResources, p)
	}
	for _, h := range req.HTTPHeaders {
		for k, v := range h {
			sub.Headers = append(sub.Headers, [2]string{k, v})
		}
	}
	ctx, cancel := withTimeout(c)
	defer cancel()
	sub, err = s.events.Subscribe(ctx, sub)
	if err != nil {
		return subscribeError(err)
	}
	s.log.InfoContext(c.Request().Context(), "event subscription created", "subscription", sub.ID, "destination", sub.Destination, "user", sub.Owner, "node", sub.Node)
	c.Response().Header().Set("Location", sc.url("/EventService/Subscriptions/"+sub.ID))
	return send(c, http.StatusCreated, renderSubscription(sc, sub))
}

// subscribeError maps the bus's refusals to Base registry messages.
func subscribeError(err error) error {
	var ie *events.InvalidError
	switch {
	case errors.As(err, &ie):
		var e *apiError
		switch ie.Kind {
		case events.Missing:
			e = newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyMissing, ie.Property))
		case events.NotInList:
			e = newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyValueNotInList, ie.Value, ie.Property))
		case events.Format:
			e = newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyValueFormatError, ie.Value, ie.Property))
		default:
			e = newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyValueIncorrect, ie.Property, ie.Value))
		}
		if ie.Reason != "" {
			e = e.withDetail(ie.Reason)
		}
		return e
	case errors.Is(err, events.ErrTooManyOwnerSubscriptions):
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgEventSubscriptionLimitExceeded)).
			withDetail("this account has as many event subscriptions as one account may (events.max_subscriptions_per_user); delete one first")
	case errors.Is(err, events.ErrTooManySubscriptions):
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgEventSubscriptionLimitExceeded))
	}
	return unavailable(2, err.Error())
}

// subscription loads the subscription named by :sub within scope.
func (s *Server) subscription(c echo.Context) (events.Subscription, error) {
	if err := s.eventsEnabled(c); err != nil {
		return events.Subscription{}, err
	}
	id := c.Param("sub")
	sub, err := s.events.Subscription(c.Request().Context(), id)
	if errors.Is(err, events.ErrNoSubscription) {
		return sub, notFound("EventDestination", id)
	}
	if err != nil {
		return sub, unavailable(2, err.Error())
	}
	if !subVisible(scopeOf(c), principalOf(c), sub) {
		return sub, notFound("EventDestination", id)
	}
	return sub, nil
}

func (s *Server) getSubscription(c echo.Context) error {
	sub, err := s.subscription(c)
	if err != nil {
		return err
	}
	return send(c, http.StatusOK, renderSubscription(scopeOf(c), sub))
}

// deleteSubscription ends a subscription: an Administrator any, an
// Operator its own (ConfigureSelf).
func (s *Server) deleteSubscription(c echo.Context) error {
	if err := canOperate(c); err != nil {
		return err
	}
	sub, err := s.subscription(c)
	if err != nil {
		return err
	}
	p := principalOf(c)
	if p.Role != RoleAdministrator && sub.Owner != p.User {
		return newError(http.StatusForbidden, schemas.Base(schemas.MsgInsufficientPrivilege))
	}
	err = s.events.Unsubscribe(c.Request().Context(), sub.ID)
	if errors.Is(err, events.ErrNoSubscription) {
		return notFound("EventDestination", sub.ID)
	}
	if err != nil {
		return unavailable(2, err.Error())
	}
	s.log.InfoContext(c.Request().Context(), "event subscription deleted", "subscription", sub.ID, "user", p.User)
	return c.NoContent(http.StatusNoContent)
}

// getSSE is the ServerSentEventUri (DSP0266 §10.5): text/event-stream, one
// SSE event per Redfish event, its id the stream id; Last-Event-ID resumes
// after that event; $filter selects. The stream opens with an id-only block
// (its position) and sends a keep-alive comment when idle. It ends when the
// client goes or the replica shuts down.
func (s *Server) getSSE(c echo.Context) error {
	if err := s.eventsEnabled(c); err != nil {
		return err
	}
	sc := scopeOf(c)
	raw := c.QueryParam("$filter")
	filter, err := events.ParseFilter(raw)
	if err != nil {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgQueryParameterValueFormatError, raw, "$filter")).
			withDetail("$filter: " + err.Error())
	}
	req := c.Request()
	after := strings.TrimSpace(req.Header.Get("Last-Event-ID"))
	if after != "" && !events.ValidID(after) {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgHeaderInvalid, "Last-Event-ID")).
			withDetail("Last-Event-ID " + after + " is not an event id of this service")
	}
	p := principalOf(c)
	release, refused := s.sse.acquire(p.User)
	if refused != "" {
		// 503 with Retry-After, as for any resource the service has run
		// out of for now; the message is the Base registry's for a
		// subscription (an SSE stream is one) over the implementation's
		// limit (writeError logs it)
		e := newError(http.StatusServiceUnavailable, schemas.Base(schemas.MsgEventSubscriptionLimitExceeded)).withDetail(refused)
		e.retryAfter = sseRetryAfter
		return e
	}
	defer release()
	ctx := req.Context()
	// The position is fixed before the response starts: once a client has
	// the headers, no later event is missed.
	f, err := s.events.Follow(ctx, after)
	if err != nil {
		return unavailable(2, err.Error())
	}
	defer f.Close()
	w := c.Response()
	// A stream outlives any server write timeout.
	_ = http.NewResponseController(w.Writer).SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The first block names the position the stream starts after. It has
	// no data, so it is not an event (WHATWG "dispatch the event" ignores
	// it), but it sets the client's last event id: a client that
	// reconnects before any event arrived resumes from here without loss.
	if _, err := fmt.Fprintf(w, "id: %s\n\n", f.Cursor()); err != nil {
		return nil
	}
	w.Flush()
	s.following.Add(1)
	defer s.following.Add(-1)
	keepAlive := s.sseKeepAlive
	lastWrite := time.Now()
	lastAuth, authorized := time.Now(), true
	var buf bytes.Buffer
	for {
		recs, err := f.Next(ctx, keepAlive)
		// the session is looked at once a second at most, not per batch
		// of events (two Redis reads per stream)
		if time.Since(lastAuth) >= time.Second {
			lastAuth = time.Now()
			authorized = s.stillAuthorized(ctx, p)
		}
		if !authorized {
			// logged out, or the account changed: the stream ends with
			// its session
			s.log.InfoContext(c.Request().Context(), "SSE stream closed: its session ended", "user", p.User, "session", p.Session)
			return nil
		}
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, events.ErrClosed) && !errors.Is(err, context.Canceled) {
				s.log.WarnContext(c.Request().Context(), "SSE stream ended", "err", err, "user", principalOf(c).User)
			}
			return nil
		}
		buf.Reset()
		for _, r := range recs {
			if (r.Node != "" && !sc.visible(r.Node)) || (sc.node != "" && r.Node != sc.node) || !filter.Match(r) {
				continue
			}
			data, err := json.Marshal(events.Payload(sc.base, "", r))
			if err != nil {
				continue
			}
			fmt.Fprintf(&buf, "id: %s\ndata: %s\n\n", r.ID, data)
		}
		if buf.Len() == 0 {
			if time.Since(lastWrite) < keepAlive {
				continue
			}
			buf.WriteString(": keep-alive\n\n")
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return nil
		}
		w.Flush()
		lastWrite = time.Now()
	}
}

// subVisible reports whether a subscription shows in scope sc to p: a
// node's own service shows that node's; an account limited to some nodes
// sees only subscriptions of nodes it may see.
func subVisible(sc scope, p principal, sub events.Subscription) bool {
	if sc.node != "" && sub.Node != sc.node {
		return false
	}
	if sub.Node == "" {
		return len(p.Nodes) == 0
	}
	return sc.visible(sub.Node)
}

// stillAuthorized reports whether a long-lived request's principal may
// still be served: its session exists (not logged out or expired) and its
// account has not changed since. Basic-authenticated streams are checked
// against the account alone.
func (s *Server) stillAuthorized(ctx context.Context, p principal) bool {
	if p.Session == "" {
		a, ok := s.accounts.get(p.User)
		return ok && a.Enabled && a.Role == p.Role
	}
	sess, err := s.sessions.Get(ctx, p.Session)
	if errors.Is(err, ErrNoSession) {
		return false
	}
	if err != nil {
		return true // Redis away: the stream's own reads fail soon enough
	}
	_, ok := s.accounts.Valid(sess.User, sess.Fingerprint)
	return ok
}
