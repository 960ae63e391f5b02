package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SubmitRequest is a submission. Tenant comes from the authenticated
// identity, never from the request body.
type SubmitRequest struct {
	Tenant    string
	Pool      string
	Key       string          // idempotency key, optional
	Recipient string          // default: Tenant
	Payload   json.RawMessage // optional, valid JSON, at most MaxPayloadBytes
	// At most one of MaxWait and Deadline; neither: the pool's DefaultMaxWait.
	MaxWait  time.Duration
	Deadline time.Time
	// RunTimeout is the lease length; zero: the pool's RunTimeout.
	RunTimeout time.Duration
}

// SubmitResult is the outcome of Submit.
type SubmitResult struct {
	Task Task
	// Replayed is true when the key named an earlier submission with the
	// same body and Task is that submission's task.
	Replayed bool
}

const (
	maxKeyLen       = 256
	maxRecipientLen = 128
)

func (r *SubmitRequest) validate(now time.Time) error {
	switch {
	case r.Tenant == "" || len(r.Tenant) > maxRecipientLen:
		return Invalid("tenant", "tenant must be 1-%d bytes", maxRecipientLen)
	case len(r.Key) > maxKeyLen:
		return Invalid("key", "key must be at most %d bytes, got %d", maxKeyLen, len(r.Key))
	case len(r.Recipient) > maxRecipientLen:
		return Invalid("recipient", "recipient must be at most %d bytes, got %d", maxRecipientLen, len(r.Recipient))
	case len(r.Payload) > MaxPayloadBytes:
		return Invalid("payload", "payload must be at most %d bytes, got %d", MaxPayloadBytes, len(r.Payload))
	case len(r.Payload) > 0 && !json.Valid(r.Payload):
		return Invalid("payload", "payload is not valid JSON")
	case r.MaxWait != 0 && !r.Deadline.IsZero():
		return Invalid("maxWait", "give maxWait or deadline, not both")
	case r.MaxWait < 0:
		return Invalid("maxWait", "maxWait must be positive, got %s", r.MaxWait)
	case r.MaxWait > MaxWaitLimit:
		return Invalid("maxWait", "maxWait must be at most %s, got %s", MaxWaitLimit, r.MaxWait)
	case !r.Deadline.IsZero() && !r.Deadline.After(now):
		return Invalid("deadline", "deadline %s is not in the future", r.Deadline.Format(time.RFC3339Nano))
	case !r.Deadline.IsZero() && r.Deadline.Sub(now) > MaxWaitLimit:
		return Invalid("deadline", "deadline must be within %s", MaxWaitLimit)
	case r.RunTimeout < 0:
		return Invalid("runTimeout", "runTimeout must be positive, got %s", r.RunTimeout)
	case r.RunTimeout > MaxRunTimeout:
		return Invalid("runTimeout", "runTimeout must be at most %s, got %s", MaxRunTimeout, r.RunTimeout)
	}
	return nil
}

// Submit admits the task if its pool has a free slot and nothing parked
// waits before it, parks it otherwise, and rejects it (ErrPoolFull, with the
// rejected task in the result) when the parked depth is full. The result
// answers the tenant: a task of a push pool started at once, or a replayed
// task of a pull or push pool, comes without its lease, which the pool's
// target or the claiming worker holds (tenantView).
func (s *Scheduler) Submit(ctx context.Context, req SubmitRequest) (SubmitResult, error) {
	var pool Pool
	res, err := s.submit(ctx, req, &pool)
	if res.Task.ID == "" {
		return res, err
	}
	view, verr := s.tenantView(ctx, res.Task, &pool)
	if verr != nil {
		return SubmitResult{}, verr
	}
	res.Task = view
	return res, err
}

