package core

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// release ends running task t (as read, at t.Version) as e says and frees
// its slot, then makes sure parked work does not wait for it:
//
//   - If the pool has nothing parked, the release commits on the condition
//     that this is still so (FirstInLine). A task that parks after it sees
//     the freed slot when its own wake-up reads the pool, so no wake-up is
//     needed and none is lost.
//   - If the pool has parked work, the slot goes straight to the next parked
//     task: its start commits in the release's transaction (a hand-off), so
//     the slot is never idle, the start needs no commit of its own and the
//     wake-up no dispatch round trips.
//   - Otherwise (no message to take, the task it names cannot start, the
//     pool was shrunk below running) the release commits alone and wakes the
//     pool, as dispatch handles every such case.
//
// A Scheduler with its own Config.Wake leaves starts to it: the release
// commits alone and calls it. In a pull pool only claims start tasks: the
// release commits alone, and its wake-up signals the waiting claims.
//
// ErrConflict means t changed and the caller re-reads it.
func (s *Scheduler) release(ctx context.Context, t Task, e ending) (Task, error) {
	if s.cfg.Wake == nil {
		if done, ok, err := s.releaseInline(ctx, t, e); ok || err != nil {
			return done, err
		}
	}
	s.settle(ctx, e.ahead)
	done, err := s.finish(ctx, t, e)
	if err != nil {
		return Task{}, err
	}
	s.wake(ctx, t.Pool, e.at)
	return done, nil
}

// maxStaleMessages bounds the messages of tasks no longer parked that one
// hand-off drops before it leaves the rest to dispatch.
const maxStaleMessages = 3

// releaseInline is release without a wake-up: the release conditioned on
// nothing parked, or the hand-off. It reports false, having changed
// nothing, when neither could be made.
func (s *Scheduler) releaseInline(ctx context.Context, t Task, e ending) (Task, bool, error) {
	// The pool as recently read will do: the counts decided on below are
	// conditions of the commit that follows (hints.go); the lookahead may
	// have just read it.
	e.ahead.wait(t.Pool)
	p, err := s.recentPool(ctx, t.Pool)
	if err != nil || p.Pulls() {
		return Task{}, false, nil
	}
	if p.Parked == 0 {
		done, err := s.finishIf(ctx, t, e, true)
		if !errors.Is(err, ErrNoCapacity) {
			return done, err == nil, err
		}
		// Something parked since the pool was read: hand the slot to it.
	}
	if p.Running > p.Capacity {
		return Task{}, false, nil
	}
	done, _, ok, err := s.handOff(ctx, p, t, e, nil)
	return done, ok, err
}

// releaseTo is release for a worker that asks for more work as it
// completes (pull pools): the slot goes straight to the pool's next parked
// task, started for w in the same transaction, when there is one. It
// returns the ended task and the started one (zero when none).
func (s *Scheduler) releaseTo(ctx context.Context, t Task, e ending, w *Worker) (Task, Task, error) {
	p, err := s.readPool(ctx, t.Pool)
	if err != nil {
		return Task{}, Task{}, err
	}
	if !p.Pulls() {
		return Task{}, Task{}, fmt.Errorf("%w: pool %s is a permit pool: its tasks start without claims", ErrInvalidState, t.Pool)
	}
	if handsOff(p) {
		done, next, ok, err := s.handOff(ctx, p, t, e, w)
		if ok || err != nil {
			return done, next, err
		}
	}
	s.settle(ctx, e.ahead)
	done, err := s.finish(ctx, t, e)
	if err != nil {
		return Task{}, Task{}, err
	}
	s.wake(ctx, t.Pool, e.at)
	return done, Task{}, nil
}

// handsOff reports whether a release in pool p (as last read) hands its
// slot to the next parked task: there is one, and the slot is within
// capacity (not when capacity was lowered below running).
func handsOff(p Pool) bool {
	return p.Parked > 0 && p.Running <= p.Capacity
}

