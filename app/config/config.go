// Package config is fishgate's one configuration struct: its documented
// defaults, loading from YAML, and validation with errors that name the
// offending field.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	ipmibackend "github.com/fishgate/fishgate/backends/ipmi"
)

// Config is everything `fishgate serve` needs. Zero values take the
// defaults of Default().
type Config struct {
	// Listen is the Redfish API's address (default 127.0.0.1:8000).
	Listen string `yaml:"listen"`
	// DebugListen, when set, serves Go's runtime profiles (net/http/pprof,
	// /debug/pprof/) on this host:port, a listener of its own: never on the
	// API's. Profiles show memory contents (tokens, passwords), so it must
	// be a loopback address; reach it with an SSH tunnel. Default: off.
	DebugListen string `yaml:"debug_listen"`
	// Metrics is where the Prometheus metrics (/metrics) are served and
	// whether a scrape must log in (metrics.go).
	Metrics Metrics `yaml:"metrics"`
	// TLS is how the Redfish API is served: HTTPS with the configured
	// certificate, else with a self-signed one the gateway makes and keeps
	// (tls.dir, and Redis when shared); plain HTTP only with tls.disabled.
	TLS TLS `yaml:"tls"`
	// TrustedProxies are the addresses or CIDRs of reverse proxies whose
	// X-Forwarded-For names the client (audit, logs, per-client limits).
	// Default none: the client is the socket's peer, whatever headers say.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Limits bound timeouts, header and body sizes and connections.
	Limits Limits `yaml:"limits"`
	// RedisURL is a redis://, rediss:// or unix:// URL of one standalone
	// Redis shared by every replica: the short form of the redis block.
	// With neither, an embedded Redis runs (single replica, state lost on
	// exit).
	RedisURL string `yaml:"redis_url"`
	// Redis is the Redis in full: Sentinel, Cluster, TLS, replicas'
	// acknowledgements (redis.go).
	Redis Redis `yaml:"redis"`
	// SessionTimeout is the Redfish session idle timeout (default 30m).
	SessionTimeout Duration `yaml:"session_timeout"`
	// SyncInterval is how often every node's power state is re-read (default 30s).
	SyncInterval Duration `yaml:"sync_interval"`
	// MaxBodyBytes bounds request bodies (default 65536).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// Admission is how each node treats overlapping power requests.
	Admission Admission `yaml:"admission"`
	// MaxPowerOnPerSecond bounds, fleet-wide, the power commands that can
	// switch a machine on (On, ForceOn, PowerCycle, a PushPowerButton of a
	// machine not known On, the On phase of an emulated restart or cycle):
	// over every node, request and replica sharing the Redis, one such
	// command is sent at most every 1/rate seconds (inrush control; 0, the
	// default: no bound).
	MaxPowerOnPerSecond float64 `yaml:"max_power_on_per_second"`
	// LeaseTTL is the time-to-live of a node's lease and of the event
	// deliverer's: a dead replica's nodes and event delivery are taken over
	// within it (default 6s).
	LeaseTTL Duration `yaml:"lease_ttl"`
	// ShutdownTimeout bounds the drain at SIGTERM or SIGINT: open requests
	// and running actions get this long to finish; then the actions still
	// running are handed over to another replica (default 30s).
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// Retries is how often a failed or ignored BMC command is re-sent (default 2).
	Retries int `yaml:"retries"`
	// Tasks bounds the finished tasks kept per node.
	Tasks Tasks `yaml:"tasks"`
	// AccountService is the password, lockout and session policy.
	AccountService AccountService `yaml:"account_service"`
	// SyncConcurrency bounds the power sweep's BMC reads in all, and
	// SyncPerBackend per backend kind (defaults 16 and 8).
	SyncConcurrency int `yaml:"sync_concurrency"`
	SyncPerBackend  int `yaml:"sync_per_backend"`
	// VerifyTimeout bounds the wait for a node to show the target state
	// after a forced command, per attempt (default 60s).
	VerifyTimeout Duration `yaml:"verify_timeout"`
	// SoftOffTimeout bounds a soft off (GracefulShutdown, the soft-off
	// phase of an emulated GracefulRestart) and the time a native
	// GracefulRestart gets to show its Off phase (default 300s). A soft
	// off is never re-sent.
	SoftOffTimeout Duration `yaml:"soft_off_timeout"`
	// SoftOffFallback is what happens when a soft off does not reach Off
	// in time: fail (default: the task ends Exception) or force (ForceOff
	// follows). Nodes may override it.
	SoftOffFallback string `yaml:"soft_off_fallback"`
	// RestartEvidence is how long a restart (ForceRestart, PowerCycle)
	// that the BMC accepted is watched for the node going through Off once
	// it reads On (default 10s). Without that evidence the task ends
	// Completed with a Warning saying so.
	RestartEvidence Duration `yaml:"restart_evidence"`
	// Accounts may log in to the Redfish API. At least one is required.
	Accounts []Account `yaml:"accounts"`
	// Nodes are the machines the gateway manages from the start; more are
	// enrolled at runtime over the AggregationService.
	Nodes []Node `yaml:"nodes"`
	// SecretsKeyFile holds the key that encrypts the BMC passwords of
	// runtime-enrolled nodes in Redis (AES-256-GCM): 32 bytes, written as
	// 64 hex digits or as base64 (a trailing newline is ignored); every
	// replica must have the same (secrets.go). Without it, enrolment at
	// runtime is refused rather than storing passwords in clear.
	SecretsKeyFile string `yaml:"secrets_key_file"`
	// Events configures the EventService (events.go).
	Events Events `yaml:"events"`
	// Fronts gives nodes addresses (and host names) of their own, at which
	// each looks like a BMC by itself (fronts.go).
	Fronts Fronts `yaml:"fronts"`
}

