package memstore

import (
	"cmp"
	"context"
	"slices"
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
	seq      uint64              // last receipt number
	sent     uint64              // last send number
}

// queued is a message with its send number, which orders its group.
type queued struct {
	p    core.Parked
	sent uint64
}

type group struct {
	msgs []queued // in send order
}

type inflight struct {
	m         queued
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

// push adds m to its group in send order, so that a message that returns
// (released, or past its visibility timeout) takes back its place; the
// caller holds q.mu.
func (q *queue) push(m queued) {
	g := q.groups[m.p.Tenant]
	if g == nil {
		g = &group{}
		q.groups[m.p.Tenant] = g
	}
	if len(g.msgs) == 0 {
		q.ring = append(q.ring, m.p.Tenant)
	}
	i, _ := slices.BinarySearchFunc(g.msgs, m.sent, func(e queued, sent uint64) int { return cmp.Compare(e.sent, sent) })
	g.msgs = slices.Insert(g.msgs, i, m)
}

// Send enqueues p.
func (s *Store) Send(_ context.Context, pool string, p core.Parked) error {
	q := s.queue(pool)
	defer q.mu.Unlock()
	q.sent++
	q.push(queued{p: p, sent: q.sent})
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
		m := g.msgs[0]
		g.msgs[0] = queued{}
		g.msgs = g.msgs[1:]
		if len(g.msgs) == 0 {
			q.ring = append(q.ring[:q.turn], q.ring[q.turn+1:]...)
			delete(q.groups, tenant)
		} else {
			q.turn++
		}
		q.seq++
		receipt := strconv.FormatUint(q.seq, 36)
		q.inflight[receipt] = inflight{m: m, visibleAt: now.Add(s.visibility)}
		out = append(out, core.Delivery{Parked: m.p, Receipt: receipt})
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

// Release makes a received message visible again, at its place in its group.
func (s *Store) Release(_ context.Context, pool, receipt string) error {
	q := s.queue(pool)
	defer q.mu.Unlock()
	if m, ok := q.inflight[receipt]; ok {
		delete(q.inflight, receipt)
		q.push(m.m)
	}
	return nil
}
