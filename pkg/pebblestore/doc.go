// Package boltstore is the durable embedded backend of Parkinglot, over
// bbolt (go.etcd.io/bbolt): one B+tree file under a data directory, the
// native server's default store.
//
// It implements core.Backend with pkg/memstore's semantics: per-item
// conditions, all-or-nothing Commit, mailbox cursors increasing in commit
// order, audit events in (At, Seq) order, the Due and Unsent indexes, an
// at-least-once parking queue per pool (FIFO per tenant, round-robin between
// tenants, with a visibility timeout), and core.MailboxWatcher.
//
// Durability: every Commit, Send, Ack and PutPool returns only after its
// write is fsync'd. Writes are applied by one writer goroutine that takes
// every request waiting at the time into one bbolt transaction and one
// fsync (group commit): concurrent requests share the cost of the sync
// instead of paying one each. A request's conditions are checked against
// the state left by the requests before it in the same group, so a failed
// condition fails that request alone.
//
// Restart keeps everything that was acknowledged: tasks with their leases,
// parked queue messages in order (messages received but not deleted become
// visible again), mailboxes, acknowledged cursors and the audit trail. Start
// reads only the parking queues into memory, so it stays fast however large
// the audit trail grows. Every stored value carries a CRC-32C; a corrupted
// or truncated file is reported as an error wrapping ErrCorrupt, never a
// panic. A second process opening the same directory fails at once.
package boltstore