// Tasks is the retention of finished tasks.
type Tasks struct {
	// Keep finished tasks per node (default 100).
	Keep int `yaml:"keep"`
	// KeepFor is how long a finished task is kept at most (default 24h).
	KeepFor Duration `yaml:"keep_for"`
	// KeepTotal bounds the tasks kept in all, over every node (default
	// 100000): 10,000 nodes at keep 100 would otherwise hold a million.
	KeepTotal int `yaml:"keep_total"`
}

// Admission configures the serializer (docs/architecture.md#admission).
type Admission struct {
	// Policy is now-next (default), queue, supersede or reject.
	Policy string `yaml:"policy"`
	// QueueMax bounds the waiting actions of the queue policy (default 8).
	QueueMax int `yaml:"queue_max"`
	// FlipLimit conflicting changes per node within FlipWindow are allowed;
	// more are refused with 429 and Retry-After (default 10 per 1m; 0 = off).
	FlipLimit  int      `yaml:"flip_limit"`
	FlipWindow Duration `yaml:"flip_window"`
	// Precedence ranks ResetTypes: a request that outranks the running
	// action cancels it (default ForceOff: 2, GracefulShutdown: 1, others 0).
	Precedence map[string]int `yaml:"precedence"`
}

// TLS configures HTTPS.
type TLS struct {
	// Cert and Key are PEM files; they are read again on SIGHUP.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// Dir is where the self-signed certificate made without Cert and Key
	// is kept, fishgate-selfsigned.pem (key and certificate, mode 0600)
	// and fishgate-selfsigned.crt (the certificate, for clients to trust).
	// Default: the config file's directory. With a shared Redis the pair
	// is kept in Redis as well, so that every replica presents the same.
	Dir string `yaml:"dir"`
	// Disabled serves plain HTTP (warned about on a non-loopback address).
	Disabled bool `yaml:"disabled"`
	// MinVersion is the oldest TLS version accepted: 1.2 (default) or 1.3.
	MinVersion string `yaml:"min_version"`
}

// Account is a local Redfish account. Password may be a bcrypt hash.
type Account struct {
	User string `yaml:"user"`
	// Password, or PasswordFile naming a file that holds it; "${NAME}"
	// takes it from the environment (secretref.go).
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// Role is Administrator (default), Operator or ReadOnly.
	Role string `yaml:"role"`
	// Nodes limits the account to the nodes whose ids match one of these
	// shell patterns ("rack1-*"); empty: every node. Other nodes are
	// invisible to it.
	Nodes []string `yaml:"nodes"`
}

