package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/parkinglot/parkinglot/internal/watch"
)

// Limits on outside input.
const (
	// MaxPayloadBytes bounds a task's payload.
	MaxPayloadBytes = 256 << 10
	// MaxResultBytes bounds a task's result. A task is stored as one item
	// with its payload and result, and DynamoDB's items hold at most
	// 400 KB: 256 KiB + 128 KiB leave 16 KB for the rest of the task.
	MaxResultBytes = 128 << 10
	// MaxWaitLimit bounds maxWait and how far ahead a deadline may be.
	MaxWaitLimit = 14 * 24 * time.Hour
	// MaxRunTimeout bounds runTimeout and a heartbeat's extension.
	MaxRunTimeout = 7 * 24 * time.Hour
	// MaxMailboxWait bounds a mailbox long poll.
	MaxMailboxWait = 20 * time.Second
	// MaxPageLimit bounds a page of mailbox messages or audit events.
	MaxPageLimit = 1000
	// MaxPageBytes bounds the content of a page of mailbox messages or
	// audit events as well (MessageBytes, EventBytes; see PageFits): 1,000
	// results of MaxResultBytes would take over 100 MiB. It also keeps a
	// page within a Lambda function's 6 MB response.
	MaxPageBytes = 4 << 20
	// DefaultPageLimit is a page's size when the query names none.
	DefaultPageLimit = 100
)

// Observer is told about starts and outcomes, for metrics. Calls are made
// after the transition is committed, on the caller's goroutine.
type Observer interface {
	// Started is called when a task starts. wake is the time from the
	// release of a slot to this start's commit when the start was a
	// wake-up, else -1.
	Started(t *Task, wake time.Duration)
	// Ended is called when a task reaches a terminal state.
	Ended(t *Task)
}

// Config configures a Scheduler. Zero fields take the defaults documented on
// each; WithDefaults fills them.
type Config struct {
	// Backend stores everything. Required.
	Backend Backend
	// Clock tells the time. Default: SystemClock.
	Clock Clock
	// Logger receives warnings about repairs left to the sweeper. Default: discard.
	Logger *slog.Logger
	// Observer is told about starts and outcomes. Default: none.
	Observer Observer
	// Wake is called after a slot is released or a task is parked, to start
	// parked work. Default: dispatch the pool inline, on the caller's goroutine.
	Wake func(ctx context.Context, pool string, freedAt time.Time)
	// Pusher delivers the started tasks of push pools to their targets.
	// Without one, such tasks start and wait, pending, for a scheduler that
	// has one (its sweep pushes them).
	Pusher Pusher
	// OutboxGrace is how long after parking a task whose queue message may
	// not have been sent waits before the sweeper re-sends it. Default: 30s.
	OutboxGrace time.Duration
	// MailboxRetention is how long mailbox messages are kept. Default:
	// DefaultMailboxRetention.
	MailboxRetention time.Duration
	// AuditRetention is how long audit events are kept. Default:
	// DefaultAuditRetention.
	AuditRetention time.Duration
	// PurgeEvery is how often Sweep also purges past retention. Default: 1m.
	PurgeEvery time.Duration
	// ReconcileEvery is how often Sweep also reconciles the parking queues
	// of a backend that is a QueueReconciler with its parked tasks, and how
	// long a task must have been parked before the reconcile re-sends it.
	// Default: DefaultReconcileEvery.
	ReconcileEvery time.Duration
	// MailboxPoll is the poll interval of a mailbox long poll on backends
	// that are not MailboxWatchers. Default: 100ms.
	MailboxPoll time.Duration
	// PoolHintAge is how old a read of a pool a release may decide on,
	// rather than read the pool again (hints.go): every count it decides on
	// is checked again by the commit's conditions, and the executor is
	// seen changed by another process within this age. Default:
	// DefaultPoolHintAge; negative: every release reads the pool.
	PoolHintAge time.Duration
}

// DefaultPoolHintAge is Config.PoolHintAge's default.
const DefaultPoolHintAge = time.Second

// The retention defaults, the one home of both figures: Sweep purges past
// them, and a store that also expires items itself (DynamoDB's TTL) takes
// the same figures.
const (
	DefaultMailboxRetention = 7 * 24 * time.Hour
	DefaultAuditRetention   = 30 * 24 * time.Hour
)

// DefaultReconcileEvery is Config.ReconcileEvery's default.
const DefaultReconcileEvery = 5 * time.Minute

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.OutboxGrace == 0 {
		c.OutboxGrace = 30 * time.Second
	}
	if c.MailboxRetention == 0 {
		c.MailboxRetention = DefaultMailboxRetention
	}
	if c.AuditRetention == 0 {
		c.AuditRetention = DefaultAuditRetention
	}
	if c.PurgeEvery == 0 {
		c.PurgeEvery = time.Minute
	}
	if c.ReconcileEvery == 0 {
		c.ReconcileEvery = DefaultReconcileEvery
	}
	if c.MailboxPoll == 0 {
		c.MailboxPoll = 100 * time.Millisecond
	}
	if c.PoolHintAge == 0 {
		c.PoolHintAge = DefaultPoolHintAge
	}
	return c
}

