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
// A transition is one transaction at READ COMMITTED, sent as one pgx batch
// (one round trip; see Store.Commit): each task written with a
// compare-and-set on its version, the key inserted if absent, the events
// inserted, each mailbox's head row advanced to take the messages' cursors
// and the messages inserted, a notification per mailbox, and last the pool
// row locked and its counters moved if its conditions hold. A failed
// condition raises and rolls everything back; core's TaskWrite.Conflicts
// and Txn.CheckPool, given the rows as the transaction saw them, name the
// error. Rows are locked in one order (tasks by id, key, mailboxes by
// tenant and recipient, pool), so commits wait for each other but do not
// deadlock; the pool row, which every transition of the pool updates, is
// taken last, since a row lock is held until the commit's WAL flush.
//
// Mailbox cursors come from the mailbox's head row, updated inside the
// transaction and held until it commits: a message committed after a read
// that returned cursor c gets a cursor above c. (A sequence would not do:
// it hands out numbers before commit, in another order than commits land.)
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
// Each commit that writes mailbox messages notifies the store's channel
// inside its transaction; PostgreSQL delivers the notification only after
// the commit, to every listening server. One connection per Store listens
// and signals the mailbox's watchers. Polling (core's MailboxPoll) stays as
// the safety net for notifications lost while that connection reconnects.
//
// # Durability
//
// A commit returns once PostgreSQL has committed it (with the server's
// synchronous_commit, by default after the WAL flush), and readers see only
// committed rows: nothing is visible before it is durable.
package pgstore
