package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DeliveryRetryPolicy values (EventDestination.DeliveryRetryPolicy).
const (
	SuspendRetries          = "SuspendRetries"
	TerminateAfterRetries   = "TerminateAfterRetries"
	RetryForever            = "RetryForever"
	RetryForeverWithBackoff = "RetryForeverWithBackoff"
)

// RetryPolicies are the DeliveryRetryPolicy values the deliverer applies.
var RetryPolicies = []string{SuspendRetries, TerminateAfterRetries, RetryForever, RetryForeverWithBackoff}

// Subscription is a push subscription (a Redfish EventDestination). It is
// stored in Redis, visible to every replica.
type Subscription struct {
	ID          string `json:"-"`
	Destination string `json:"destination"`
	Context     string `json:"context,omitempty"`
	// Filters: an empty list selects everything; all non-empty lists must
	// match (DSP0266 §10.3).
	RegistryPrefixes []string `json:"registry_prefixes,omitempty"`
	ResourceTypes    []string `json:"resource_types,omitempty"`
	MessageIDs       []string `json:"message_ids,omitempty"`
	// OriginResources are paths under the service root ("/Systems/n1").
	OriginResources []string `json:"origin_resources,omitempty"`
	// Node scopes a subscription made in a per-node view (/bmc/<node>):
	// only that node's events, with that view's URIs.
	Node        string      `json:"node,omitempty"`
	RetryPolicy string      `json:"retry_policy"`
	Headers     [][2]string `json:"headers,omitempty"`
	Owner       string      `json:"owner,omitempty"`
	// State is Enabled, or Disabled once delivery was suspended.
	State     string    `json:"state"`
	LastError string    `json:"last_error,omitempty"`
	Created   time.Time `json:"created"`
}

// Match reports whether the subscription wants r.
func (s Subscription) Match(r Record) bool {
	if s.Node != "" && r.Node != s.Node {
		return false
	}
	if len(s.RegistryPrefixes) > 0 && !slices.ContainsFunc(s.RegistryPrefixes, func(p string) bool { return strings.EqualFold(p, r.RegistryPrefix()) }) {
		return false
	}
	if len(s.ResourceTypes) > 0 && !slices.ContainsFunc(s.ResourceTypes, func(t string) bool { return strings.EqualFold(t, r.ResourceType()) }) {
		return false
	}
	if len(s.OriginResources) > 0 && !slices.Contains(s.OriginResources, r.Origin) {
		return false
	}
	if len(s.MessageIDs) > 0 && !slices.ContainsFunc(s.MessageIDs, func(m string) bool { return messageIDMatches(m, r.Message.MessageID) }) {
		return false
	}
	return true
}

// Base is the URL prefix of the view the subscription was made in.
func (s Subscription) Base() string {
	if s.Node == "" {
		return ""
	}
	return "/bmc/" + s.Node
}

// InvalidKind says what is wrong with a property of a request.
type InvalidKind int

// Kinds of InvalidError; each maps to one Base registry message.
const (
	Missing   InvalidKind = iota // PropertyMissing
	NotInList                    // PropertyValueNotInList
	Format                       // PropertyValueFormatError
	Refused                      // PropertyValueIncorrect (e.g. a destination not allowed)
)

// InvalidError is a subscription request the gateway refuses.
type InvalidError struct {
	Property string
	Value    string
	Kind     InvalidKind
	Reason   string
}

func (e *InvalidError) Error() string {
	if e.Reason != "" {
		return e.Reason
	}
	return fmt.Sprintf("%s: %q is not acceptable", e.Property, e.Value)
}

// ErrNoSubscription is returned for an unknown subscription id.
var ErrNoSubscription = errors.New("no such subscription")

// ErrTooManySubscriptions is returned when the limit is reached.
var ErrTooManySubscriptions = errors.New("too many subscriptions")

// ErrTooManyOwnerSubscriptions is returned when the subscription's owner
// has Options.MaxSubscriptionsPerOwner already; it is also an
// ErrTooManySubscriptions.
var ErrTooManyOwnerSubscriptions = fmt.Errorf("%w for one account", ErrTooManySubscriptions)

var headerNameRe = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// forbiddenHeaders are set by the gateway itself.
var forbiddenHeaders = []string{"Host", "Content-Length", "Content-Type", "Transfer-Encoding", "Connection", "Upgrade", "Te", "Trailer", "Keep-Alive", "Proxy-Connection"}

