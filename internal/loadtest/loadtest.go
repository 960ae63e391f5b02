package loadtest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/pkg/worker"
)

// Config describes one load run. Zero fields take the defaults documented
// on each; WithDefaults fills them.
type Config struct {
	// Server is the base URL of HTTP API v1. Default: client.DefaultServer.
	Server string
	// Tokens are bearer tokens, one per tenant. Required.
	Tokens []string
	// Pools are the pools to submit to, round-robin. Default: every pool
	// the server lists.
	Pools []string
	// Submissions is the number of tasks submitted. Default: 1000.
	Submissions int
	// Submitters is the number of concurrent submitting goroutines.
	// Default: 32.
	Submitters int
	// Mode is permit (workers take starts from their mailboxes) or pull
	// (worker processes claim tasks of pull pools with pkg/worker).
	// Default: permit.
	Mode string
	// Workers is, in permit mode, the number of workers per tenant, each
	// long-polling its own recipient's mailbox; in pull mode, each worker
	// process's concurrency per pool. Default: 4.
	Workers int
	// WorkerTokens are, in pull mode, the bearer tokens of the worker
	// processes, one each (at least one; a token may repeat): each runs
	// pkg/worker on every pool with its own client and connections.
	WorkerTokens []string
	// Hold is how long a worker holds a started task before it completes
	// it. Default: 5ms.
	Hold time.Duration
	// CrashFraction of started tasks are never completed: their lease
	// times out. Default: 0.
	CrashFraction float64
	// RunTimeout is every task's lease length, named in each submission so
	// that the observer knows the lease promise of a crashed worker.
	// Default: 2s.
	RunTimeout time.Duration
	// MaxWait is how long a task may stay parked. Default: 2m.
	MaxWait time.Duration
	// ShortWaitFraction of submissions ask for ShortWait instead of
	// MaxWait, so that some parked tasks reach their deadline. Default: 0.
	ShortWaitFraction float64
	// ShortWait is the short tasks' maxWait. Default: 20ms.
	ShortWait time.Duration
	// Timeout bounds the whole run; tasks without an outcome by then are
	// reported. Default: MaxWait + RunTimeout + 1m.
	Timeout time.Duration
	// Progress, if set, shows a progress bar of outcomes received.
	Progress io.Writer
	// HTTPClient sends every request. Default: a client with a connection
	// pool sized for the run.
	HTTPClient *http.Client
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Server == "" {
		c.Server = client.DefaultServer
	}
	if c.Submissions == 0 {
		c.Submissions = 1000
	}
	if c.Submitters == 0 {
		c.Submitters = 32
	}
	if c.Mode == "" {
		c.Mode = ModePermit
	}
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.Hold == 0 {
		c.Hold = 5 * time.Millisecond
	}
	if c.RunTimeout == 0 {
		c.RunTimeout = 2 * time.Second
	}
	if c.MaxWait == 0 {
		c.MaxWait = 2 * time.Minute
	}
	if c.ShortWait == 0 {
		c.ShortWait = 20 * time.Millisecond
	}
	if c.Timeout == 0 {
		c.Timeout = c.MaxWait + c.RunTimeout + time.Minute
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     30 * time.Second,
		}}
	}
	return c
}

func (c Config) validate() error {
	switch {
	case len(c.Tokens) == 0:
		return errors.New("loadtest: at least one token (tenant) is required")
	case len(slices.Compact(slices.Sorted(slices.Values(c.Tokens)))) != len(c.Tokens):
		return errors.New("loadtest: tokens must be distinct, one per tenant")
	case c.Submissions < 0 || c.Submitters < 1 || c.Workers < 1:
		return errors.New("loadtest: submissions, submitters and workers must be positive")
	case c.CrashFraction < 0 || c.CrashFraction > 1 || c.ShortWaitFraction < 0 || c.ShortWaitFraction > 1:
		return errors.New("loadtest: fractions must be within [0, 1]")
	case c.Hold < 0 || c.RunTimeout <= 0 || c.MaxWait <= 0 || c.ShortWait <= 0 || c.Timeout <= 0:
		return errors.New("loadtest: durations must be positive")
	case c.Mode != ModePermit && c.Mode != ModePull:
		return fmt.Errorf("loadtest: mode must be %s or %s, got %q", ModePermit, ModePull, c.Mode)
	case c.Mode == ModePull && len(c.WorkerTokens) == 0:
		return errors.New("loadtest: pull mode needs the worker processes' tokens")
	case c.Mode == ModePull && c.CrashFraction > 0:
		return errors.New("loadtest: pull mode injects no crashes: pkg/worker heartbeats every lease it holds")
	}
	return nil
}

