package httpapi

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// Options configure the handler.
type Options struct {
	// Scheduler runs the task lifecycle. Required.
	Scheduler *core.Scheduler
	// Auth establishes each request's tenant. Default: NewTokenAuth(nil),
	// which accepts loopback clients only, as tenant "default".
	Auth Authenticator
	// Logger receives internal errors. Default: discard.
	Logger *slog.Logger
}

// handler serves HTTP API v1.
type handler struct {
	s    *core.Scheduler
	auth Authenticator
	log  *slog.Logger
}

// params holds a matched route's path parameters.
type params map[string]string

// route is one method and path pattern of the API; segments in braces are
// parameters.
type route struct {
	method  string
	pattern string
	segs    []string
	serve   func(h *handler, w http.ResponseWriter, r *http.Request, tenant string, p params)
}

// New returns the handler of the /v1/... routes. Other paths are 404; the
// server mounts it beside its own /healthz and /metrics. It panics if
// opts.Scheduler is nil.
func New(opts Options) http.Handler {
	if opts.Scheduler == nil {
		panic("httpapi: Options.Scheduler is required")
	}
	if opts.Auth == nil {
		opts.Auth = NewTokenAuth(nil)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &handler{s: opts.Scheduler, auth: opts.Auth, log: opts.Logger}
}

// routes is the read-only route table of the API.
var routes = buildRoutes(
	route{method: http.MethodPost, pattern: "/v1/pools/{pool}/tasks", serve: (*handler).submit},
	route{method: http.MethodGet, pattern: "/v1/tasks/{id}", serve: (*handler).task},
	route{method: http.MethodPost, pattern: "/v1/tasks/{id}/heartbeat", serve: (*handler).heartbeat},
	route{method: http.MethodPost, pattern: "/v1/tasks/{id}/complete", serve: (*handler).complete},
	route{method: http.MethodPost, pattern: "/v1/tasks/{id}/cancel", serve: (*handler).cancel},
	route{method: http.MethodGet, pattern: "/v1/mailbox/{recipient}", serve: (*handler).mailbox},
	route{method: http.MethodPost, pattern: "/v1/mailbox/{recipient}/ack", serve: (*handler).ack},
	route{method: http.MethodGet, pattern: "/v1/audit", serve: (*handler).audit},
	route{method: http.MethodGet, pattern: "/v1/pools", serve: (*handler).pools},
	route{method: http.MethodGet, pattern: "/v1/pools/{pool}", serve: (*handler).pool},
)

func buildRoutes(rs ...route) []route {
	for i := range rs {
		rs[i].segs = strings.Split(strings.TrimPrefix(rs[i].pattern, "/"), "/")
	}
	return rs
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.ErrorContext(r.Context(), "panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v)
			writeError(w, http.StatusInternalServerError, api.CodeInternal, "internal error", "")
		}
	}()
	rt, p, allowed := h.match(r)
	if rt == nil {
		closeUnread(w, r)
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed,
				"method "+r.Method+" is not allowed here; use "+strings.Join(allowed, " or "), "")
			return
		}
		writeError(w, http.StatusNotFound, api.CodeNotFound, "no such route: "+clip(r.URL.Path), "")
		return
	}
	tenant, err := h.auth.Tenant(r)
	if err != nil || tenant == "" {
		msg := "unauthorized"
		if err != nil {
			msg = err.Error()
		}
		closeUnread(w, r)
		w.Header().Set("WWW-Authenticate", `Bearer realm="parkinglot"`)
		writeError(w, http.StatusUnauthorized, api.CodeUnauthorized, msg, "")
		return
	}
	if err := p.unescape(); err != nil {
		h.fail(w, r, err)
		return
	}
	rt.serve(h, w, r, tenant, p)
}

// closeUnread is called before refusing a request without reading its
// body: a request that net/http read from a connection, with a body, has
// the connection closed after the answer, and no more of it read.
// Otherwise net/http reads (and discards) up to 256 KiB of the body before
// answering, and again after, to reuse the connection: a client that sends
// its body slowly, or never, would hold the refusal of an unauthenticated
// request, then its connection, until the server's read timeout.
func closeUnread(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength == 0 || r.Context().Value(http.ServerContextKey) == nil {
		return
	}
	w.Header().Set("Connection", "close")
	// The reads after the answer end at once; the answer is written still.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// unescape decodes the path parameters in place. A parameter with an
// invalid escape, or that is not valid UTF-8 once decoded, is a
// *core.InvalidError naming it.
func (p params) unescape() error {
	for name, raw := range p {
		v, err := url.PathUnescape(raw)
		if err != nil {
			return core.Invalid(name, "%s has an invalid escape in the path: %q", name, clip(raw))
		}
		if !utf8.ValidString(v) {
			return core.Invalid(name, "%s is not valid UTF-8 text once unescaped: %q", name, clip(raw))
		}
		p[name] = v
	}
	return nil
}

// match finds the route of r. When the path matches but the method does
// not, it returns the methods that the path allows.
func (h *handler) match(r *http.Request) (*route, params, []string) {
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	var allowed []string
	for i := range routes {
		rt := &routes[i]
		p, ok := matchPath(rt.segs, segs)
		if !ok {
			continue
		}
		if rt.method != r.Method {
			allowed = append(allowed, rt.method)
			continue
		}
		return rt, p, nil
	}
	return nil, nil, allowed
}

func matchPath(pattern, segs []string) (params, bool) {
	if len(pattern) != len(segs) {
		return nil, false
	}
	var p params
	for i, want := range pattern {
		if name, ok := strings.CutPrefix(want, "{"); ok {
			// Kept escaped: an escape that does not decode is bad input
			// for the route's parameter, not another route.
			if segs[i] == "" {
				return nil, false
			}
			if p == nil {
				p = params{}
			}
			p[strings.TrimSuffix(name, "}")] = segs[i]
			continue
		}
		if segs[i] != want {
			return nil, false
		}
	}
	return p, true
}

// Routes lists the "METHOD /path" patterns the handler serves, for
// documentation checks.
func Routes() []string {
	out := make([]string, len(routes))
	for i, rt := range routes {
		out[i] = rt.method + " " + rt.pattern
	}
	return out
}

func clip(s string) string {
	const limit = 200
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}
