// Package loadtest drives a Parkinglot server over HTTP API v1 with
// permit-mode workers and checks its invariants with an observer that is
// independent of the server.
//
// Submitters send N tasks round-robin over pools and tenants (one bearer
// token each). Each tenant has workers that long-poll their own mailbox; on
// a started message a worker holds the task for a while and completes it,
// except for a fraction of tasks whose worker "crashes" and never
// completes (the lease times out and the sweeper reclaims the slot).
//
// The observer records, per task, the worker's receive time of the started
// message and the time it sends complete; a crashed task's interval ends at
// the started message's at + the run timeout (the lease promise). Every
// time is read on the wall clock, which the server's lease ends and the
// promise are on too. It counts instants at which more intervals of a pool overlap
// than its capacity, tasks without exactly one outcome message, and
// starts at or after a task's deadline. Wake latency is computed from the
// server's audit trail: a slot freed (running to terminal, with work
// parked) to the pool's next parked to running event.
package loadtest
