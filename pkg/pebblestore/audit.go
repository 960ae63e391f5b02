package boltstore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Events answers an audit query; see core.AuditStore. Events of a tenant
// are stored in (At, Seq) order, so a query is one range scan.
func (s *Store) Events(_ context.Context, q core.AuditQuery) ([]core.Event, error) {
	prefix := appendStr(nil, q.Tenant)
	start := appendTime(bytes.Clone(prefix), q.From)
	if !q.After.IsZero() {
		if a := appendU64(appendTime(bytes.Clone(prefix), q.After.At), q.After.Seq+1); bytes.Compare(a, start) > 0 {
			start = a
		}
	}
	end := appendTime(bytes.Clone(prefix), q.To)
	var out []core.Event
	err := s.view("events", func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Seek(start); k != nil && len(out) < q.Limit; k, v = c.Next() {
			if bytes.Compare(k, end) >= 0 {
				break
			}
			var e core.Event
			if err := decode(v, &e); err != nil {
				return err
			}
			if q.Pool != "" && e.Pool != q.Pool || q.TaskID != "" && e.TaskID != q.TaskID {
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// purgeChunk bounds the deletions of one purge transaction, so that purging
// never holds the writer long: requests queue behind at most one chunk.
const purgeChunk = 1000

// Purge removes messages and events past retention, one bounded chunk per
// transaction. Messages go in commit order up to the first one created at
// or after messagesBefore; events go per tenant, by time.
func (s *Store) Purge(ctx context.Context, messagesBefore, eventsBefore time.Time) (int, error) {
	total := 0
	for {
		n := 0
		err := s.do(ctx, func(tx *bolt.Tx, _ *batch) (func(), error) {
			var err error
			n, err = purgeMessages(tx, messagesBefore)
			return nil, err
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < purgeChunk {
			break
		}
	}
	resume := []byte{}
	for resume != nil {
		n := 0
		err := s.do(ctx, func(tx *bolt.Tx, _ *batch) (func(), error) {
			var err error
			n, resume, err = purgeEvents(tx, resume, eventsBefore)
			return nil, err
		})
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// purgeMessages deletes up to purgeChunk messages created before t.
func purgeMessages(tx *bolt.Tx, t time.Time) (int, error) {
	mlog, mbox := tx.Bucket(bucketMlog), tx.Bucket(bucketMbox)
	var cursors, boxes [][]byte
	c := mlog.Cursor()
	for k, v := c.First(); k != nil && len(cursors) < purgeChunk; k, v = c.Next() {
		if len(v) < 8 {
			return 0, fmt.Errorf("boltstore: message log: %w: malformed entry %x", ErrCorrupt, v)
		}
		if !readTime(v).Before(t) {
			break
		}
		cursors = append(cursors, bytes.Clone(k))
		boxes = append(boxes, append(bytes.Clone(v[8:]), k...))
	}
	for i := range cursors {
		if err := mbox.Delete(boxes[i]); err != nil {
			return 0, fmt.Errorf("boltstore: purge message: %w", err)
		}
		if err := mlog.Delete(cursors[i]); err != nil {
			return 0, fmt.Errorf("boltstore: purge message log: %w", err)
		}
	}
	return len(cursors), nil
}

// purgeEvents deletes up to purgeChunk events before t, scanning tenants
// from the key resume on. It returns where to resume, nil when done.
func purgeEvents(tx *bolt.Tx, resume []byte, t time.Time) (int, []byte, error) {
	audit := tx.Bucket(bucketAudit)
	var del [][]byte
	c := audit.Cursor()
	k, _ := c.Seek(resume)
	for k != nil {
		_, rest, err := readStr(k)
		if err != nil || len(rest) != 16 {
			return 0, nil, fmt.Errorf("boltstore: audit: %w: malformed key %x", ErrCorrupt, k)
		}
		if readTime(rest).Before(t) {
			if len(del) == purgeChunk {
				resume = bytes.Clone(k)
				break
			}
			del = append(del, bytes.Clone(k))
			k, _ = c.Next()
			continue
		}
		// The rest of this tenant is recent: skip to the next tenant.
		next := prefixEnd(k[:len(k)-len(rest)])
		if next == nil {
			k = nil
			break
		}
		k, _ = c.Seek(next)
	}
	if k == nil {
		resume = nil
	}
	for _, d := range del {
		if err := audit.Delete(d); err != nil {
			return 0, nil, fmt.Errorf("boltstore: purge event: %w", err)
		}
	}
	return len(del), resume, nil
}
