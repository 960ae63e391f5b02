// Package crash runs the real parkinglot binary on the embedded store under
// the load generator of internal/loadtest, kills it with SIGKILL at random
// points several times, restarts it on the same data directory each time,
// and checks what survived: every task acknowledged by a 2xx has exactly
// one outcome, no pool ran over capacity across the restarts (by the
// workers' own clocks), no task started after its deadline, and the audit
// trail holds every transition of every task.
package crash
