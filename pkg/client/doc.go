// Package client is a small typed client of Parkinglot's HTTP API v1, over
// the wire types of pkg/api. Every failed call returns a *Error carrying
// the HTTP status and the API's error code, field and message.
package client
