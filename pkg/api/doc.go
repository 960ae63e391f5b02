// Package api holds the wire types of Parkinglot's HTTP API v1, shared by the
// server, the Lambda handlers and the Go client, and their conversions from
// core's types. Times are RFC 3339 UTC with nanoseconds; durations are Go
// duration strings; cursors are opaque strings.
package api
