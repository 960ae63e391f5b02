package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/parkinglot/parkinglot/pkg/api"
)

// Acquire's failures besides the context's.
var (
	// ErrRejected: the pool's parked depth was full. The error is also a
	// *Error with the server's RetryAfter and the rejected Task.
	ErrRejected = errors.New("client: acquire rejected: the pool's parked depth is full")
	// ErrExpired: the task reached its deadline before a slot freed.
	ErrExpired = errors.New("client: acquire expired: no slot freed before the deadline")
)

// AcquireOptions shape the task behind a permit; zero fields are the
// pool's defaults.
type AcquireOptions struct {
	Key        string          // idempotency key
	Recipient  string          // mailbox of the start and the outcome
	Payload    json.RawMessage // what the permit is for, for the audit and mailbox
	MaxWait    time.Duration   // how long to wait for a slot
	RunTimeout time.Duration   // the lease's length; heartbeats renew it
}

// Permit is a held slot of a permit pool: a running task whose lease the
// permit renews in the background until Release.
type Permit struct {
	// Task is the running task, as it started.
	Task api.Task

	c      *Client
	stop   context.CancelFunc
	done   chan struct{}
	lost   chan struct{}
	mu     sync.Mutex
	err    error // why the lease was lost
	closed bool
}

// waitStep is one long poll of Acquire's wait (the server's bound).
const waitStep = 20 * time.Second

// Acquire takes a slot of a permit pool, as semaphore.Acquire does across
// machines: it submits a task, waits until the task starts (a parked task
// waits for a slot, in its turn, fair between tenants), and returns the
// permit, whose lease it heartbeats until Release. It returns ErrRejected
// when the pool's parked depth is full, ErrExpired when no slot freed
// before the deadline, and the context's error when ctx ends first (the
// task is then cancelled, so that the slot is never taken for nobody).
// Many Acquire calls may share one recipient: each waits for its own task.
func (c *Client) Acquire(ctx context.Context, pool string, o AcquireOptions) (*Permit, error) {
	// Every Acquire submits with a key (its own when o has none), so that
	// a submission whose answer the context cut off can be found again and
	// cancelled.
	req := api.SubmitRequest{Key: o.Key, Recipient: o.Recipient, Payload: o.Payload}
	if req.Key == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		req.Key = "acquire-" + hex.EncodeToString(b[:])
	}
	if o.MaxWait > 0 {
		req.MaxWait = o.MaxWait.String()
	}
	if o.RunTimeout > 0 {
		req.RunTimeout = o.RunTimeout.String()
	}
	res, err := c.Submit(ctx, pool, req)
	var apiErr *Error
	if errors.As(err, &apiErr) && apiErr.Code == api.CodePoolFull {
		return nil, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	if err != nil {
		if ctx.Err() != nil {
			c.abandonSubmission(pool, req)
			return nil, ctx.Err()
		}
		return nil, err
	}
	t := res.Task
	for t.State == "parked" {
		if t, err = c.WaitTask(ctx, t.ID, waitStep); err != nil {
			if ctx.Err() != nil {
				c.abandon(res.Task.ID)
				return nil, ctx.Err()
			}
			return nil, err
		}
	}
	switch t.State {
	case "running":
	case "expired":
		return nil, fmt.Errorf("%w: task %s", ErrExpired, t.ID)
	default:
		return nil, fmt.Errorf("client: acquire: task %s ended %s before it started", t.ID, t.State)
	}
	if ctx.Err() != nil {
		c.abandon(t.ID)
		return nil, ctx.Err()
	}
	hctx, stop := context.WithCancel(context.Background())
	p := &Permit{Task: t, c: c, stop: stop, done: make(chan struct{}), lost: make(chan struct{})}
	go p.heartbeat(hctx)
	return p, nil
}

// abandon cancels a task its Acquire gave up on, on a context of its own:
// the caller's has ended.
func (c *Client) abandon(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = c.Cancel(ctx, id)
}

// abandonSubmission cancels the task of a submission whose answer was cut
// off: the same keyed request again answers that task (or creates it, if
// the first never arrived), which is then cancelled.
func (c *Client) abandonSubmission(pool string, req api.SubmitRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Submit(ctx, pool, req)
	if err == nil {
		_, _ = c.Cancel(ctx, res.Task.ID)
	}
}

// leaseLength is how long each heartbeat extends the lease: the task's own
// run timeout, as the server applies it.
func leaseLength(t api.Task) time.Duration {
	if t.StartedAt == nil || t.LeaseExpiresAt == nil {
		return time.Minute
	}
	return t.LeaseExpiresAt.Sub(*t.StartedAt)
}

// KeepAlive renews the lease of running task t every `every` (zero: a
// third of the lease) until ctx ends, and then returns nil; or it returns
// the error of a heartbeat the server refused (409 lease_lost, 404): the
// lease is gone for good. A failure of the network or of the server is
// passed to retrying, if not nil, and retried at the next tick, while the
// lease lasts.
func (c *Client) KeepAlive(ctx context.Context, t api.Task, every time.Duration, retrying func(error)) error {
	if every <= 0 {
		every = leaseLength(t) / 3
	}
	every = max(every, 10*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		hctx, cancel := context.WithTimeout(ctx, every)
		_, err := c.Heartbeat(hctx, t.ID, t.Lease, 0)
		cancel()
		switch s := StatusOf(err); {
		case err == nil || ctx.Err() != nil:
		case s >= 400 && s < 500:
			return err
		case retrying != nil:
			retrying(err)
		}
	}
}

// heartbeat keeps the permit's lease until ctx ends or the lease is lost.
func (p *Permit) heartbeat(ctx context.Context) {
	defer close(p.done)
	if err := p.c.KeepAlive(ctx, p.Task, 0, nil); err != nil {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.lost)
	}
}

// Lost is closed when the permit's lease is lost (the server reclaimed the
// slot, after heartbeats failed past the lease's end): the work it guards
// should stop. Err then says why.
func (p *Permit) Lost() <-chan struct{} { return p.lost }

// Err is the error that lost the lease, or nil.
func (p *Permit) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Release completes the task as succeeded with result (nil for none), and
// frees the slot.
func (p *Permit) Release(ctx context.Context, result json.RawMessage) error {
	return p.end(ctx, api.CompleteRequest{Status: "succeeded", Result: result})
}

// Fail completes the task as failed with msg, and frees the slot.
func (p *Permit) Fail(ctx context.Context, msg string) error {
	return p.end(ctx, api.CompleteRequest{Status: "failed", Error: msg})
}

func (p *Permit) end(ctx context.Context, req api.CompleteRequest) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("client: permit already released")
	}
	p.closed = true
	p.mu.Unlock()
	p.stop()
	<-p.done
	req.Lease = p.Task.Lease
	_, err := p.c.Complete(ctx, p.Task.ID, req)
	return err
}
