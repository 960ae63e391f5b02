package lambdaapi

import (
	"net/http"
	"net/url"
	"strings"
)

// Function names one of the four Lambda functions.
type Function string

// The functions of the serverless deployment.
const (
	// Submit serves POST /v1/pools/{pool}/tasks and event-driven
	// submissions from SQS and EventBridge.
	Submit Function = "submit"
	// Dispatch serves heartbeat, complete and cancel; a release wakes
	// parked work inline.
	Dispatch Function = "dispatch"
	// Expire runs the sweep on its EventBridge schedule.
	Expire Function = "expire"
	// Mailbox serves the mailbox, ack, audit, task and pool reads, and
	// API Gateway's $default route (unknown paths and methods).
	Mailbox Function = "mailbox"
)

// Functions lists the four functions.
var Functions = []Function{Submit, Dispatch, Expire, Mailbox}

// DefaultRoute is the function behind API Gateway's $default route, which
// answers requests that match no route with the API's own 404 or 405.
const DefaultRoute = Mailbox

// Valid reports whether f is one of the four functions.
func (f Function) Valid() bool {
	switch f {
	case Submit, Dispatch, Expire, Mailbox:
		return true
	}
	return false
}

// Route is one API route and the function that serves it.
type Route struct {
	Method   string
	Path     string // API Gateway route path, with {param} segments
	Function Function
	segs     []string
}

// Key is the API Gateway route key, "METHOD /path".
func (r Route) Key() string { return r.Method + " " + r.Path }

var routes = buildRoutes(
	Route{Method: http.MethodPost, Path: "/v1/pools/{pool}/tasks", Function: Submit},
	Route{Method: http.MethodPost, Path: "/v1/tasks/{id}/heartbeat", Function: Dispatch},
	Route{Method: http.MethodPost, Path: "/v1/tasks/{id}/complete", Function: Dispatch},
	Route{Method: http.MethodPost, Path: "/v1/tasks/{id}/cancel", Function: Dispatch},
	Route{Method: http.MethodGet, Path: "/v1/tasks/{id}", Function: Mailbox},
	Route{Method: http.MethodGet, Path: "/v1/mailbox/{recipient}", Function: Mailbox},
	Route{Method: http.MethodPost, Path: "/v1/mailbox/{recipient}/ack", Function: Mailbox},
	Route{Method: http.MethodGet, Path: "/v1/audit", Function: Mailbox},
	Route{Method: http.MethodGet, Path: "/v1/pools", Function: Mailbox},
	Route{Method: http.MethodGet, Path: "/v1/pools/{pool}", Function: Mailbox},
)

func buildRoutes(rs ...Route) []Route {
	for i := range rs {
		rs[i].segs = strings.Split(strings.TrimPrefix(rs[i].Path, "/"), "/")
	}
	return rs
}

// Routes returns the API's routes with the function of each, in the order
// an infrastructure definition declares them.
func Routes() []Route {
	out := make([]Route, len(routes))
	copy(out, routes)
	return out
}

// Match returns the route of method and the escaped path, with its path
// parameters, as API Gateway would select it; ok is false when no route
// matches (the $default route's case).
func Match(method, escapedPath string) (rt Route, params map[string]string, ok bool) {
	segs := strings.Split(strings.TrimPrefix(escapedPath, "/"), "/")
	for _, r := range routes {
		if r.Method != method {
			continue
		}
		if p, ok := matchPath(r.segs, segs); ok {
			return r, p, true
		}
	}
	return Route{}, nil, false
}

func matchPath(pattern, segs []string) (map[string]string, bool) {
	if len(pattern) != len(segs) {
		return nil, false
	}
	var p map[string]string
	for i, want := range pattern {
		if name, ok := strings.CutPrefix(want, "{"); ok {
			if segs[i] == "" {
				return nil, false
			}
			// A parameter whose escape does not decode still selects the
			// route, as a segment does in API Gateway; the API refuses it.
			v, err := url.PathUnescape(segs[i])
			if err != nil {
				v = segs[i]
			}
			if p == nil {
				p = map[string]string{}
			}
			p[strings.TrimSuffix(name, "}")] = v
			continue
		}
		if segs[i] != want {
			return nil, false
		}
	}
	return p, true
}