// Modes.
const (
	ModePermit = "permit"
	ModePull   = "pull"
)

// tenant is one token's client.
type tenant struct {
	c *client.Client
}

// task is what the run knows of one submitted task.
type task struct {
	id       string
	pool     string
	tenant   int
	deadline time.Time // server time
	// submitted: the submission's answer named the task (it was accepted,
	// or rejected with its outcome in the mailbox).
	submitted bool
	short     bool // submitted with the short maxWait
	crash     bool

	// Filled by the workers, under run.mu.
	starts   int
	recv     time.Duration // since run.t0, wall clock: started message received
	end      time.Duration // since run.t0: complete sent, or the lease promise
	outcomes []string
	startAt  time.Time // server time of the first started message
	// delivery is the time from the start to the worker's receipt of the
	// started message (wall clocks of one machine).
	delivery time.Duration
}

type run struct {
	id      string
	cfg     Config
	tenants []tenant // by token, in order
	pools   map[string]api.Pool
	t0      time.Time

	mu        sync.Mutex
	tasks     map[string]*task
	read      []ReadMessage // every message read
	completed []string      // tasks whose completion was acknowledged
	completes atomic.Int64
	leaseLost atomic.Int64
	errs      errorLog

	outcomes  atomic.Int64  // submitted tasks with an outcome
	accepted  atomic.Int64  // submissions answered with a task
	done      chan struct{} // closed when every submitted task has an outcome
	doneOnce  sync.Once
	submitted atomic.Bool
	bar       *progressbar.ProgressBar
	workerWG  sync.WaitGroup
}

// Run drives the server described by cfg and reports what it saw.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return Report{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	defer cfg.HTTPClient.CloseIdleConnections()

	r := &run{id: fmt.Sprintf("lt%x", time.Now().UnixNano()&0xffffffffff), cfg: cfg, tasks: make(map[string]*task, cfg.Submissions), done: make(chan struct{})}
	if err := r.setup(ctx); err != nil {
		return Report{}, err
	}
	if cfg.Progress != nil {
		r.bar = progressbar.NewOptions(cfg.Submissions,
			progressbar.OptionSetWriter(cfg.Progress), progressbar.OptionSetDescription("outcomes"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("tasks"),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
	}

	// The observer's times are wall-clock readings (Round(0) drops the
	// monotonic one, and time.Since(r.t0) then reads the wall clock): the
	// server decides a lease's end on the wall clock, and a crashed task's
	// interval ends at the server's lease promise. Mixing that with the
	// monotonic clock would misplace it wherever the two drift apart.
	r.t0 = time.Now().Round(0)
	workCtx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	cursors := make([][]string, len(r.tenants))
	for ti := range r.tenants {
		cursors[ti] = make([]string, cfg.Workers)
		for w := range cfg.Workers {
			r.workerWG.Add(1)
			go func() {
				defer r.workerWG.Done()
				cursors[ti][w] = r.worker(workCtx, ti, r.recipient(w), "")
			}()
		}
	}
	if cfg.Mode == ModePull {
		if err := r.startPullWorkers(workCtx); err != nil {
			return Report{}, err
		}
	}

	r.submit(ctx)
	r.mu.Lock()
	r.submitted.Store(true)
	r.checkDone()
	r.mu.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
	}
	elapsed := time.Since(r.t0)
	stopWorkers()
	r.workerWG.Wait()
	if r.bar != nil {
		_ = r.bar.Finish()
	}

	// Drain every mailbox, so that a duplicate outcome delivered late is
	// counted too.
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelDrain()
	for ti := range r.tenants {
		for w := range cfg.Workers {
			r.drain(drainCtx, ti, r.recipient(w), cursors[ti][w])
		}
	}

	rep := r.report(elapsed)
	wake, err := r.wakeLatency(drainCtx)
	if err != nil {
		r.errs.add(fmt.Errorf("audit: %w", err))
	}
	rep.Wake = wake
	rep.Errors = r.errs.list()
	return rep, nil
}

