package lambdaapi

import "github.com/parkinglot/parkinglot/internal/httpapi"

// Function names one of the four Lambda functions.
type Function string

// The functions of the serverless deployment.
const (
	// Submit serves POST /v1/pools/{pool}/tasks and event-driven
	// submissions from SQS and EventBridge.
	Submit Function = "submit"
	// Dispatch serves claim, heartbeat, complete and cancel; a release
	// wakes parked work inline.
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
	httpapi.Route
	Function Function
}

// functions maps each route of the API to the function that serves it.
var functions = map[httpapi.RouteID]Function{
	httpapi.RouteSubmit:    Submit,
	httpapi.RouteHeartbeat: Dispatch,
	httpapi.RouteComplete:  Dispatch,
	httpapi.RouteCancel:    Dispatch,
	httpapi.RouteClaim:     Dispatch,
	httpapi.RouteTask:      Mailbox,
	httpapi.RouteMailbox:   Mailbox,
	httpapi.RouteAck:       Mailbox,
	httpapi.RouteAudit:     Mailbox,
	httpapi.RoutePools:     Mailbox,
	httpapi.RoutePool:      Mailbox,
}

// Routes returns the API's routes with the function of each, in the order
// an infrastructure definition declares them.
func Routes() []Route {
	rs := httpapi.Routes()
	out := make([]Route, len(rs))
	for i, rt := range rs {
		out[i] = Route{Route: rt, Function: functions[rt.ID]}
	}
	return out
}

// match returns the route of method and the escaped path, with its
// function and path parameters, as API Gateway would select it; ok is false
// when no route matches (the $default route's case).
func match(method, escapedPath string) (rt Route, params map[string]string, ok bool) {
	r, p, _, ok := httpapi.Match(method, escapedPath)
	if !ok {
		return Route{}, nil, false
	}
	// A parameter whose escape does not decode still selects the route, as
	// a segment does in API Gateway, and is passed as it is; the API
	// refuses it.
	_ = p.Unescape()
	return Route{Route: r, Function: functions[r.ID]}, p, true
}
