package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
)

// Task is a claimed task: running, with its lease and payload.
type Task struct {
	api.Task
}

// Decode unmarshals the task's payload into v.
func (t *Task) Decode(v any) error {
	if len(t.Payload) == 0 {
		return errors.New("worker: the task has no payload")
	}
	return json.Unmarshal(t.Payload, v)
}

// Handler runs one task. Its result, marshalled as JSON (a json.RawMessage
// as it is; nil for none), completes the task as succeeded; an error
// completes it as failed with the error's text.
type Handler func(ctx context.Context, t *Task) (result any, err error)

// Options configure Run.
type Options struct {
	// Pool is the pull pool to work in. Required.
	Pool string
	// Concurrency is how many tasks this process runs at once. Default: 1.
	Concurrency int
	// ClaimWait is how long one claim waits for a task, at most 20s.
	// Default: 20s.
	ClaimWait time.Duration
	// HeartbeatEvery is how often a running task's lease is renewed.
	// Default: a third of the task's lease.
	HeartbeatEvery time.Duration
	// ShutdownTimeout is how long Run waits for running handlers once its
	// context ends. Default: 30s.
	ShutdownTimeout time.Duration
	// Logger receives claim and completion failures, lost leases and
	// panics. Default: slog.Default().
	Logger *slog.Logger
}

// maxErrorText is the server's bound on a task's error text.
const maxErrorText = 4096

// completeTimeout bounds one completion, which goes through also during
// shutdown.
const completeTimeout = 30 * time.Second

// ErrShutdownTimeout is returned by Run when handlers still ran at the end
// of ShutdownTimeout: their tasks are left to lease expiry.
var ErrShutdownTimeout = errors.New("worker: handlers still running after the shutdown timeout; their tasks are left to lease expiry")

// Run claims tasks of o.Pool with c (a worker's token) and runs h for
// each, o.Concurrency at a time, until ctx ends; then it stops claiming and
// waits up to o.ShutdownTimeout for the running handlers. It returns nil
// after a clean shutdown, ErrShutdownTimeout when handlers outlived the
// timeout, or an error naming a bad option.
func Run(ctx context.Context, c *client.Client, o Options, h Handler) error {
	switch {
	case c == nil:
		return errors.New("worker: a client is required")
	case h == nil:
		return errors.New("worker: a handler is required")
	case o.Pool == "":
		return errors.New("worker: Options.Pool is required")
	case o.Concurrency < 0:
		return fmt.Errorf("worker: Options.Concurrency must be positive, got %d", o.Concurrency)
	case o.ClaimWait < 0 || o.ClaimWait > 20*time.Second:
		return fmt.Errorf("worker: Options.ClaimWait must be 0-20s, got %s", o.ClaimWait)
	case o.HeartbeatEvery < 0 || o.ShutdownTimeout < 0:
		return errors.New("worker: Options.HeartbeatEvery and ShutdownTimeout must not be negative")
	}
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	if o.ClaimWait == 0 {
		o.ClaimWait = 20 * time.Second
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	// Handlers outlive ctx by up to the shutdown timeout.
	hctx, stopHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHandlers()
	r := &runner{c: c, o: o, h: h, log: o.Logger.With("pool", o.Pool)}
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.slot(ctx, hctx)
		}()
	}
	drained := make(chan struct{})
	go func() {
		wg.Wait()
		close(drained)
	}()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
	}
	timer := time.NewTimer(o.ShutdownTimeout)
	defer timer.Stop()
	select {
	case <-drained:
		return nil
	case <-timer.C:
		r.abandoned.Store(true)
		stopHandlers()
		return ErrShutdownTimeout
	}
}

type runner struct {
	c   *client.Client
	o   Options
	h   Handler
	log *slog.Logger
	// abandoned is set when Run gave up waiting: handlers that return later
	// leave their tasks to lease expiry.
	abandoned atomic.Bool
}

