package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// maxPushBytes bounds the body of a push HTTPHandler reads: a task's
// payload and the rest of its fields.
const maxPushBytes = core.MaxPayloadBytes + 16<<10

// HTTPHandler is the endpoint of a push pool's HTTP target in sync mode
// (target {type: http, mode: sync}): it checks each push's signature
// against secret (api.VerifySignature: a wrong, missing or replayed
// signature is 401; an empty secret checks nothing), runs h on the task,
// and answers the outcome, which completes the task: h's result as
// succeeded, its error (or panic) as failed. h's context ends when the
// task's lease does.
//
// A task may be pushed more than once (delivery is at least once): its id
// is the key to recognise a repeat by.
func HTTPHandler(secret string, h Handler) http.Handler {
	return &pushHandler{secret: []byte(secret), h: h, log: slog.Default()}
}

type pushHandler struct {
	secret []byte
	h      Handler
	log    *slog.Logger
}

func (p *pushHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		pushError(w, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, "a push is a POST")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPushBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		pushError(w, http.StatusRequestEntityTooLarge, api.CodePayloadTooLarge, fmt.Sprintf("a push is at most %d bytes", maxPushBytes))
		return
	case err != nil:
		pushError(w, http.StatusBadRequest, api.CodeInvalidRequest, "reading the push: "+err.Error())
		return
	}
	if len(p.secret) > 0 {
		if err := api.VerifySignature(p.secret, r.Header.Get(api.SignatureHeader), body, time.Now()); err != nil {
			pushError(w, http.StatusUnauthorized, api.CodeUnauthorized, api.SignatureHeader+": "+err.Error())
			return
		}
	}
	var pt api.PushedTask
	if err := json.Unmarshal(body, &pt); err != nil || pt.ID == "" || pt.Lease == "" {
		msg := "the body is not a pushed task: id and lease are required"
		if err != nil {
			msg = "the body is not a pushed task: " + err.Error()
		}
		pushError(w, http.StatusBadRequest, api.CodeInvalidRequest, msg)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	if !pt.LeaseExpiresAt.IsZero() {
		ctx, cancel = context.WithDeadline(r.Context(), pt.LeaseExpiresAt)
	}
	defer cancel()
	t := PushedTask(pt)
	out := api.PushOutcome{Status: string(core.StateSucceeded)}
	result, err := p.call(ctx, t)
	if err == nil {
		if out.Result, err = marshalResult(result); err != nil {
			out.Result = nil
		}
	}
	if err != nil {
		out.Status, out.Error = string(core.StateFailed), clip(err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// call runs the handler, turning a panic into an error.
func (p *pushHandler) call(ctx context.Context, t *Task) (result any, err error) {
	defer func() {
		if v := recover(); v != nil {
			p.log.ErrorContext(ctx, "handler panicked; the task fails", "task", t.ID, "panic", v)
			result, err = nil, fmt.Errorf("panic: %v", v)
		}
	}()
	return p.h(ctx, t)
}

// PushedTask is the Task a handler sees for a pushed start.
func PushedTask(pt api.PushedTask) *Task {
	leaseEnd := pt.LeaseExpiresAt
	return &Task{Task: api.Task{
		ID: pt.ID, Key: pt.Key, Tenant: pt.Tenant, Pool: pt.Pool, Recipient: pt.Tenant, State: string(core.StateRunning),
		Payload: pt.Payload, Deadline: pt.Deadline, Lease: pt.Lease, LeaseExpiresAt: &leaseEnd,
	}}
}

func pushError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.Error{Error: api.ErrorDetail{Code: code, Message: msg}})
}
