// Package fairqueue is the in-memory parking queue of one pool, shared by
// the memory and the embedded backends: FIFO per tenant (an SQS message
// group), round-robin between tenants, at-least-once with a visibility
// timeout.
//
// Every message carries a sequence number, its send order. A tenant's
// messages are kept in that order, so that a message that returns from
// flight (released, or past its visibility timeout) takes back its place in
// its tenant's line instead of going to the back. The queue stores nothing:
// a backend that keeps messages durably pushes them again, with their
// stored numbers, when it starts.
package fairqueue

import (
	"cmp"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Queue is one pool's parking queue of payloads T. The zero value is an
// empty queue; a Queue must not be copied after first use.
type Queue[T any] struct {
	mu       sync.Mutex
	groups   map[string][]Message[T] // tenant -> ready messages, in sequence order
	ring     []string                // tenants with ready messages, in turn order
	turn     int
	inflight map[string]inflight[T] // receipt -> message
	receipts uint64                 // last receipt number
	last     uint64                 // highest sequence number pushed
}

// Message is a queued payload with its tenant and sequence number.
type Message[T any] struct {
	Tenant string
	Seq    uint64
	Value  T
}

type inflight[T any] struct {
	m         Message[T]
	visibleAt time.Time
}

// Send enqueues v in tenant's line with the next sequence number after
// every one pushed so far, and returns that number.
func (q *Queue[T]) Send(tenant string, v T) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	seq := q.last + 1
	q.push(Message[T]{Tenant: tenant, Seq: seq, Value: v})
	return seq
}

// Push enqueues v in tenant's line at the place of sequence number seq,
// which the caller assigns (a stored message's number, at start-up or once
// its send is durable).
func (q *Queue[T]) Push(tenant string, seq uint64, v T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.push(Message[T]{Tenant: tenant, Seq: seq, Value: v})
}

// push adds m to its group in sequence order; the caller holds q.mu.
func (q *Queue[T]) push(m Message[T]) {
	if q.groups == nil {
		q.groups = make(map[string][]Message[T])
	}
	q.last = max(q.last, m.Seq)
	g := q.groups[m.Tenant]
	if len(g) == 0 {
		q.ring = append(q.ring, m.Tenant)
	}
	i, _ := slices.BinarySearchFunc(g, m.Seq, func(e Message[T], seq uint64) int { return cmp.Compare(e.Seq, seq) })
	q.groups[m.Tenant] = slices.Insert(g, i, m)
}

// Receive hands deliver up to max messages, taking tenants in turn, each
// with the receipt that deletes or releases it, and hides each for hide
// from now. Messages whose visibility timeout has passed by now are visible
// again first. deliver runs with the queue locked and must not use it.
func (q *Queue[T]) Receive(now time.Time, hide time.Duration, max int, deliver func(m Message[T], receipt string)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for r, m := range q.inflight {
		if !now.Before(m.visibleAt) {
			delete(q.inflight, r)
			q.push(m.m)
		}
	}
	for n := 0; n < max && len(q.ring) > 0; n++ {
		if q.turn >= len(q.ring) {
			q.turn = 0
		}
		tenant := q.ring[q.turn]
		g := q.groups[tenant]
		m := g[0]
		g[0] = Message[T]{}
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
		if q.inflight == nil {
			q.inflight = make(map[string]inflight[T])
		}
		q.inflight[receipt] = inflight[T]{m: m, visibleAt: now.Add(hide)}
		deliver(m, receipt)
	}
}

// Delete removes a received message and returns it; a stale receipt is
// ignored (ok false), as SQS does.
func (q *Queue[T]) Delete(receipt string) (m Message[T], ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	f, ok := q.inflight[receipt]
	delete(q.inflight, receipt)
	return f.m, ok
}

// Release makes a received message visible again, at its place in its
// tenant's line; a stale receipt is ignored.
func (q *Queue[T]) Release(receipt string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if f, ok := q.inflight[receipt]; ok {
		delete(q.inflight, receipt)
		q.push(f.m)
	}
}