// slot runs one task at a time: claim (or take the next task a completion
// answered), run, complete and ask for the next, until ctx ends.
func (r *runner) slot(ctx, hctx context.Context) {
	var next []api.Task
	backoff := time.Duration(0)
	for {
		if len(next) == 0 {
			if ctx.Err() != nil {
				return
			}
			tasks, err := r.c.Claim(ctx, r.o.Pool, client.ClaimOptions{Max: 1, Wait: r.o.ClaimWait})
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				backoff = min(max(2*backoff, 100*time.Millisecond), 30*time.Second)
				r.log.WarnContext(ctx, "claim failed; retrying", "err", err, "in", backoff)
				sleep(ctx, backoff)
				continue
			}
			backoff = 0
			next = tasks
			continue
		}
		t := next[0]
		next = next[1:]
		req, ok := r.run(hctx, t)
		if !ok || r.abandoned.Load() {
			continue
		}
		next = append(next, r.complete(ctx, t, req)...)
	}
}

// run runs the handler on t with its lease renewed, and returns the
// completion to send; false when the lease was lost (nothing to send).
func (r *runner) run(hctx context.Context, t api.Task) (api.CompleteRequest, bool) {
	tctx, cancel := context.WithCancel(hctx)
	defer cancel()
	var lost atomic.Bool
	beats := make(chan struct{})
	go func() {
		defer close(beats)
		r.heartbeat(tctx, t, func() {
			lost.Store(true)
			cancel()
		})
	}()
	result, err := r.call(tctx, t)
	cancel()
	<-beats
	if lost.Load() {
		return api.CompleteRequest{}, false
	}
	req := api.CompleteRequest{Lease: t.Lease, Status: "succeeded"}
	if err == nil {
		raw, merr := marshalResult(result)
		if merr != nil {
			err = merr
		} else {
			req.Result = raw
		}
	}
	if err != nil {
		req.Status, req.Result, req.Error = "failed", nil, clip(err.Error())
	}
	return req, true
}

// call runs the handler, turning a panic into an error.
func (r *runner) call(ctx context.Context, t api.Task) (result any, err error) {
	defer func() {
		if v := recover(); v != nil {
			r.log.ErrorContext(ctx, "handler panicked; the task fails", "task", t.ID, "panic", v)
			result, err = nil, fmt.Errorf("panic: %v", v)
		}
	}()
	return r.h(ctx, &Task{Task: t})
}

// heartbeat renews t's lease until ctx ends; lost is called when the lease
// is gone for good (the server refused a heartbeat: lease_lost).
func (r *runner) heartbeat(ctx context.Context, t api.Task, lost func()) {
	err := r.c.KeepAlive(ctx, t, r.o.HeartbeatEvery, func(err error) {
		r.log.WarnContext(ctx, "heartbeat failed; retrying while the lease lasts", "task", t.ID, "err", err)
	})
	if err != nil {
		r.log.WarnContext(ctx, "lease lost; the handler's context ends", "task", t.ID, "err", err)
		lost()
	}
}

// complete sends req for t and returns the next task the server started
// for this worker, unless Run is shutting down (then it asks for none).
func (r *runner) complete(ctx context.Context, t api.Task, req api.CompleteRequest) []api.Task {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), completeTimeout)
	defer cancel()
	var next []api.Task
	var err error
	if ctx.Err() == nil {
		_, next, err = r.c.CompleteNext(cctx, t.ID, req, 1)
	} else {
		_, err = r.c.Complete(cctx, t.ID, req)
	}
	if err != nil {
		r.log.WarnContext(ctx, "completion failed; the lease's expiry ends the task", "task", t.ID, "err", err)
	}
	return next
}

func marshalResult(v any) (json.RawMessage, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if !json.Valid(v) {
			return nil, errors.New("worker: the handler's result is not valid JSON")
		}
		return v, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("worker: marshal the handler's result: %w", err)
	}
	return b, nil
}

// clip bounds an error text for the server, cutting at a character's
// start so that the text stays valid UTF-8.
func clip(s string) string {
	if len(s) <= maxErrorText {
		return s
	}
	n := maxErrorText - 3
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
