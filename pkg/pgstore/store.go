package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// DefaultSchema is the schema the store's tables live in when Options
// names none.
const DefaultSchema = "parkinglot"

// Options configure a Store. Zero fields take the defaults documented on
// each; DSN is required.
type Options struct {
	// DSN is the PostgreSQL connection string (URL or key=value form).
	DSN string
	// Schema holds the store's tables; created if missing. Default:
	// DefaultSchema. Several stores may share a database in different
	// schemas.
	Schema string
	// MaxConns bounds the connection pool. Default: pgxpool's (the larger
	// of 4 and the number of CPUs).
	MaxConns int
	// Clock drives the parking queue's visibility timeout. Default:
	// core.SystemClock.
	Clock core.Clock
	// Visibility is how long a received queue message stays hidden unless
	// deleted or released. Default: 30s.
	Visibility time.Duration
	// Logger receives the notification listener's reconnections. Default:
	// discard.
	Logger *slog.Logger
	// Tracer, if set, traces every query and batch of the store's
	// connections (pgx's tracelog, an OpenTelemetry tracer, or a counter of
	// round trips as the benchmarks use). Default: none.
	Tracer pgx.QueryTracer
}

// WithDefaults returns o with its zero fields set to their defaults.
func (o Options) WithDefaults() Options {
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if o.Clock == nil {
		o.Clock = core.SystemClock{}
	}
	if o.Visibility == 0 {
		o.Visibility = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.DSN == "":
		return errors.New("pgstore: Options.DSN is required")
	case !schemaName.MatchString(o.Schema):
		return fmt.Errorf("pgstore: Options.Schema %q must be 1-63 characters of [a-z0-9_], not starting with a digit", o.Schema)
	case o.MaxConns < 0:
		return fmt.Errorf("pgstore: Options.MaxConns must not be negative, got %d", o.MaxConns)
	case o.Visibility < 0:
		return fmt.Errorf("pgstore: Options.Visibility must not be negative, got %s", o.Visibility)
	}
	return nil
}

// Store is the PostgreSQL backend. It is safe for concurrent use, and
// several Stores (processes) may share one schema.
type Store struct {
	opts   Options
	pool   *pgxpool.Pool
	notify *listener

	// Group commit (commit.go): Commit hands requests to the writers.
	commits     chan *commitReq
	closed      chan struct{}
	writersDone sync.WaitGroup
}

var (
	_ core.Backend        = (*Store)(nil)
	_ core.MailboxWatcher = (*Store)(nil)
)

// Open connects to the database, applies pending migrations under an
// advisory lock, and starts the notification listener.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		return nil, fmt.Errorf("pgstore: dsn: %w", redact(err))
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = int32(opts.MaxConns)
	}
	cfg.ConnConfig.Tracer = opts.Tracer
	// Every statement names its tables unqualified: the schema is the
	// connection's search path.
	cfg.ConnConfig.RuntimeParams["search_path"] = opts.Schema

	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect: %w", redact(err))
	}
	_, err = migrate(ctx, conn, opts.Schema)
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect: %w", redact(err))
	}
	notify, err := startListener(ctx, cfg.ConnConfig.Copy(), channel(opts.Schema), opts.Logger)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{opts: opts, pool: pool, notify: notify, commits: make(chan *commitReq), closed: make(chan struct{})}
	for range writers {
		s.writersDone.Add(1)
		go s.writer()
	}
	return s, nil
}

// Close stops the writers (a commit not yet in a group fails), the
// listener, and closes every connection.
func (s *Store) Close() error {
	close(s.closed)
	s.writersDone.Wait()
	s.notify.close()
	s.pool.Close()
	return nil
}

// DB returns the connection pool, for tests and tools that read the
// tables directly.
func (s *Store) DB() *pgxpool.Pool { return s.pool }

// dsnSecret matches a password in a connection string, URL or key=value.
var dsnSecret = regexp.MustCompile(`(://[^:/@\s]*:)[^@\s]*@|(password\s*=\s*)('[^']*'|\S+)`)

