// Package httpapi serves Parkinglot's HTTP API v1 (the /v1/... routes) over a
// *core.Scheduler. It is a plain http.Handler without global state, so that
// the native server mounts it directly and the Lambda functions feed it
// requests built from API Gateway events.
//
// The handler establishes the tenant of every request through an
// Authenticator, never from the body; decodes JSON bodies strictly (unknown
// fields, wrong types, trailing data and oversized bodies are 4xx errors
// naming the field); and maps core's sentinel errors to HTTP statuses and the
// error codes of pkg/api. A rejected request changes nothing.
//
// The API is described by api/openapi.yaml at the root of the module; the
// reusable contract suite in package httpapitest drives it over real HTTP.
package httpapi
