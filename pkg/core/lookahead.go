package core

import (
	"context"
	"strings"
)

// A completion's first call reads its task: the lease it holds, whether it
// still runs. Its hand-off's first call receives the next parked message of
// the pool. Neither needs the other's answer, so a completion makes both at
// once (a lookahead): a lease token names its task's pool, and the pool as
// recently read tells whether the release will hand its slot off. On
// DynamoDB + SQS that leaves two sequential calls from the request to the
// next task's start committed: the task's read alongside ReceiveMessage,
// then the TransactWriteItems of both transitions.
//
// The message received ahead is only taken by the hand-off of a task of
// the pool it came from, after the task read showed its lease; the lease
// is compared whole, so a token naming another pool is refused before its
// message is used, and every message not taken goes back to the queue
// (settle). A message held for the length of a read changes nothing that
// a hand-off's own receive would not: the start is still conditioned on
// the task parked and on the pool's capacity.

// leaseSep separates a lease token's random part from its pool's name.
const leaseSep = "."

// newLease returns an unguessable lease token for a task of pool: 128
// random bits, then the pool's name.
func newLease(pool string) string {
	return newToken() + leaseSep + pool
}

// leasePool returns the pool a lease token names; false for a token that
// names none (one issued before tokens named their pool, or not a token).
func leasePool(lease string) (string, bool) {
	_, pool, ok := strings.Cut(lease, leaseSep)
	if !ok || !validName(pool) {
		return "", false
	}
	return pool, true
}

// lookahead is the next parked message of one pool, received while a
// completing task of that pool is read.
type lookahead struct {
	pool     string
	done     chan struct{} // closed when the receive (if any) returned
	received bool          // a receive was made: ds and err are its answer
	ds       []Delivery
	err      error
	settled  bool // taken by a hand-off, or given back
}

// lookAhead starts receiving the next parked message of the pool lease
// names if the pool as recently read (poolHint) says that a release there
// hands its slot off (for a worker asking for its next task, in a pull
// pool: pulls); the release decides on the same hint. Without a recent
// hint, it reads the pool instead, for the release to find. It returns nil
// when it has nothing to do: the lease names no pool, the Scheduler leaves
// starts to Config.Wake, or the recent hint says the release will not hand
// off (or hints are off). The caller settles what it returns.
func (s *Scheduler) lookAhead(ctx context.Context, lease string, pulls bool) *lookahead {
	pool, ok := leasePool(lease)
	if !ok || s.cfg.Wake != nil {
		return nil
	}
	p, recent := s.poolHint(pool)
	received := recent && p.Pulls() == pulls && handsOff(p)
	if !received && (recent || s.cfg.PoolHintAge <= 0) {
		return nil
	}
	l := &lookahead{pool: pool, done: make(chan struct{}), received: received}
	go func() {
		defer close(l.done)
		if !l.received {
			_, _ = s.readPool(ctx, pool)
			return
		}
		l.ds, l.err = s.b.Receive(ctx, pool, 1)
	}()
	return l
}

// wait waits until the lookahead for pool, if any, has its answer (or
// read the pool).
func (l *lookahead) wait(pool string) {
	if l != nil && l.pool == pool {
		<-l.done
	}
}

// take returns, once, the answer of the receive made ahead for pool; false
// when none was made for it, or it was given back.
func (l *lookahead) take(pool string) ([]Delivery, error, bool) {
	if l == nil || l.pool != pool || l.settled {
		return nil, nil, false
	}
	<-l.done
	if !l.received {
		return nil, nil, false
	}
	l.settled = true
	return l.ds, l.err, true
}

// settle waits for the receive made ahead and gives back the message it
// got if no hand-off took it; it reports whether it gave one back. A
// release that does not hand its slot off settles before it wakes the
// pool, so that the pool's dispatch finds the message.
func (s *Scheduler) settle(ctx context.Context, l *lookahead) bool {
	if l == nil {
		return false
	}
	<-l.done
	if l.settled {
		return false
	}
	l.settled = true
	ctx = context.WithoutCancel(ctx)
	for _, d := range l.ds {
		s.giveBack(ctx, l.pool, d)
	}
	return len(l.ds) > 0
}
