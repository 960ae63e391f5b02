package boltstore

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Messages returns messages after max(after, acked), in cursor order.
func (s *Store) Messages(_ context.Context, tenant, recipient string, after core.Cursor, limit int) ([]core.Message, error) {
	box := mailboxKey(tenant, recipient)
	var out []core.Message
	err := s.view("messages", func(tx *bolt.Tx) error {
		from := after
		if v := tx.Bucket(bucketAcks).Get(box); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("boltstore: ack of %s/%s: %w: malformed cursor", tenant, recipient, ErrCorrupt)
			}
			from = max(from, core.Cursor(readU64(v)))
		}
		c := tx.Bucket(bucketMbox).Cursor()
		for k, v := c.Seek(appendU64(bytes.Clone(box), uint64(from)+1)); k != nil && len(out) < limit; k, v = c.Next() {
			if !bytes.HasPrefix(k, box) {
				break
			}
			var m core.Message
			if err := decode(v, &m); err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// Ack moves the acknowledged cursor forward to upTo, durably.
func (s *Store) Ack(ctx context.Context, tenant, recipient string, upTo core.Cursor) error {
	box := mailboxKey(tenant, recipient)
	return s.do(ctx, func(tx *bolt.Tx, _ *batch) (func(), error) {
		acks := tx.Bucket(bucketAcks)
		if v := acks.Get(box); len(v) == 8 && core.Cursor(readU64(v)) >= upTo {
			return nil, nil
		}
		if err := acks.Put(box, appendU64(nil, uint64(upTo))); err != nil {
			return nil, fmt.Errorf("boltstore: ack: %w", err)
		}
		return nil, nil
	})
}

// WatchMailbox signals new messages of (tenant, recipient).
func (s *Store) WatchMailbox(tenant, recipient string) (<-chan struct{}, func()) {
	box := string(mailboxKey(tenant, recipient))
	ch := make(chan struct{}, 1)
	s.watchMu.Lock()
	ws := s.watchers[box]
	if ws == nil {
		ws = make(map[chan struct{}]struct{})
		s.watchers[box] = ws
	}
	ws[ch] = struct{}{}
	s.watchMu.Unlock()
	return ch, func() {
		s.watchMu.Lock()
		delete(s.watchers[box], ch)
		if len(s.watchers[box]) == 0 {
			delete(s.watchers, box)
		}
		s.watchMu.Unlock()
	}
}

// notify signals the watchers of boxes, after their messages are durable.
func (s *Store) notify(boxes []string) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	for _, box := range boxes {
		for ch := range s.watchers[box] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}
