package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fishgate/fishgate/internal/retry"
	"github.com/fishgate/fishgate/schemas"
)

// How "last accepted" is defined. Every node belongs to exactly one client
// goroutine (node i to client i mod clients), and a client sends one request
// at a time and waits for its answer. So the requests to one node are
// totally ordered by the client, and since a request's admission happens
// between sending it and reading its answer, the gateway admitted them in
// that same order. The last accepted request of a node is the last Reset to
// which the node's client got a 2xx answer.
//
// A request without an answer (the replica was SIGKILLed mid-request) may or
// may not have been admitted. The client re-sends it to another replica
// (same ResetType: admitted twice or once, the node's target is the same);
// if no attempt gets an answer, the node keeps it as "ambiguous" until a
// later request is accepted, and the check then accepts either target.
// Refusals (409, 429, 503) are definite: nothing was admitted.

// ResetTypes the stream draws from, with their weights, and each one's
// steady target (On for On/restarts, Off for the offs;
// docs/architecture.md#convergence). This is the oracle; it deliberately
// does not reuse the gateway's own table.
var resetMix = []struct {
	typ    string
	weight int
	target string
}{
	{"On", 20, "On"},
	{"ForceOff", 18, "Off"},
	{"GracefulShutdown", 12, "Off"},
	{"GracefulRestart", 10, "On"},
	{"ForceRestart", 10, "On"},
	{"PowerCycle", 10, "On"},
}

const deleteWeight = 14

func targetOf(resetType string) string {
	for _, r := range resetMix {
		if r.typ == resetType {
			return r.target
		}
	}
	return ""
}

// event is one request as the client saw it.
type event struct {
	At       time.Time
	Op       string // a ResetType, or "DELETE"
	Task     string // DELETE: the task deleted; Reset: the task answered
	Replica  int    // replica of the attempt that answered (or the last one)
	Attempts int
	Status   int               // 0: no answer
	Result   string            // new, coalesced, refused, cancel, finished, error, unanswered
	State    schemas.TaskState // TaskState in the answer
	Detail   string            // error text or message
}

func (e event) String() string {
	s := fmt.Sprintf("%s r%d %-16s", e.At.Format("15:04:05.000"), e.Replica, e.Op)
	if e.Status != 0 {
		s += fmt.Sprintf(" -> %d", e.Status)
	} else {
		s += " -> no answer"
	}
	s += " " + e.Result
	if e.Task != "" {
		s += " task=" + e.Task
	}
	if e.State != "" {
		s += " (" + string(e.State) + ")"
	}
	if e.Attempts > 1 {
		s += fmt.Sprintf(" attempts=%d", e.Attempts)
	}
	if e.Detail != "" {
		s += " [" + e.Detail + "]"
	}
	return s
}

// history is what the client knows of one node. Only its client goroutine
// writes it during the load; it is read after the load has stopped.
type history struct {
	id     string
	events []event
	tasks  []string // distinct task ids answered, in order first seen
	seen   map[string]bool
	// last is the index in events of the last accepted Reset, -1 if none.
	last int
	// pending is the ResetType of an unanswered Reset sent after last.
	pending string
}

func newHistory(id string) *history {
	return &history{id: id, seen: map[string]bool{}, last: -1}
}

// lastAccepted returns the last accepted Reset, if any.
func (h *history) lastAccepted() (event, bool) {
	if h.last < 0 {
		return event{}, false
	}
	return h.events[h.last], true
}

// counters are the totals of the load (atomic: many clients).
type counters struct {
	sent, attempts                     atomic.Int64
	accepted, coalesced, refused       atomic.Int64
	refused409, refused429, refused503 atomic.Int64
	deletes, deleteOK, deleteDone      atomic.Int64
	errors, unanswered                 atomic.Int64
}

