package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// SQLSTATEs that the store's functions raise (migrations/0001_init.sql).
const (
	codePoolNotFound  = "PLP01"
	codePoolCondition = "PLP02"
	codeTaskConflict  = "PLT01"
	codeKeyExists     = "PLK01"
)

// maxCommitAttempts bounds the attempts of a commit that the database
// rolled back for a reason of its own (a deadlock or serialization
// failure), which says nothing about the transition's conditions.
const maxCommitAttempts = 8

// Commit applies txn as one transaction; see core.Committer.
//
// The transaction is one pgx batch: its statements go to the server in one
// round trip and run, up to the batch's one Sync, as one implicit
// transaction at READ COMMITTED, which a failing statement rolls back
// whole. The statements: each task's write in id order, an INSERT ... ON
// CONFLICT DO NOTHING for a new task or an UPDATE ... WHERE version =
// expected, with task_written raising when no row was written; the
// idempotency key's INSERT ... ON CONFLICT DO NOTHING with key_written;
// the events' insert; for each mailbox in (tenant, recipient) order, its
// head row update, which takes the messages' cursors, and the messages'
// insert; pg_notify for each mailbox, delivered by the server only once
// the transaction commits; and last the pool's counters (commit_pool: the
// row locked, its conditions checked, raising when one fails).
//
// Every transaction takes its row locks in that order (tasks, key,
// mailboxes, pool), so two commits never deadlock, and the hottest rows
// last: a row lock is held until the commit's WAL flush, and one pool's
// (or one mailbox's) transitions queue on its row for that long; taking it
// at the end keeps the statements before it out of the queue.
//
// A raised condition is translated to core's error by core's own checks
// on the rows as the transaction saw them: TaskWrite.Conflicts on the
// stored version, Txn.CheckPool on the locked pool row that commit_pool
// reports.
func (s *Store) Commit(ctx context.Context, txn *core.Txn) error {
	if err := txn.CheckShape(); err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	for attempt := 1; ; attempt++ {
		err := s.pool.SendBatch(ctx, s.commitBatch(txn)).Close()
		if err == nil {
			return nil
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			return fmt.Errorf("pgstore: commit %s: %w", describe(txn), err)
		}
		switch pe.Code {
		case codePoolNotFound:
			return fmt.Errorf("pgstore: commit: %w: %s", core.ErrPoolNotFound, txn.Pool)
		case codePoolCondition:
			return namePoolFailure(txn, pe.Detail)
		case codeTaskConflict:
			return taskConflict(txn, pe)
		case codeKeyExists:
			return fmt.Errorf("pgstore: commit key %q: %w", txn.Key.Key, core.ErrKeyExists)
		case "40P01", "40001": // deadlock_detected, serialization_failure: rolled back, retry
			if attempt < maxCommitAttempts {
				continue
			}
		}
		return fmt.Errorf("pgstore: commit %s: %w", describe(txn), err)
	}
}

func describe(txn *core.Txn) string {
	if len(txn.Tasks) > 0 {
		return "task " + txn.Tasks[0].Task.ID
	}
	return "pool " + txn.Pool
}

const insertTask = `
WITH w AS (
	INSERT INTO tasks (id, version, key, tenant, pool, recipient, state, payload, submitted_at, deadline, run_timeout,
		started_at, lease, lease_expires_at, ended_at, result, error, body_hash, unsent, due_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
	ON CONFLICT (id) DO NOTHING
	RETURNING 1)
SELECT task_written(count(*), $1) FROM w`

const updateTask = `
WITH w AS (
	UPDATE tasks SET version = $2, key = $3, tenant = $4, pool = $5, recipient = $6, state = $7, payload = $8,
		submitted_at = $9, deadline = $10, run_timeout = $11, started_at = $12, lease = $13, lease_expires_at = $14,
		ended_at = $15, result = $16, error = $17, body_hash = $18, unsent = $19, due_at = $20
	WHERE id = $1 AND version = $21
	RETURNING 1)
SELECT task_written(count(*), $1) FROM w`

const insertKey = `
WITH w AS (
	INSERT INTO keys (tenant, key, task_id, body_hash) VALUES ($1, $2, $3, $4)
	ON CONFLICT DO NOTHING
	RETURNING 1)
SELECT key_written(count(*)) FROM w`

// insertMessages takes n cursors from the mailbox's head row (created at
// the first message) and inserts the messages with them, in order.
const insertMessages = `
WITH h AS (
	INSERT INTO mailboxes AS b (tenant, recipient, seq) VALUES ($1, $2, $3)
	ON CONFLICT (tenant, recipient) DO UPDATE SET seq = b.seq + excluded.seq
	RETURNING seq)
INSERT INTO messages (tenant, recipient, cursor, task_id, pool, type, lease, result, error, at)
SELECT $1, $2, h.seq - $3 + m.ord, m.task_id, m.pool, m.type, m.lease, m.result, m.error, m.at
FROM h, unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[], $9::text[], $10::bigint[])
	WITH ORDINALITY AS m(task_id, pool, type, lease, result, error, at, ord)`

const insertEvents = `
INSERT INTO events (tenant, at, pool, task_id, type, from_state, to_state, detail)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])`

const notifyMailboxes = `SELECT pg_notify($1, x) FROM unnest($2::text[]) AS x`

