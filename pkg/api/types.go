package api

import (
	"encoding/json"
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Task is a task as the API shows it.
type Task struct {
	ID             string          `json:"id"`
	Key            string          `json:"key,omitempty"`
	Tenant         string          `json:"tenant"`
	Pool           string          `json:"pool"`
	Recipient      string          `json:"recipient"`
	State          string          `json:"state"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	SubmittedAt    time.Time       `json:"submittedAt"`
	Deadline       time.Time       `json:"deadline"`
	StartedAt      *time.Time      `json:"startedAt,omitempty"`
	Lease          string          `json:"lease,omitempty"`
	LeaseExpiresAt *time.Time      `json:"leaseExpiresAt,omitempty"`
	EndedAt        *time.Time      `json:"endedAt,omitempty"`
	Result         json.RawMessage `json:"result,omitempty"`
	Error          string          `json:"error,omitempty"`
}

// TaskBody is the body of the submit response (201 or 200): the task under
// a "task" key. GET /v1/tasks/{id} and POST /v1/tasks/{id}/complete and
// /cancel answer the bare Task.
type TaskBody struct {
	Task Task `json:"task"`
}

// SubmitRequest is the body of POST /v1/pools/{pool}/tasks.
type SubmitRequest struct {
	Key        string          `json:"key,omitempty"`
	Recipient  string          `json:"recipient,omitempty"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	MaxWait    string          `json:"maxWait,omitempty"`
	Deadline   string          `json:"deadline,omitempty"`
	RunTimeout string          `json:"runTimeout,omitempty"`
}

// HeartbeatRequest is the body of POST /v1/tasks/{id}/heartbeat.
type HeartbeatRequest struct {
	Lease  string `json:"lease"`
	Extend string `json:"extend,omitempty"`
}

// HeartbeatResponse answers a heartbeat.
type HeartbeatResponse struct {
	LeaseExpiresAt time.Time `json:"leaseExpiresAt"`
}

// CompleteRequest is the body of POST /v1/tasks/{id}/complete.
type CompleteRequest struct {
	Lease  string          `json:"lease"`
	Status string          `json:"status"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	// Next, from a worker of a pull pool, asks for its next tasks in the
	// same call; the answer is then a CompleteNextResponse.
	Next *NextRequest `json:"next,omitempty"`
}

// NextRequest asks for up to Max (1-10, default 1) next tasks.
type NextRequest struct {
	Max int `json:"max,omitempty"`
}

// CompleteNextResponse answers a completion with next: the completed task
// and the tasks started for the worker (empty when nothing was waiting).
type CompleteNextResponse struct {
	Task Task   `json:"task"`
	Next []Task `json:"next"`
}

// ClaimRequest is the body of POST /v1/pools/{pool}/claim.
type ClaimRequest struct {
	// Max is how many tasks to take at most, 1-10. Default: 1.
	Max int `json:"max,omitempty"`
	// Wait is how long to wait for a task when none is parked, "0s" to
	// "20s". Default: no wait.
	Wait string `json:"wait,omitempty"`
}

// ClaimResponse answers a claim: the tasks started for the worker, each
// with its lease and payload; empty when the wait ran out.
type ClaimResponse struct {
	Tasks []Task `json:"tasks"`
}

// Message is a mailbox message. A started message carries what a worker
// needs to run the task: its tenant, key, payload and deadline, and (in a
// permit pool) the lease and its end.
type Message struct {
	Cursor         string          `json:"cursor"`
	TaskID         string          `json:"taskId"`
	Tenant         string          `json:"tenant"`
	Pool           string          `json:"pool"`
	Type           string          `json:"type"`
	Key            string          `json:"key,omitempty"`
	Payload        json.RawMessage `json:"payload,omitempty"`
	Deadline       *time.Time      `json:"deadline,omitempty"`
	Lease          string          `json:"lease,omitempty"`
	LeaseExpiresAt *time.Time      `json:"leaseExpiresAt,omitempty"`
	Result         json.RawMessage `json:"result,omitempty"`
	Error          string          `json:"error,omitempty"`
	At             time.Time       `json:"at"`
}

// MailboxPage answers GET /v1/mailbox/{recipient}.
type MailboxPage struct {
	Messages []Message `json:"messages"`
	Next     string    `json:"next"`
}

// AckRequest is the body of POST /v1/mailbox/{recipient}/ack.
type AckRequest struct {
	UpTo string `json:"upTo"`
}

// Event is an audit event.
type Event struct {
	At     time.Time `json:"at"`
	Tenant string    `json:"tenant"`
	Pool   string    `json:"pool"`
	TaskID string    `json:"taskId"`
	Type   string    `json:"type"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Detail string    `json:"detail,omitempty"`
}

// AuditPage answers GET /v1/audit.
type AuditPage struct {
	Events []Event `json:"events"`
	Next   string  `json:"next"`
}

// Pool is a pool's configuration and counters.
type Pool struct {
	Name      string `json:"name"`
	Executor  string `json:"executor"`
	Capacity  int    `json:"capacity"`
	Running   int    `json:"running"`
	Parked    int    `json:"parked"`
	MaxParked int    `json:"maxParked"`
}

// PoolList answers GET /v1/pools.
type PoolList struct {
	Pools []Pool `json:"pools"`
}

// Error is the body of every error response.
type Error struct {
	Error ErrorDetail `json:"error"`
	// Task is set on 429 pool_full: the rejected task.
	Task *Task `json:"task,omitempty"`
}

// ErrorDetail says what went wrong; Field names the bad input, if any.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Error codes.
const (
	CodeInvalidRequest   = "invalid_request"
	CodePayloadTooLarge  = "payload_too_large"
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodePoolNotFound     = "pool_not_found"
	CodePoolFull         = "pool_full"
	CodeKeyConflict      = "key_conflict"
	CodeLeaseLost        = "lease_lost"
	CodeInvalidState     = "invalid_state"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeInternal         = "internal"
)

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// FromTask converts a core task. The lease token is shown only while the
// task runs, and only if core gave it: core's answers to a tenant
// (WaitTask, Submit) leave out the lease of a task of a pull or push pool,
// which the claiming worker or the target holds.
func FromTask(t *core.Task) Task {
	out := Task{
		ID: t.ID, Key: t.Key, Tenant: t.Tenant, Pool: t.Pool, Recipient: t.Recipient,
		State: string(t.State), Payload: t.Payload,
		SubmittedAt: t.SubmittedAt.UTC(), Deadline: t.Deadline.UTC(),
		StartedAt: timePtr(t.StartedAt), LeaseExpiresAt: timePtr(t.LeaseExpiresAt),
		EndedAt: timePtr(t.EndedAt), Result: t.Result, Error: t.Error,
	}
	if t.State == core.StateRunning {
		out.Lease = t.Lease
	}
	return out
}

// FromMessage converts a core message.
func FromMessage(m *core.Message) Message {
	return Message{
		Cursor: m.Cursor.String(), TaskID: m.TaskID, Tenant: m.Tenant, Pool: m.Pool, Type: string(m.Type),
		Key: m.Key, Payload: m.Payload, Deadline: timePtr(m.Deadline),
		Lease: m.Lease, LeaseExpiresAt: timePtr(m.LeaseExpiresAt),
		Result: m.Result, Error: m.Error, At: m.At.UTC(),
	}
}

// FromEvent converts a core event.
func FromEvent(e *core.Event) Event {
	return Event{
		At: e.At.UTC(), Tenant: e.Tenant, Pool: e.Pool, TaskID: e.TaskID, Type: e.Type,
		From: string(e.From), To: string(e.To), Detail: e.Detail,
	}
}

// FromPool converts core pool counters.
func FromPool(p core.PoolStats) Pool {
	ex := p.Executor
	if ex == "" {
		ex = core.ExecutorPermit
	}
	return Pool{Name: p.Name, Executor: string(ex), Capacity: p.Capacity, Running: p.Running, Parked: p.Parked, MaxParked: p.MaxParked}
}
