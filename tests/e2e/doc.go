// Package e2e tests the real parkinglot binary: `parkinglot serve` with a
// configuration file, driven over HTTP API v1 (the httpapitest contract
// suite and a walk-through of the lifecycle), /healthz, /metrics, graceful
// shutdown on SIGTERM, start-up failure on an invalid configuration, and
// the CLI client commands with their exit codes.
package e2e
