// Package coretest is the contract suite that every Parkinglot backend
// passes. A backend's own test calls Exercise, which checks each port of
// core.Backend directly and then the whole task lifecycle through
// core.Scheduler, and Property, which runs seeded random operation sequences
// against a simple reference model while a FaultInjector duplicates queue
// deliveries, loses sends and fails calls and commits after the fact, and
// checks the invariants of the design after every step from the backend's
// own state.
//
//	func TestContract(t *testing.T) {
//		coretest.Exercise(t, func(t *testing.T, clock core.Clock) core.Backend {
//			return mybackend.New(clock)
//		})
//	}
//
// The backend that newBackend returns must be fresh and empty, and must use
// clock for everything time-based (the parking queue's visibility timeout,
// which must be at most 12 hours, as on SQS).
package coretest
