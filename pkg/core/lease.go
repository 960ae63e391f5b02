package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CompleteRequest ends a running task with the holder's lease.
type CompleteRequest struct {
	Tenant string
	TaskID string
	Lease  string
	Status State // StateSucceeded or StateFailed
	Result json.RawMessage
	Error  string
}

const maxErrorLen = 4096

func (r *CompleteRequest) validate() error {
	switch {
	case r.Lease == "":
		return Invalid("lease", "lease is required")
	case r.Status != StateSucceeded && r.Status != StateFailed:
		return Invalid("status", "status must be %q or %q, got %q", StateSucceeded, StateFailed, r.Status)
	case len(r.Result) > MaxResultBytes:
		return Invalid("result", "result must be at most %d bytes, got %d", MaxResultBytes, len(r.Result))
	case len(r.Result) > 0 && !json.Valid(r.Result):
		return Invalid("result", "result is not valid JSON")
	case len(r.Error) > maxErrorLen:
		return Invalid("error", "error must be at most %d bytes, got %d", maxErrorLen, len(r.Error))
	}
	return nil
}

// Complete records the outcome of a running task and frees its slot. A
// repeat of a completion that already took effect returns the task again.
// A lease that is not the task's current one, or that has ended, is
// ErrLeaseLost.
func (s *Scheduler) Complete(ctx context.Context, req CompleteRequest) (Task, error) {
	if err := req.validate(); err != nil {
		return Task{}, err
	}
	return retryCAS("complete", req.TaskID, func() (Task, error) {
		t, err := s.Task(ctx, req.Tenant, req.TaskID)
		if err != nil {
			return Task{}, err
		}
		if t.Lease != req.Lease {
			return Task{}, ErrLeaseLost
		}
		if t.State == req.Status {
			return t, nil // the same completion, repeated
		}
		if t.State != StateRunning {
			return Task{}, ErrLeaseLost
		}
		now := s.clock.Now()
		if !now.Before(t.LeaseExpiresAt) {
			s.reclaimLapsed(ctx, t, now)
			return Task{}, ErrLeaseLost
		}
		done, err := s.release(ctx, t, ending{to: req.Status, event: EventComplete, at: now, edit: func(n *Task) {
			n.Result = req.Result
			n.Error = req.Error
		}})
		return done, wrapUnlessConflict(err, "complete", t.ID)
	})
}

// HeartbeatRequest extends a running task's lease.
type HeartbeatRequest struct {
	Tenant string
	TaskID string
	Lease  string
	// Extend is the new lease length from now; zero: the task's RunTimeout.
	Extend time.Duration
}

// Heartbeat extends the lease of a running task and returns its new end.
func (s *Scheduler) Heartbeat(ctx context.Context, req HeartbeatRequest) (time.Time, error) {
	switch {
	case req.Lease == "":
		return time.Time{}, Invalid("lease", "lease is required")
	case req.Extend < 0:
		return time.Time{}, Invalid("extend", "extend must be positive, got %s", req.Extend)
	case req.Extend > MaxRunTimeout:
		return time.Time{}, Invalid("extend", "extend must be at most %s, got %s", MaxRunTimeout, req.Extend)
	}
	return retryCAS("heartbeat", req.TaskID, func() (time.Time, error) {
		t, err := s.Task(ctx, req.Tenant, req.TaskID)
		if err != nil {
			return time.Time{}, err
		}
		if t.Lease != req.Lease || t.State != StateRunning {
			return time.Time{}, ErrLeaseLost
		}
		now := s.clock.Now()
		if !now.Before(t.LeaseExpiresAt) {
			s.reclaimLapsed(ctx, t, now)
			return time.Time{}, ErrLeaseLost
		}
		ext := req.Extend
		if ext == 0 {
			ext = t.RunTimeout
		}
		next := t
		next.LeaseExpiresAt = now.Add(ext)
		err = s.b.Commit(ctx, &Txn{Tasks: []TaskWrite{{Task: next, Expect: t.Version}}})
		if err != nil {
			return time.Time{}, wrapUnlessConflict(err, "heartbeat", t.ID)
		}
		return next.LeaseExpiresAt, nil
	})
}

// Cancel ends a parked or running task as cancelled; a running one frees its
// slot. Cancelling a cancelled task returns it again; any other terminal
// task is ErrInvalidState.
func (s *Scheduler) Cancel(ctx context.Context, tenant, id string) (Task, error) {
	return retryCAS("cancel", id, func() (Task, error) {
		t, err := s.Task(ctx, tenant, id)
		if err != nil {
			return Task{}, err
		}
		switch t.State {
		case StateCancelled:
			return t, nil
		case StateParked, StateRunning:
		default:
			return Task{}, fmt.Errorf("%w: task %s is already %s", ErrInvalidState, id, t.State)
		}
		e := ending{to: StateCancelled, event: EventCancel, at: s.clock.Now()}
		var done Task
		if t.State == StateRunning {
			done, err = s.release(ctx, t, e)
		} else {
			done, err = s.finish(ctx, t, e)
		}
		return done, wrapUnlessConflict(err, "cancel", id)
	})
}

// reclaim times out a running task whose lease has ended and wakes its pool.
// It reports whether it did; a conflict means another writer got there
// first and is no error.
func (s *Scheduler) reclaim(ctx context.Context, t Task, now time.Time) (bool, error) {
	if _, err := s.release(ctx, t, ending{to: StateTimedOut, event: EventTimeout, detail: "lease ended", at: now}); err != nil {
		if errors.Is(err, ErrConflict) {
			return false, nil
		}
		return false, fmt.Errorf("core: time out %s: %w", t.ID, err)
	}
	return true, nil
}

// reclaimLapsed reclaims the lapsed lease that a holder's call ran into.
// The caller's answer is ErrLeaseLost whatever happens here, so a failure
// is only logged: the sweeper reclaims the lease in any case.
func (s *Scheduler) reclaimLapsed(ctx context.Context, t Task, now time.Time) {
	if _, err := s.reclaim(ctx, t, now); err != nil {
		s.log.WarnContext(ctx, "lease reclaim failed; the sweeper will retry", "task", t.ID, "err", err)
	}
}
