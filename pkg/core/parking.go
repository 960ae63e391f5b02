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
// is a conditional write.
func (s *Scheduler) Dispatch(ctx context.Context, pool string) (int, error) {
	return s.dispatch(ctx, pool, time.Time{})
}

// dispatch is Dispatch with the time the slot was freed, when a release
// triggered it, for the wake-latency observation of the first start.
func (s *Scheduler) dispatch(ctx context.Context, name string, freedAt time.Time) (int, error) {
	started, contended := 0, 0
	for {
		p, err := s.b.Pool(ctx, name)
		if err != nil {
			return started, err
		}
		free := p.Capacity - p.Running
		if free <= 0 || p.Parked == 0 {
			return started, nil
		}
		ds, err := s.b.Receive(ctx, name, min(free, dispatchBatch))
		if err != nil {
			return started, fmt.Errorf("core: receive parked %s: %w", name, err)
		}
		if len(ds) == 0 {
			return started, nil
		}
		full := false
		for i, d := range ds {
			if full {
				// Hand the rest back for the next dispatcher.
				if err := s.b.Release(ctx, name, d.Receipt); err != nil {
					s.log.WarnContext(ctx, "release of parked message failed", "pool", name, "task", d.TaskID, "err", err)
				}
				continue
			}
			ok, err := s.startParked(ctx, name, d, freedAt)
			if errors.Is(err, ErrNoCapacity) {
				full = true
				if err := s.b.Release(ctx, name, d.Receipt); err != nil {
					s.log.WarnContext(ctx, "release of parked message failed", "pool", name, "task", d.TaskID, "err", err)
				}
				continue
			}
			if err != nil {
				for _, rest := range ds[i+1:] {
					_ = s.b.Release(ctx, name, rest.Receipt)
				}
				return started, err
			}
			if ok {
				started++
				freedAt = time.Time{}
			}
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

// startParked starts the task of delivery d if it is still parked and before
// its deadline, and expires it if its deadline has passed. The message is
// deleted unless the pool turned out full (ErrNoCapacity), in which case the
// caller releases it.
func (s *Scheduler) startParked(ctx context.Context, pool string, d Delivery, freedAt time.Time) (bool, error) {
	return retryCAS("start", d.TaskID, func() (bool, error) {
		t, err := s.b.Task(ctx, d.TaskID)
		if errors.Is(err, ErrNotFound) {
			s.drop(ctx, pool, d)
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("core: read parked task %s: %w", d.TaskID, err)
		}
		if t.State != StateParked || t.Pool != pool {
			// Duplicate delivery, or the task was cancelled or expired.
			s.drop(ctx, pool, d)
			return false, nil
		}
		now := s.clock.Now()
		if !now.Before(t.Deadline) {
			// Never start at or after the deadline, whatever the sweeper did.
			if _, err := s.finish(ctx, t, expiry(now)); err != nil {
				return false, wrapUnlessConflict(err, "expire", t.ID)
			}
			s.drop(ctx, pool, d)
			return false, nil
		}
		run := startTask(t, now)
		txn := &Txn{
			Pool: pool, RunningDelta: 1, ParkedDelta: -1, NeedSlot: true,
			Tasks:    []TaskWrite{{Task: run, Expect: t.Version}},
			Events:   []Event{event(&run, now, EventStart, StateParked, "")},
			Messages: []Message{message(&run, MessageStarted, now)},
		}
		err = s.b.Commit(ctx, txn)
		switch {
		case err == nil:
			run.Version = t.Version + 1
			s.started(&run, freedAt)
			s.drop(ctx, pool, d)
			return true, nil
		case errors.Is(err, ErrConflict), errors.Is(err, ErrNoCapacity):
			return false, err
		}
		return false, fmt.Errorf("core: start %s: %w", t.ID, err)
	})
}

// drop deletes a handled queue message. A failed delete is harmless: the
// message comes back and is dropped again, as its task is no longer parked.
func (s *Scheduler) drop(ctx context.Context, pool string, d Delivery) {
	if err := s.b.Delete(ctx, pool, d.Receipt); err != nil {
		s.log.WarnContext(ctx, "delete of parked message failed; it will be dropped on redelivery", "pool", pool, "task", d.TaskID, "err", err)
	}
}