// handOff ends t and starts the next parked task of its pool p (as last
// read) in one transaction, for claimer if not nil. It returns both tasks
// as committed; it reports false, having changed nothing, when it could
// not (also when the start would have committed at or after the parked
// task's deadline: ErrLateStart); an error is that of the commit
// (ErrConflict: t or the parked task changed). Its first receive is the
// one e's completion made ahead, if any.
func (s *Scheduler) handOff(ctx context.Context, p Pool, t Task, e ending, claimer *Worker) (done, run Task, ok bool, err error) {
	now := e.at
	var d Delivery
	var next Task
	fromMessage := false
	for attempt := 0; ; attempt++ {
		ds, err, ok := e.ahead.take(t.Pool)
		if !ok {
			ds, err = s.b.Receive(ctx, t.Pool, 1)
		}
		if err != nil || len(ds) == 0 || attempt == maxStaleMessages {
			for _, d := range ds {
				_ = s.b.Release(ctx, t.Pool, d.Receipt)
			}
			return Task{}, Task{}, false, nil
		}
		d = ds[0]
		if d.TaskID == t.ID {
			// A duplicate of the message t started from.
			s.drop(ctx, t.Pool, d)
			continue
		}
		next, fromMessage, err = s.deliveredTask(ctx, d, true)
		if ok, dropped := s.startable(ctx, t.Pool, d, next, err, now); !ok {
			if dropped {
				continue
			}
			return Task{}, Task{}, false, nil
		}
		break
	}
	done, run, err = s.commitHandOff(ctx, p, t, e, next, fromMessage, claimer)
	if fromMessage && errors.Is(err, ErrConflict) && !errors.Is(err, ErrLateStart) {
		// The message's copy of the next task may be out of date (or t
		// changed): read the task, and try once more if it differs.
		carried := next
		next, err = s.b.Task(ctx, d.TaskID)
		if ok, _ := s.startable(ctx, t.Pool, d, next, err, now); !ok {
			return Task{}, Task{}, false, nil
		}
		err = ErrConflict // the copy was right: t is what changed
		if next.Version != carried.Version {
			done, run, err = s.commitHandOff(ctx, p, t, e, next, false, claimer)
		}
	}
	switch {
	case errors.Is(err, ErrNoCapacity), errors.Is(err, ErrLateStart):
		// No slot; or the start would commit at or after next's deadline
		// (nothing was written): the release commits alone, and dispatch
		// expires next (startParked).
		s.giveBack(ctx, t.Pool, d)
		return Task{}, Task{}, false, nil
	case err != nil:
		s.giveBack(ctx, t.Pool, d)
		return Task{}, Task{}, false, err
	}
	s.drop(ctx, t.Pool, d)
	s.ended(&done)
	s.started(&run, now)
	// While this hand-off held its message, a concurrent release may have
	// found the queue empty (on SQS FIFO, the message's tenant group is
	// blocked until it is deleted) and freed its slot with nothing to start.
	// The delete unblocked the group: dispatch what the pool has room for
	// now, rather than leave it to the sweeper. Usually the pool is full
	// and this is one pool read.
	// In a pull pool, the waiting claims try again.
	s.claimers.Notify([]string{t.Pool})
	if _, err := s.dispatch(ctx, t.Pool, time.Time{}); err != nil {
		s.log.WarnContext(ctx, "dispatch after hand-off failed; the sweeper will retry", "pool", t.Pool, "err", err)
	}
	return done, run, true, nil
}

// startable reports whether next, the task of delivery d as read (with
// err) or as its message carries it, can start in pool now. A message
// whose task is gone or no longer parked in pool (a duplicate, or one left
// by a crash) is dropped (dropped); one whose task could not be read or is
// past its deadline goes back to the queue for dispatch, which expires it.
func (s *Scheduler) startable(ctx context.Context, pool string, d Delivery, next Task, err error, now time.Time) (ok, dropped bool) {
	if errors.Is(err, ErrNotFound) || err == nil && (next.State != StateParked || next.Pool != pool) {
		s.drop(ctx, pool, d)
		return false, true
	}
	if err != nil || !now.Before(next.Deadline) {
		s.giveBack(ctx, pool, d)
		return false, false
	}
	return true, false
}

// commitHandOff commits the end of t as e says and the start of parked
// task next (as read, or as its message carries it: fromMessage) in its
// slot, for claimer if not nil, and returns both as committed.
func (s *Scheduler) commitHandOff(ctx context.Context, p Pool, t Task, e ending, next Task, fromMessage bool, claimer *Worker) (done, run Task, err error) {
	now := e.at
	txn := finishTxn(t, e)
	run = s.startTask(next, p, now)
	txn.RunningDelta, txn.ParkedDelta, txn.NeedSlot = 0, -1, true
	txn.Tasks = append(txn.Tasks, TaskWrite{Task: run, Expect: next.Version, ExpectState: copyState(fromMessage)})
	addStart(txn, &run, now, claimer)
	if err := s.b.Commit(ctx, txn); err != nil {
		return Task{}, Task{}, err
	}
	// As committed: the store may have moved both transitions' times
	// (Txn.Restamp).
	done, run = txn.Tasks[0].Task, txn.Tasks[1].Task
	done.Version = t.Version + 1
	run.Version = next.Version + 1
	return done, run, nil
}

// startTask returns task t of pool p started at now, with a new lease; in
// a push pool, with its delivery pending (PushAt).
func (s *Scheduler) startTask(t Task, p Pool, now time.Time) Task {
	run := t
	run.State = StateRunning
	run.Unsent = false
	run.StartedAt = now
	run.Lease = newLease(t.Pool)
	run.LeaseExpiresAt = now.Add(run.RunTimeout)
	if p.Pushes() {
		s.pushPending(&run, now)
	}
	return run
}
