// Package lambdaapi runs HTTP API v1 and the scheduler's event-driven work
// as the four AWS Lambda functions of the serverless deployment: submit,
// dispatch, expire and mailbox.
//
// A Handler adapts API Gateway HTTP API (payload format 2.0) events to the
// http.Handler of package httpapi and back, so that the functions answer
// exactly as the native server does: same routes, status codes, headers and
// bodies. The tenant comes from the JWT authorizer's claims
// (requestContext.authorizer.jwt.claims, claim name configurable, default
// "tenant"); a request without it is 401 unauthorized. Each route belongs to
// one function (Routes); a function given a route of another answers 404 as
// the server does for an unknown route, and a path or method that no route
// matches is answered by whichever function API Gateway's $default route
// invokes (the mailbox function), 404 or 405 as the server.
//
// The submit function also takes submissions from SQS (the message body is
// the HTTP route's body; the tenant and pool are message attributes set by a
// trusted producer; partial batch failures are reported) and from
// EventBridge (detail {"pool": ..., "request": body}; the tenant is mapped
// from the event's source). Both are served through the same HTTP handler,
// so they are decoded and validated exactly as the route is. A rejection
// (parked depth full) is recorded and its outcome delivered to the mailbox;
// a submission that fails for any other reason fails its message or event,
// which Lambda retries and then sends to the dead-letter queue. A
// submission without an idempotency key gets the message or event id as its
// key, so that a redelivery replays the first submission instead of making
// a second task.
//
// Releases wake parked work inline, in the function that freed the slot
// (core's default Wake); the expire function runs Sweep on its EventBridge
// schedule, and can repeat it within one invocation for sub-minute expiry
// (Config.SweepEvery).
//
// Pools are data, not configuration: they live in the table, core reads
// them on every transition, and no function writes one at cold start (a
// cold start makes no AWS call). Expire applies them when CloudFormation
// sends it the stack's custom resource (CustomResource, PoolsResourceType);
// `parkinglot pools apply` applies them outside a deployment. Only the push
// pools' targets, runtime configuration that may name secrets, are in the
// functions' environment (EnvTargets).
//
// Logs are structured (log/slog; the functions use lambdacontext's handler,
// which adds the request id); metrics are CloudWatch Embedded Metric Format
// lines (Metrics). Gateway serves the API over plain HTTP by turning each
// request into the event of the right function and invoking it in-process,
// as API Gateway would: the contract suite of httpapitest and the local
// serverless runtime of `parkinglot serve` use it.
package lambdaapi
