package core

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// sweepBatch bounds one index page of the sweep.
const sweepBatch = 256

// SweepStats reports what one Sweep did.
type SweepStats struct {
	Expired    int // parked tasks past their deadline
	TimedOut   int // running tasks past their lease end
	Pushed     int // started tasks of push pools pushed again
	Resent     int // parked tasks whose queue message was re-sent
	Reconciled int // parked tasks re-sent by a reconcile of a queue that looked short
	Started    int // parked tasks started by the safety-net dispatch
	Purged     int // mailbox messages and audit events past retention
}

// Sweep is the safety net that repairs what crashes and lost wake-ups leave:
// it expires parked tasks past their deadline, times out running tasks past
// their lease end (freeing their slots), pushes again the started tasks
// of push pools whose delivery is pending past its PushAt, re-sends queue messages of parked
// tasks still flagged Unsent after OutboxGrace, at most every
// ReconcileEvery re-sends the messages a lossy queue may have lost
// (reconcile), dispatches every pool with a free slot and parked work, and,
// at most every PurgeEvery, purges past retention. It is safe to run
// concurrently with everything, also with other sweeps.
func (s *Scheduler) Sweep(ctx context.Context) (SweepStats, error) {
	var st SweepStats
	var errs []error
	now := s.clock.Now()

	if err := s.sweepDue(ctx, now, &st); err != nil {
		errs = append(errs, err)
	}
	if err := s.sweepUnsent(ctx, now, &st); err != nil {
		errs = append(errs, err)
	}
	pools, err := s.b.Pools(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("core: sweep: list pools: %w", err))
	} else if err := s.reconcile(ctx, now, pools, &st); err != nil {
		errs = append(errs, err)
	}
	for _, p := range pools {
		if p.Parked == 0 || p.Running >= p.Capacity {
			continue
		}
		n, err := s.Dispatch(ctx, p.Name)
		st.Started += n
		if err != nil {
			errs = append(errs, fmt.Errorf("core: sweep: dispatch %s: %w", p.Name, err))
		}
	}
	if last := s.lastPurge.Load(); now.UnixNano()-last >= int64(s.cfg.PurgeEvery) && s.lastPurge.CompareAndSwap(last, now.UnixNano()) {
		n, err := s.b.Purge(ctx, now.Add(-s.cfg.MailboxRetention), now.Add(-s.cfg.AuditRetention))
		st.Purged = n
		if err != nil {
			errs = append(errs, fmt.Errorf("core: sweep: purge: %w", err))
		}
	}
	return st, errors.Join(errs...)
}

// expiry is the ending of a parked task whose deadline came before a slot
// did, at now: the sweep's and dispatch's alike.
func expiry(now time.Time) ending {
	return ending{to: StateExpired, event: EventExpire, detail: "deadline passed before a slot freed", at: now}
}

func (s *Scheduler) sweepDue(ctx context.Context, now time.Time, st *SweepStats) error {
	for {
		ids, err := s.b.Due(ctx, now, sweepBatch)
		if err != nil {
			return fmt.Errorf("core: sweep: due index: %w", err)
		}
		progress := 0
		for _, id := range ids {
			t, err := s.b.Task(ctx, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("core: sweep: read %s: %w", id, err)
			}
			due := t.DueAt()
			if due.IsZero() || due.After(now) {
				continue // the index was stale: the task moved on
			}
			switch t.State {
			case StateParked:
				_, err := s.finish(ctx, t, expiry(now))
				if err == nil {
					st.Expired++
					progress++
				} else if !errors.Is(err, ErrConflict) {
					return fmt.Errorf("core: sweep: expire %s: %w", id, err)
				}
			case StateRunning:
				if t.Pushing() && !now.Before(t.PushAt) {
					ok, err := s.Repush(ctx, id)
					if err != nil {
						return fmt.Errorf("core: sweep: push %s again: %w", id, err)
					}
					if ok {
						st.Pushed++
						progress++
					}
					continue
				}
				ok, err := s.reclaim(ctx, t, now)
				if err != nil {
					return fmt.Errorf("core: sweep: %w", err)
				}
				if ok {
					st.TimedOut++
					progress++
				}
			}
		}
		if len(ids) < sweepBatch || progress == 0 {
			return nil
		}
	}
}

func (s *Scheduler) sweepUnsent(ctx context.Context, now time.Time, st *SweepStats) error {
	var errs []error
	ids, err := s.b.Unsent(ctx, sweepBatch)
	if err != nil {
		return fmt.Errorf("core: sweep: unsent index: %w", err)
	}
	for _, id := range ids {
		t, err := s.b.Task(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("core: sweep: read %s: %w", id, err)
		}
		if t.State != StateParked || !t.Unsent || now.Sub(t.SubmittedAt) < s.cfg.OutboxGrace {
			continue // moved on, or its submitter may still be sending
		}
		if _, err := s.send(ctx, t); err != nil {
			errs = append(errs, err) // the task stays flagged for the next sweep
			continue
		}
		st.Resent++
	}
	return errors.Join(errs...)
}

// reconcile re-sends the queue messages of parked tasks that a
// QueueReconciler's queue may have lost, at most every ReconcileEvery per
// Scheduler. The rule: in each pool whose queue looks short (fewer messages
// than parked tasks), every parked task not flagged Unsent (the outbox's
// re-send covers those) and parked for at least ReconcileEvery is sent
// again, marked as a re-send (Parked.Resend) so that a deduplicating queue
// does not drop it as a repeat of its first send. A re-sent task whose
// message was not lost has two: consumers drop the one that comes after the
// task left parked. The age bound keeps the duplicates of a queue that only
// looked short (its counts lagging a burst of parks) to the tasks that have
// waited long; a lost message of a younger task is re-sent by a later
// reconcile, within about twice ReconcileEvery.
func (s *Scheduler) reconcile(ctx context.Context, now time.Time, pools []Pool, st *SweepStats) error {
	r, ok := s.b.(QueueReconciler)
	if !ok {
		return nil
	}
	last := s.lastReconcile.Load()
	if last != 0 && now.UnixNano()-last < int64(s.cfg.ReconcileEvery) || !s.lastReconcile.CompareAndSwap(last, now.UnixNano()) {
		return nil
	}
	var errs []error
	short := map[string]bool{}
	for _, p := range pools {
		if p.Parked == 0 {
			continue
		}
		ok, err := r.QueueShort(ctx, p.Name, p.Parked)
		if err != nil {
			errs = append(errs, fmt.Errorf("core: sweep: reconcile %s: %w", p.Name, err))
			continue
		}
		if ok {
			short[p.Name] = true
		}
	}
	after := ""
	for len(short) > 0 {
		ids, next, err := r.NonTerminal(ctx, after, sweepBatch)
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("core: sweep: reconcile: %w", err))...)
		}
		for _, id := range ids {
			t, err := s.b.Task(ctx, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return errors.Join(append(errs, fmt.Errorf("core: sweep: read %s: %w", id, err))...)
			}
			if t.State != StateParked || t.Unsent || !short[t.Pool] || now.Sub(t.SubmittedAt) < s.cfg.ReconcileEvery || !now.Before(t.Deadline) {
				continue
			}
			if err := s.b.Send(ctx, t.Pool, parkedMessage(t, now)); err != nil {
				errs = append(errs, fmt.Errorf("core: sweep: reconcile: send %s: %w", t.ID, err))
				continue
			}
			st.Reconciled++
		}
		if next == "" {
			break
		}
		after = next
	}
	return errors.Join(errs...)
}