// AccountService is the account policy (as a BMC's AccountService).
type AccountService struct {
	// MinPasswordLength of accounts created or changed over Redfish (default 8).
	MinPasswordLength int `yaml:"min_password_length"`
	// LockoutThreshold failed logins within LockoutResetAfter lock the
	// account for LockoutDuration, on every replica (defaults 10, 5m, 5m;
	// threshold 0 = never).
	LockoutThreshold  int      `yaml:"lockout_threshold"`
	LockoutDuration   Duration `yaml:"lockout_duration"`
	LockoutResetAfter Duration `yaml:"lockout_reset_after"`
	// MaxSessionsPerUser bounds one user's open sessions (default 64).
	MaxSessionsPerUser int `yaml:"max_sessions_per_user"`
}

// Node is one managed machine and how to reach its BMC.
type Node struct {
	// ID names the node in URLs: /redfish/v1/Systems/<id>, /bmc/<id>/redfish/v1.
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Backend is the BMC protocol: redfish, amt or ipmi.
	Backend string `yaml:"backend"`
	// Address is the BMC's address (redfish: https://host[:port]; amt:
	// http://host:16992 or https://host:16993; ipmi: host, host:port or
	// ipmi://host[:port], UDP port 623 by default).
	Address string `yaml:"address"`
	User    string `yaml:"user"`
	// Password, or PasswordFile naming a file that holds it; "${NAME}"
	// takes it from the environment (secretref.go). The file's name is not
	// kept with a node enrolled at runtime (json:"-"): only its password.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file" json:"-"`
	// ReassertDesired makes the power sync bring the node back to its
	// desired state when it drifted (default false: Ironic and MAAS re-assert
	// their own, and the gateway does not fight them).
	ReassertDesired bool `yaml:"reassert_desired"`
	// Policy overrides admission.policy for this node.
	Policy string `yaml:"policy"`
	// SoftOffFallback overrides soft_off_fallback for this node (fail or
	// force). With force, a BMC without a soft off also offers the graceful
	// ResetTypes, carried out forced.
	SoftOffFallback string `yaml:"soft_off_fallback"`
	// Insecure turns TLS certificate verification off for this BMC.
	Insecure bool `yaml:"insecure"`
	// SystemID picks the ComputerSystem on a Redfish BMC with several
	// ("/redfish/v1/Systems/1" or "1"); empty = the first member.
	SystemID string `yaml:"system_id"`
	// CipherSuite is the ipmi backend's RMCP+ cipher suite (3, 17, ...);
	// 0 takes the strongest the BMC offers.
	CipherSuite int `yaml:"cipher_suite"`
	// IPMIInterface is the ipmi backend's protocol: lanplus (IPMI 2.0,
	// default) or lan (IPMI 1.5).
	IPMIInterface string `yaml:"ipmi_interface"`
	// IPMIListen, when set, makes the gateway answer IPMI over LAN for this
	// node (any backend) on this UDP address, "0.0.0.0:623" or
	// "127.0.0.1:6231": ipmitool power on/off/soft/reset/cycle/diag become
	// admissions, power status reads the node's state, bootdev sets its boot
	// override.
	IPMIListen string `yaml:"ipmi_listen"`
	// BMCAddress is the node's own IP address (optional): a Redfish
	// request or IPMI packet to it reaches this node alone, which looks
	// like a BMC of its own there (/redfish/v1 holds this node only).
	// Without it the node takes the next free address of
	// fronts.address_pool, if there is one (fronts.go); zero: none.
	BMCAddress netip.Addr `yaml:"bmc_address"`
	// IPMIUser and IPMIPassword are that IPMI front's account (at most 16
	// and 20 bytes); required with ipmi_listen.
	IPMIUser string `yaml:"ipmi_user"`
	// IPMIAllowV15 lets that IPMI front accept IPMI v1.5 sessions
	// ("ipmitool -I lan": MD5, no encryption); off by default (lanplus only).
	IPMIAllowV15 bool   `yaml:"ipmi_allow_v15"`
	IPMIPassword string `yaml:"ipmi_password"`
	// IPMIPasswordFile names a file holding IPMIPassword.
	IPMIPasswordFile string `yaml:"ipmi_password_file" json:"-"`
}

