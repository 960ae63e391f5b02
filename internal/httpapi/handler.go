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

// Params holds a matched route's path parameters, as they stand in the
// escaped path until Unescape decodes them.
type Params map[string]string

// RouteID names one route of the API.
type RouteID string

// The routes of the API.
const (
	RouteSubmit    RouteID = "submit"
	RouteTask      RouteID = "task"
	RouteHeartbeat RouteID = "heartbeat"
	RouteComplete  RouteID = "complete"
	RouteCancel    RouteID = "cancel"
	RouteMailbox   RouteID = "mailbox"
	RouteAck       RouteID = "ack"
	RouteAudit     RouteID = "audit"
	RoutePools     RouteID = "pools"
	RoutePool      RouteID = "pool"
	RouteClaim     RouteID = "claim"
)

// Roles: who may call a route.
type Role int

const (
	// RoleTenant: a tenant's token.
	RoleTenant Role = 1 << iota
	// RoleWorker: a worker's token.
	RoleWorker
)

// Route is one method and path pattern of the API.
type Route struct {
	ID     RouteID
	Method string
	Path   string // the pattern, with {param} segments, as an API Gateway route path
	Roles  Role   // who may call it
	segs   []string
}

// Key is the route's "METHOD /path", as API Gateway's route key.
func (r Route) Key() string { return r.Method + " " + r.Path }

// route is a Route and the method of the handler that serves it.
type route struct {
	Route
	serve func(h *handler, w http.ResponseWriter, r *http.Request, id Identity, p Params)
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

// routes is the read-only route table of the API, in the order an
// infrastructure definition declares them.
var routes = buildRoutes(
	route{Route{ID: RouteSubmit, Method: http.MethodPost, Path: "/v1/pools/{pool}/tasks", Roles: RoleTenant}, (*handler).submit},
	route{Route{ID: RouteClaim, Method: http.MethodPost, Path: "/v1/pools/{pool}/claim", Roles: RoleWorker}, (*handler).claim},
	route{Route{ID: RouteHeartbeat, Method: http.MethodPost, Path: "/v1/tasks/{id}/heartbeat", Roles: RoleTenant | RoleWorker}, (*handler).heartbeat},
	route{Route{ID: RouteComplete, Method: http.MethodPost, Path: "/v1/tasks/{id}/complete", Roles: RoleTenant | RoleWorker}, (*handler).complete},
	route{Route{ID: RouteCancel, Method: http.MethodPost, Path: "/v1/tasks/{id}/cancel", Roles: RoleTenant | RoleWorker}, (*handler).cancel},
	route{Route{ID: RouteTask, Method: http.MethodGet, Path: "/v1/tasks/{id}", Roles: RoleTenant}, (*handler).task},
	route{Route{ID: RouteMailbox, Method: http.MethodGet, Path: "/v1/mailbox/{recipient}", Roles: RoleTenant}, (*handler).mailbox},
	route{Route{ID: RouteAck, Method: http.MethodPost, Path: "/v1/mailbox/{recipient}/ack", Roles: RoleTenant}, (*handler).ack},
	route{Route{ID: RouteAudit, Method: http.MethodGet, Path: "/v1/audit", Roles: RoleTenant}, (*handler).audit},
	route{Route{ID: RoutePools, Method: http.MethodGet, Path: "/v1/pools", Roles: RoleTenant}, (*handler).pools},
	route{Route{ID: RoutePool, Method: http.MethodGet, Path: "/v1/pools/{pool}", Roles: RoleTenant}, (*handler).pool},
)

func buildRoutes(rs ...route) []route {
	for i := range rs {
		rs[i].segs = strings.Split(strings.TrimPrefix(rs[i].Path, "/"), "/")
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
			WriteError(w, http.StatusInternalServerError, api.CodeInternal, "internal error", "")
		}
	}()
	rt, p, allowed := match(r.Method, r.URL.EscapedPath())
	if rt == nil {
		closeUnread(w, r)
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			WriteError(w, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed,
				"method "+r.Method+" is not allowed here; use "+strings.Join(allowed, " or "), "")
			return
		}
		NoRoute(w, r.URL.Path)
		return
	}
	id, err := h.auth.Identify(r)
	if err != nil || !id.valid() {
		msg := "unauthorized"
		if err != nil {
			msg = err.Error()
		}
		closeUnread(w, r)
		w.Header().Set("WWW-Authenticate", `Bearer realm="parkinglot"`)
		WriteError(w, http.StatusUnauthorized, api.CodeUnauthorized, msg, "")
		return
	}
	if err := p.Unescape(); err != nil {
		h.fail(w, r, err)
		return
	}
	if role := id.role(); rt.Roles&role == 0 {
		closeUnread(w, r)
		WriteError(w, http.StatusForbidden, api.CodeForbidden, forbiddenMessage(role), "")
		return
	}
	rt.serve(h, w, r, id, p)
}

// role is the role of id.
func (id Identity) role() Role {
	if id.Worker != nil {
		return RoleWorker
	}
	return RoleTenant
}

func forbiddenMessage(r Role) string {
	if r == RoleWorker {
		return "a worker token may only claim, heartbeat, complete and cancel tasks of its pools"
	}
	return "claims are for worker tokens (role worker); a tenant's token submits and reads its own tasks"
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

// Unescape decodes the path parameters in place; one whose escape does not
// decode is left as it is. A parameter with an invalid escape, or that is
// not valid UTF-8 once decoded, is a *core.InvalidError naming it.
func (p Params) Unescape() error {
	var bad error
	for name, raw := range p {
		v, err := url.PathUnescape(raw)
		switch {
		case err != nil:
			v, err = raw, core.Invalid(name, "%s has an invalid escape in the path: %q", name, clip(raw))
		case !utf8.ValidString(v):
			err = core.Invalid(name, "%s is not valid UTF-8 text once unescaped: %q", name, clip(raw))
		}
		p[name] = v
		if bad == nil {
			bad = err
		}
	}
	return bad
}

// Match finds the route of method and the escaped path, with its path
// parameters still escaped (Params.Unescape decodes them); ok is false when
// no route has both. When the path matches routes of other methods only,
// p holds its parameters and allowed those methods (405 rather than 404).
func Match(method, escapedPath string) (rt Route, p Params, allowed []string, ok bool) {
	r, p, allowed := match(method, escapedPath)
	if r == nil {
		return Route{}, p, allowed, false
	}
	return r.Route, p, nil, true
}

func match(method, escapedPath string) (*route, Params, []string) {
	segs := strings.Split(strings.TrimPrefix(escapedPath, "/"), "/")
	var allowed []string
	var other Params
	for i := range routes {
		rt := &routes[i]
		p, ok := matchPath(rt.segs, segs)
		if !ok {
			continue
		}
		if rt.Method != method {
			allowed = append(allowed, rt.Method)
			other = p
			continue
		}
		return rt, p, nil
	}
	return nil, other, allowed
}

func matchPath(pattern, segs []string) (Params, bool) {
	if len(pattern) != len(segs) {
		return nil, false
	}
	var p Params
	for i, want := range pattern {
		if name, ok := strings.CutPrefix(want, "{"); ok {
			// Kept escaped: an escape that does not decode is bad input
			// for the route's parameter, not another route.
			if segs[i] == "" {
				return nil, false
			}
			if p == nil {
				p = Params{}
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

// Routes returns the API's routes, in the order an infrastructure
// definition declares them.
func Routes() []Route {
	out := make([]Route, len(routes))
	for i, rt := range routes {
		out[i] = rt.Route
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
