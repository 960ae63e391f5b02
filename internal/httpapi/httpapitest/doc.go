// Package httpapitest is the contract suite of Parkinglot's HTTP API v1: it
// drives every route, status code, JSON field name, error shape and
// bad-input case over real HTTP, in real time with short durations, against
// any Target that serves the API — the handler over an in-process server, the
// native binary, or the Lambda functions behind API Gateway.
//
// A target's owner calls Run from a test:
//
//	func TestContract(t *testing.T) {
//		httpapitest.Run(t, func(t *testing.T, pools []core.PoolConfig) httpapitest.Target {
//			// start a server with these pools and tokens for "acme" and "globex"
//		})
//	}
//
// The suite asks for its pools (all named "ct-..."), uses its own recipients
// and checks only what it created, so a target may hold other pools and data.
// It does not need a sweeper: the behaviours it checks in real time (lease
// lost after the lease ends, no start after a deadline) are enforced by the
// requests themselves.
package httpapitest