// Backends this build supports.
var Backends = []string{"redfish", "amt", "ipmi"}

// Policies are the admission policies.
var Policies = []string{"now-next", "queue", "supersede", "reject"}

// ResetTypes are the Redfish ResetTypes (for the precedence table).
var ResetTypes = []string{"On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "ForceOn", "PushPowerButton", "PowerCycle"}

// Roles accepted for accounts.
var Roles = []string{"Administrator", "Operator", "ReadOnly"}

// Duration is a time.Duration written as "30s", "5m" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		// A TypeError lets the decoder go on and report the other fields
		// too; the backquotes let Parse find the field (load.go).
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: `%s` is not a duration (use 30s, 5m, 1h)", n.Line, s)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Default is the configuration in effect where the file says nothing.
func Default() Config {
	return Config{
		Listen:          "127.0.0.1:8000",
		SessionTimeout:  Duration(30 * time.Minute),
		SyncInterval:    Duration(30 * time.Second),
		MaxBodyBytes:    64 << 10,
		LeaseTTL:        Duration(6 * time.Second),
		ShutdownTimeout: Duration(30 * time.Second),
		Retries:         2,
		VerifyTimeout:   Duration(time.Minute),
		SoftOffTimeout:  Duration(5 * time.Minute),
		SoftOffFallback: "fail",
		RestartEvidence: Duration(10 * time.Second),
		Tasks:           Tasks{Keep: 100, KeepFor: Duration(24 * time.Hour), KeepTotal: 100000},
		AccountService: AccountService{MinPasswordLength: 8, LockoutThreshold: 10, LockoutDuration: Duration(5 * time.Minute),
			LockoutResetAfter: Duration(5 * time.Minute), MaxSessionsPerUser: 64},
		SyncConcurrency: 16,
		SyncPerBackend:  8,
		Admission: Admission{
			Policy: "now-next", QueueMax: 8, FlipLimit: 10, FlipWindow: Duration(time.Minute),
			Precedence: map[string]int{"ForceOff": 2, "GracefulShutdown": 1},
		},
		Events: defaultEvents(),
		Limits: defaultLimits(),
		TLS:    TLS{MinVersion: "1.2"},
		Redis:  defaultRedis(),
		Fronts: defaultFronts(),
	}
}

// Load reads a YAML file over the defaults and validates it. Unknown keys
// are errors (a typo must not be silently ignored). Every problem is
// reported, each with its line and field (load.go).
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := Parse(b)
	if err != nil {
		return c, err
	}
	if c.TLS.SelfSigned() && c.TLS.Dir == "" {
		if abs, err := filepath.Abs(path); err == nil {
			c.TLS.Dir = filepath.Dir(abs)
		}
	}
	return c, nil
}

// Parse decodes YAML over the defaults, resolves the secrets it refers to
// (secretref.go) and validates. Its error is Problems: all of them.
func Parse(b []byte) (Config, error) {
	c := Default()
	lines, problems, err := decodeFile(b, &c)
	if err != nil {
		return Config{}, err
	}
	c.embeddedDefaults(lines)
	c.resolveSecrets(os.LookupEnv, func(field, format string, a ...any) {
		problems = append(problems, &FieldError{Field: field, Problem: fmt.Sprintf(format, a...)})
	})
	var vp Problems
	if err := c.Validate(); errors.As(err, &vp) {
		problems = append(problems, vp...)
	} else if err != nil {
		problems = append(problems, err)
	}
	if len(problems) > 0 {
		return Config{}, Problems(placed(problems, lines))
	}
	return c, nil
}

// EmbeddedKeep is what the embedded Redis keeps where the file does not
// say (tasks.keep_total, events.stream_max_len): its data lives in the
// gateway's own memory, under the limit fishgate serve gives the Go
// runtime, and 100,000 tasks and 100,000 events (the defaults for a Redis
// server) would take some 170 MB there (about 1.1 KB a task and 0.6 KB an
// event in a heap profile at 10,000 nodes), on top of a live heap that
// already left the collector running almost without pause.
const EmbeddedKeep = 20000

