package pgstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// queuePayload is the notification (and watcher key) of a pool's queue,
// distinct from every mailboxPayload.
func queuePayload(pool string) string { return "q" + pool }

// Send enqueues p, visible at once, and notifies the pool's queue watchers
// on every server once committed (ReceiveWait). The tenant's turn row is
// created with its first message.
func (s *Store) Send(ctx context.Context, pool string, p core.Parked) error {
	b := &pgx.Batch{}
	b.Queue(`
		WITH t AS (INSERT INTO queue_turns (pool, tenant) VALUES ($1, $2) ON CONFLICT DO NOTHING)
		INSERT INTO queue (pool, tenant, task_id, deadline) VALUES ($1, $2, $3, $4)`,
		pool, p.Tenant, p.TaskID, ns(p.Deadline))
	b.Queue(`SELECT pg_notify($1, $2)`, s.notify.channel, queuePayload(pool))
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("pgstore: send %s to %s: %w", p.TaskID, pool, err)
	}
	return nil
}

// queuePoll bounds a ReceiveWait's wait between two receives: a message
// whose visibility timeout ends, or a notification lost while the
// listener reconnects, is found by the next receive.
const queuePoll = time.Second

// ReceiveWait is Receive that waits up to wait, on the caller's wall-clock
// time, for a message when none is visible: woken by the notification of
// a Send or Release on any server, and receiving again at least every
// queuePoll. It is core's QueueLongPoller, for a claim that waits for work
// in a pool with free slots. A wait that ctx ends returns what it has:
// nothing.
func (s *Store) ReceiveWait(ctx context.Context, pool string, max int, wait time.Duration) ([]core.Delivery, error) {
	changed, stop := s.notify.watchers.Watch(queuePayload(pool))
	defer stop()
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		// Receive after subscribing, so that no send slips between the two.
		ds, err := s.Receive(ctx, pool, max)
		if err != nil || len(ds) > 0 {
			return ds, err
		}
		select {
		case <-changed:
		case <-time.After(queuePoll):
		case <-timeout.C:
			return nil, nil
		case <-ctx.Done():
			return nil, nil
		}
	}
}

// Receive returns up to max visible messages, tenants in turn, each hidden
// for the visibility timeout (queue_receive: FOR UPDATE SKIP LOCKED, so
// concurrent receivers take different messages without waiting).
func (s *Store) Receive(ctx context.Context, pool string, max int) ([]core.Delivery, error) {
	// Not cancelled with ctx: a receive cancelled after the server hid its
	// messages would hide them from everyone until the visibility timeout.
	// A caller gone by the time the messages arrive has them released.
	now := s.opts.Clock.Now()
	rows, err := s.pool.Query(context.WithoutCancel(ctx), `SELECT id, task_id, tenant, deadline, receipts FROM queue_receive($1, $2, $3, $4)`,
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
	if ctx.Err() != nil {
		for _, d := range out {
			_ = s.Release(ctx, pool, d.Receipt)
		}
		return nil, fmt.Errorf("pgstore: receive from %s: %w", pool, ctx.Err())
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

// asyncBatch starts a batch, one implicit transaction, that commits
// without waiting for the WAL flush. For Delete and Release only: a crash
// that loses either just brings the message back, to consumers that drop a
// message of a task no longer parked, as the embedded store's Delete does;
// the next synchronous commit flushes it with everything before it.
func asyncBatch() *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue(`SELECT set_config('synchronous_commit', 'off', true)`)
	return b
}

// Delete removes a received message. A receipt of an earlier delivery (the
// message came back and was received again) deletes nothing, as on SQS.
func (s *Store) Delete(ctx context.Context, pool, receipt string) error {
	id, n, ok := parseReceipt(receipt)
	if !ok {
		return nil
	}
	b := asyncBatch()
	b.Queue(`DELETE FROM queue WHERE id = $1 AND receipts = $2 AND pool = $3`, id, n, pool)
	if err := s.pool.SendBatch(context.WithoutCancel(ctx), b).Close(); err != nil {
		return fmt.Errorf("pgstore: delete from %s: %w", pool, err)
	}
	return nil
}

// Release makes a received message visible again at once, at its place
// in its tenant's line (its id), and notifies the pool's queue watchers.
func (s *Store) Release(ctx context.Context, pool, receipt string) error {
	id, n, ok := parseReceipt(receipt)
	if !ok {
		return nil
	}
	b := asyncBatch()
	b.Queue(`UPDATE queue SET visible_at = 0 WHERE id = $1 AND receipts = $2 AND pool = $3`, id, n, pool)
	b.Queue(`SELECT pg_notify($1, $2)`, s.notify.channel, queuePayload(pool))
	// Not cancelled with ctx: a release lost to a cancellation would hide the
	// message until the visibility timeout.
	if err := s.pool.SendBatch(context.WithoutCancel(ctx), b).Close(); err != nil {
		return fmt.Errorf("pgstore: release in %s: %w", pool, err)
	}
	return nil
}
