// Package requestid is the request id that follows one client request
// through the gateway: accepted from (or made for) the X-Request-Id
// header, returned on the answer, carried in the context into every log
// record, the task the request creates and the BMC calls it causes.
package requestid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
)

// Header is the HTTP header that carries a request id, both ways.
const Header = "X-Request-Id"

// MaxLen bounds a request id given by a client: it is written into every
// log line and task of the request, so a client cannot make those large.
const MaxLen = 128

// Attr is the log attribute that carries the request id.
const Attr = "request_id"

type ctxKey struct{}

// New makes a request id: 16 random bytes in hex.
func New() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Valid reports whether a client's request id may be used as it is: 1 to
// MaxLen bytes of printable ASCII other than a space, so that it cannot
// break a log line, a header or a JSON string into something else.
func Valid(id string) bool {
	if id == "" || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// With returns ctx carrying request id id ("" leaves ctx as it is).
func With(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{}, id)
}

// From is the request id ctx carries, "" when none.
func From(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// Accept is the request id of r: its X-Request-Id when that is Valid,
// else a new one.
func Accept(r *http.Request) string {
	if id := r.Header.Get(Header); Valid(id) {
		return id
	}
	return New()
}

// Middleware gives every request a request id (Accept) in its context and
// answers it in X-Request-Id. A request that already carries one (an outer
// Middleware) keeps it.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if From(r.Context()) != "" {
			next.ServeHTTP(w, r)
			return
		}
		id := Accept(r)
		w.Header().Set(Header, id)
		next.ServeHTTP(w, r.WithContext(With(r.Context(), id)))
	})
}

// handler adds the context's request id to every record logged with a
// context (slog's InfoContext and the like).
type handler struct{ slog.Handler }

// Logger returns log with its records carrying the request id of the
// context they are logged with. A logger it already wraps is returned as
// it is.
func Logger(log *slog.Logger) *slog.Logger {
	if _, ok := log.Handler().(handler); ok {
		return log
	}
	return slog.New(handler{log.Handler()})
}

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	if id := From(ctx); id != "" {
		r.AddAttrs(slog.String(Attr, id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h handler) WithAttrs(as []slog.Attr) slog.Handler { return handler{h.Handler.WithAttrs(as)} }
func (h handler) WithGroup(name string) slog.Handler    { return handler{h.Handler.WithGroup(name)} }

// Transport sends the request id of each request's context to the server
// in X-Request-Id (a BMC that logs it lets an operator match its log to
// the gateway's); requests without one go as they are.
func Transport(rt http.RoundTripper) http.RoundTripper {
	return transport{rt}
}

type transport struct{ http.RoundTripper }

func (t transport) RoundTrip(r *http.Request) (*http.Response, error) {
	id := From(r.Context())
	if id == "" || r.Header.Get(Header) == id {
		return t.RoundTripper.RoundTrip(r)
	}
	// A RoundTripper must not change the caller's request.
	r = r.Clone(r.Context())
	r.Header.Set(Header, id)
	return t.RoundTripper.RoundTrip(r)
}

// CloseIdleConnections passes http.Client.CloseIdleConnections on to the
// wrapped transport.
func (t transport) CloseIdleConnections() {
	if c, ok := t.RoundTripper.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
