package memstore

import (
	"context"

	"github.com/parkinglot/parkinglot/internal/fairqueue"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// queue is one pool's parking queue: FIFO per tenant (an SQS message group),
// round-robin between tenants, at-least-once with a visibility timeout.
type queue = fairqueue.Queue[core.Parked]

func (s *Store) queue(pool string) *queue { return load[queue](&s.queues, pool) }

// Send enqueues p.
func (s *Store) Send(_ context.Context, pool string, p core.Parked) error {
	s.queue(pool).Send(p.Tenant, p)
	return nil
}

// Receive returns up to max messages, taking tenants in turn.
func (s *Store) Receive(_ context.Context, pool string, max int) ([]core.Delivery, error) {
	return fairqueue.Deliveries(s.queue(pool), s.clock.Now(), s.visibility, max), nil
}

// Delete removes a received message; a stale receipt is ignored, as SQS does.
func (s *Store) Delete(_ context.Context, pool, receipt string) error {
	s.queue(pool).Delete(receipt)
	return nil
}

// Release makes a received message visible again, at its place in its group.
func (s *Store) Release(_ context.Context, pool, receipt string) error {
	s.queue(pool).Release(receipt)
	return nil
}