// embeddedDefaults applies EmbeddedKeep to the settings the file leaves
// out (lines: the paths it sets) when the Redis is the embedded one.
func (c *Config) embeddedDefaults(lines map[string]int) {
	if !c.EmbeddedRedis() {
		return
	}
	if _, set := lines["tasks.keep_total"]; !set {
		c.Tasks.KeepTotal = EmbeddedKeep
	}
	if _, set := lines["events.stream_max_len"]; !set {
		c.Events.StreamMaxLen = EmbeddedKeep
	}
}

var idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate checks every field and returns all problems (Problems of
// FieldErrors), each naming its field.
func (c *Config) Validate() error {
	var errs Problems
	bad := func(field, format string, a ...any) {
		errs = append(errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, a...)})
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q is not host:port", c.Listen)
	}
	c.validateDebugListen(bad)
	c.validateMetrics(bad)
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls", "cert and key must be given together")
	}
	for _, f := range []struct{ name, path string }{{"tls.cert", c.TLS.Cert}, {"tls.key", c.TLS.Key}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				bad(f.name, "%v", err)
			}
		}
	}
	c.validateRedis(bad)
	if c.SessionTimeout < Duration(time.Minute) {
		bad("session_timeout", "%s is too short (at least 1m)", time.Duration(c.SessionTimeout))
	}
	if c.SyncInterval < Duration(time.Second) {
		bad("sync_interval", "%s is too short (at least 1s)", time.Duration(c.SyncInterval))
	}
	if c.MaxBodyBytes < 1024 {
		bad("max_body_bytes", "%d is too small (at least 1024)", c.MaxBodyBytes)
	}
	if !contains(Policies, c.Admission.Policy) {
		bad("admission.policy", "%q is not one of %s", c.Admission.Policy, strings.Join(Policies, ", "))
	}
	if c.MaxPowerOnPerSecond < 0 || c.MaxPowerOnPerSecond > 100000 {
		bad("max_power_on_per_second", "%g is out of range 0..100000 (0: no bound)", c.MaxPowerOnPerSecond)
	}
	if c.Admission.QueueMax < 1 || c.Admission.QueueMax > 1000 {
		bad("admission.queue_max", "%d is out of range 1..1000", c.Admission.QueueMax)
	}
	if c.Admission.FlipLimit < 0 {
		bad("admission.flip_limit", "%d is negative", c.Admission.FlipLimit)
	}
	if c.Admission.FlipLimit > 0 && c.Admission.FlipWindow < Duration(time.Second) {
		bad("admission.flip_window", "%s is too short (at least 1s)", time.Duration(c.Admission.FlipWindow))
	}
	for k, v := range c.Admission.Precedence {
		if !contains(ResetTypes, k) {
			bad("admission.precedence."+k, "not a ResetType (%s)", strings.Join(ResetTypes, ", "))
		}
		if v < 0 {
			bad("admission.precedence."+k, "%d is negative", v)
		}
	}
	if c.LeaseTTL < Duration(time.Second) {
		bad("lease_ttl", "%s is too short (at least 1s)", time.Duration(c.LeaseTTL))
	}
	if c.ShutdownTimeout < Duration(time.Second) || c.ShutdownTimeout > Duration(time.Hour) {
		bad("shutdown_timeout", "%s is out of range 1s..1h", time.Duration(c.ShutdownTimeout))
	}
	if c.Tasks.Keep < 1 || c.Tasks.Keep > 100000 {
		bad("tasks.keep", "%d is out of range 1..100000", c.Tasks.Keep)
	}
	if c.Tasks.KeepTotal < 1 || c.Tasks.KeepTotal > 10000000 {
		bad("tasks.keep_total", "%d is out of range 1..10000000", c.Tasks.KeepTotal)
	}
	if c.Tasks.KeepFor < Duration(time.Minute) {
		bad("tasks.keep_for", "%s is too short (at least 1m)", time.Duration(c.Tasks.KeepFor))
	}
	if c.SyncConcurrency < 1 || c.SyncConcurrency > 10000 {
		bad("sync_concurrency", "%d is out of range 1..10000", c.SyncConcurrency)
	}
	if c.SyncPerBackend < 1 || c.SyncPerBackend > 10000 {
		bad("sync_per_backend", "%d is out of range 1..10000", c.SyncPerBackend)
	}
	if c.VerifyTimeout < Duration(time.Second) {
		bad("verify_timeout", "%s is too short (at least 1s)", time.Duration(c.VerifyTimeout))
	}
	if c.SoftOffTimeout < Duration(time.Second) {
		bad("soft_off_timeout", "%s is too short (at least 1s)", time.Duration(c.SoftOffTimeout))
	}
	if c.RestartEvidence < Duration(100*time.Millisecond) {
		bad("restart_evidence", "%s is too short (at least 100ms)", time.Duration(c.RestartEvidence))
	}
	if c.SoftOffFallback != "fail" && c.SoftOffFallback != "force" {
		bad("soft_off_fallback", "%q is not fail or force", c.SoftOffFallback)
	}
	if c.Retries < 0 || c.Retries > 20 {
		bad("retries", "%d is out of range 0..20", c.Retries)
	}
	if len(c.Accounts) == 0 {
		bad("accounts", "at least one account is required")
	}
	users := map[string]bool{}
	for i, a := range c.Accounts {
		f := fmt.Sprintf("accounts[%d]", i)
		switch {
		case a.User == "":
			bad(f+".user", "required")
		case users[a.User]:
			bad(f+".user", "duplicate user %q", a.User)
		}
		users[a.User] = true
		if a.Password == "" && a.PasswordFile == "" { // a file that failed is reported as such
			bad(f+".password", "required")
		}
		if a.Role != "" && !contains(Roles, a.Role) {
			bad(f+".role", "%q is not one of %s", a.Role, strings.Join(Roles, ", "))
		}
		for j, p := range a.Nodes {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				bad(fmt.Sprintf("%s.nodes[%d]", f, j), "%q is not a node id or shell pattern", p)
			}
		}
	}
	as := c.AccountService
	if as.MinPasswordLength < 1 || as.MinPasswordLength > 128 {
		bad("account_service.min_password_length", "%d is out of range 1..128", as.MinPasswordLength)
	}
	if as.LockoutThreshold < 0 || as.LockoutThreshold > 1000 {
		bad("account_service.lockout_threshold", "%d is out of range 0..1000", as.LockoutThreshold)
	}
	if as.LockoutDuration < Duration(time.Second) {
		bad("account_service.lockout_duration", "%s is too short (at least 1s)", time.Duration(as.LockoutDuration))
	}
	if as.LockoutResetAfter < Duration(time.Second) {
		bad("account_service.lockout_reset_after", "%s is too short (at least 1s)", time.Duration(as.LockoutResetAfter))
	}
	if as.MaxSessionsPerUser < 1 || as.MaxSessionsPerUser > 100000 {
		bad("account_service.max_sessions_per_user", "%d is out of range 1..100000", as.MaxSessionsPerUser)
	}
	ids := map[string]bool{}
	ipmiListens := map[string]bool{}
	for i, n := range c.Nodes {
		f := fmt.Sprintf("nodes[%d]", i)
		for _, p := range n.Problems() {
			bad(f+"."+p.Field, "%s", p.Problem)
		}
		if n.ID != "" && ids[n.ID] {
			bad(f+".id", "duplicate node id %q", n.ID)
		}
		ids[n.ID] = true
		if n.IPMIListen != "" {
			if ipmiListens[n.IPMIListen] && !strings.HasSuffix(n.IPMIListen, ":0") {
				bad(f+".ipmi_listen", "%q is used by another node", n.IPMIListen)
			}
			ipmiListens[n.IPMIListen] = true
		}
	}
	if c.SecretsKeyFile != "" {
		if _, err := c.SecretsKey(); err != nil {
			bad("secrets_key_file", "%v", err)
		}
	}
	c.Events.validate(bad)
	c.TLS.validate(bad)
	c.Limits.validate(c.MaxBodyBytes, bad)
	c.validateFronts(bad)
	validateTrustedProxies(c.TrustedProxies, bad)
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// validateDebugListen checks debug_listen: host:port, loopback, not the
// API's own address.
func (c *Config) validateDebugListen(bad func(field, format string, a ...any)) {
	if c.DebugListen == "" {
		return
	}
	host, _, err := net.SplitHostPort(c.DebugListen)
	if err != nil {
		bad("debug_listen", "%q is not host:port", c.DebugListen)
		return
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		bad("debug_listen", "%q is not a loopback address: profiles show memory contents (passwords, tokens); use 127.0.0.1:6060 and an SSH tunnel", c.DebugListen)
	}
	if c.DebugListen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
		bad("debug_listen", "is the API's listen address; profiles are served on a listener of their own")
	}
}

