package redfish_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fishgate/fishgate/app/config"
	rfbackend "github.com/fishgate/fishgate/backends/redfish"
	"github.com/fishgate/fishgate/fronts/redfish"
	"github.com/fishgate/fishgate/serializer"
	"github.com/fishgate/fishgate/simulator"
)

// env is a gateway API over simulated Redfish BMCs, served by httptest.
type env struct {
	t     testing.TB
	fleet *simulator.Fleet
	nodes *serializer.Service
	srv   *httptest.Server
	rdb   redis.UniversalClient
	api   *redfish.Server
}

const (
	adminUser = "admin"
	adminPass = "s3cret"
	roUser    = "viewer"
	roPass    = "look"
)

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newEnv starts n simulated nodes (node1..nodeN, instant transitions) and
// the API on rdb with the given session idle timeout.
func newEnv(t testing.TB, rdb redis.UniversalClient, n int, idle time.Duration) *env {
	t.Helper()
	return newEnvWith(t, rdb, idle, envConfig{nodes: n})
}

// envConfig is what newEnvWith builds besides the defaults of newEnv.
type envConfig struct {
	nodes   int                     // simulated nodes node1..nodeN
	machine simulator.MachineConfig // their machines (InitialPower Off when empty)
	extra   []serializer.Node       // more nodes, e.g. one whose BMC cannot be reached
	// passthrough is redfish.Options.Passthrough.
	passthrough func(ctx context.Context, node string) (http.Handler, error)
	// accounts are more accounts of the configuration; policy the
	// AccountService's policy.
	accounts []redfish.Account
	policy   redfish.AccountPolicy
	// tune, when set, adjusts the Options last.
	tune func(*redfish.Options)
}

// testReplica is the replica id of a test's serializer and event bus.
const testReplica = "test"

// serializerOptions are the default configuration's serializer options
// (app/config) on rdb, with quick verification polls.
func serializerOptions(rdb redis.UniversalClient, log *slog.Logger) serializer.Options {
	o := config.Default().SerializerOptions()
	o.Redis, o.ReplicaID, o.Logger, o.VerifyInterval = rdb, testReplica, log, 10*time.Millisecond
	return o
}

// newEnvWith is newEnv as cfg says.
func newEnvWith(t testing.TB, rdb redis.UniversalClient, idle time.Duration, cfg envConfig) *env {
	t.Helper()
	log := quietLogger()
	fleet := simulator.NewFleet(log)
	t.Cleanup(func() { fleet.Close() })
	if cfg.machine.InitialPower == "" {
		cfg.machine.InitialPower = "Off"
	}
	var nodes []serializer.Node
	for i := 1; i <= cfg.nodes; i++ {
		id := "node" + string(rune('0'+i))
		sn, err := fleet.Add(simulator.NodeSpec{ID: id, Machine: cfg.machine})
		if err != nil {
			t.Fatal(err)
		}
		b, err := rfbackend.New(rfbackend.Config{Endpoint: sn.URL(), User: "admin", Password: "password", Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, serializer.Node{ID: id, Backend: b, Kind: "redfish"})
	}
	nodes = append(nodes, cfg.extra...)
	svc, err := serializer.New(nodes, serializerOptions(rdb, log))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc.Start(ctx)
	t.Cleanup(func() { cancel(); svc.Close() })
	opts := redfish.Options{
		Nodes: svc, Redis: rdb, SessionTimeout: idle, Logger: log, Passthrough: cfg.passthrough,
		Accounts: append([]redfish.Account{
			{User: adminUser, Password: adminPass, Role: redfish.RoleAdministrator},
			{User: roUser, Password: roPass, Role: redfish.RoleReadOnly},
		}, cfg.accounts...),
		AccountPolicy: cfg.policy,
	}
	if cfg.tune != nil {
		cfg.tune(&opts)
	}
	api, err := redfish.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, fleet: fleet, nodes: svc, srv: srv, rdb: rdb, api: api}
}

// response is a decoded answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not JSON (%v): %s", err, r.Body)
	}
	return m
}

// messageID is the first @Message.ExtendedInfo MessageId of an error body.
func (r response) messageID(t testing.TB) string {
	t.Helper()
	var e struct {
		Error struct {
			Code string `json:"code"`
			Info []struct {
				MessageID string `json:"MessageId"`
			} `json:"@Message.ExtendedInfo"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil || len(e.Error.Info) == 0 {
		t.Fatalf("not a Redfish error body (%v): %s", err, r.Body)
	}
	if e.Error.Code != e.Error.Info[0].MessageID {
		t.Fatalf("error code %q differs from first MessageId %q", e.Error.Code, e.Error.Info[0].MessageID)
	}
	return e.Error.Info[0].MessageID
}

// auth is how a request authenticates.
type auth func(*http.Request)

func basic(u, p string) auth  { return func(r *http.Request) { r.SetBasicAuth(u, p) } }
func token(tok string) auth   { return func(r *http.Request) { r.Header.Set("X-Auth-Token", tok) } }
func noAuth() auth            { return func(*http.Request) {} }
func header(k, v string) auth { return func(r *http.Request) { r.Header.Set(k, v) } }

func (e *env) do(method, path, body string, as ...auth) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if len(as) == 0 {
		as = []auth{basic(adminUser, adminPass)}
	}
	for _, a := range as {
		a(req)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// login opens a session and returns its token and Location.
func (e *env) login(user, pass string) (string, string) {
	e.t.Helper()
	r := e.do("POST", "/redfish/v1/SessionService/Sessions", `{"UserName":"`+user+`","Password":"`+pass+`"}`, noAuth())
	if r.Status != http.StatusCreated {
		e.t.Fatalf("login: %d %s", r.Status, r.Body)
	}
	tok, loc := r.Header.Get("X-Auth-Token"), r.Header.Get("Location")
	if tok == "" || loc == "" {
		e.t.Fatalf("login: no X-Auth-Token or Location: %v", r.Header)
	}
	return tok, loc
}

// waitPower waits until the simulated machine of node id shows state.
func (e *env) waitPower(id, state string) {
	e.t.Helper()
	n, ok := e.fleet.Node(id)
	if !ok {
		e.t.Fatalf("no simulated node %s", id)
	}
	deadline := time.Now().Add(5 * time.Second)
	for n.Machine().PowerState() != state {
		if time.Now().After(deadline) {
			e.t.Fatalf("node %s: power %s, want %s", id, n.Machine().PowerState(), state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