func (c Config) validate() error {
	if c.Backend == nil {
		return errors.New("core: Config.Backend is required")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"OutboxGrace", c.OutboxGrace},
		{"MailboxRetention", c.MailboxRetention},
		{"AuditRetention", c.AuditRetention},
		{"PurgeEvery", c.PurgeEvery},
		{"ReconcileEvery", c.ReconcileEvery},
		{"MailboxPoll", c.MailboxPoll},
	} {
		if d.v < 0 {
			return fmt.Errorf("core: Config.%s must not be negative, got %s", d.name, d.v)
		}
	}
	return nil
}

// Scheduler runs the task lifecycle over a Backend. It is safe for
// concurrent use, also by several Schedulers (processes) over one backend.
type Scheduler struct {
	cfg       Config
	b         Backend
	clock     Clock
	log       *slog.Logger
	obs       Observer
	lastPurge atomic.Int64
	// lastReconcile is when this Scheduler's sweep last reconciled the
	// parking queues (unix ns), 0 before the first.
	lastReconcile atomic.Int64
	// claimers are the claims waiting for work, by pool; tasks are the
	// WaitTask calls waiting for a parked task, by task id. Both are
	// signalled by what this process commits; other processes' commits
	// reach them through the poll.
	claimers watch.Set
	tasks    watch.Set
	// hints are the pools as last read, for the wake path (hints.go).
	hints poolHints
}

// New returns a Scheduler for cfg, or an error naming the bad field.
func New(cfg Config) (*Scheduler, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Scheduler{cfg: cfg, b: cfg.Backend, clock: cfg.Clock, log: cfg.Logger, obs: cfg.Observer}
	return s, nil
}

// Backend returns the scheduler's backend.
func (s *Scheduler) Backend() Backend { return s.b }

// Clock returns the scheduler's clock.
func (s *Scheduler) Clock() Clock { return s.clock }

// PutPool creates or reconfigures a pool.
func (s *Scheduler) PutPool(ctx context.Context, cfg PoolConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := s.b.PutPool(ctx, cfg); err != nil {
		return err
	}
	s.forgetPool(cfg.Name)
	// A raised capacity may free slots for parked work.
	s.wake(ctx, cfg.Name, time.Time{})
	return nil
}

// Pool returns one pool's counters.
func (s *Scheduler) Pool(ctx context.Context, name string) (PoolStats, error) {
	p, err := s.readPool(ctx, name)
	if err != nil {
		return PoolStats{}, err
	}
	return p.stats(), nil
}

// Pools returns every pool's counters, by name.
func (s *Scheduler) Pools(ctx context.Context) ([]PoolStats, error) {
	ps, err := s.b.Pools(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PoolStats, len(ps))
	for i, p := range ps {
		out[i] = p.stats()
	}
	return out, nil
}

// Task returns tenant's task id as the tenant may see it (tenantView:
// without the lease that a worker or a push target holds); another
// tenant's task is ErrNotFound.
func (s *Scheduler) Task(ctx context.Context, tenant, id string) (Task, error) {
	t, err := s.tenantTask(ctx, tenant, id)
	if err != nil {
		return Task{}, err
	}
	return s.tenantView(ctx, t, nil)
}

// tenantTask is Task as stored, lease included whoever holds it: what the
// lease checks of a tenant's heartbeat, completion and cancellation compare
// and commit (taskFor).
func (s *Scheduler) tenantTask(ctx context.Context, tenant, id string) (Task, error) {
	t, err := s.b.Task(ctx, id)
	if err != nil {
		return Task{}, err
	}
	if t.Tenant != tenant {
		return Task{}, ErrNotFound
	}
	return t, nil
}

// tenantView is t as its tenant may see it: without the lease in a pull
// pool, where the claiming worker holds it, or a push pool, where the
// target does; a tenant that had it could heartbeat or complete the task in
// their place (the recipient's started message goes without it for the
// same reason). p is t's pool if the caller has just read it, else nil.
//
// A task that is not running needs no pool: it has no lease (never
// started), or its last one, which changes nothing any more (a repeat of
// its completion only returns it) and which the API shows only while the
// task runs; it goes without it. For a running one, only the pool's
// executor is decided on, and it changes only by PutPool, so the pool as
// recently read will do (recentPool: this Scheduler's own PutPool forgets
// it at once, another process's is seen within Config.PoolHintAge), with
// no read at all when the caller has just read it. The task records
// nothing of who its start was for: a task started in a pull or push pool
// whose executor is later set to permit shows its lease again.
func (s *Scheduler) tenantView(ctx context.Context, t Task, p *Pool) (Task, error) {
	if t.State != StateRunning {
		t.Lease = ""
		return t, nil
	}
	if p == nil || p.Name != t.Pool {
		read, err := s.recentPool(ctx, t.Pool)
		if err != nil {
			return Task{}, fmt.Errorf("core: read pool %s of task %s: %w", t.Pool, t.ID, err)
		}
		p = &read
	}
	if p.Pulls() || p.Pushes() {
		t.Lease = ""
	}
	return t, nil
}

