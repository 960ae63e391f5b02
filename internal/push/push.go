// Package push delivers the started tasks of push pools to their targets:
// an HTTP endpoint, an AWS Lambda function or an SQS queue. It is core's
// Pusher: core hands it each start after the start commits, and it reports
// every attempt back to core (accepted, the outcome, a retry, a failure
// for good), so that what it does survives its process: a delivery whose
// outcome is not recorded is pushed again by the sweep (at least once).
//
// Each delivery runs on its own goroutine: a slow target holds only its own
// pool's deliveries, which its capacity bounds.
package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// Defaults of a Target and of Options.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultMaxAttempts = 5
	DefaultBackoffBase = 200 * time.Millisecond
	DefaultBackoffMax  = 30 * time.Second
	// holdGrace is added to a target's timeout to make the pool's hold: the
	// time to record an attempt's outcome after the target answered.
	holdGrace = 5 * time.Second
)

// Target types and HTTP modes.
const (
	TypeHTTP   = "http"
	TypeLambda = "lambda"
	TypeSQS    = "sqs"

	// ModeSync: the target's 2xx answer is the task's outcome.
	ModeSync = "sync"
	// ModeAsync: the target's 2xx answer means it took the task; it
	// heartbeats and completes with the lease, as any worker does.
	ModeAsync = "async"
)

// Target is where a push pool's started tasks go.
type Target struct {
	// Type is http, lambda or sqs.
	Type string
	// URL (http) receives a POST of each start (api.PushedTask), signed
	// with Secret when set (api.SignatureHeader).
	URL    string
	Secret string
	// Mode (http) is sync (default) or async.
	Mode string
	// Function (lambda) is the function's name or ARN, invoked
	// asynchronously with the start as its event; Qualifier an optional
	// version or alias.
	Function  string
	Qualifier string
	// QueueURL (sqs) receives each start as a message.
	QueueURL string
	// Timeout bounds one delivery attempt. Default: DefaultTimeout.
	Timeout time.Duration
	// MaxAttempts bounds the delivery attempts; then the task fails with
	// core.PushFailedCode. Default: DefaultMaxAttempts.
	MaxAttempts int
}

// WithDefaults returns t with zero fields set to their defaults.
func (t Target) WithDefaults() Target {
	if t.Type == TypeHTTP && t.Mode == "" {
		t.Mode = ModeSync
	}
	if t.Timeout == 0 {
		t.Timeout = DefaultTimeout
	}
	if t.MaxAttempts == 0 {
		t.MaxAttempts = DefaultMaxAttempts
	}
	return t
}

// Validate names the first bad field of t (with its defaults), a target of
// pool.
func (t Target) Validate(pool string) error {
	bad := func(field, format string, args ...any) error {
		return core.Invalid("target."+field, "pool %s: target.%s: %s", pool, field, fmt.Sprintf(format, args...))
	}
	switch {
	case t.Timeout < 0 || t.Timeout > 15*time.Minute:
		return bad("timeout", "must be positive and at most 15m, got %s", t.Timeout)
	case t.MaxAttempts < 1 || t.MaxAttempts > 100:
		return bad("maxAttempts", "must be 1-100, got %d", t.MaxAttempts)
	}
	switch t.Type {
	case TypeHTTP:
		if err := checkURL(t.URL); err != nil {
			return bad("url", "%v", err)
		}
		if t.Mode != ModeSync && t.Mode != ModeAsync {
			return bad("mode", "must be %q or %q, got %q", ModeSync, ModeAsync, t.Mode)
		}
	case TypeLambda:
		if t.Function == "" {
			return bad("function", "is required for a lambda target")
		}
	case TypeSQS:
		if t.QueueURL == "" {
			return bad("queueUrl", "is required for an sqs target")
		}
	default:
		return bad("type", "must be %q, %q or %q, got %q", TypeHTTP, TypeLambda, TypeSQS, t.Type)
	}
	return nil
}

// Options configures a Pusher.
type Options struct {
	// Targets are the push pools' targets, by pool name.
	Targets map[string]Target
	// HTTPClient sends to HTTP targets. Default: a client of its own that
	// does not follow redirects.
	HTTPClient *http.Client
	// AWS sends to lambda and sqs targets; required when there are any.
	AWS AWSClients
	// RetryBySweep leaves retries to the sweep rather than to timers of
	// this process: for a process that does not outlive its request (a
	// Lambda invocation).
	RetryBySweep bool
	// BackoffBase and BackoffMax shape the waits between attempts:
	// exponential from BackoffBase, at most BackoffMax, with jitter.
	// Defaults: DefaultBackoffBase, DefaultBackoffMax.
	BackoffBase, BackoffMax time.Duration
	// Logger receives what a delivery could not record. Default: discard.
	Logger *slog.Logger
	// OnAttempt, if set, is told of every delivery attempt: its pool,
	// whether the target took the task (delivered) or not, and how long
	// the attempt took.
	OnAttempt func(pool string, delivered bool, took time.Duration)
}