// loader fires the request stream.
type loader struct {
	o        *options
	http     *http.Client
	replicas []string // base URLs
	hist     []*history
	budget   atomic.Int64 // requests left
	c        *counters
	deadline time.Time
	// retryPause is the first pause before re-sending an unanswered
	// request (then 2x, 3x, ...).
	retryPause time.Duration
	debugf     func(string, ...any)
}

func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second, // above the gateway's Redis timeouts: a late admission after we gave up is unlikely
		Transport: &http.Transport{
			Proxy:               nil, // loopback only, never through a proxy
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

// run starts the clients and returns when the budget is spent, the
// deadline passed or ctx ended.
func (l *loader) run(ctx context.Context, seed uint64) {
	done := make(chan struct{})
	n := l.o.clients
	finished := make(chan struct{}, n)
	for c := 0; c < n; c++ {
		var shard []*history
		for i := c; i < len(l.hist); i += n {
			shard = append(shard, l.hist[i])
		}
		rng := rand.New(rand.NewPCG(seed, uint64(c)+1))
		go func() {
			defer func() { finished <- struct{}{} }()
			l.client(ctx, rng, shard)
		}()
	}
	go func() {
		for i := 0; i < n; i++ {
			<-finished
		}
		close(done)
	}()
	<-done
}

// take spends one request of the budget.
func (l *loader) take() bool {
	return l.budget.Add(-1) >= 0
}

// sleepCtx waits d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	return retry.Sleep(ctx, d) == nil
}

// client drives the nodes of one shard: bursts of 1-4 requests at one node,
// close together so that they conflict with the action under way, then a
// pause.
func (l *loader) client(ctx context.Context, rng *rand.Rand, shard []*history) {
	if len(shard) == 0 {
		return
	}
	for ctx.Err() == nil && time.Now().Before(l.deadline) {
		h := shard[rng.IntN(len(shard))]
		burst := 1 + rng.IntN(4)
		for b := 0; b < burst; b++ {
			if !l.take() {
				return
			}
			l.one(ctx, rng, h)
			if !sleepCtx(ctx, time.Duration(rng.IntN(120))*time.Millisecond) {
				return
			}
		}
		if !sleepCtx(ctx, time.Duration(rng.IntN(400))*time.Millisecond) {
			return
		}
	}
}

// pick draws the next operation.
func pick(rng *rand.Rand) string {
	total := deleteWeight
	for _, r := range resetMix {
		total += r.weight
	}
	x := rng.IntN(total)
	for _, r := range resetMix {
		if x < r.weight {
			return r.typ
		}
		x -= r.weight
	}
	return "DELETE"
}

// one sends one request to h's node (with re-sends when unanswered) and
// records it.
func (l *loader) one(ctx context.Context, rng *rand.Rand, h *history) {
	op := pick(rng)
	if op == "DELETE" && len(h.tasks) == 0 {
		op = "On"
	}
	l.send(ctx, rng, h, op)
}