func (s *Scheduler) wake(ctx context.Context, pool string, freedAt time.Time) {
	s.claimers.Notify([]string{pool})
	if s.cfg.Wake != nil {
		s.cfg.Wake(ctx, pool, freedAt)
		return
	}
	if _, err := s.dispatch(ctx, pool, freedAt); err != nil {
		// The sweeper dispatches every pool with free slots and parked work.
		s.log.WarnContext(ctx, "wake failed; the sweeper will retry", "pool", pool, "err", err)
	}
}

func (s *Scheduler) started(t *Task, freedAt time.Time) {
	s.tasks.Notify([]string{t.ID})
	if t.Pushing() && s.cfg.Pusher != nil {
		s.cfg.Pusher.Push(*t)
	}
	if s.obs == nil {
		return
	}
	wake := time.Duration(-1)
	if !freedAt.IsZero() {
		// Until the start is committed, not until it was decided.
		wake = s.clock.Now().Sub(freedAt)
	}
	s.obs.Started(t, wake)
}

func (s *Scheduler) ended(t *Task) {
	s.tasks.Notify([]string{t.ID})
	if s.obs != nil {
		s.obs.Ended(t)
	}
}

// ending is how a task ends: the terminal state it goes to, the audit
// event that records it (type and detail), when, and edit, which, if set,
// fills outcome fields (result, error) on the ended task. A completion's
// ending carries the pool's next parked message if it received it while
// reading the task (ahead: lookahead.go), for its hand-off.
type ending struct {
	to     State
	event  string
	detail string
	at     time.Time
	edit   func(*Task)
	ahead  *lookahead
}

// finish commits the transition of t (as read, at t.Version) to e,
// releasing its slot or parked place, with its audit event and outcome
// message.
func (s *Scheduler) finish(ctx context.Context, t Task, e ending) (Task, error) {
	return s.finishIf(ctx, t, e, false)
}

// finishIf is finish, on the condition that nothing is parked in the pool
// when firstInLine is set (ErrNoCapacity otherwise).
func (s *Scheduler) finishIf(ctx context.Context, t Task, e ending, firstInLine bool) (Task, error) {
	txn := finishTxn(t, e)
	txn.FirstInLine = firstInLine
	if err := s.b.Commit(ctx, txn); err != nil {
		return Task{}, err
	}
	next := txn.Tasks[0].Task
	next.Version = t.Version + 1
	s.ended(&next)
	return next, nil
}

// finishTxn is the transaction that ends t as e says.
func finishTxn(t Task, e ending) *Txn {
	next := t
	next.State = e.to
	next.EndedAt = e.at
	next.Unsent = false
	next.PushAt = time.Time{}
	if e.edit != nil {
		e.edit(&next)
	}
	txn := &Txn{Pool: t.Pool, Tasks: []TaskWrite{{Task: next, Expect: t.Version}}}
	switch t.State {
	case StateRunning:
		txn.RunningDelta = -1
	case StateParked:
		txn.ParkedDelta = -1
	}
	txn.Events = []Event{event(&next, e.at, e.event, t.State, e.detail)}
	txn.Messages = []Message{message(&next, MessageType(e.to), e.at)}
	return txn
}

func event(t *Task, at time.Time, typ string, from State, detail string) Event {
	return Event{At: at, Tenant: t.Tenant, Pool: t.Pool, TaskID: t.ID, Type: typ, From: from, To: t.State, Detail: detail}
}

func message(t *Task, typ MessageType, at time.Time) Message {
	m := Message{Tenant: t.Tenant, Recipient: t.Recipient, TaskID: t.ID, Pool: t.Pool, Type: typ, At: at}
	switch typ {
	case MessageStarted:
		m.Key = t.Key
		m.Payload = t.Payload
		m.Deadline = t.Deadline
		m.Lease = t.Lease
		m.LeaseExpiresAt = t.LeaseExpiresAt
	default:
		m.Result = t.Result
		m.Error = t.Error
	}
	return m
}

// maxRetries bounds compare-and-set retries of one operation.
const maxRetries = 16

// retryCAS runs attempt, which reads what it changes and commits a
// compare-and-set, until it returns something other than ErrConflict (the
// read went stale: another writer got there first), at most maxRetries
// times. Then it gives up with "core: <what> <id>: version conflict after
// N attempts", which matches ErrConflict.
func retryCAS[T any](what, id string, attempt func() (T, error)) (T, error) {
	for range maxRetries {
		v, err := attempt()
		if !errors.Is(err, ErrConflict) {
			return v, err
		}
	}
	var zero T
	return zero, fmt.Errorf("core: %s %s: %w after %d attempts", what, id, ErrConflict, maxRetries)
}

// wrapUnlessConflict wraps err, a failure to <what> task id, as
// "core: <what> <id>: err"; ErrConflict, which retryCAS retries, and nil
// pass as they are.
func wrapUnlessConflict(err error, what, id string) error {
	if err == nil || errors.Is(err, ErrConflict) {
		return err
	}
	return fmt.Errorf("core: %s %s: %w", what, id, err)
}
