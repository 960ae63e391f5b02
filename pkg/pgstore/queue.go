package pgstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Send enqueues p, visible at once. The tenant's turn row is created with
// its first message.
func (s *Store) Send(ctx context.Context, pool string, p core.Parked) error {
	_, err := s.pool.Exec(ctx, `
		WITH t AS (INSERT INTO queue_turns (pool, tenant) VALUES ($1, $2) ON CONFLICT DO NOTHING)
		INSERT INTO queue (pool, tenant, task_id, deadline) VALUES ($1, $2, $3, $4)`,
		pool, p.Tenant, p.TaskID, ns(p.Deadline))
	if err != nil {
		return fmt.Errorf("pgstore: send %s to %s: %w", p.TaskID, pool, err)
	}
	return nil
}

// Receive returns up to max visible messages, tenants in turn, each hidden
// for the visibility timeout (queue_receive: FOR UPDATE SKIP LOCKED, so
// concurrent receivers take different messages without waiting).
func (s *Store) Receive(ctx context.Context, pool string, max int) ([]core.Delivery, error) {
	now := s.opts.Clock.Now()
	rows, err := s.pool.Query(ctx, `SELECT id, task_id, tenant, deadline, receipts FROM queue_receive($1, $2, $3, $4)`,
		pool, now.UnixNano(), now.Add(s.opts.Visibility).UnixNano(), max)
	if err != nil {
		return nil, fmt.Errorf("pgstore: receive from %s: %w", pool, err)
	}
	var out []core.Delivery
	var id int64
	var receipts int
	var d core.Delivery
	var deadline *int64
	_, err = pgx.ForEachRow(rows, []any{&id, &d.TaskID, &d.Tenant, &deadline, &receipts}, func() error {
		d.Deadline = fromNS(deadline)
		d.Receipt = strconv.FormatInt(id, 10) + "." + strconv.Itoa(receipts)
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgstore: receive from %s: %w", pool, err)
	}
	return out, nil
}

// parseReceipt splits a receipt "id.deliveries". A malformed one matches
// no message.
func parseReceipt(r string) (id int64, n int, ok bool) {
	a, b, found := strings.Cut(r, ".")
	id, err1 := strconv.ParseInt(a, 10, 64)
	n, err2 := strconv.Atoi(b)
	return id, n, found && err1 == nil && err2 == nil
}

// asyncExec runs sql in a transaction of its own that commits without
// waiting for the WAL flush (one round trip: a batch is one implicit
// transaction). For Delete and Release only: a crash that loses either
// just brings the message back, to consumers that drop a message of a task
// no longer parked, as the embedded store's Delete does; the next
// synchronous commit flushes it with everything before it.
func (s *Store) asyncExec(ctx context.Context, sql string, args ...any) error {
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
	b.Queue(sql, args...)
	return s.pool.SendBatch(ctx, b).Close()
}

// Delete removes a received message. A receipt of an earlier delivery (the
// message came back and was received again) deletes nothing, as on SQS.
func (s *Store) Delete(ctx context.Context, pool, receipt string) error {
	id, n, ok := parseReceipt(receipt)
	if !ok {
		return nil
	}
	if err := s.asyncExec(ctx, `DELETE FROM queue WHERE id = $1 AND receipts = $2 AND pool = $3`, id, n, pool); err != nil {
		return fmt.Errorf("pgstore: delete from %s: %w", pool, err)
	}
	return nil
}

// Release makes a received message visible again at once, at its place
// in its tenant's line (its id).
func (s *Store) Release(ctx context.Context, pool, receipt string) error {
	id, n, ok := parseReceipt(receipt)
	if !ok {
		return nil
	}
	if err := s.asyncExec(ctx, `UPDATE queue SET visible_at = 0 WHERE id = $1 AND receipts = $2 AND pool = $3`, id, n, pool); err != nil {
		return fmt.Errorf("pgstore: release in %s: %w", pool, err)
	}
	return nil
}