// send sends op (a ResetType, or DELETE of one of the node's tasks) and
// records the outcome in h.
func (l *loader) send(ctx context.Context, rng *rand.Rand, h *history, op string) {
	l.c.sent.Add(1)
	ev := event{At: time.Now(), Op: op}
	var method, path string
	var body []byte
	if op == "DELETE" {
		// mostly the newest task (likely running or waiting), sometimes an older one.
		// (an older one among the last 10: far below the gateway's task
		// retention, so a 404 is never expected.)
		ev.Task = h.tasks[len(h.tasks)-1]
		if rng.IntN(10) < 3 {
			ev.Task = h.tasks[len(h.tasks)-1-rng.IntN(min(len(h.tasks), 10))]
		}
		method, path = http.MethodDelete, "/redfish/v1/TaskService/Tasks/"+ev.Task
		l.c.deletes.Add(1)
	} else {
		method, path = http.MethodPost, "/redfish/v1/Systems/"+h.id+"/Actions/ComputerSystem.Reset"
		body, _ = json.Marshal(map[string]string{"ResetType": op})
	}
	start := rng.IntN(len(l.replicas))
	ambiguous := false
	const maxAttempts = 6
	var (
		status int
		resp   []byte
		err    error
	)
	// Re-sent to the next replica after a pause (internal/retry: doubling,
	// jittered), while the answer is missing.
	_ = retry.Policy{Base: l.retryPause, Cap: 8 * l.retryPause, Attempts: maxAttempts}.Do(ctx, func(attempt int) error {
		ev.Replica = (start + attempt - 1) % len(l.replicas)
		ev.Attempts = attempt
		l.c.attempts.Add(1)
		status, resp, err = l.do(ctx, method, l.replicas[ev.Replica]+path, body)
		if err != nil {
			if !isDialError(err) {
				ambiguous = true // the request may have reached the replica
			}
			ev.Detail = shortErr(err)
		}
		return err
	})
	ev.Status = status
	if err != nil {
		ev.Result = "unanswered"
		l.c.unanswered.Add(1)
		if ambiguous && op != "DELETE" {
			h.pending = op
		}
		h.events = append(h.events, ev)
		return
	}
	ev.Detail = ""
	var t struct {
		ID        string            `json:"Id"`
		TaskState schemas.TaskState `json:"TaskState"`
		Error     struct {
			Info []struct {
				MessageID string `json:"MessageId"`
			} `json:"@Message.ExtendedInfo"`
		} `json:"error"`
	}
	_ = json.Unmarshal(resp, &t)
	ev.State = t.TaskState
	if len(t.Error.Info) > 0 {
		ev.Detail = t.Error.Info[0].MessageID
	}
	switch {
	case op != "DELETE" && status >= 200 && status < 300:
		l.c.accepted.Add(1)
		if t.ID == "" {
			ev.Result, ev.Detail = "error", "2xx without a task Id"
			l.c.errors.Add(1)
			break
		}
		ev.Task = t.ID
		if h.seen[t.ID] {
			ev.Result = "coalesced"
			l.c.coalesced.Add(1)
		} else {
			ev.Result = "new"
			h.seen[t.ID] = true
			h.tasks = append(h.tasks, t.ID)
		}
		h.last = len(h.events)
		h.pending = ""
	case op != "DELETE" && (status == 409 || status == 429 || status == 503):
		ev.Result = "refused"
		l.c.refused.Add(1)
		switch status {
		case 409:
			l.c.refused409.Add(1)
		case 429:
			l.c.refused429.Add(1)
		default:
			l.c.refused503.Add(1)
		}
	case op == "DELETE" && status == 200:
		ev.Result = "cancel"
		l.c.deleteOK.Add(1)
	case op == "DELETE" && status == 409:
		ev.Result = "finished"
		l.c.deleteDone.Add(1)
	case op == "DELETE" && status == 503:
		ev.Result = "refused"
		l.c.refused.Add(1)
		l.c.refused503.Add(1)
	default:
		ev.Result = "error"
		if ev.Detail == "" {
			ev.Detail = strings.TrimSpace(string(resp[:min(len(resp), 200)]))
		}
		l.c.errors.Add(1)
	}
	if ambiguous && op != "DELETE" && ev.Result != "new" && ev.Result != "coalesced" {
		// an earlier attempt may have been admitted: the answer we got (a
		// refusal) says nothing about it.
		h.pending = op
	}
	h.events = append(h.events, ev)
	if ev.Result == "error" {
		l.debugf("node %s: unexpected answer: %s", h.id, ev)
	}
}

// do sends one request with the gateway credentials.
func (l *loader) do(ctx context.Context, method, url string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth(gwUser, gwPassword)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "fgchaos")
	resp, err := l.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

// isDialError reports whether err happened before the request was sent
// (connection refused: the replica is down), so nothing was admitted.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s) > 80 {
		s = s[i+2:]
	}
	return s
}
