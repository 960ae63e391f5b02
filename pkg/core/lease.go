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
	// Tenant is the task's tenant; or Worker, if set, is a worker of the
	// task's pool, whatever its tenant.
	Tenant string
	Worker *Worker
	TaskID string
	Lease  string
	Status State // StateSucceeded or StateFailed
	Result json.RawMessage
	Error  string
	// Next asks CompleteNext for up to this many tasks of the same pull
	// pool, started for Worker: the first takes the freed slot in the same
	// transaction. 0 to MaxClaim.
	Next int
}

const maxErrorLen = 4096

func (r *CompleteRequest) validate() error {
	switch {
	case r.Next < 0 || r.Next > MaxClaim:
		return Invalid("next", "next.max must be 1-%d, got %d", MaxClaim, r.Next)
	case r.Next > 0 && r.Worker == nil:
		return Invalid("next", "only a worker asks for its next tasks")
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
// ErrLeaseLost. A request with Next goes to CompleteNext.
func (s *Scheduler) Complete(ctx context.Context, req CompleteRequest) (Task, error) {
	if req.Next > 0 {
		return Task{}, Invalid("next", "a completion that asks for its next tasks answers them too: use CompleteNext")
	}
	done, _, err := s.CompleteNext(ctx, req)
	return done, err
}

// CompleteNext is Complete for a worker of a pull pool that asks for more
// work as it completes (req.Next): the freed slot goes straight to the
// pool's next parked task, started for req.Worker in the same transaction,
// and further tasks are claimed up to req.Next while the pool has free
// slots. It returns the ended task and the started ones, none when nothing
// was waiting; a permit pool is ErrInvalidState.
func (s *Scheduler) CompleteNext(ctx context.Context, req CompleteRequest) (Task, []Task, error) {
	if err := req.validate(); err != nil {
		return Task{}, nil, err
	}
	var first Task // started in the hand-off
	// The pool's next parked message is received while the task is read.
	ahead := s.lookAhead(ctx, req.Lease, req.Next > 0)
	done, err := retryCAS("complete", req.TaskID, func() (Task, error) {
		t, err := s.taskFor(ctx, req.Tenant, req.Worker, req.TaskID)
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
			s.settle(ctx, ahead) // for the reclaim's wake-up
			s.reclaimLapsed(ctx, t, now)
			return Task{}, ErrLeaseLost
		}
		e := ending{to: req.Status, event: EventComplete, at: now, ahead: ahead, edit: func(n *Task) {
			n.Result = req.Result
			n.Error = req.Error
		}}
		if req.Next == 0 {
			done, err := s.release(ctx, t, e)
			return done, wrapUnlessConflict(err, "complete", t.ID)
		}
		done, run, err := s.releaseTo(ctx, t, e, req.Worker)
		first = run
		return done, wrapUnlessConflict(err, "complete", t.ID)
	})
	if s.settle(ctx, ahead) {
		// While the message was held, a release of the pool may have
		// found its queue empty (on SQS FIFO, the message's group is
		// blocked) and freed its slot with nothing to start.
		s.wake(ctx, ahead.pool, time.Time{})
	}
	if err != nil || req.Next == 0 {
		return done, nil, err
	}
	next := []Task{}
	if first.ID != "" {
		next = append(next, first)
	}
	if len(next) < req.Next {
		more, err := s.claimNow(ctx, done.Pool, req.Next-len(next), req.Worker)
		if err != nil {
			// The completion stands: the worker claims again.
			s.log.WarnContext(ctx, "claim after completion failed", "pool", done.Pool, "worker", req.Worker.Name, "err", err)
		}
		next = append(next, more...)
	}
	return done, next, nil
}

// taskFor returns task id if the caller may act on it: tenant's own task,
// or, when w is set, a task of w's pools, whatever its tenant. Any other
// task is ErrNotFound, as a task that does not exist.
func (s *Scheduler) taskFor(ctx context.Context, tenant string, w *Worker, id string) (Task, error) {
	if w == nil {
		return s.tenantTask(ctx, tenant, id)
	}
	t, err := s.b.Task(ctx, id)
	if err != nil {
		return Task{}, err
	}
	if !w.mayWork(t.Pool) {
		return Task{}, ErrNotFound
	}
	return t, nil
}

// HeartbeatRequest extends a running task's lease.
type HeartbeatRequest struct {
	// Tenant is the task's tenant; or Worker, if set, is a worker of the
	// task's pool, whatever its tenant.
	Tenant string
	Worker *Worker
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
		t, err := s.taskFor(ctx, req.Tenant, req.Worker, req.TaskID)
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
		// In a push pool, only the target holds the lease: its heartbeat
		// says it took the task, whatever became of the answer to the push.
		next.PushAt = time.Time{}
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
	return s.cancel(ctx, tenant, nil, id)
}

// CancelByWorker is Cancel for worker w, of a task of any tenant in w's
// pools.
func (s *Scheduler) CancelByWorker(ctx context.Context, w Worker, id string) (Task, error) {
	return s.cancel(ctx, "", &w, id)
}

func (s *Scheduler) cancel(ctx context.Context, tenant string, w *Worker, id string) (Task, error) {
	return retryCAS("cancel", id, func() (Task, error) {
		t, err := s.taskFor(ctx, tenant, w, id)
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
