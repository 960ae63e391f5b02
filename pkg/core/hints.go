package core

import (
	"context"
	"sync"
	"time"
)

// The wake path (a release handing its slot to the next parked task) is
// the latency users see, and on DynamoDB + SQS every read on it is a round
// trip. Two reads can be skipped there because the hand-off's commit checks
// again everything they would decide:
//
//   - the pool: a release uses the pool as this Scheduler last read it, if
//     that was within Config.PoolHintAge. Every count it decides on is a condition
//     of the commit (FirstInLine, NeedSlot), so a stale count costs a
//     refused commit or a needless receive, never a wrong transition.
//   - the next task: a parking message may carry its task as the sender
//     expects it stored (Parked.Task); the start's commit is conditioned on
//     that version and on the state parked (TaskWrite.ExpectState), and a
//     refusal reads the task and tries again.

// Only a pool's configuration is taken from a hint unchecked (its
// executor), which changes only by PutPool: this Scheduler's own forget the
// hint at once, another process's are seen within Config.PoolHintAge.

// poolHints holds each pool as this Scheduler last read it.
type poolHints struct {
	mu sync.Mutex
	m  map[string]poolHint
}

type poolHint struct {
	p  Pool
	at time.Time // monotonic
}

// readPool reads pool name and keeps it as the pool's hint.
func (s *Scheduler) readPool(ctx context.Context, name string) (Pool, error) {
	p, err := s.b.Pool(ctx, name)
	if err == nil {
		s.hints.mu.Lock()
		if s.hints.m == nil {
			s.hints.m = map[string]poolHint{}
		}
		s.hints.m[name] = poolHint{p: p, at: time.Now()}
		s.hints.mu.Unlock()
	}
	return p, err
}

// recentPool returns pool name as last read, if within Config.PoolHintAge, and
// reads it otherwise. Its counts may be stale: use it only for decisions
// that a commit condition checks again.
func (s *Scheduler) recentPool(ctx context.Context, name string) (Pool, error) {
	if p, ok := s.poolHint(name); ok {
		return p, nil
	}
	return s.readPool(ctx, name)
}

// poolHint returns pool name as last read, if within Config.PoolHintAge.
func (s *Scheduler) poolHint(name string) (Pool, bool) {
	s.hints.mu.Lock()
	h, ok := s.hints.m[name]
	s.hints.mu.Unlock()
	if ok && time.Since(h.at) < s.cfg.PoolHintAge {
		return h.p, true
	}
	return Pool{}, false
}

// forgetPool drops pool name's hint (its configuration changed).
func (s *Scheduler) forgetPool(name string) {
	s.hints.mu.Lock()
	delete(s.hints.m, name)
	s.hints.mu.Unlock()
}

// parkedMessage is the queue message of parked task t. It carries t as it
// will be stored once the send is recorded (send clears the Unsent flag in
// the next version).
func parkedMessage(t Task, resend time.Time) Parked {
	carried := t
	if carried.Unsent {
		carried.Unsent = false
		carried.Version++
	}
	return Parked{TaskID: t.ID, Tenant: t.Tenant, Deadline: t.Deadline, Resend: resend, Task: &carried}
}

// deliveredTask returns the task of delivery d: the copy the message
// carries when carried is set and the message has one (fromMessage), else
// the task as read (ErrNotFound if it is gone).
func (s *Scheduler) deliveredTask(ctx context.Context, d Delivery, carried bool) (t Task, fromMessage bool, err error) {
	if carried && d.Task != nil && d.Task.ID == d.TaskID {
		return *d.Task, true, nil
	}
	t, err = s.b.Task(ctx, d.TaskID)
	return t, false, err
}

// copyState is the state a start expects its task in: parked when the
// task is the copy its message carries (TaskWrite.ExpectState), none
// needed beyond the version when it was read.
func copyState(fromMessage bool) State {
	if fromMessage {
		return StateParked
	}
	return ""
}