// recipient names worker w's mailbox; the prefix keeps runs apart.
func (r *run) recipient(w int) string { return fmt.Sprintf("%s-worker-%d", r.id, w) }

func (r *run) setup(ctx context.Context) error {
	for i, tok := range r.cfg.Tokens {
		c, err := client.New(r.cfg.Server, tok, client.WithHTTPClient(r.cfg.HTTPClient))
		if err != nil {
			return fmt.Errorf("loadtest: %w", err)
		}
		ps, err := c.Pools(ctx)
		if err != nil {
			return fmt.Errorf("loadtest: list pools with token %d: %w", i, err)
		}
		if i == 0 {
			r.pools = make(map[string]api.Pool, len(ps))
			for _, p := range ps {
				r.pools[p.Name] = p
			}
		}
		r.tenants = append(r.tenants, tenant{c: c})
	}
	if len(r.cfg.Pools) == 0 {
		for name := range r.pools {
			r.cfg.Pools = append(r.cfg.Pools, name)
		}
		slices.Sort(r.cfg.Pools)
	}
	if len(r.cfg.Pools) == 0 {
		return errors.New("loadtest: the server has no pools")
	}
	for _, p := range r.cfg.Pools {
		pool, ok := r.pools[p]
		if !ok {
			return fmt.Errorf("loadtest: the server has no pool %q", p)
		}
		if pulls := pool.Executor == ModePull; pulls != (r.cfg.Mode == ModePull) {
			return fmt.Errorf("loadtest: pool %q is a %s pool; this run is in %s mode", p, pool.Executor, r.cfg.Mode)
		}
	}
	return nil
}

// submit sends every submission, round-robin over pools, tenants and
// workers' recipients.
func (r *run) submit(ctx context.Context) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range r.cfg.Submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r.submitOne(ctx, i)
			}
		}()
	}
	for i := range r.cfg.Submissions {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
}

func (r *run) submitOne(ctx context.Context, i int) {
	pool := r.cfg.Pools[i%len(r.cfg.Pools)]
	ti := (i / len(r.cfg.Pools)) % len(r.tenants)
	w := (i / (len(r.cfg.Pools) * len(r.tenants))) % r.cfg.Workers
	wait, short := r.cfg.MaxWait, fraction(fmt.Sprint("short", i)) < r.cfg.ShortWaitFraction
	if short {
		wait = r.cfg.ShortWait
	}
	req := api.SubmitRequest{
		Recipient:  r.recipient(w),
		MaxWait:    wait.String(),
		RunTimeout: r.cfg.RunTimeout.String(),
		Payload:    []byte(fmt.Sprintf(`{"n":%d}`, i)),
	}
	res, err := r.tenants[ti].c.Submit(ctx, pool, req)
	var ce *client.Error
	var t api.Task
	switch {
	case err == nil:
		t = res.Task
	case errors.As(err, &ce) && ce.Code == api.CodePoolFull && ce.Task != nil:
		t = *ce.Task
	default:
		if ctx.Err() == nil {
			r.errs.add(fmt.Errorf("submit %d: %w", i, err))
		}
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	tk := r.tasks[t.ID]
	if tk == nil {
		tk = &task{id: t.ID}
		r.tasks[t.ID] = tk
	}
	tk.pool, tk.tenant, tk.deadline, tk.submitted, tk.short = t.Pool, ti, t.Deadline, true, short
	r.accepted.Add(1)
	if len(tk.outcomes) > 0 {
		// The outcome arrived before the submission's answer.
		r.outcome()
	}
}

// fraction maps s to [0, 1) deterministically.
func fraction(s string) float64 {
	h := sha256.Sum256([]byte(s))
	return float64(binary.BigEndian.Uint64(h[:8])>>11) / float64(1<<53)
}

// worker long-polls one recipient's mailbox until ctx is done: a started
// message is held and completed (or, for a crash, left to time out);
// outcome messages are recorded. Acks go out in the background, latest
// cursor only, so that they do not delay the next poll. It returns its
// cursor.
func (r *run) worker(ctx context.Context, ti int, rcpt, after string) string {
	c := r.tenants[ti].c
	acks := make(chan string, 1)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		for upTo := range acks {
			if err := c.Ack(ctx, rcpt, upTo); err != nil && ctx.Err() == nil {
				r.errs.add(fmt.Errorf("ack %s: %w", rcpt, err))
			}
		}
	}()
	defer func() {
		close(acks)
		<-acked
	}()
	for ctx.Err() == nil {
		page, err := c.Mailbox(ctx, rcpt, client.MailboxOptions{After: after, Limit: 1000, Wait: 2 * time.Second})
		if err != nil {
			if ctx.Err() == nil {
				r.errs.add(fmt.Errorf("mailbox %s: %w", rcpt, err))
				time.Sleep(50 * time.Millisecond) // back off before retrying the poll
			}
			continue
		}
		r.handle(ctx, ti, rcpt, page.Messages, true)
		if len(page.Messages) > 0 {
			after = page.Next
			latest(acks, page.Next)
		}
	}
	return after
}