// commitBatch builds txn's statements; see Commit.
func (s *Store) commitBatch(txn *core.Txn) *pgx.Batch {
	b := &pgx.Batch{}
	order := make([]int, len(txn.Tasks))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(txn.Tasks[a].Task.ID, txn.Tasks[b].Task.ID) })
	for _, i := range order {
		w := &txn.Tasks[i]
		t := &w.Task
		args := []any{t.ID, w.Expect + 1, t.Key, t.Tenant, t.Pool, t.Recipient, string(t.State), bytesOrNil(t.Payload),
			ns(t.SubmittedAt), ns(t.Deadline), int64(t.RunTimeout), ns(t.StartedAt), t.Lease, ns(t.LeaseExpiresAt),
			ns(t.EndedAt), bytesOrNil(t.Result), t.Error, t.BodyHash, t.Unsent, ns(t.DueAt())}
		if w.Expect == 0 {
			b.Queue(insertTask, args...)
		} else {
			b.Queue(updateTask, append(args, w.Expect)...)
		}
	}
	if k := txn.Key; k != nil {
		b.Queue(insertKey, k.Tenant, k.Key, k.TaskID, k.BodyHash)
	}
	if n := len(txn.Events); n > 0 {
		tenants, pools, tasks, types := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		froms, tos, details, ats := make([]string, n), make([]string, n), make([]string, n), make([]int64, n)
		for i := range txn.Events {
			e := &txn.Events[i]
			tenants[i], pools[i], tasks[i], types[i] = e.Tenant, e.Pool, e.TaskID, e.Type
			froms[i], tos[i], details[i], ats[i] = string(e.From), string(e.To), e.Detail, e.At.UnixNano()
		}
		b.Queue(insertEvents, tenants, ats, pools, tasks, types, froms, tos, details)
	}
	boxes := mailboxes(txn.Messages)
	for _, box := range boxes {
		var taskIDs, pools, types, leases, errs []string
		var results [][]byte
		var ats []int64
		for i := range txn.Messages {
			m := &txn.Messages[i]
			if m.Tenant != box.tenant || m.Recipient != box.recipient {
				continue
			}
			taskIDs, pools, types = append(taskIDs, m.TaskID), append(pools, m.Pool), append(types, string(m.Type))
			leases, errs = append(leases, m.Lease), append(errs, m.Error)
			results, ats = append(results, bytesOrNil(m.Result)), append(ats, m.At.UnixNano())
		}
		b.Queue(insertMessages, box.tenant, box.recipient, len(taskIDs), taskIDs, pools, types, leases, results, errs, ats)
	}
	if len(boxes) > 0 {
		payloads := make([]string, len(boxes))
		for i, box := range boxes {
			payloads[i] = mailboxPayload(box.tenant, box.recipient)
		}
		b.Queue(notifyMailboxes, s.notify.channel, payloads)
	}
	if txn.TouchesPool() {
		b.Queue(`SELECT commit_pool($1, $2, $3, $4, $5, $6)`,
			txn.Pool, txn.RunningDelta, txn.ParkedDelta, txn.NeedSlot, txn.FirstInLine, txn.NeedParkRoom)
	}
	return b
}

// bytesOrNil keeps a nil payload or result NULL and an empty one empty.
func bytesOrNil(b []byte) []byte {
	if b == nil {
		return nil
	}
	return []byte(b)
}

type mailboxKey struct{ tenant, recipient string }

// mailboxes returns the distinct mailboxes of msgs in (tenant, recipient)
// order: the order in which commits lock their head rows.
func mailboxes(msgs []core.Message) []mailboxKey {
	var out []mailboxKey
	for i := range msgs {
		k := mailboxKey{msgs[i].Tenant, msgs[i].Recipient}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b mailboxKey) int {
		return cmp.Or(cmp.Compare(a.tenant, b.tenant), cmp.Compare(a.recipient, b.recipient))
	})
	return out
}

// taskConflict names a task write's failed compare-and-set; the detail is
// the version stored when the write failed (0: no row).
func taskConflict(txn *core.Txn, pe *pgconn.PgError) error {
	id := taskOf(pe.Message)
	v, _ := strconv.ParseInt(pe.Detail, 10, 64)
	for _, w := range txn.Tasks {
		if w.Task.ID != id {
			continue
		}
		if !w.Conflicts(v != 0, v) {
			// Another writer moved the row again after the write missed
			// it: the write still lost the race.
			return fmt.Errorf("pgstore: commit task %s: %w (the row changed during the commit)", id, core.ErrConflict)
		}
		return fmt.Errorf("pgstore: commit task %s: %w (expected version %d, stored %d)", id, core.ErrConflict, w.Expect, v)
	}
	return fmt.Errorf("pgstore: commit task %s: %w", id, core.ErrConflict)
}

// taskOf extracts the id from task_written's message "task <id> version
// conflict".
func taskOf(msg string) string {
	return strings.TrimSuffix(strings.TrimPrefix(msg, "task "), " version conflict")
}

// namePoolFailure names the condition that failed on the pool row as
// commit_pool saw it, locked (detail: running parked capacity max_parked),
// with core's Txn.CheckPool. The pool is the batch's last statement, so
// every task's compare-and-set and the key held: core's order of
// conditions (tasks, key, pool) is the batch's.
func namePoolFailure(txn *core.Txn, detail string) error {
	p := core.Pool{PoolConfig: core.PoolConfig{Name: txn.Pool}}
	if _, err := fmt.Sscanf(detail, "%d %d %d %d", &p.Running, &p.Parked, &p.Capacity, &p.MaxParked); err != nil {
		return fmt.Errorf("pgstore: commit pool %s: unreadable condition detail %q: %w", txn.Pool, detail, err)
	}
	if err := txn.CheckPool(p); err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	return fmt.Errorf("pgstore: commit pool %s: the database refused conditions that core finds met on %s", txn.Pool, p)
}
