package core

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// dispatchBatch bounds one queue receive (SQS takes at most 10).
const dispatchBatch = 10

// Dispatch starts parked tasks of pool while it has free slots, and reports
// how many it started. Concurrent dispatchers, in one process or many, are
// safe: each queue message is held by one receiver at a time and each start
// is a conditional write. A pull pool's tasks start only when claimed:
// Dispatch starts none of them.
func (s *Scheduler) Dispatch(ctx context.Context, pool string) (int, error) {
	return s.dispatch(ctx, pool, time.Time{})
}

// dispatch is Dispatch with the time the slot was freed, when a release
// triggered it, for the wake-latency observation of the first start.
func (s *Scheduler) dispatch(ctx context.Context, name string, freedAt time.Time) (int, error) {
	started, err := s.startQueued(ctx, name, 0, freedAt, nil)
	return len(started), err
}

// startQueued starts parked tasks of pool from its queue while the pool has
// free slots, up to max (0: no bound), and returns them as started: for
// claimer in a pull pool, for their recipients in a permit pool (claimer
// nil). It starts nothing when the pool's executor is not the caller's.
func (s *Scheduler) startQueued(ctx context.Context, name string, max int, freedAt time.Time, claimer *Worker) ([]Task, error) {
	var started []Task
	contended := 0
	for {
		p, err := s.readPool(ctx, name)
		if err != nil {
			return started, err
		}
		want := p.Capacity - p.Running
		if max > 0 {
			want = min(want, max-len(started))
		}
		if want <= 0 || p.Parked == 0 || p.Pulls() != (claimer != nil) {
			return started, nil
		}
		ds, err := s.b.Receive(ctx, name, min(want, dispatchBatch))
		if err != nil {
			return started, fmt.Errorf("core: receive parked %s: %w", name, err)
		}
		if len(ds) == 0 {
			return started, nil
		}
		runs, full, err := s.startDeliveries(ctx, p, ds, freedAt, claimer)
		started = append(started, runs...)
		if err != nil {
			return started, err
		}
		if len(runs) > 0 {
			freedAt = time.Time{}
		}
		if full {
			// Another start took the slot between the pool read and this
			// one. Read the pool again rather than return: a release that
			// happened while this dispatcher held the messages found the
			// queue empty, and its wake-up relies on this dispatcher.
			contended++
			if contended >= maxRetries {
				return started, fmt.Errorf("core: dispatch %s: %w after %d attempts", name, ErrNoCapacity, contended)
			}
		}
	}
}

// startDeliveries starts the tasks of received messages ds of pool p (as
// last read), for
// claimer if not nil, and returns those it started. full reports that the
// pool turned out to have no free slot: the messages not tried are handed
// back, as they are after an error.
func (s *Scheduler) startDeliveries(ctx context.Context, p Pool, ds []Delivery, freedAt time.Time, claimer *Worker) (started []Task, full bool, err error) {
	pool := p.Name
	for i, d := range ds {
		if full {
			// Hand the rest back for the next dispatcher.
			s.giveBack(ctx, pool, d)
			continue
		}
		run, err := s.startParked(ctx, p, d, freedAt, claimer)
		if errors.Is(err, ErrNoCapacity) {
			full = true
			s.giveBack(ctx, pool, d)
			continue
		}
		if err != nil {
			// The message goes back with the rest: left hidden, its task
			// would wait for the queue's visibility timeout.
			for _, rest := range ds[i:] {
				s.giveBack(ctx, pool, rest)
			}
			return started, false, err
		}
		if run.ID != "" {
			started = append(started, run)
			freedAt = time.Time{}
		}
	}
	return started, full, nil
}

// giveBack makes a received message visible again for the next receiver.
func (s *Scheduler) giveBack(ctx context.Context, pool string, d Delivery) {
	if err := s.b.Release(ctx, pool, d.Receipt); err != nil {
		s.log.WarnContext(ctx, "release of parked message failed", "pool", pool, "task", d.TaskID, "err", err)
	}
}

