package core

import (
	"errors"
	"fmt"
)

// Sentinel errors. Backends translate their own failures into these at their
// boundary; the HTTP layer maps them to status codes.
var (
	// ErrNotFound: no such task, pool, or not the caller's.
	ErrNotFound = errors.New("not found")
	// ErrPoolNotFound: the named pool is not configured.
	ErrPoolNotFound = errors.New("pool not found")
	// ErrPoolFull: the pool's parked depth is full; the task was rejected.
	ErrPoolFull = errors.New("pool parked depth full")
	// ErrKeyConflict: the idempotency key was used with another body.
	ErrKeyConflict = errors.New("idempotency key used with a different request")
	// ErrLeaseLost: the lease is not (or no longer) the task's current one.
	ErrLeaseLost = errors.New("lease lost")
	// ErrInvalidState: the task's state does not allow the operation.
	ErrInvalidState = errors.New("invalid task state")
	// ErrInvalid: the request is malformed; see InvalidError for the field.
	ErrInvalid = errors.New("invalid request")
	// ErrForbidden: the caller may not do this (a worker outside its pools).
	ErrForbidden = errors.New("forbidden")

	// Commit failures, returned by Committer.Commit.

	// ErrConflict: a task write's expected version did not match.
	ErrConflict = errors.New("version conflict")
	// ErrNoCapacity: the pool has no free slot (or parked tasks wait first).
	ErrNoCapacity = errors.New("no free slot")
	// ErrKeyExists: the idempotency key item already exists.
	ErrKeyExists = errors.New("idempotency key exists")
	// ErrLateStart: the pool's commit order would have moved a start of
	// the transaction to or past its task's deadline (Txn.Restamp), so
	// nothing was written. It matches ErrConflict: the caller re-reads; the
	// pool's time has passed the task's deadline, so the task does not
	// start (core expires it).
	ErrLateStart = fmt.Errorf("%w: a start would commit at or after its task's deadline", ErrConflict)
)

// ErrAckBeyondNewest is returned by MailboxStore.Ack for a cursor that no
// message of the mailbox has reached yet.
var ErrAckBeyondNewest = &InvalidError{Field: "upTo", Reason: "cursor is beyond the newest message of this mailbox"}

// InvalidError names the request field that is wrong. It matches ErrInvalid.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string {
	if e.Field == "" {
		return "invalid request: " + e.Reason
	}
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Invalid returns an *InvalidError for field.
func Invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// PublicError is implemented by backend errors that a client may be told
// about: a failure of the backend itself, such as damaged stored data,
// that the HTTP layer answers with 500 and PublicMessage instead of the
// bare "internal error". PublicMessage names the backend and the failure
// without internal details (file names, paths, connection strings); the
// full error is logged, as for every internal error.
type PublicError interface {
	error
	PublicMessage() string
}