// Warnings are what a configuration allows but an operator should hear
// about; `fishgate serve` logs them and `fishgate config` prints them.
func (c *Config) Warnings() []string {
	var out []string
	if len(c.Nodes) == 0 {
		w := "nodes: none configured, so the gateway manages no machine until nodes are added: list them under nodes: in the config file, " +
			"or enrol them at runtime with POST /redfish/v1/AggregationService/AggregationSources"
		if c.SecretsKeyFile == "" {
			w += " (which needs secrets_key_file: runtime enrolment is refused without it)"
		}
		out = append(out, w)
	}
	return out
}

// NodeProblem is one thing wrong with a node: Field is its YAML name.
type NodeProblem struct{ Field, Problem string }

// Problems checks one node on its own (a node of the file, or one enrolled
// at runtime: the AggregationService reuses it); uniqueness among nodes is
// the caller's.
func (n Node) Problems() []NodeProblem {
	var out []NodeProblem
	bad := func(field, format string, a ...any) {
		out = append(out, NodeProblem{field, fmt.Sprintf(format, a...)})
	}
	switch {
	case n.ID == "":
		bad("id", "required")
	case !idRe.MatchString(n.ID):
		bad("id", "%q: use letters, digits, '.', '_' or '-' (at most 63)", n.ID)
	}
	if !contains(Backends, n.Backend) {
		bad("backend", "%q is not one of %s", n.Backend, strings.Join(Backends, ", "))
	}
	switch u, err := url.Parse(n.Address); {
	case n.Address == "":
		bad("address", "required")
	case n.Backend == "ipmi":
		if _, _, err := ipmibackend.SplitAddress(n.Address); err != nil {
			bad("address", "%v", err)
		}
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		bad("address", "%q is not an http:// or https:// URL", n.Address)
	}
	if n.IPMIInterface != "" && n.IPMIInterface != "lanplus" && n.IPMIInterface != "lan" {
		bad("ipmi_interface", "%q is not lanplus or lan", n.IPMIInterface)
	}
	if n.CipherSuite < 0 || n.CipherSuite > 255 {
		bad("cipher_suite", "%d is out of range 0..255", n.CipherSuite)
	}
	if n.IPMIListen != "" {
		if _, _, err := net.SplitHostPort(n.IPMIListen); err != nil {
			bad("ipmi_listen", "%q is not host:port", n.IPMIListen)
		}
		if n.IPMIUser == "" || len(n.IPMIUser) > 16 {
			bad("ipmi_user", "required with ipmi_listen, at most 16 bytes")
		}
		if (n.IPMIPassword == "" && n.IPMIPasswordFile == "") || len(n.IPMIPassword) > 20 {
			bad("ipmi_password", "required with ipmi_listen, at most 20 bytes")
		}
	}
	if n.Policy != "" && !contains(Policies, n.Policy) {
		bad("policy", "%q is not one of %s", n.Policy, strings.Join(Policies, ", "))
	}
	if n.User == "" {
		bad("user", "required")
	}
	if n.SoftOffFallback != "" && n.SoftOffFallback != "fail" && n.SoftOffFallback != "force" {
		bad("soft_off_fallback", "%q is not fail or force", n.SoftOffFallback)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