// Pusher is core's Pusher over the targets of Options. Bind it to its
// scheduler before the scheduler starts tasks.
type Pusher struct {
	opts    Options
	targets map[string]target
	sched   *core.Scheduler
	log     *slog.Logger

	ctx     context.Context // ends with Close
	cancel  context.CancelFunc
	mu      sync.Mutex
	closing bool
	timers  map[*time.Timer]struct{}
	// busy counts the deliveries (and retries' timers that fired) under
	// way; idle is closed while it is 0.
	busy int
	idle chan struct{}
}

// target is a configured Target with what sends to it.
type target struct {
	Target
	send sender
}

// sender makes one delivery attempt of body, task t's start.
type sender interface {
	send(ctx context.Context, tg *Target, t *core.Task, body []byte) result
}

// result is one attempt's: the target took the task (accepted), or
// answered its outcome, or failed (err), for good when permanent.
type result struct {
	accepted  bool
	outcome   *api.PushOutcome
	err       error
	permanent bool
}

// New returns a Pusher, or an error naming the first bad target.
func New(opts Options) (*Pusher, error) {
	if opts.HTTPClient == nil {
		opts.HTTPClient = NewHTTPClient()
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = DefaultBackoffBase
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = DefaultBackoffMax
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pusher{opts: opts, targets: map[string]target{}, log: opts.Logger, timers: map[*time.Timer]struct{}{}, idle: make(chan struct{})}
	close(p.idle)
	for pool, tg := range opts.Targets {
		tg = tg.WithDefaults()
		if err := tg.Validate(pool); err != nil {
			return nil, err
		}
		s, err := p.senderFor(tg, pool)
		if err != nil {
			return nil, err
		}
		p.targets[pool] = target{Target: tg, send: s}
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

func (p *Pusher) senderFor(tg Target, pool string) (sender, error) {
	switch tg.Type {
	case TypeHTTP:
		return httpSender{client: p.opts.HTTPClient}, nil
	default:
		return p.opts.AWS.sender(tg, pool)
	}
}

// NewHTTPClient returns the client a Pusher sends to HTTP targets with by
// default: keep-alive connections, enough idle ones per target for a pool's
// capacity, no redirects followed (a redirect is an answer of the target's,
// and a failure).
func NewHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 256
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Bind sets the scheduler that p reports to. Call it once, before the
// scheduler starts tasks.
func (p *Pusher) Bind(s *core.Scheduler) { p.sched = s }

// Has reports whether pool has a target.
func (p *Pusher) Has(pool string) bool { _, ok := p.targets[pool]; return ok }

// Hold is how long an attempt to pool's target may take, with a grace to
// record its outcome.
func (p *Pusher) Hold(pool string) time.Duration {
	if tg, ok := p.targets[pool]; ok {
		return tg.Timeout + holdGrace
	}
	return DefaultTimeout + holdGrace
}

// Push starts the delivery of t on a goroutine of its own. Once the Pusher
// is shutting down it starts none: the sweep pushes t after its hold.
func (p *Pusher) Push(t core.Task) {
	if !p.begin() {
		return
	}
	go func() {
		defer p.end()
		p.deliver(t)
	}()
}

// begin counts one more piece of work under way, unless the Pusher is
// shutting down.
func (p *Pusher) begin() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false
	}
	if p.busy == 0 {
		p.idle = make(chan struct{})
	}
	p.busy++
	return true
}

// end counts one piece of work done.
func (p *Pusher) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.busy--; p.busy == 0 {
		close(p.idle)
	}
}

// idleCh is closed once no work is under way.
func (p *Pusher) idleCh() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idle
}

// Wait returns when the deliveries under way have recorded their
// attempts (retries by timer are not waited for).
func (p *Pusher) Wait() { <-p.idleCh() }

// WaitUntil is Wait that gives up when ctx ends: a delivery still waiting
// for its target then is pushed again by the sweep after its hold, if its
// outcome is not recorded by then. It reports whether every delivery
// finished.
func (p *Pusher) WaitUntil(ctx context.Context) bool {
	select {
	case <-p.idleCh():
		return true
	case <-ctx.Done():
		return false
	}
}

// Shutdown starts no more deliveries and stops the retry timers, waits
// until ctx ends for the deliveries under way to record their attempts,
// then cancels those still waiting for their targets. What is left pending,
// the sweep pushes again.
func (p *Pusher) Shutdown(ctx context.Context) {
	p.mu.Lock()
	p.closing = true
	for tm := range p.timers {
		tm.Stop()
	}
	clear(p.timers)
	p.mu.Unlock()
	select {
	case <-p.idleCh():
	case <-ctx.Done():
	}
	p.cancel()
	<-p.idleCh()
}

