package core

import (
	"encoding/json"
	"time"
)

// State is a task's lifecycle state.
type State string

// Task states. Parked and running are the only non-terminal ones.
const (
	StateParked    State = "parked"
	StateRunning   State = "running"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	StateExpired   State = "expired"
	StateRejected  State = "rejected"
	StateCancelled State = "cancelled"
	StateTimedOut  State = "timed_out"
)

// Terminal reports whether s never changes again.
func (s State) Terminal() bool { return s != StateParked && s != StateRunning && s != "" }

// Task is one unit of work submitted to a pool.
type Task struct {
	ID        string
	Key       string // idempotency key, may be empty
	Tenant    string
	Pool      string
	Recipient string
	State     State
	Payload   json.RawMessage

	SubmittedAt    time.Time
	Deadline       time.Time // a parked task never starts at or after it
	RunTimeout     time.Duration
	StartedAt      time.Time
	Lease          string // current or last lease token
	LeaseExpiresAt time.Time
	EndedAt        time.Time
	Result         json.RawMessage
	Error          string

	// BodyHash fingerprints a keyed submission for idempotent retries;
	// empty without a key.
	BodyHash string
	// Unsent is set while a parked task's queue message may not have been
	// sent yet (the outbox flag); the sweeper re-sends such tasks.
	Unsent bool
	// PushAt is set while a started task of a push pool waits for its
	// target to take it: when the pending delivery is next due (the end of
	// the attempt in flight, or the next retry). The sweep pushes a task
	// again once PushAt has passed. Zero otherwise.
	PushAt time.Time
	// PushAttempts counts the deliveries made before the pending one (each
	// failed, or its outcome was never recorded); on an ended task, all of
	// them.
	PushAttempts int
	// Version is the compare-and-set token, incremented by every write.
	// Backends own it: Commit sets it to the expected version + 1.
	Version int64
}

// DueAt is when the sweeper must look at the task: the deadline of a parked
// task, the lease end of a running one or, sooner, its pending push,
// zero for a terminal one.
func (t *Task) DueAt() time.Time {
	switch t.State {
	case StateParked:
		return t.Deadline
	case StateRunning:
		if t.Pushing() && t.PushAt.Before(t.LeaseExpiresAt) {
			return t.PushAt
		}
		return t.LeaseExpiresAt
	}
	return time.Time{}
}

// Pushing reports whether t is a running task of a push pool that its
// target has not yet taken.
func (t *Task) Pushing() bool { return t.State == StateRunning && !t.PushAt.IsZero() }

// MessageType is the kind of a mailbox message.
type MessageType string

// Message types: "started" carries what a worker needs to run the task;
// the others are outcomes.
const (
	MessageStarted MessageType = "started"
)

// Message is one entry of a recipient's mailbox.
type Message struct {
	Cursor    Cursor
	Tenant    string
	Recipient string
	TaskID    string
	Pool      string
	Type      MessageType // started, or the terminal state's name
	// On started: the task's key, payload and deadline, and its lease and
	// the lease's end (no lease in a pull pool, where the claimer holds it).
	Key            string
	Payload        json.RawMessage
	Deadline       time.Time
	Lease          string
	LeaseExpiresAt time.Time
	// On an outcome.
	Result json.RawMessage
	Error  string
	At     time.Time
}

// Event is one audit record of a transition.
type Event struct {
	Seq    uint64 // assigned by the backend; orders events with equal At
	At     time.Time
	Tenant string
	Pool   string
	TaskID string
	Type   string // submit, start, expire, complete, cancel, timeout, reject
	From   State  // empty on submit
	To     State
	Detail string
}

// Event types.
const (
	EventSubmit   = "submit"
	EventStart    = "start"
	EventComplete = "complete"
	EventCancel   = "cancel"
	EventExpire   = "expire"
	EventTimeout  = "timeout"
)