// submit is Submit with the task as stored. It sets *read to the pool it
// read, if it got that far.
func (s *Scheduler) submit(ctx context.Context, req SubmitRequest, read *Pool) (SubmitResult, error) {
	now := s.clock.Now()
	if req.Recipient == "" {
		req.Recipient = req.Tenant
	}
	if err := req.validate(now); err != nil {
		return SubmitResult{}, err
	}
	pool, err := s.readPool(ctx, req.Pool)
	if err != nil {
		return SubmitResult{}, err
	}
	*read = pool
	var hash string // only a keyed submission can be replayed
	if req.Key != "" {
		hash = req.bodyHash(pool.PoolConfig)
		if res, found, err := s.replay(ctx, req, hash); found || err != nil {
			return res, err
		}
	}

	t := Task{
		ID:          newID(),
		Key:         req.Key,
		Tenant:      req.Tenant,
		Pool:        req.Pool,
		Recipient:   req.Recipient,
		Payload:     req.Payload,
		SubmittedAt: now,
		Deadline:    req.Deadline,
		RunTimeout:  req.RunTimeout,
		BodyHash:    hash,
	}
	if t.Deadline.IsZero() {
		wait := req.MaxWait
		if wait == 0 {
			wait = pool.DefaultMaxWait
		}
		t.Deadline = now.Add(wait)
	}
	if t.RunTimeout == 0 {
		t.RunTimeout = pool.RunTimeout
	}
	var key *KeyRecord
	if req.Key != "" {
		key = &KeyRecord{Tenant: req.Tenant, Key: req.Key, TaskID: t.ID, BodyHash: hash}
	}

	// Admit at once when a slot looks free and nothing is parked; the
	// conditions in the transaction decide. A pull pool's tasks park until
	// claimed (a waiting claim takes one at once, signalled by the wake-up).
	if !pool.Pulls() && pool.Running < pool.Capacity && pool.Parked == 0 {
		run, err := s.commitNew(ctx, admitTxn(s.startTask(t, pool, now), key, now))
		switch {
		case err == nil:
			s.started(&run, time.Time{})
			return SubmitResult{Task: run}, nil
		case errors.Is(err, ErrLateStart):
			// The pool's time had passed the deadline before the start
			// could commit: the task parks, and dispatch expires it.
		case errors.Is(err, ErrKeyExists) || !errors.Is(err, ErrNoCapacity):
			return s.submitFailed(ctx, req, hash, "admit", t.ID, err)
		}
	}

	// Park. The queue message is sent after the commit; Unsent marks the
	// window in which a crash would lose it, and the sweeper closes it.
	park, err := s.commitNew(ctx, parkTxn(t, key, now))
	switch {
	case err == nil:
		if park, err = s.send(ctx, park); err != nil {
			// The task is parked and flagged; the sweeper sends it.
			s.log.WarnContext(ctx, "parking queue send failed; the sweeper will re-send", "task", park.ID, "err", err)
		}
		// A release that raced this park may have found the queue empty.
		s.wake(ctx, park.Pool, time.Time{})
		return SubmitResult{Task: park}, nil
	case errors.Is(err, ErrKeyExists) || !errors.Is(err, ErrPoolFull):
		return s.submitFailed(ctx, req, hash, "park", t.ID, err)
	}

	// Reject: the task is recorded, audited and its outcome delivered.
	rej, err := s.commitNew(ctx, rejectTxn(t, key, now))
	if err != nil {
		return s.submitFailed(ctx, req, hash, "reject", t.ID, err)
	}
	s.ended(&rej)
	return SubmitResult{Task: rej}, ErrPoolFull
}

// admitTxn is the transaction that records new task run, started, on the
// conditions that its pool has a free slot and nothing parked.
func admitTxn(run Task, key *KeyRecord, now time.Time) *Txn {
	m := message(&run, MessageStarted, now)
	if run.Pushing() {
		m.Lease = "" // the target holds it
	}
	return &Txn{
		Pool: run.Pool, RunningDelta: 1, NeedSlot: true, FirstInLine: true,
		Tasks:    []TaskWrite{{Task: run}},
		Key:      key,
		Events:   []Event{event(&run, now, EventSubmit, "", "")},
		Messages: []Message{m},
	}
}

// parkTxn is the transaction that records new task t as parked and Unsent,
// on the condition that its pool's parked depth has room.
func parkTxn(t Task, key *KeyRecord, now time.Time) *Txn {
	park := t
	park.State = StateParked
	park.Unsent = true
	return &Txn{
		Pool: t.Pool, ParkedDelta: 1, NeedParkRoom: true,
		Tasks:  []TaskWrite{{Task: park}},
		Key:    key,
		Events: []Event{event(&park, now, EventSubmit, "", "")},
	}
}