// Close is Shutdown without waiting: deliveries under way are cancelled.
func (p *Pusher) Close() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.Shutdown(ctx)
}

// deliver makes one attempt to deliver t and records its result.
func (p *Pusher) deliver(t core.Task) {
	ctx := p.ctx
	tg, ok := p.targets[t.Pool]
	if !ok {
		// A process configured before the pool's target was (a rolling
		// deploy): the delivery stays pending for one that has it.
		p.log.WarnContext(ctx, "push: no target for this pool here; the sweep of a process that has one pushes the task", "task", t.ID, "pool", t.Pool)
		return
	}
	if t.PushAttempts >= tg.MaxAttempts {
		// Its earlier deliveries' outcomes were never recorded (each
		// process that pushed it was lost): give up, as for failures.
		p.record(ctx, t, result{err: fmt.Errorf("no outcome recorded after %d deliveries", t.PushAttempts), permanent: true})
		return
	}
	body, err := json.Marshal(api.FromPushed(&t))
	if err != nil {
		p.record(ctx, t, result{err: err, permanent: true})
		return
	}
	actx, cancel := context.WithTimeout(ctx, tg.Timeout)
	began := time.Now()
	res := tg.send.send(actx, &tg.Target, &t, body)
	cancel()
	if ctx.Err() != nil {
		return // closing: the sweep pushes it again
	}
	if p.opts.OnAttempt != nil {
		p.opts.OnAttempt(t.Pool, res.err == nil, time.Since(began))
	}
	p.record(ctx, t, res)
}

// record reports an attempt's result to the scheduler.
func (p *Pusher) record(ctx context.Context, t core.Task, res result) {
	var err error
	switch {
	case res.accepted:
		err = p.sched.PushAccepted(ctx, t.ID, t.Lease)
	case res.outcome != nil:
		err = p.complete(ctx, t, res.outcome)
	default:
		err = p.failed(ctx, t, res)
	}
	if err != nil {
		p.log.WarnContext(ctx, "push: recording an attempt failed; the sweep pushes the task again", "task", t.ID, "pool", t.Pool, "err", err)
	}
}

// complete records a target's outcome of t.
func (p *Pusher) complete(ctx context.Context, t core.Task, o *api.PushOutcome) error {
	status := core.State(o.Status)
	if o.Status == "" {
		status = core.StateSucceeded
	}
	_, err := p.sched.Complete(ctx, core.CompleteRequest{
		Tenant: t.Tenant, TaskID: t.ID, Lease: t.Lease, Status: status, Result: o.Result, Error: o.Error,
	})
	var inv *core.InvalidError
	switch {
	case errors.Is(err, core.ErrLeaseLost), errors.Is(err, core.ErrNotFound):
		return nil // another delivery's outcome, or a cancellation, came first
	case errors.As(err, &inv):
		// The target's answer cannot be an outcome: that is the failure.
		return p.failed(ctx, t, result{err: fmt.Errorf("the target's answer is not an outcome: %v", err), permanent: true})
	}
	return err
}

// failed records a failed attempt: a retry after a backoff, or, permanent
// or out of attempts, the task's failure.
func (p *Pusher) failed(ctx context.Context, t core.Task, res result) error {
	tg := p.targets[t.Pool]
	attempts := t.PushAttempts + 1
	if res.permanent || attempts >= tg.MaxAttempts {
		_, err := p.sched.PushFailed(ctx, t, res.err.Error())
		return err
	}
	wait := p.backoff(attempts)
	if _, ok, err := p.sched.PushRetry(ctx, t, res.err.Error(), wait); err != nil || !ok || p.opts.RetryBySweep {
		return err
	}
	p.after(wait, func() {
		if _, err := p.sched.Repush(p.ctx, t.ID); err != nil && p.ctx.Err() == nil {
			p.log.WarnContext(p.ctx, "push: retry failed; the sweep pushes the task again", "task", t.ID, "err", err)
		}
	})
	return nil
}

// backoff is the wait before attempt n+1 after n failed: exponential, capped,
// with equal jitter (half fixed, half random), so that the deliveries a
// target's outage failed together do not return together.
func (p *Pusher) backoff(n int) time.Duration {
	d := p.opts.BackoffBase
	for i := 1; i < n && d < p.opts.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, p.opts.BackoffMax)
	return d/2 + rand.N(d/2+1)
}

// after runs f after d on a timer that Close stops.
func (p *Pusher) after(d time.Duration, f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return
	}
	var tm *time.Timer
	tm = time.AfterFunc(d, func() {
		p.mu.Lock()
		_, live := p.timers[tm]
		delete(p.timers, tm)
		p.mu.Unlock()
		// Counted as work under way, so that Shutdown waits for it
		// before the store closes.
		if live && p.begin() {
			defer p.end()
			f()
		}
	})
	p.timers[tm] = struct{}{}
}
