package memstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Options configure a Store.
type Options struct {
	// Clock drives the queue's visibility timeout. Default: core.SystemClock.
	Clock core.Clock
	// Visibility is how long a received queue message stays hidden unless
	// deleted or released. Default: 30s.
	Visibility time.Duration
}

// Store is the in-memory backend. The zero value is not usable; call New.
type Store struct {
	clock      core.Clock
	visibility time.Duration

	pools     sync.Map // name -> *poolItem
	tasks     sync.Map // id -> *taskItem
	keys      sync.Map // tenant\x00key -> *keyItem
	mailboxes sync.Map // tenant\x00recipient -> *mailbox
	audits    sync.Map // tenant -> *auditLog
	queues    sync.Map // pool -> *queue
	unsent    sync.Map // id -> struct{}
	due       dueIndex
	// eventSeq numbers events across tenants, taken under the locks of a
	// commit: the events of a pool's transactions, which hold its item's
	// lock, are numbered in commit order.
	eventSeq atomic.Uint64
}

var _ core.Backend = (*Store)(nil)
var _ core.MailboxWatcher = (*Store)(nil)

// New returns an empty Store.
func New(opts Options) *Store {
	if opts.Clock == nil {
		opts.Clock = core.SystemClock{}
	}
	if opts.Visibility == 0 {
		opts.Visibility = 30 * time.Second
	}
	s := &Store{clock: opts.Clock, visibility: opts.Visibility}
	s.due.init()
	return s
}

type poolItem struct {
	mu     sync.Mutex
	exists bool
	p      core.Pool
}

type taskItem struct {
	mu     sync.Mutex
	exists bool
	t      core.Task
}

type keyItem struct {
	mu     sync.Mutex
	exists bool
	rec    core.KeyRecord
}

func load[T any](m *sync.Map, k string) *T {
	if v, ok := m.Load(k); ok {
		return v.(*T)
	}
	v, _ := m.LoadOrStore(k, new(T))
	return v.(*T)
}

func peek[T any](m *sync.Map, k string) *T {
	if v, ok := m.Load(k); ok {
		return v.(*T)
	}
	return nil
}

// PutPool creates the pool or updates its configuration, keeping counters.
func (s *Store) PutPool(_ context.Context, cfg core.PoolConfig) error {
	it := load[poolItem](&s.pools, cfg.Name)
	it.mu.Lock()
	defer it.mu.Unlock()
	it.exists = true
	it.p.PoolConfig = cfg
	return nil
}