// startParked starts the task of delivery d if it is still parked and before
// its deadline, for claimer if not nil, and expires it if its deadline has
// passed. It returns the started task, or a zero Task when it started none.
// The message is deleted unless the pool turned out full (ErrNoCapacity),
// in which case the caller releases it.
//
// A start that the store refused with ErrLateStart would have committed at
// or after the deadline (the pool's last stamp had passed it, whatever this
// scheduler's clock says): the task is read again and expired.
func (s *Scheduler) startParked(ctx context.Context, p Pool, d Delivery, freedAt time.Time, claimer *Worker) (Task, error) {
	pool := p.Name
	// The first attempt starts the task as its message carries it, when it
	// does: a refused commit (ErrConflict) reads it for the next.
	carried := true
	late := false
	return retryCAS("start", d.TaskID, func() (Task, error) {
		t, fromMessage, err := s.deliveredTask(ctx, d, carried)
		carried = false
		now := s.clock.Now()
		if fromMessage && !now.Before(t.Deadline) {
			// Expire the task as read, not as the copy foresees it.
			t, err = s.b.Task(ctx, d.TaskID)
			fromMessage = false
		}
		if errors.Is(err, ErrNotFound) {
			s.drop(ctx, pool, d)
			return Task{}, nil
		}
		if err != nil {
			return Task{}, fmt.Errorf("core: read parked task %s: %w", d.TaskID, err)
		}
		if t.State != StateParked || t.Pool != pool {
			// Duplicate delivery, or the task was cancelled or expired.
			s.drop(ctx, pool, d)
			return Task{}, nil
		}
		if late || !now.Before(t.Deadline) {
			// Never start at or after the deadline, whatever the sweeper
			// did. A late start's expiry is stamped no earlier than the
			// deadline, which the pool's time has passed.
			if _, err := s.finish(ctx, t, expiry(latest(now, t.Deadline))); err != nil {
				return Task{}, wrapUnlessConflict(err, "expire", t.ID)
			}
			s.drop(ctx, pool, d)
			return Task{}, nil
		}
		run := s.startTask(t, p, now)
		txn := &Txn{
			Pool: pool, RunningDelta: 1, ParkedDelta: -1, NeedSlot: true,
			Tasks: []TaskWrite{{Task: run, Expect: t.Version, ExpectState: copyState(fromMessage)}},
		}
		addStart(txn, &run, now, claimer)
		err = s.b.Commit(ctx, txn)
		switch {
		case err == nil:
			run = txn.Tasks[0].Task
			run.Version = t.Version + 1
			s.started(&run, freedAt)
			s.drop(ctx, pool, d)
			return run, nil
		case errors.Is(err, ErrLateStart):
			// Nothing was written: read the task again, and expire it.
			late = true
			return Task{}, err
		case errors.Is(err, ErrConflict), errors.Is(err, ErrNoCapacity):
			return Task{}, err
		}
		return Task{}, fmt.Errorf("core: start %s: %w", t.ID, err)
	})
}

// addStart adds the audit event and the started message of parked task
// run's start to txn: for claimer, if not nil, which the event names and
// which alone holds the lease, as a push pool's target does (the
// recipient's message goes without it).
func addStart(txn *Txn, run *Task, now time.Time, claimer *Worker) {
	txn.Events = append(txn.Events, event(run, now, EventStart, StateParked, claimDetail(claimer)))
	m := message(run, MessageStarted, now)
	if claimer != nil || run.Pushing() {
		m.Lease = ""
	}
	txn.Messages = append(txn.Messages, m)
}

// drop deletes a handled queue message. A failed delete is harmless: the
// message comes back and is dropped again, as its task is no longer parked.
func (s *Scheduler) drop(ctx context.Context, pool string, d Delivery) {
	if err := s.b.Delete(ctx, pool, d.Receipt); err != nil {
		s.log.WarnContext(ctx, "delete of parked message failed; it will be dropped on redelivery", "pool", pool, "task", d.TaskID, "err", err)
	}
}

// latest returns the later of a and b.
func latest(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}
