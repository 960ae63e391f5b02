package pebblestore

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Events answers an audit query; see core.AuditStore. Events of a tenant
// are stored in (At, Seq) order, so a query is one range scan.
func (s *Store) Events(_ context.Context, q core.AuditQuery) ([]core.Event, error) {
	r, err := s.read()
	if err != nil {
		return nil, err
	}
	defer r.release()
	prefix := appendStr(key(spaceAudit, len(q.Tenant)+1), q.Tenant)
	start := eventKey(q.Tenant, q.From, 0)
	if !q.After.IsZero() {
		if a := eventKey(q.Tenant, q.After.At, q.After.Seq+1); bytes.Compare(a, start) > 0 {
			start = a
		}
	}
	end := appendTime(bytes.Clone(prefix), q.To)
	var out []core.Event
	total := 0
	err = scan(r.snap, prefix, start, func(k, v []byte) (bool, error) {
		if len(out) >= q.Limit || bytes.Compare(k, end) >= 0 {
			return false, nil
		}
		var e core.Event
		if err := decode(v, &e); err != nil {
			return false, err
		}
		if q.Pool != "" && e.Pool != q.Pool || q.TaskID != "" && e.TaskID != q.TaskID {
			return true, nil
		}
		size := core.EventBytes(&e)
		if !core.PageFits(len(out), total, size) {
			return false, nil
		}
		total += size
		out = append(out, e)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// purgeChunk bounds the deletions of one purge batch, so that purging never
// holds the writer long: requests queue behind at most one chunk.
const purgeChunk = 1000

// Purge removes messages and events past retention, one bounded chunk per
// batch. Messages go in commit order up to the first one created at or
// after messagesBefore; events go per tenant, by time.
func (s *Store) Purge(ctx context.Context, messagesBefore, eventsBefore time.Time) (int, error) {
	total := 0
	for {
		n := 0
		err := s.do(ctx, func(w *pebble.Batch, _ *batch) (func(), error) {
			var err error
			n, err = purgeMessages(w, messagesBefore)
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
	resume := []byte{spaceAudit}
	for resume != nil {
		n := 0
		err := s.do(ctx, func(w *pebble.Batch, _ *batch) (func(), error) {
			var err error
			n, resume, err = purgeEvents(w, resume, eventsBefore)
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
func purgeMessages(w *pebble.Batch, t time.Time) (int, error) {
	var logKeys, msgKeys [][]byte
	err := scan(w, []byte{spaceMlog}, nil, func(k, v []byte) (bool, error) {
		if len(v) < 8 || len(k) != 9 {
			return false, fmt.Errorf("pebblestore: message log: %w: malformed entry %x", ErrCorrupt, v)
		}
		if len(logKeys) == purgeChunk || !readTime(v).Before(t) {
			return false, nil
		}
		logKeys = append(logKeys, bytes.Clone(k))
		msgKeys = append(msgKeys, messageKey(v[8:], core.Cursor(readU64(k[1:]))))
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	for i := range logKeys {
		if err := w.Delete(msgKeys[i], nil); err != nil {
			return 0, fmt.Errorf("pebblestore: purge message: %w", err)
		}
		if err := w.Delete(logKeys[i], nil); err != nil {
			return 0, fmt.Errorf("pebblestore: purge message log: %w", err)
		}
	}
	return len(logKeys), nil
}

// purgeEvents deletes up to purgeChunk events before t, scanning tenants
// from the key resume on. It returns where to resume, nil when done.
func purgeEvents(w *pebble.Batch, resume []byte, t time.Time) (int, []byte, error) {
	var del [][]byte
	next := resume
	for next != nil && len(del) < purgeChunk {
		start := next
		next = nil
		err := scan(w, []byte{spaceAudit}, start, func(k, _ []byte) (bool, error) {
			_, rest, err := readStr(k[1:])
			if err != nil || len(rest) != 16 {
				return false, fmt.Errorf("pebblestore: audit: %w: malformed key %x", ErrCorrupt, k)
			}
			if len(del) == purgeChunk {
				next = bytes.Clone(k)
				return false, nil
			}
			if readTime(rest).Before(t) {
				del = append(del, bytes.Clone(k))
				return true, nil
			}
			// The rest of this tenant is recent: go on with the next tenant.
			next = prefixEnd(k[:len(k)-16])
			return false, nil
		})
		if err != nil {
			return 0, nil, err
		}
	}
	for _, d := range del {
		if err := w.Delete(d, nil); err != nil {
			return 0, nil, fmt.Errorf("pebblestore: purge event: %w", err)
		}
	}
	return len(del), next, nil
}
