// Package core is the Parkinglot scheduler: the task lifecycle, admission under
// a hard per-pool capacity, parking with deadlines, leases, the recipient
// mailbox and the audit trail.
//
// Core holds no state of its own. It reads and writes through small ports
// (see ports.go) sized to what DynamoDB and SQS can do: single-item reads,
// one small atomic transaction per transition (Committer), and an
// at-least-once parking queue (ParkingQueue). No port relies on a global lock,
// so every backend faces the same races and core resolves them the same way:
// every transition is a compare-and-set on the task's version, and capacity is
// a condition on the pool item inside the same transaction.
//
// Time comes from an injected Clock. Core starts no goroutines: the runtime
// calls Dispatch and Sweep (the native server from a loop, Lambda from
// triggers).
package core