// Pool returns the pool item.
func (s *Store) Pool(_ context.Context, name string) (core.Pool, error) {
	it := peek[poolItem](&s.pools, name)
	if it == nil {
		return core.Pool{}, core.ErrPoolNotFound
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	if !it.exists {
		return core.Pool{}, core.ErrPoolNotFound
	}
	return it.p, nil
}

// Pools returns every pool item by name.
func (s *Store) Pools(ctx context.Context) ([]core.Pool, error) {
	var out []core.Pool
	s.pools.Range(func(k, _ any) bool {
		if p, err := s.Pool(ctx, k.(string)); err == nil {
			out = append(out, p)
		}
		return true
	})
	slices.SortFunc(out, func(a, b core.Pool) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// Task returns the task item.
func (s *Store) Task(_ context.Context, id string) (core.Task, error) {
	it := peek[taskItem](&s.tasks, id)
	if it == nil {
		return core.Task{}, core.ErrNotFound
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	if !it.exists {
		return core.Task{}, core.ErrNotFound
	}
	return it.t, nil
}

// Key returns the idempotency key item.
func (s *Store) Key(_ context.Context, tenant, key string) (core.KeyRecord, error) {
	it := peek[keyItem](&s.keys, tenant+"\x00"+key)
	if it == nil {
		return core.KeyRecord{}, core.ErrNotFound
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	if !it.exists {
		return core.KeyRecord{}, core.ErrNotFound
	}
	return it.rec, nil
}

// Due returns ids of tasks due at or before t, soonest first.
func (s *Store) Due(_ context.Context, t time.Time, limit int) ([]string, error) {
	return s.due.before(t, limit), nil
}

// Unsent returns ids of tasks flagged Unsent.
func (s *Store) Unsent(_ context.Context, limit int) ([]string, error) {
	var ids []string
	s.unsent.Range(func(k, _ any) bool {
		ids = append(ids, k.(string))
		return len(ids) < limit
	})
	return ids, nil
}

// Commit applies txn atomically; see core.Committer.
func (s *Store) Commit(_ context.Context, txn *core.Txn) error {
	if err := txn.CheckShape(); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	var pool *poolItem
	if txn.TouchesPool() {
		pool = peek[poolItem](&s.pools, txn.Pool)
		if pool == nil {
			return fmt.Errorf("memstore: commit: %w: %s", core.ErrPoolNotFound, txn.Pool)
		}
	}
	// Resolve every item, then lock them in one canonical order (pool,
	// tasks by id, key, mailboxes by key, audit logs by tenant) so that
	// concurrent transactions cannot deadlock. CheckShape made the tasks
	// distinct items.
	tasks := make([]*taskItem, len(txn.Tasks))
	order := make([]int, len(txn.Tasks))
	for i, w := range txn.Tasks {
		tasks[i] = load[taskItem](&s.tasks, w.Task.ID)
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(txn.Tasks[a].Task.ID, txn.Tasks[b].Task.ID) })
	var key *keyItem
	if txn.Key != nil {
		key = load[keyItem](&s.keys, txn.Key.Tenant+"\x00"+txn.Key.Key)
	}
	boxes := s.mailboxesOf(txn.Messages)
	logs := s.auditLogsOf(txn.Events)

	if pool != nil {
		pool.mu.Lock()
		defer pool.mu.Unlock()
	}
	for _, i := range order {
		tasks[i].mu.Lock()
		defer tasks[i].mu.Unlock()
	}
	if key != nil {
		key.mu.Lock()
		defer key.mu.Unlock()
	}
	for _, r := range boxes {
		r.it.mu.Lock()
		defer r.it.mu.Unlock()
	}
	for _, r := range logs {
		r.it.mu.Lock()
		defer r.it.mu.Unlock()
	}

	// Check every condition.
	for i, w := range txn.Tasks {
		it := tasks[i]
		if w.Conflicts(it.exists, it.t.Version, it.t.State) {
			return fmt.Errorf("memstore: commit task %s: %w", w.Task.ID, core.ErrConflict)
		}
	}
	if key != nil && key.exists {
		return fmt.Errorf("memstore: commit key %q: %w", txn.Key.Key, core.ErrKeyExists)
	}
	if pool != nil {
		if !pool.exists {
			return fmt.Errorf("memstore: commit: %w: %s", core.ErrPoolNotFound, txn.Pool)
		}
		if err := txn.CheckPool(pool.p); err != nil {
			return fmt.Errorf("memstore: %w", err)
		}
	}
	// The stamp the pool's order allows (raising txn's times to it), the
	// last condition: no start moved to or past its deadline.
	var lastAt time.Time
	if pool != nil {
		var err error
		if lastAt, err = txn.StampAfter(pool.p.LastAt); err != nil {
			return fmt.Errorf("memstore: commit %s: %w", txn.Pool, err)
		}
	}

	// Apply every write.
	if pool != nil {
		pool.p.Running += txn.RunningDelta
		pool.p.Parked += txn.ParkedDelta
		pool.p.LastAt = lastAt
	}
	for i, w := range txn.Tasks {
		it := tasks[i]
		old := it.t
		it.t = w.Task
		it.t.Version = w.Expect + 1
		it.exists = true
		s.due.move(w.Task.ID, old.DueAt(), it.t.DueAt())
		if it.t.Unsent {
			s.unsent.Store(w.Task.ID, struct{}{})
		} else if old.Unsent {
			s.unsent.Delete(w.Task.ID)
		}
	}
	if key != nil {
		key.exists = true
		key.rec = *txn.Key
	}
	for i := range txn.Messages {
		m := txn.Messages[i]
		mailboxOf(boxes, &m).append(m)
	}
	for i := range txn.Events {
		e := txn.Events[i]
		for _, r := range logs {
			if r.key == e.Tenant {
				r.it.append(e, s.eventSeq.Add(1))
			}
		}
	}
	return nil
}

// itemRef is an item a transaction names, with its key.
type itemRef[T any] struct {
	key string
	it  *T
}

// collect resolves the n items named by key(i), without duplicates and
// sorted by key: the order in which a transaction locks them.
func collect[T any](m *sync.Map, n int, key func(i int) string) []itemRef[T] {
	if n == 0 {
		return nil
	}
	refs := make([]itemRef[T], 0, n)
	for i := range n {
		k := key(i)
		if !slices.ContainsFunc(refs, func(r itemRef[T]) bool { return r.key == k }) {
			refs = append(refs, itemRef[T]{key: k, it: load[T](m, k)})
		}
	}
	if len(refs) > 1 {
		slices.SortFunc(refs, func(a, b itemRef[T]) int { return cmp.Compare(a.key, b.key) })
	}
	return refs
}
