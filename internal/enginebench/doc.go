// Package enginebench compares embedded storage engines on Parkinglot's
// write pattern: a submit-like transaction (pool counter, task, audit event,
// mailbox message) committed durably by many goroutines at once, once with
// one fsync per transaction and once with concurrent transactions grouped
// into one fsync. It is its own module, so that the engines it measures do
// not become dependencies of Parkinglot itself.
//
//	cd internal/enginebench && go test -run '^$' -bench . -benchtime 5s
package enginebench