// validate checks everything but the destination's address (Subscribe has
// set the default RetryPolicy).
func (s *Subscription) validate() error {
	if s.Destination == "" {
		return &InvalidError{Property: "Destination", Kind: Missing}
	}
	if !slices.Contains(RetryPolicies, s.RetryPolicy) {
		return &InvalidError{Property: "DeliveryRetryPolicy", Value: s.RetryPolicy, Kind: NotInList}
	}
	for _, p := range s.RegistryPrefixes {
		if !slices.ContainsFunc(RegistryPrefixes, func(x string) bool { return strings.EqualFold(x, p) }) {
			return &InvalidError{Property: "RegistryPrefixes", Value: p, Kind: NotInList}
		}
	}
	for _, t := range s.ResourceTypes {
		if !slices.ContainsFunc(ResourceTypes, func(x string) bool { return strings.EqualFold(x, t) }) {
			return &InvalidError{Property: "ResourceTypes", Value: t, Kind: NotInList}
		}
	}
	for _, m := range s.MessageIDs {
		if strings.Count(m, ".") < 1 || strings.HasPrefix(m, ".") || strings.HasSuffix(m, ".") {
			return &InvalidError{Property: "MessageIds", Value: m, Kind: Format,
				Reason: fmt.Sprintf("MessageIds: %q is not Registry[.Major.Minor].Key", m)}
		}
	}
	for _, h := range s.Headers {
		if !headerNameRe.MatchString(h[0]) || strings.ContainsAny(h[1], "\r\n\x00") {
			return &InvalidError{Property: "HttpHeaders", Value: h[0], Kind: Format}
		}
		if slices.Contains(forbiddenHeaders, http.CanonicalHeaderKey(h[0])) {
			return &InvalidError{Property: "HttpHeaders", Value: h[0], Kind: Refused,
				Reason: fmt.Sprintf("HttpHeaders: %s is set by the gateway", h[0])}
		}
	}
	return nil
}

// createScript stores a new subscription and its cursor (the stream's
// last id: it gets the events that follow) in one step.
// KEYS: subs, cursors, stream, seq. ARGV: json, limit, owner, the
// owner's limit. Returns the id, "" when the limit is reached, or "-" when
// the owner's is (the owner's subscriptions are counted in the script, so
// that replicas creating at once cannot together exceed it).
var createScript = redis.NewScript(`
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[2]) then return '' end
if ARGV[3] ~= '' then
  local n = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
    local ok, s = pcall(cjson.decode, v)
    if ok and type(s) == 'table' and s['owner'] == ARGV[3] then n = n + 1 end
  end
  if n >= tonumber(ARGV[4]) then return '-' end
end
local id = tostring(redis.call('INCR', KEYS[4]))
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local cursor = '0-0'
if #last > 0 then cursor = last[1][1] end
redis.call('HSET', KEYS[1], id, ARGV[1])
redis.call('HSET', KEYS[2], id, cursor)
return id
`)

// Subscribe validates and stores a subscription; s.ID, State and Created
// are set by the bus. The destination is checked against the allow-list,
// resolving its host name.
func (b *Bus) Subscribe(ctx context.Context, s Subscription) (Subscription, error) {
	if s.RetryPolicy == "" {
		s.RetryPolicy = b.opts.RetryPolicy
	}
	if err := s.validate(); err != nil {
		return Subscription{}, err
	}
	if _, err := b.allow.CheckDestination(ctx, b.opts.Resolver, s.Destination); err != nil {
		return Subscription{}, err
	}
	s.State, s.Created, s.LastError = "Enabled", b.opts.Clock().UTC(), ""
	raw, err := json.Marshal(s)
	if err != nil {
		return Subscription{}, err
	}
	id, err := b.run.Run(ctx, createScript, []string{keySubs, keyCursors, keyStream, keySeq}, string(raw), b.opts.MaxSubscriptions, s.Owner, b.opts.MaxSubscriptionsPerOwner).Text()
	if err != nil {
		return Subscription{}, fmt.Errorf("store subscription: %w", err)
	}
	switch id {
	case "":
		return Subscription{}, ErrTooManySubscriptions
	case "-":
		return Subscription{}, ErrTooManyOwnerSubscriptions
	}
	s.ID = id
	b.poke()
	return s, nil
}

// Subscription reads one subscription.
func (b *Bus) Subscription(ctx context.Context, id string) (Subscription, error) {
	raw, err := b.rdb.HGet(ctx, keySubs, id).Result()
	if errors.Is(err, redis.Nil) {
		return Subscription{}, ErrNoSubscription
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("read subscription %s: %w", id, err)
	}
	return decodeSub(id, raw)
}

func decodeSub(id, raw string) (Subscription, error) {
	var s Subscription
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return Subscription{}, fmt.Errorf("subscription %s: %w", id, err)
	}
	s.ID = id
	return s, nil
}

// Subscriptions lists every subscription, by id.
func (b *Bus) Subscriptions(ctx context.Context) ([]Subscription, error) {
	m, err := b.rdb.HGetAll(ctx, keySubs).Result()
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	out := make([]Subscription, 0, len(m))
	for id, raw := range m {
		s, err := decodeSub(id, raw)
		if err != nil {
			b.log.Warn("unreadable subscription", "subscription", id, "err", err)
			continue
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return idLess(out[i].ID, out[j].ID) })
	return out, nil
}

func idLess(a, b string) bool {
	x, errA := strconv.Atoi(a)
	y, errB := strconv.Atoi(b)
	if errA == nil && errB == nil {
		return x < y
	}
	return a < b
}

// Unsubscribe deletes a subscription and its cursor.
func (b *Bus) Unsubscribe(ctx context.Context, id string) error {
	var n *redis.IntCmd
	_, err := b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		n = p.HDel(ctx, keySubs, id)
		p.HDel(ctx, keyCursors, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete subscription %s: %w", id, err)
	}
	if n.Val() == 0 {
		return ErrNoSubscription
	}
	b.poke()
	return nil
}
