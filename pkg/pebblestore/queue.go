package pebblestore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// queue is one pool's parking queue: FIFO per tenant (an SQS message group),
// round-robin between tenants, at-least-once with a visibility timeout.
// Messages are stored under the pool's prefix of the queue key space, by
// sequence number; this in-memory copy, rebuilt at start-up, orders them and
// tracks which are in flight. In-flight state is not stored: after a
// restart every undeleted message is visible again.
type queue struct {
	mu       sync.Mutex
	groups   map[string][]qmsg // tenant -> ready messages
	ring     []string          // tenants with ready messages, in turn order
	turn     int
	inflight map[string]inflight // receipt -> message
	receipts uint64
}

// qmsg is a stored queue message.
type qmsg struct {
	seq uint64
	p   core.Parked
}

type inflight struct {
	m         qmsg
	visibleAt time.Time
}

func (s *Store) queue(pool string) *queue {
	if v, ok := s.queues.Load(pool); ok {
		return v.(*queue)
	}
	v, _ := s.queues.LoadOrStore(pool, &queue{groups: make(map[string][]qmsg), inflight: make(map[string]inflight)})
	return v.(*queue)
}

// push adds m to its group in send (sequence) order, so that a message
// that returns from flight takes its old place; the caller holds q.mu.
func (q *queue) push(m qmsg) {
	g := q.groups[m.p.Tenant]
	if len(g) == 0 {
		q.ring = append(q.ring, m.p.Tenant)
	}
	i, _ := slices.BinarySearchFunc(g, m.seq, func(e qmsg, seq uint64) int { return cmp.Compare(e.seq, seq) })
	q.groups[m.p.Tenant] = slices.Insert(g, i, m)
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
		s.queue(string(pool)).push(qmsg{seq: readU64(rest), p: p})
		return true, nil
	})
}

// Send enqueues p durably.
func (s *Store) Send(ctx context.Context, pool string, p core.Parked) error {
	return s.do(ctx, func(w *pebble.Batch, b *batch) (func(), error) {
		m := qmsg{seq: b.next(), p: p}
		if err := putValue(w, queueKey(pool, m.seq), &m.p); err != nil {
			return nil, err
		}
		return func() {
			q := s.queue(pool)
			q.mu.Lock()
			q.push(m)
			q.mu.Unlock()
		}, nil
	})
}

// Receive returns up to max messages, taking tenants in turn.
func (s *Store) Receive(_ context.Context, pool string, max int) ([]core.Delivery, error) {
	q := s.queue(pool)
	q.mu.Lock()
	defer q.mu.Unlock()
	now := s.clock.Now()
	for r, m := range q.inflight {
		if !now.Before(m.visibleAt) {
			delete(q.inflight, r)
			q.push(m.m)
		}
	}
	var out []core.Delivery
	for len(out) < max && len(q.ring) > 0 {
		if q.turn >= len(q.ring) {
			q.turn = 0
		}
		tenant := q.ring[q.turn]
		g := q.groups[tenant]
		m := g[0]
		g[0] = qmsg{}
		g = g[1:]
		if len(g) == 0 {
			q.ring = append(q.ring[:q.turn], q.ring[q.turn+1:]...)
			delete(q.groups, tenant)
		} else {
			q.groups[tenant] = g
			q.turn++
		}
		q.receipts++
		receipt := strconv.FormatUint(q.receipts, 36)
		q.inflight[receipt] = inflight{m: m, visibleAt: now.Add(s.visibility)}
		out = append(out, core.Delivery{Parked: m.p, Receipt: receipt})
	}
	return out, nil
}

// Delete removes a received message; a stale receipt is ignored, as SQS
// does. It returns once the message is gone from memory; the stored message
// goes with the next group commit. Should the process die before that, the
// message is delivered again after restart, which consumers absorb.
func (s *Store) Delete(_ context.Context, pool, receipt string) error {
	q := s.queue(pool)
	q.mu.Lock()
	m, ok := q.inflight[receipt]
	delete(q.inflight, receipt)
	q.mu.Unlock()
	if !ok {
		return nil
	}
	return s.doAsync(func(w *pebble.Batch, _ *batch) (func(), error) {
		if err := w.Delete(queueKey(pool, m.m.seq), nil); err != nil {
			return nil, fmt.Errorf("pebblestore: delete queue message: %w", err)
		}
		return nil, nil
	})
}

// Release makes a received message visible again, in its place in its group.
func (s *Store) Release(_ context.Context, pool, receipt string) error {
	q := s.queue(pool)
	q.mu.Lock()
	defer q.mu.Unlock()
	if m, ok := q.inflight[receipt]; ok {
		delete(q.inflight, receipt)
		q.push(m.m)
	}
	return nil
}