// latest puts v in the one-slot channel ch, replacing a value not yet taken.
// There is one sender.
func latest(ch chan string, v string) {
	for {
		select {
		case ch <- v:
			return
		default:
			select {
			case <-ch:
			default:
			}
		}
	}
}

// drain reads what is left in a mailbox after the run.
func (r *run) drain(ctx context.Context, ti int, rcpt, after string) {
	c := r.tenants[ti].c
	for ctx.Err() == nil {
		page, err := c.Mailbox(ctx, rcpt, client.MailboxOptions{After: after, Limit: 1000})
		if err != nil {
			r.errs.add(fmt.Errorf("drain %s: %w", rcpt, err))
			return
		}
		if len(page.Messages) == 0 {
			return
		}
		r.handle(ctx, ti, rcpt, page.Messages, false)
		after = page.Next
		if err := c.Ack(ctx, rcpt, page.Next); err != nil {
			r.errs.add(fmt.Errorf("drain ack %s: %w", rcpt, err))
		}
	}
}

// handle records messages; if work, it also works started tasks.
func (r *run) handle(ctx context.Context, ti int, rcpt string, msgs []api.Message, work bool) {
	now := time.Since(r.t0)
	recvWall := time.Now()
	for _, m := range msgs {
		r.mu.Lock()
		r.read = append(r.read, ReadMessage{Tenant: ti, Recipient: rcpt, Message: m})
		tk := r.tasks[m.TaskID]
		if tk == nil {
			// The submit response has not been recorded yet, or the
			// message is not ours: record what it says.
			tk = &task{id: m.TaskID, pool: m.Pool, tenant: ti}
			r.tasks[m.TaskID] = tk
		}
		if m.Type == "started" && r.cfg.Mode == ModePull {
			// The claimers' handlers observe pull-mode starts.
			r.mu.Unlock()
			continue
		}
		if m.Type == "started" {
			tk.starts++
			tk.recv = now
			// The lease promise: a slot is held at most until
			// at + runTimeout (server wall clock) unless heartbeated.
			tk.end = m.At.Add(r.cfg.RunTimeout).Sub(r.t0)
			if tk.starts == 1 {
				tk.startAt = m.At
				tk.delivery = recvWall.Sub(m.At)
			}
			tk.crash = fraction(m.TaskID) < r.cfg.CrashFraction
			crash, first := tk.crash, tk.starts == 1
			r.mu.Unlock()
			if work && !crash && first {
				r.workerWG.Add(1)
				go r.complete(ctx, ti, tk, m.Lease)
			}
			continue
		}
		tk.outcomes = append(tk.outcomes, m.Type)
		if len(tk.outcomes) == 1 && tk.submitted {
			r.outcome()
		}
		r.mu.Unlock()
	}
}

// outcome counts the first outcome of a submitted task. r.mu is held.
func (r *run) outcome() {
	r.outcomes.Add(1)
	if r.bar != nil {
		_ = r.bar.Add(1)
	}
	r.checkDone()
}

