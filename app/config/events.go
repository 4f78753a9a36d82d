package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// Events configures the EventService (docs/architecture.md#events).
type Events struct {
	// AllowDestinations are the CIDRs ("10.20.0.0/16"), addresses and exact
	// host names that push subscriptions may send to besides public
	// addresses. Loopback, link-local, private, multicast and other
	// non-public addresses are refused unless listed (default: none).
	AllowDestinations []string `yaml:"allow_destinations"`
	// DeliveryRetryAttempts is how many times a failed event POST is
	// retried before the subscription's DeliveryRetryPolicy applies (default 3).
	DeliveryRetryAttempts int `yaml:"delivery_retry_attempts"`
	// DeliveryRetryInterval is the pause before the first retry, doubling
	// for each further one up to 5m (default 10s).
	DeliveryRetryInterval Duration `yaml:"delivery_retry_interval"`
	// DeliveryRetryPolicy applies to subscriptions that name none:
	// SuspendRetries (default: the subscription is disabled),
	// TerminateAfterRetries (deleted), RetryForever, RetryForeverWithBackoff.
	DeliveryRetryPolicy string `yaml:"delivery_retry_policy"`
	// MaxSubscriptions bounds the push subscriptions (default 100).
	MaxSubscriptions int `yaml:"max_subscriptions"`
	// MaxSubscriptionsPerUser bounds the push subscriptions one account
	// owns, counted across replicas (default 10).
	MaxSubscriptionsPerUser int `yaml:"max_subscriptions_per_user"`
	// MaxSSEStreams bounds the SSE streams open at once on one gateway
	// process (default 256).
	MaxSSEStreams int `yaml:"max_sse_streams"`
	// MaxSSEStreamsPerUser bounds the SSE streams one account has open at
	// once on one gateway process (default 16).
	MaxSSEStreamsPerUser int `yaml:"max_sse_streams_per_user"`
	// StreamMaxLen is about how many events Redis keeps for SSE resumption
	// (Last-Event-ID) and delivery (default 100000).
	StreamMaxLen int64 `yaml:"stream_max_len"`
	// SSEKeepAlive is the pause between keep-alive comments on an idle SSE
	// stream (default 15s).
	SSEKeepAlive Duration `yaml:"sse_keep_alive"`
}

// RetryPolicies are the DeliveryRetryPolicy values.
var RetryPolicies = []string{"SuspendRetries", "TerminateAfterRetries", "RetryForever", "RetryForeverWithBackoff"}

func defaultEvents() Events {
	return Events{
		DeliveryRetryAttempts: 3, DeliveryRetryInterval: Duration(10 * time.Second),
		DeliveryRetryPolicy: "SuspendRetries", MaxSubscriptions: 100, StreamMaxLen: 100000,
		MaxSubscriptionsPerUser: 10, MaxSSEStreams: 256, MaxSSEStreamsPerUser: 16,
		SSEKeepAlive: Duration(15 * time.Second),
	}
}

var destHostRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$`)

func (e Events) validate(bad func(field, format string, a ...any)) {
	for i, d := range e.AllowDestinations {
		d = strings.TrimSpace(d)
		if _, err := netip.ParsePrefix(d); err == nil {
			continue
		}
		if ip, err := netip.ParseAddr(d); err == nil && ip.Zone() == "" {
			continue
		}
		if !destHostRe.MatchString(d) || !strings.ContainsAny(strings.ToLower(d), "abcdefghijklmnopqrstuvwxyz") || numericLastLabel(d) {
			bad(fmt.Sprintf("events.allow_destinations[%d]", i), "%q is not a CIDR, an IP address or a host name", d)
		}
	}
	if e.DeliveryRetryAttempts < 0 || e.DeliveryRetryAttempts > 100 {
		bad("events.delivery_retry_attempts", "%d is out of range 0..100", e.DeliveryRetryAttempts)
	}
	if e.DeliveryRetryInterval < Duration(time.Second) || e.DeliveryRetryInterval > Duration(time.Hour) {
		bad("events.delivery_retry_interval", "%s is out of range 1s..1h", time.Duration(e.DeliveryRetryInterval))
	}
	if !contains(RetryPolicies, e.DeliveryRetryPolicy) {
		bad("events.delivery_retry_policy", "%q is not one of %s", e.DeliveryRetryPolicy, strings.Join(RetryPolicies, ", "))
	}
	if e.MaxSubscriptions < 1 || e.MaxSubscriptions > 10000 {
		bad("events.max_subscriptions", "%d is out of range 1..10000", e.MaxSubscriptions)
	}
	if e.MaxSubscriptionsPerUser < 1 || e.MaxSubscriptionsPerUser > 10000 {
		bad("events.max_subscriptions_per_user", "%d is out of range 1..10000", e.MaxSubscriptionsPerUser)
	}
	if e.MaxSSEStreams < 1 || e.MaxSSEStreams > 100000 {
		bad("events.max_sse_streams", "%d is out of range 1..100000", e.MaxSSEStreams)
	}
	if e.MaxSSEStreamsPerUser < 1 || e.MaxSSEStreamsPerUser > 100000 {
		bad("events.max_sse_streams_per_user", "%d is out of range 1..100000", e.MaxSSEStreamsPerUser)
	}
	if e.StreamMaxLen < 1000 {
		bad("events.stream_max_len", "%d is too small (at least 1000)", e.StreamMaxLen)
	}
	if e.SSEKeepAlive < Duration(time.Second) || e.SSEKeepAlive > Duration(5*time.Minute) {
		bad("events.sse_keep_alive", "%s is out of range 1s..5m", time.Duration(e.SSEKeepAlive))
	}
}

// numericLastLabel reports whether a name ends in a number ("0x7f.1",
// "2130706433"): resolvers read it as an IPv4 address, so it is not a host
// name (events.numericHost).
func numericLastLabel(d string) bool {
	d = strings.TrimSuffix(d, ".")
	last := strings.ToLower(d[strings.LastIndex(d, ".")+1:])
	if strings.HasPrefix(last, "0x") {
		return strings.Trim(last[2:], "0123456789abcdef") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}
