// Package stack is Parkinglot's own CDK stack: one stack holding the
// parkinglot construct (package parkinglot), configured from the CDK
// context, and its outputs (API URL, table name, queue prefix, submit
// queue URL).
//
// Pools come from a server configuration file (its pools block, parsed by
// internal/config), converted to the construct's public parkinglot.Pool.
//
// New builds the stack; Checks applies cdk-nag's AwsSolutions rules, whose
// findings the construct accepts are suppressed there with a written
// reason.
package stack
