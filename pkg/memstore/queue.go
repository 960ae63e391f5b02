package memstore

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// queue is one pool's parking queue: FIFO per tenant (an SQS message group),
// round-robin between tenants, at-least-once with a visibility timeout.
type queue struct {
	mu       sync.Mutex
	groups   map[string]*group // tenant -> ready messages
	ring     []string          // tenants with ready messages, in turn order
	turn     int
	inflight map[string]inflight // receipt -> message
	seq      uint64
}

type group struct {
	msgs []core.Parked
}

type inflight struct {
	p         core.Parked
	visibleAt time.Time
}

func (s *Store) queue(pool string) *queue {
	q := load[queue](&s.queues, pool)
	q.mu.Lock()
	if q.groups == nil {
		q.groups = make(map[string]*group)
		q.inflight = make(map[string]inflight)
	}
	return q // locked
}

// push adds p at the back (or, when returned, the front) of its group;
// the caller holds q.mu.
func (q *queue) push(p core.Parked, front bool) {
	g := q.groups[p.Tenant]
	if g == nil {
		g = &group{}
		q.groups[p.Tenant] = g
	}
	if len(g.msgs) == 0 {
		q.ring = append(q.ring, p.Tenant)
	}
	if front {
		g.msgs = append([]core.Parked{p}, g.msgs...)
	} else {
		g.msgs = append(g.msgs, p)
	}
}

// Send enqueues p.
func (s *Store) Send(_ context.Context, pool string, p core.Parked) error {
	q := s.queue(pool)
	defer q.mu.Unlock()
	q.push(p, false)
	return nil
}

// Receive returns up to max messages, taking tenants in turn.
func (s *Store) Receive(_ context.Context, pool string, max int) ([]core.Delivery, error) {
	q := s.queue(pool)
	defer q.mu.Unlock()
	now := s.clock.Now()
	for r, m := range q.inflight {
		if !now.Before(m.visibleAt) {
			delete(q.inflight, r)
			q.push(m.p, true)
		}
	}
	var out []core.Delivery
	for len(out) < max && len(q.ring) > 0 {
		if q.turn >= len(q.ring) {
			q.turn = 0
		}
		tenant := q.ring[q.turn]
		g := q.groups[tenant]
		p := g.msgs[0]
		g.msgs[0] = core.Parked{}
		g.msgs = g.msgs[1:]
		if len(g.msgs) == 0 {
			q.ring = append(q.ring[:q.turn], q.ring[q.turn+1:]...)
			delete(q.groups, tenant)
		} else {
			q.turn++
		}
		q.seq++
		receipt := strconv.FormatUint(q.seq, 36)
		q.inflight[receipt] = inflight{p: p, visibleAt: now.Add(s.visibility)}
		out = append(out, core.Delivery{Parked: p, Receipt: receipt})
	}
	return out, nil
}

// Delete removes a received message; a stale receipt is ignored, as SQS does.
func (s *Store) Delete(_ context.Context, pool, receipt string) error {
	q := s.queue(pool)
	defer q.mu.Unlock()
	delete(q.inflight, receipt)
	return nil
}

// Release makes a received message visible again, at the front of its group.
func (s *Store) Release(_ context.Context, pool, receipt string) error {
	q := s.queue(pool)
	defer q.mu.Unlock()
	if m, ok := q.inflight[receipt]; ok {
		delete(q.inflight, receipt)
		q.push(m.p, true)
	}
	return nil
}