// rejectTxn is the transaction that records new task t as rejected, with
// its outcome message.
func rejectTxn(t Task, key *KeyRecord, now time.Time) *Txn {
	rej := t
	rej.State = StateRejected
	rej.EndedAt = now
	return &Txn{
		Pool:     t.Pool,
		Tasks:    []TaskWrite{{Task: rej}},
		Key:      key,
		Events:   []Event{event(&rej, now, EventSubmit, "", "parked depth full")},
		Messages: []Message{message(&rej, MessageType(StateRejected), now)},
	}
}

// commitNew commits txn, which writes a new task, and returns the task as
// committed (version 1).
func (s *Scheduler) commitNew(ctx context.Context, txn *Txn) (Task, error) {
	if err := s.b.Commit(ctx, txn); err != nil {
		return Task{}, err
	}
	t := txn.Tasks[0].Task
	t.Version = 1
	return t, nil
}

// submitFailed answers a submission whose commit to <what> task id failed
// with err: an idempotency key written meanwhile is a concurrent
// submission's, replayed (or ErrKeyConflict); any other error is wrapped.
func (s *Scheduler) submitFailed(ctx context.Context, req SubmitRequest, hash, what, id string, err error) (SubmitResult, error) {
	if errors.Is(err, ErrKeyExists) {
		return s.replayOrConflict(ctx, req, hash)
	}
	return SubmitResult{}, fmt.Errorf("core: %s %s: %w", what, id, err)
}

// send enqueues a parked task and clears its Unsent flag. It returns an
// error only when the send failed; the sweeper re-sends tasks still flagged
// after OutboxGrace. A flag left set after a successful send costs only a
// duplicate message, which consumers drop.
func (s *Scheduler) send(ctx context.Context, t Task) (Task, error) {
	if err := s.b.Send(ctx, t.Pool, parkedMessage(t, time.Time{})); err != nil {
		return t, fmt.Errorf("core: send parked %s: %w", t.ID, err)
	}
	// Clearing the flag is best effort: whatever stops it (a failed commit
	// or re-read, conflicts past maxRetries), t is returned as last read.
	_, _ = retryCAS("clear unsent flag of", t.ID, func() (struct{}, error) {
		if t.State != StateParked || !t.Unsent {
			return struct{}{}, nil
		}
		next := t
		next.Unsent = false
		err := s.b.Commit(ctx, &Txn{Tasks: []TaskWrite{{Task: next, Expect: t.Version}}})
		switch {
		case err == nil:
			next.Version++
			t = next
		case errors.Is(err, ErrConflict):
			cur, rerr := s.b.Task(ctx, t.ID)
			if rerr != nil {
				return struct{}{}, rerr
			}
			t = cur
		}
		return struct{}{}, err
	})
	return t, nil
}

// replay returns the earlier submission of req.Key, or ErrKeyConflict if
// that had another body. found is false, with no error, when the key names
// none; an error leaves it false.
func (s *Scheduler) replay(ctx context.Context, req SubmitRequest, hash string) (res SubmitResult, found bool, err error) {
	rec, err := s.b.Key(ctx, req.Tenant, req.Key)
	if errors.Is(err, ErrNotFound) {
		return SubmitResult{}, false, nil
	}
	if err != nil {
		return SubmitResult{}, false, fmt.Errorf("core: read key: %w", err)
	}
	if !req.sameBody(rec.BodyHash, hash) {
		return SubmitResult{}, false, ErrKeyConflict
	}
	t, err := s.b.Task(ctx, rec.TaskID)
	if err != nil {
		return SubmitResult{}, false, fmt.Errorf("core: read task %s of key: %w", rec.TaskID, err)
	}
	return SubmitResult{Task: t, Replayed: true}, true, nil
}

// replayOrConflict replays the submission whose key a commit found
// written: the key cannot be missing then.
func (s *Scheduler) replayOrConflict(ctx context.Context, req SubmitRequest, hash string) (SubmitResult, error) {
	res, found, err := s.replay(ctx, req, hash)
	if err == nil && !found {
		return SubmitResult{}, fmt.Errorf("core: key %q vanished after a conflict", req.Key)
	}
	return res, err
}
