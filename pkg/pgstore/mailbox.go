package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// pageBytes pre-limits a page on the server: rows are read in order with
// the running total of their raw sizes before them, and none is sent whose
// total before it already exceeds core.MaxPageBytes. A raw size is never
// more than what core counts (the same bytes, JSON-quoted and escaped), so
// such a row could not fit; the exact rule (core.PageFits) is applied to
// the rest as they are read.

// Messages returns messages after max(after, acked), in cursor order.
func (s *Store) Messages(ctx context.Context, tenant, recipient string, after core.Cursor, limit int) ([]core.Message, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT cursor, task_id, pool, type, key, payload, deadline, lease, lease_expires_at, result, error, at FROM (
			SELECT m.*, sum(m.size) OVER (ORDER BY m.cursor ROWS UNBOUNDED PRECEDING) - m.size AS before
			FROM (
				SELECT cursor, task_id, pool, type, key, payload, deadline, lease, lease_expires_at, result, error, at,
					coalesce(octet_length(payload), 0) + coalesce(octet_length(result), 0) + octet_length(error)
						+ octet_length(task_id) + octet_length(pool) + octet_length(type) + octet_length(key)
						+ octet_length(lease) AS size
				FROM messages
				WHERE tenant = $1 AND recipient = $2
					AND cursor > greatest($3, coalesce((SELECT acked FROM mailboxes WHERE tenant = $1 AND recipient = $2), 0))
				ORDER BY cursor
				LIMIT $4
			) m
		) w
		WHERE before <= $5
		ORDER BY cursor`,
		tenant, recipient, int64(after), limit, core.MaxPageBytes)
	if err != nil {
		return nil, fmt.Errorf("pgstore: mailbox: %w", err)
	}
	defer rows.Close()
	var out []core.Message
	total := 0
	for rows.Next() {
		m := core.Message{Tenant: tenant, Recipient: recipient}
		var cursor, at int64
		var deadline, leaseEnd *int64
		var typ string
		var payload, result []byte
		if err := rows.Scan(&cursor, &m.TaskID, &m.Pool, &typ, &m.Key, &payload, &deadline, &m.Lease, &leaseEnd,
			&result, &m.Error, &at); err != nil {
			return nil, fmt.Errorf("pgstore: mailbox: %w", err)
		}
		m.Cursor, m.Type, m.At = core.Cursor(cursor), core.MessageType(typ), fromNS(&at)
		m.Deadline, m.LeaseExpiresAt = fromNS(deadline), fromNS(leaseEnd)
		if payload != nil {
			m.Payload = payload
		}
		if result != nil {
			m.Result = result
		}
		size := core.MessageBytes(&m)
		if !core.PageFits(len(out), total, size) {
			break
		}
		total += size
		out = append(out, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: mailbox: %w", err)
	}
	return out, nil
}

// Ack moves the acknowledged cursor forward to upTo, which must not be
// beyond the newest message.
func (s *Store) Ack(ctx context.Context, tenant, recipient string, upTo core.Cursor) error {
	var ok bool
	err := s.pool.QueryRow(ctx, `
		UPDATE mailboxes SET acked = greatest(acked, $3)
		WHERE tenant = $1 AND recipient = $2 AND seq >= $3
		RETURNING true`, tenant, recipient, int64(upTo)).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return core.ErrAckBeyondNewest
	}
	if err != nil {
		return fmt.Errorf("pgstore: ack: %w", err)
	}
	return nil
}

// WatchMailbox signals new messages of (tenant, recipient): the commit that
// writes one notifies, and the listener signals the mailbox's watchers on
// every server when the notification arrives, after the commit.
func (s *Store) WatchMailbox(tenant, recipient string) (<-chan struct{}, func()) {
	return s.notify.watchers.Watch(mailboxPayload(tenant, recipient))
}
