package pebblestore

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parkinglot/parkinglot/pkg/core"
)

func ackKey(box []byte) []byte { return append(key(spaceAcks, len(box)), box...) }

// newestKey holds the cursor of a mailbox's newest message; retention
// does not remove it.
func newestKey(box []byte) []byte { return append(key(spaceNewest, len(box)), box...) }

// Messages returns messages after max(after, acked), in cursor order.
func (s *Store) Messages(_ context.Context, tenant, recipient string, after core.Cursor, limit int) ([]core.Message, error) {
	r, err := s.read()
	if err != nil {
		return nil, err
	}
	defer r.release()
	box := mailboxKey(tenant, recipient)
	from := after
	v, ok, err := get(r.snap, ackKey(box))
	if err != nil {
		return nil, err
	}
	if ok {
		if len(v) != 8 {
			return nil, fmt.Errorf("pebblestore: ack of %s/%s: %w: malformed cursor", tenant, recipient, ErrCorrupt)
		}
		from = max(from, core.Cursor(readU64(v)))
	}
	prefix := append(key(spaceMbox, len(box)), box...)
	var out []core.Message
	total := 0
	err = scan(r.snap, prefix, messageKey(box, from+1), func(_, v []byte) (bool, error) {
		if len(out) >= limit {
			return false, nil
		}
		var m core.Message
		if err := decode(v, &m); err != nil {
			return false, err
		}
		size := core.MessageBytes(&m)
		if !core.PageFits(len(out), total, size) {
			return false, nil
		}
		total += size
		out = append(out, m)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Ack moves the acknowledged cursor forward to upTo, durably. A cursor
// beyond the mailbox's newest message is core.ErrAckBeyondNewest.
func (s *Store) Ack(ctx context.Context, tenant, recipient string, upTo core.Cursor) error {
	box := mailboxKey(tenant, recipient)
	k := ackKey(box)
	return s.do(ctx, func(w *pebble.Batch, _ *batch) (func(), error) {
		newest, ok, err := get(w, newestKey(box))
		if err != nil {
			return nil, err
		}
		if !ok || len(newest) != 8 || upTo > core.Cursor(readU64(newest)) {
			return nil, refuse(core.ErrAckBeyondNewest)
		}
		v, ok, err := get(w, k)
		if err != nil {
			return nil, err
		}
		if ok && len(v) == 8 && core.Cursor(readU64(v)) >= upTo {
			return nil, nil
		}
		if err := w.Set(k, appendU64(nil, uint64(upTo)), nil); err != nil {
			return nil, fmt.Errorf("pebblestore: ack: %w", err)
		}
		return nil, nil
	})
}

// WatchMailbox signals new messages of (tenant, recipient).
func (s *Store) WatchMailbox(tenant, recipient string) (<-chan struct{}, func()) {
	return s.watchers.Watch(string(mailboxKey(tenant, recipient)))
}

// notify signals the watchers of boxes, after their messages are durable.
func (s *Store) notify(boxes []string) { s.watchers.Notify(boxes) }