// complete holds a started task, then completes it.
func (r *run) complete(ctx context.Context, ti int, tk *task, lease string) {
	defer r.workerWG.Done()
	if r.cfg.Hold > 0 {
		t := time.NewTimer(r.cfg.Hold)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	sent := time.Since(r.t0)
	r.mu.Lock()
	if sent < tk.end {
		tk.end = sent
	}
	r.mu.Unlock()
	// The completion must go through even when the run is stopping, or
	// the observer would count the slot as held to the lease's end.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := r.tenants[ti].c.Complete(cctx, tk.id, api.CompleteRequest{Lease: lease, Status: "succeeded", Result: []byte(`true`)})
	switch {
	case err == nil:
		r.completes.Add(1)
		r.mu.Lock()
		r.completed = append(r.completed, tk.id)
		r.mu.Unlock()
	case client.Code(err) == api.CodeLeaseLost:
		r.leaseLost.Add(1) // the lease ended first: the slot was reclaimed
	default:
		r.errs.add(fmt.Errorf("complete %s: %w", tk.id, err))
	}
}

// checkDone ends the run once every submission is answered and every
// submitted task has an outcome.
func (r *run) checkDone() {
	if r.submitted.Load() && r.outcomes.Load() >= r.accepted.Load() {
		r.doneOnce.Do(func() { close(r.done) })
	}
}

// errorLog keeps a count and the first few errors.
type errorLog struct {
	mu    sync.Mutex
	n     int
	first []string
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if len(l.first) < 10 {
		l.first = append(l.first, err.Error())
	}
}

func (l *errorLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.first)
	if l.n > len(l.first) {
		out = append(out, fmt.Sprintf("... and %d more", l.n-len(l.first)))
	}
	return out
}

// startPullWorkers starts the worker processes of pull mode: for each
// worker token, a client with connections of its own running pkg/worker on
// every pool of the run, cfg.Workers tasks at a time. Their handlers are
// the observer: each records its entry and exit by the run's clock and
// the start and deadline the claim answered.
func (r *run) startPullWorkers(ctx context.Context) error {
	for i, tok := range r.cfg.WorkerTokens {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}}
		wc, err := client.New(r.cfg.Server, tok, client.WithHTTPClient(hc))
		if err != nil {
			return fmt.Errorf("loadtest: worker %d: %w", i, err)
		}
		for _, pool := range r.cfg.Pools {
			r.workerWG.Add(1)
			go func() {
				defer r.workerWG.Done()
				defer hc.CloseIdleConnections()
				err := worker.Run(ctx, wc, worker.Options{
					Pool: pool, Concurrency: r.cfg.Workers, ClaimWait: 2 * time.Second, ShutdownTimeout: 30 * time.Second,
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				}, r.handle1)
				if err != nil {
					r.errs.add(fmt.Errorf("worker %d pool %s: %w", i, pool, err))
				}
			}()
		}
	}
	return nil
}

// handle1 is a pull-mode worker's handler: it holds the task for
// cfg.Hold and records what it saw.
func (r *run) handle1(ctx context.Context, t *worker.Task) (any, error) {
	entry := time.Since(r.t0)
	now := time.Now()
	r.mu.Lock()
	tk := r.tasks[t.ID]
	if tk == nil {
		tk = &task{id: t.ID, pool: t.Pool, tenant: -1, deadline: t.Deadline}
		r.tasks[t.ID] = tk
	}
	tk.starts++
	if tk.starts == 1 {
		tk.recv = entry
		if t.StartedAt != nil {
			tk.startAt = *t.StartedAt
			tk.delivery = now.Sub(*t.StartedAt)
		}
	}
	r.mu.Unlock()
	if r.cfg.Hold > 0 {
		timer := time.NewTimer(r.cfg.Hold)
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
		timer.Stop()
	}
	exit := time.Since(r.t0)
	r.mu.Lock()
	if tk.end == 0 || exit < tk.end {
		tk.end = exit
	}
	r.mu.Unlock()
	r.completes.Add(1)
	return true, nil
}
