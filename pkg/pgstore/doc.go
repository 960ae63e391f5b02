// Package pgstore is the PostgreSQL backend of Parkinglot, over pgx
// (github.com/jackc/pgx/v5) and its connection pool: the store for
// self-hosted fleets, where several parkinglot servers share one database
// and so one capacity per pool.
//
// It implements core.Backend with pkg/memstore's semantics, and
// core.MailboxWatcher through LISTEN/NOTIFY. Everything it stores is in
// one schema (Options.Schema, default "parkinglot"), created and brought
// up to date by Open: embedded, numbered, forward-only migrations
// (migrations/NNNN_name.sql), applied under an advisory lock so that
// servers starting together apply each once; Migrate applies them alone.
//
// # Tables
//
//	table        key                         what
//	pools        name                        configuration, running, parked
//	tasks        id                          every task field, version; due_at (partial index tasks_due), unsent (partial index tasks_unsent)
//	keys         (tenant, key)               idempotency keys
//	mailboxes    (tenant, recipient)         seq (last cursor given), acked
//	messages     (tenant, recipient, cursor) mailbox messages; index on at for Purge
//	events       (tenant, at, seq)           the audit trail; index on at for Purge
//	queue        id (send order)             parking queue messages: pool, tenant, task, visible_at, receipts
//	queue_turns  (pool, tenant)              when each tenant was last served, for round-robin
//
// Times are stored as Unix nanoseconds, as core makes them.
//
// # Commit
//
// Every transition's conditions and writes are one call of commit_one, a
// PL/pgSQL function of the schema: each task written with a compare-and-set
// on its version (INSERT ... ON CONFLICT DO NOTHING for a new task, UPDATE
// ... WHERE version = expected), the key inserted if absent, the events
// inserted, each message given the next cursor of its mailbox's head row
// and inserted, a notification per message, and last the pool's counters
// moved if its conditions hold (commit_pool). A failed condition raises a
// SQLSTATE of the store's own with the row as it was, and core's
// TaskWrite.Conflicts and Txn.CheckPool name the error from it.
//
// Group commit: a pool's row is updated by every transition of the pool and
// a mailbox's head row by every message to it, and PostgreSQL holds a row
// lock until the commit's WAL flush, so one transaction per transition
// would commit one pool's (or one mailbox's) transitions one flush after
// another. Commit instead hands its transaction to one of the store's two
// writers, which commits every transaction waiting at the time (up to 256)
// in one call of commit_many: one round trip, one transaction at READ
// COMMITTED, one WAL flush, each transition in a subtransaction of its own
// so that a failed condition rolls back that transition alone. The group
// first locks every row it will update in one global order (tasks by id,
// mailbox heads, pools by name), so groups, of one server or several, do not
// deadlock on them (two groups inserting the same two idempotency keys in
// opposite orders can; the database breaks it and the store retries).
//
// Mailbox cursors come from the mailbox's head row, updated inside the
// transaction and held until it commits: a message committed after a read
// that returned cursor c gets a cursor above c. (A sequence would not do:
// it hands out numbers before commit, in another order than commits land.)
// TestCursorContract fails with such cursors.
//
// # Parking queue
//
// pgmq-style: a table of messages per pool with a visibility time.
// queue_receive takes, for tenants least recently served first, each
// tenant's oldest visible messages, locked with FOR UPDATE SKIP LOCKED so
// that concurrent receivers never wait for each other nor get the same
// message, hides them until the visibility timeout and counts the
// delivery. A receipt names the message and its delivery, so a receipt of
// an earlier delivery neither deletes nor releases it. Release makes a
// message visible at once at its place in its tenant's line (its id);
// at-least-once, like the other stores. Visibility times come from
// Options.Clock, as everywhere in core.
//
// # Wake-ups
//
// Each transition that writes mailbox messages notifies the store's
// channel inside its transaction; PostgreSQL delivers the notification only after
// the commit, to every listening server. One connection per Store listens
// and signals the mailbox's watchers. Polling (core's MailboxPoll) stays as
// the safety net for notifications lost while that connection reconnects.
// Send and Release notify the pool's queue the same way, for ReceiveWait:
// a receive that waits for a message (core's QueueLongPoller, which claims
// use), on whichever server the message was sent.
//
// # Durability
//
// A commit returns once PostgreSQL has committed it (with the server's
// synchronous_commit, by default after the WAL flush), and readers see only
// committed rows: nothing is visible before it is durable.
package pgstore
