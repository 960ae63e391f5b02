package core

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Pusher delivers the started tasks of push pools to their targets: an
// HTTP endpoint, a function, a queue (internal/push). Core calls Push after
// such a start commits, and again (Repush, the sweep) for a delivery still
// pending after its PushAt. The Pusher reports each attempt back:
// PushAccepted (the target took the task and completes it with the lease
// later), Complete (the target answered with the outcome), PushRetry (the
// attempt failed and another is due) or PushFailed (no more attempts).
//
// Delivery is at least once: the pending delivery is committed with the
// start (the task's PushAt, an outbox), the push happens after the commit,
// and a delivery whose outcome was never recorded (a crash, a lost
// process) is pushed again. Targets recognise a repeat by the task's id.
type Pusher interface {
	// Push starts the delivery of t, a running task of a push pool. It
	// must not wait for the target.
	Push(t Task)
	// Hold is how long a delivery attempt to pool's target may take, with a
	// grace for recording its outcome: a task is pushed again only after
	// it.
	Hold(pool string) time.Duration
}

// PushFailedCode starts the error of a task whose push failed for good.
const PushFailedCode = "push_failed"

// pushPending marks run, a start at now in a push pool, as waiting for its
// target: due again after the attempt's hold. Its lease ends a run timeout
// after that, so that the delivery is never cut short by the lease.
func (s *Scheduler) pushPending(run *Task, now time.Time) {
	run.PushAt = now.Add(s.pushHold(run.Pool))
	if end := run.PushAt.Add(run.RunTimeout); end.After(run.LeaseExpiresAt) {
		run.LeaseExpiresAt = end
	}
}

func (s *Scheduler) pushHold(pool string) time.Duration {
	if s.cfg.Pusher == nil {
		return s.cfg.OutboxGrace
	}
	return s.cfg.Pusher.Hold(pool)
}

// pushEdit reads task id and, if it is still running with lease and its
// delivery still pending (and, when at is not zero, still the delivery made
// at that PushAt: a later one supersedes it), commits edit's change to it.
// It returns the task as committed, or ok false when the task moved on
// (another delivery, an outcome, a cancellation, a lease reclaimed), which
// is no error.
func (s *Scheduler) pushEdit(ctx context.Context, what, id, lease string, at time.Time, edit func(t *Task, now time.Time) bool) (Task, bool, error) {
	var ok bool
	t, err := retryCAS(what, id, func() (Task, error) {
		ok = false
		t, err := s.b.Task(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return Task{}, nil
		}
		if err != nil {
			return Task{}, err
		}
		if !t.Pushing() || lease != "" && t.Lease != lease || !at.IsZero() && !t.PushAt.Equal(at) {
			return t, nil
		}
		next := t
		if !edit(&next, s.clock.Now()) {
			return t, nil
		}
		if err := s.b.Commit(ctx, &Txn{Tasks: []TaskWrite{{Task: next, Expect: t.Version}}}); err != nil {
			return Task{}, wrapUnlessConflict(err, what, id)
		}
		next.Version = t.Version + 1
		ok = true
		return next, nil
	})
	return t, ok, err
}

// PushAccepted records that the target of running task id took it (an
// asynchronous target answered 2xx): it completes the task with lease
// later, as any holder does. The task is pushed no more.
func (s *Scheduler) PushAccepted(ctx context.Context, id, lease string) error {
	_, _, err := s.pushEdit(ctx, "record accepted push of", id, lease, time.Time{}, func(t *Task, _ time.Time) bool {
		t.PushAt = time.Time{}
		t.Error = ""
		return true
	})
	return err
}

// PushRetry records that the delivery of pushed (the task as it was pushed)
// failed with attemptErr, and schedules the next one after wait: the task
// keeps its slot, its lease runs on past the retry, and Repush (or the
// sweep) pushes it again from then. A delivery that a later one superseded
// (its PushAt moved on) records nothing. It returns the task as committed,
// and false when nothing was recorded.
func (s *Scheduler) PushRetry(ctx context.Context, pushed Task, attemptErr string, wait time.Duration) (Task, bool, error) {
	return s.pushEdit(ctx, "record failed push of", pushed.ID, pushed.Lease, pushed.PushAt, func(t *Task, now time.Time) bool {
		t.Error = clipError(attemptErr)
		t.PushAt = now.Add(wait)
		if end := t.PushAt.Add(s.pushHold(t.Pool) + t.RunTimeout); end.After(t.LeaseExpiresAt) {
			t.LeaseExpiresAt = end
		}
		return true
	})
}

// PushFailed ends pushed (the task as it was pushed) as failed, its
// delivery given up after its last attempt failed with attemptErr: the
// error is PushFailedCode and that error, and the slot goes to the next
// parked task. A task that moved on, or whose delivery a later one
// superseded, is left as it is.
func (s *Scheduler) PushFailed(ctx context.Context, pushed Task, attemptErr string) (Task, error) {
	return retryCAS("fail push of", pushed.ID, func() (Task, error) {
		t, err := s.b.Task(ctx, pushed.ID)
		if errors.Is(err, ErrNotFound) {
			return Task{}, nil
		}
		if err != nil {
			return Task{}, err
		}
		if !t.Pushing() || t.Lease != pushed.Lease || !t.PushAt.Equal(pushed.PushAt) {
			return t, nil
		}
		attempts := t.PushAttempts + 1
		e := ending{to: StateFailed, event: EventComplete, at: s.clock.Now(),
			detail: fmt.Sprintf("push failed after %d attempts", attempts),
			edit: func(n *Task) {
				n.PushAttempts = attempts
				n.Error = clipError(PushFailedCode + ": " + attemptErr)
			}}
		done, err := s.release(ctx, t, e)
		return done, wrapUnlessConflict(err, "fail push of", pushed.ID)
	})
}

// Repush pushes running task id again if its delivery is pending and due
// (its PushAt has passed: a retry's time, or a hold without an outcome
// recorded): it counts the delivery made before (PushAttempts) and moves
// PushAt a hold ahead, so that of several processes that find it due, one
// pushes, and the earlier delivery's late answer records nothing. It
// reports whether it pushed.
func (s *Scheduler) Repush(ctx context.Context, id string) (bool, error) {
	if s.cfg.Pusher == nil {
		return false, nil
	}
	t, ok, err := s.pushEdit(ctx, "push again", id, "", time.Time{}, func(t *Task, now time.Time) bool {
		if now.Before(t.PushAt) {
			return false
		}
		t.PushAttempts++
		s.pushPending(t, now)
		return true
	})
	if err != nil || !ok {
		return false, err
	}
	s.cfg.Pusher.Push(t)
	return true, nil
}

// clipError bounds an error text kept on a task.
func clipError(msg string) string {
	if len(msg) > maxErrorLen {
		return msg[:maxErrorLen]
	}
	return msg
}