// redact removes passwords from an error's text: a connection error may
// quote the DSN, and errors are logged.
func redact(err error) error {
	if err == nil {
		return nil
	}
	msg := dsnSecret.ReplaceAllString(err.Error(), "${1}${2}xxxxx@")
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

// ns encodes a time as Unix nanoseconds; the zero time is NULL.
func ns(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

// fromNS decodes ns.
func fromNS(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}

// PutPool creates the pool or updates its configuration, keeping counters.
func (s *Store) PutPool(ctx context.Context, cfg core.PoolConfig) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO pools (name, capacity, max_parked, default_max_wait, run_timeout, slot_shards, executor)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (name) DO UPDATE SET capacity = excluded.capacity, max_parked = excluded.max_parked,
			default_max_wait = excluded.default_max_wait, run_timeout = excluded.run_timeout,
			slot_shards = excluded.slot_shards, executor = excluded.executor`,
		cfg.Name, cfg.Capacity, cfg.MaxParked, int64(cfg.DefaultMaxWait), int64(cfg.RunTimeout), cfg.SlotShards, string(cfg.Executor))
	if err != nil {
		return fmt.Errorf("pgstore: put pool %s: %w", cfg.Name, err)
	}
	return nil
}

const poolColumns = `name, capacity, max_parked, default_max_wait, run_timeout, slot_shards, executor, running, parked, last_at`

func scanPool(row pgx.Row) (core.Pool, error) {
	var p core.Pool
	var wait, run int64
	var executor string
	var lastAt *int64
	err := row.Scan(&p.Name, &p.Capacity, &p.MaxParked, &wait, &run, &p.SlotShards, &executor, &p.Running, &p.Parked, &lastAt)
	p.DefaultMaxWait, p.RunTimeout, p.Executor = time.Duration(wait), time.Duration(run), core.Executor(executor)
	p.LastAt = fromNS(lastAt)
	return p, err
}

// Pool returns the pool item.
func (s *Store) Pool(ctx context.Context, name string) (core.Pool, error) {
	p, err := scanPool(s.pool.QueryRow(ctx, `SELECT `+poolColumns+` FROM pools WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return core.Pool{}, core.ErrPoolNotFound // bare: the API quotes it
	}
	if err != nil {
		return core.Pool{}, fmt.Errorf("pgstore: pool %s: %w", name, err)
	}
	return p, nil
}

// Pools returns every pool item by name.
func (s *Store) Pools(ctx context.Context) ([]core.Pool, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+poolColumns+` FROM pools ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: pools: %w", err)
	}
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (core.Pool, error) { return scanPool(r) })
	if err != nil {
		return nil, fmt.Errorf("pgstore: pools: %w", err)
	}
	return ps, nil
}

const taskColumns = `id, version, key, tenant, pool, recipient, state, payload, submitted_at, deadline, run_timeout,
	started_at, lease, lease_expires_at, ended_at, result, error, body_hash, unsent, push_at, push_attempts`

func scanTask(row pgx.Row) (core.Task, error) {
	var t core.Task
	var state string
	var payload, result []byte
	var submitted, deadline, started, leaseEnd, ended, pushAt *int64
	var runTimeout int64
	err := row.Scan(&t.ID, &t.Version, &t.Key, &t.Tenant, &t.Pool, &t.Recipient, &state, &payload, &submitted, &deadline,
		&runTimeout, &started, &t.Lease, &leaseEnd, &ended, &result, &t.Error, &t.BodyHash, &t.Unsent,
		&pushAt, &t.PushAttempts)
	t.State = core.State(state)
	t.Payload, t.Result = payload, result
	t.SubmittedAt, t.Deadline, t.StartedAt = fromNS(submitted), fromNS(deadline), fromNS(started)
	t.LeaseExpiresAt, t.EndedAt, t.PushAt = fromNS(leaseEnd), fromNS(ended), fromNS(pushAt)
	t.RunTimeout = time.Duration(runTimeout)
	return t, err
}

// Task returns the task item.
func (s *Store) Task(ctx context.Context, id string) (core.Task, error) {
	t, err := scanTask(s.pool.QueryRow(ctx, `SELECT `+taskColumns+` FROM tasks WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return core.Task{}, core.ErrNotFound // bare: the same answer as another tenant's task
	}
	if err != nil {
		return core.Task{}, fmt.Errorf("pgstore: task %s: %w", id, err)
	}
	return t, nil
}

// Key returns the idempotency key item.
func (s *Store) Key(ctx context.Context, tenant, key string) (core.KeyRecord, error) {
	rec := core.KeyRecord{Tenant: tenant, Key: key}
	err := s.pool.QueryRow(ctx, `SELECT task_id, body_hash FROM keys WHERE tenant = $1 AND key = $2`, tenant, key).
		Scan(&rec.TaskID, &rec.BodyHash)
	if errors.Is(err, pgx.ErrNoRows) {
		return core.KeyRecord{}, core.ErrNotFound
	}
	if err != nil {
		return core.KeyRecord{}, fmt.Errorf("pgstore: key %q: %w", key, err)
	}
	return rec, nil
}

// Due returns ids of tasks due at or before t, soonest first, through the
// partial index of non-terminal tasks.
func (s *Store) Due(ctx context.Context, t time.Time, limit int) ([]string, error) {
	return s.ids(ctx, "due", `SELECT id FROM tasks WHERE due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at, id LIMIT $2`, t.UnixNano(), limit)
}

// Unsent returns ids of tasks flagged Unsent, through its partial index.
func (s *Store) Unsent(ctx context.Context, limit int) ([]string, error) {
	return s.ids(ctx, "unsent", `SELECT id FROM tasks WHERE unsent LIMIT $1`, limit)
}

func (s *Store) ids(ctx context.Context, what, sql string, args ...any) ([]string, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", what, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", what, err)
	}
	return ids, nil
}
