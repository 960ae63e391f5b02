package pgstore

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Events answers an audit query; see core.AuditStore. The primary key
// (tenant, at, seq) serves the range and the cursor; the pool and task
// filters are applied on the rows of the range.
func (s *Store) Events(ctx context.Context, q core.AuditQuery) ([]core.Event, error) {
	afterAt, afterSeq := int64(math.MinInt64), int64(0)
	if !q.After.IsZero() {
		afterAt, afterSeq = q.After.At.UnixNano(), int64(q.After.Seq)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT at, seq, pool, task_id, type, from_state, to_state, detail FROM (
			SELECT e.*, sum(e.size) OVER (ORDER BY e.at, e.seq ROWS UNBOUNDED PRECEDING) - e.size AS before
			FROM (
				SELECT at, seq, pool, task_id, type, from_state, to_state, detail,
					octet_length(tenant) + octet_length(pool) + octet_length(task_id) + octet_length(type)
						+ octet_length(from_state) + octet_length(to_state) + octet_length(detail) AS size
				FROM events
				WHERE tenant = $1 AND at >= $2 AND at < $3 AND (at, seq) > ($4, $5)
					AND ($6 = '' OR pool = $6) AND ($7 = '' OR task_id = $7)
				ORDER BY at, seq
				LIMIT $8
			) e
		) w
		WHERE before <= $9
		ORDER BY at, seq`,
		q.Tenant, q.From.UnixNano(), q.To.UnixNano(), afterAt, afterSeq, q.Pool, q.TaskID, q.Limit, core.MaxPageBytes)
	if err != nil {
		return nil, fmt.Errorf("pgstore: audit: %w", err)
	}
	defer rows.Close()
	var out []core.Event
	total := 0
	for rows.Next() {
		e := core.Event{Tenant: q.Tenant}
		var at, seq int64
		var from, to string
		if err := rows.Scan(&at, &seq, &e.Pool, &e.TaskID, &e.Type, &from, &to, &e.Detail); err != nil {
			return nil, fmt.Errorf("pgstore: audit: %w", err)
		}
		e.At, e.Seq, e.From, e.To = fromNS(&at), uint64(seq), core.State(from), core.State(to)
		size := core.EventBytes(&e)
		if !core.PageFits(len(out), total, size) {
			break
		}
		total += size
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: audit: %w", err)
	}
	return out, nil
}

// purgeBatch bounds the rows one purge statement deletes, so that a purge
// of a long backlog never holds one long transaction.
const purgeBatch = 10000

// Purge deletes messages and events past retention, in batches, through
// the at indexes.
func (s *Store) Purge(ctx context.Context, messagesBefore, eventsBefore time.Time) (int, error) {
	n := 0
	for _, p := range []struct {
		table  string
		before time.Time
	}{{"messages", messagesBefore}, {"events", eventsBefore}} {
		for {
			tag, err := s.pool.Exec(ctx, `DELETE FROM `+p.table+` WHERE ctid = ANY (ARRAY(
				SELECT ctid FROM `+p.table+` WHERE at < $1 LIMIT $2))`, p.before.UnixNano(), purgeBatch)
			if err != nil {
				return n, fmt.Errorf("pgstore: purge %s: %w", p.table, err)
			}
			n += int(tag.RowsAffected())
			if tag.RowsAffected() < purgeBatch {
				break
			}
		}
	}
	return n, nil
}
