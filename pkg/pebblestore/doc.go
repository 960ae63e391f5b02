// Package pebblestore is the durable embedded backend of Parkinglot, over
// Pebble (github.com/cockroachdb/pebble/v2), the LSM key-value store of
// CockroachDB: a data directory of Pebble's files, the native server's
// default store.
//
// It implements core.Backend with pkg/memstore's semantics: per-item
// conditions, all-or-nothing Commit, mailbox cursors increasing in commit
// order, audit events in (At, Seq) order, the Due and Unsent indexes, an
// at-least-once parking queue per pool (FIFO per tenant, round-robin between
// tenants, with a visibility timeout), and core.MailboxWatcher.
//
// Durability: every Commit, Send, Ack and PutPool returns only after its
// write is in Pebble's write-ahead log and fsync'd. Writes are applied by
// one writer goroutine that takes every request waiting at the time into
// one Pebble batch and one fsync (group commit): concurrent requests share
// the cost of the sync instead of paying one each. A request's conditions
// are checked against the state left by the requests before it in the same
// batch, so a failed condition fails that request alone, and a batch
// becomes visible to readers all at once, which keeps mailbox cursors
// increasing in the order readers see them. Delete of a queue message is
// the one write that does not wait: a delete lost to a crash brings the
// message back, and consumers drop it because its task is no longer parked.
//
// Visibility: nothing is visible before it is durable. Readers read a
// snapshot of the last batch whose WAL sync has returned, never Pebble's
// current state (which includes applied batches still being synced), and
// every answer — a read, a refusal, a mailbox wake-up — leaves the store
// only after the batch it depends on is synced; see the view type.
//
// Restart keeps everything acknowledged: tasks with their leases, parked
// queue messages in order (messages received but not deleted become visible
// again), mailboxes, acknowledged cursors and the audit trail. Start-up
// replays at most one memtable of WAL and reads only the parking queues, so
// it stays fast however large the audit trail grows. Close leaves a marker
// file (CleanFile) that Open removes: opened without it, after a crash, the
// store logs one Warn line of what it recovered (the last sequence number,
// each pool's running and parked counters). Pebble checksums every
// WAL record and table block; stored values carry a CRC-32C of their own.
// Damage found at start-up fails Open, damage found by a read fails that
// read, both with an error wrapping ErrCorrupt, never a panic. A second
// process opening the same directory fails at once (ErrInUse). Check
// verifies a closed store offline: checksums and the store's invariants.
package pebblestore
