package pebblestore

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parkinglot/parkinglot/internal/fairqueue"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// queue is one pool's parking queue: FIFO per tenant (an SQS message group),
// round-robin between tenants, at-least-once with a visibility timeout.
// Messages are stored under the pool's prefix of the queue key space, by
// sequence number; this in-memory copy, rebuilt at start-up, orders them and
// tracks which are in flight. In-flight state is not stored: after a
// restart every undeleted message is visible again.
type queue = fairqueue.Queue[core.Parked]

func (s *Store) queue(pool string) *queue {
	if v, ok := s.queues.Load(pool); ok {
		return v.(*queue)
	}
	v, _ := s.queues.LoadOrStore(pool, new(queue))
	return v.(*queue)
}

func queueKey(pool string, seq uint64) []byte {
	return appendU64(appendStr(key(spaceQueue, len(pool)+10), pool), seq)
}

// loadQueues rebuilds every pool's queue from the stored messages, in order.
func (s *Store) loadQueues() error {
	return scan(s.db, []byte{spaceQueue}, nil, func(k, v []byte) (bool, error) {
		pool, rest, err := readStr(k[1:])
		if err != nil || len(rest) != 8 {
			return false, fmt.Errorf("pebblestore: queue: %w: malformed key %x", ErrCorrupt, k)
		}
		var p core.Parked
		if err := decode(v, &p); err != nil {
			return false, err
		}
		s.queue(string(pool)).Push(p.Tenant, readU64(rest), p)
		return true, nil
	})
}

// Send enqueues p durably.
func (s *Store) Send(ctx context.Context, pool string, p core.Parked) error {
	// A receiver reads the task from this same store at the cost of a
	// lookup: the message need not carry it (and its payload) to disk.
	p.Task = nil
	return s.do(ctx, func(w *pebble.Batch, b *batch) (func(), error) {
		seq := b.next()
		if err := putValue(w, queueKey(pool, seq), &p); err != nil {
			return nil, err
		}
		return func() { s.queue(pool).Push(p.Tenant, seq, p) }, nil
	})
}

// Receive returns up to max messages, taking tenants in turn.
func (s *Store) Receive(_ context.Context, pool string, max int) ([]core.Delivery, error) {
	return fairqueue.Deliveries(s.queue(pool), s.clock.Now(), s.visibility, max), nil
}

// Delete removes a received message; a stale receipt is ignored, as SQS
// does. It returns once the message is gone from memory; the stored message
// goes with the next group commit. Should the process die before that, the
// message is delivered again after restart, which consumers absorb.
func (s *Store) Delete(_ context.Context, pool, receipt string) error {
	m, ok := s.queue(pool).Delete(receipt)
	if !ok {
		return nil
	}
	return s.doAsync(func(w *pebble.Batch, _ *batch) (func(), error) {
		if err := w.Delete(queueKey(pool, m.Seq), nil); err != nil {
			return nil, fmt.Errorf("pebblestore: delete queue message: %w", err)
		}
		return nil, nil
	})
}

// Release makes a received message visible again, in its place in its group.
func (s *Store) Release(_ context.Context, pool, receipt string) error {
	s.queue(pool).Release(receipt)
	return nil
}
