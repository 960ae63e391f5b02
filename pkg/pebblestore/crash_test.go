package pebblestore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/pebblestore"
)

// holdFS is a crashable in-memory file system whose syncs can be held: while
// held, every Sync of every file blocks before it reaches the file system,
// so that the writes before it stay unsynced. A crash is a CrashClone: the
// clone keeps exactly what was synced, as a power cut does.
type holdFS struct {
	*vfs.MemFS
	mu   sync.Mutex
	gate chan struct{} // closed: syncs pass
}

func newHoldFS(fs *vfs.MemFS) *holdFS {
	g := make(chan struct{})
	close(g)
	return &holdFS{MemFS: fs, gate: g}
}

func (h *holdFS) hold() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.gate:
		h.gate = make(chan struct{})
	default:
	}
}

func (h *holdFS) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.gate:
	default:
		close(h.gate)
	}
}

func (h *holdFS) wait() {
	h.mu.Lock()
	g := h.gate
	h.mu.Unlock()
	<-g
}

func (h *holdFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return holdFile{File: f, fs: h}, nil
}

func (h *holdFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return h.wrap(h.MemFS.Create(name, c))
}

func (h *holdFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	return h.wrap(h.MemFS.Open(name, opts...))
}

func (h *holdFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return h.wrap(h.MemFS.OpenReadWrite(name, c, opts...))
}

func (h *holdFS) OpenDir(name string) (vfs.File, error) { return h.wrap(h.MemFS.OpenDir(name)) }

func (h *holdFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return h.wrap(h.MemFS.ReuseForWrite(oldname, newname, c))
}

func (h *holdFS) Unwrap() vfs.FS { return h.MemFS }

type holdFile struct {
	vfs.File
	fs *holdFS
}

func (f holdFile) Sync() error {
	f.fs.wait()
	return f.File.Sync()
}

func (f holdFile) SyncData() error {
	f.fs.wait()
	return f.File.SyncData()
}

func (f holdFile) SyncTo(length int64) (bool, error) {
	f.fs.wait()
	return f.File.SyncTo(length)
}

// observer records everything the store let out — every task, mailbox
// message and audit event read, every lease and acknowledgement answered —
// and checks it against what the store shows later, across crashes. It
// knows nothing of the store's internals.
type observer struct {
	t      *testing.T
	mu     sync.Mutex
	frozen bool // at a crash: what is answered from now on was not seen before it

	tasks    map[string]map[int64]string // id -> version -> content
	submits  map[string]bool             // ids named by an answered submission
	messages map[string]string           // tenant/recipient/cursor -> content
	events   map[string]string           // tenant/seq -> content
	acks     map[string]core.Cursor      // tenant/recipient -> highest answered ack
	issued   map[string]core.Cursor      // tenant/recipient -> highest ack sent, answered or not
	leases   map[string]*lease           // lease token -> what its holder knows
	errs     []error                     // unexpected errors answered
	ghosts   int                         // leases found lost after a crash
}

// lease is a lease its holder was handed, live for the holder until it
// completes the task, learns the lease is lost, or the lease's time ends.
type lease struct {
	task, pool string
	expires    time.Time
	ended      bool
}

func newObserver(t *testing.T) *observer {
	return &observer{
		t: t, tasks: map[string]map[int64]string{}, submits: map[string]bool{},
		messages: map[string]string{}, events: map[string]string{}, acks: map[string]core.Cursor{},
		issued: map[string]core.Cursor{}, leases: map[string]*lease{},
	}
}

func content(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// seen records one answer; it returns false once frozen.
func (o *observer) seen(fn func()) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.frozen {
		return false
	}
	fn()
	return true
}

// task records a task item read from the store: one content per version,
// ever, and the lease of a running one.
func (o *observer) task(tk core.Task) {
	o.seen(func() {
		vs := o.tasks[tk.ID]
		if vs == nil {
			vs = map[int64]string{}
			o.tasks[tk.ID] = vs
		}
		c := content(tk)
		if prev, ok := vs[tk.Version]; ok && prev != c {
			o.t.Errorf("task %s version %d read with two contents:\n  %s\n  %s", tk.ID, tk.Version, prev, c)
		}
		vs[tk.Version] = c
		o.handed(tk)
	})
}

// handed notes the lease of a running task as handed out; the caller
// holds o.mu.
func (o *observer) handed(tk core.Task) {
	if tk.State != core.StateRunning {
		if l, ok := o.leases[tk.Lease]; ok && tk.State.Terminal() {
			l.ended = true
		}
		return
	}
	if l, ok := o.leases[tk.Lease]; ok {
		if tk.LeaseExpiresAt.After(l.expires) {
			l.expires = tk.LeaseExpiresAt
		}
		return
	}
	o.leases[tk.Lease] = &lease{task: tk.ID, pool: tk.Pool, expires: tk.LeaseExpiresAt}
}

func (o *observer) submitted(tk core.Task) {
	o.seen(func() {
		o.submits[tk.ID] = true
		o.handed(tk)
	})
}

func (o *observer) message(m core.Message) {
	o.seen(func() {
		k := fmt.Sprintf("%s/%s/%d", m.Tenant, m.Recipient, m.Cursor)
		c := content(m)
		if prev, ok := o.messages[k]; ok && prev != c {
			o.t.Errorf("cursor %s names two messages (a reused cursor):\n  %s\n  %s", k, prev, c)
		}
		o.messages[k] = c
		if m.Type == core.MessageStarted {
			if _, ok := o.leases[m.Lease]; !ok {
				o.leases[m.Lease] = &lease{task: m.TaskID, pool: m.Pool, expires: m.At.Add(runTimeout)}
			}
		}
	})
}

func (o *observer) event(e core.Event) {
	o.seen(func() {
		k := fmt.Sprintf("%s/%d", e.Tenant, e.Seq)
		c := content(e)
		if prev, ok := o.events[k]; ok && prev != c {
			o.t.Errorf("audit event %s read with two contents:\n  %s\n  %s", k, prev, c)
		}
		o.events[k] = c
	})
}

func (o *observer) acked(tenant, recipient string, c core.Cursor) {
	o.seen(func() {
		k := tenant + "/" + recipient
		o.acks[k] = max(o.acks[k], c)
	})
}

func (o *observer) leaseEnded(token string) {
	o.seen(func() {
		if l, ok := o.leases[token]; ok {
			l.ended = true
		}
	})
}

// unexpected records an error that a healthy store never answers.
func (o *observer) unexpected(err error) {
	o.seen(func() { o.errs = append(o.errs, err) })
}

func (o *observer) live(token string) (*lease, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l, ok := o.leases[token]
	return l, ok && !l.ended
}

const runTimeout = time.Minute

var crashPools = []core.PoolConfig{
	{Name: "p", Capacity: 2, MaxParked: 30, DefaultMaxWait: 5 * time.Minute, RunTimeout: runTimeout},
	{Name: "q", Capacity: 1, MaxParked: 30, DefaultMaxWait: 5 * time.Minute, RunTimeout: runTimeout},
}

var crashTenants = []string{"acme", "globex"}

// crashRun is one schedule: a store on a holdFS, the scheduler over it, and
// the operations in flight.
type crashRun struct {
	t     *testing.T
	ctx   context.Context
	rng   *rand.Rand
	clock *core.StubClock
	obs   *observer
	fs    *holdFS
	store *pebblestore.Store
	sched *core.Scheduler
	ops   sync.WaitGroup
	keys  []string
}

const dataDir = "/data"

func (r *crashRun) open(fs *vfs.MemFS) {
	r.t.Helper()
	r.fs = newHoldFS(fs)
	s, err := pebblestore.Open(dataDir, pebblestore.Options{Clock: r.clock, FS: r.fs})
	require.NoError(r.t, err)
	r.store = s
	r.sched, err = core.New(core.Config{Backend: s, Clock: r.clock})
	require.NoError(r.t, err)
}

// async runs op as an operation in flight.
func (r *crashRun) async(op func()) {
	r.ops.Add(1)
	go func() {
		defer r.ops.Done()
		op()
	}()
}

// expected reports errors a healthy store answers to these operations.
func expected(err error) bool {
	return err == nil || errors.Is(err, core.ErrLeaseLost) || errors.Is(err, core.ErrInvalidState) ||
		errors.Is(err, core.ErrNotFound) || errors.Is(err, core.ErrPoolFull) || errors.Is(err, core.ErrKeyConflict)
}

func (r *crashRun) liveLeases() []string {
	r.obs.mu.Lock()
	defer r.obs.mu.Unlock()
	var out []string
	for tok, l := range r.obs.leases {
		if !l.ended {
			out = append(out, tok)
		}
	}
	slices.Sort(out)
	return out
}

func (r *crashRun) knownTasks() []string {
	r.obs.mu.Lock()
	defer r.obs.mu.Unlock()
	var out []string
	for id := range r.obs.tasks {
		out = append(out, id)
	}
	for id := range r.obs.submits {
		if _, ok := r.obs.tasks[id]; !ok {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// step runs one random operation: writes go in flight, reads are recorded.
func (r *crashRun) step() {
	tenant := crashTenants[r.rng.IntN(len(crashTenants))]
	switch n := r.rng.IntN(100); {
	case n < 8:
		r.fs.hold()
	case n < 14:
		r.fs.release()
	case n < 40:
		req := core.SubmitRequest{Tenant: tenant, Pool: crashPools[r.rng.IntN(len(crashPools))].Name,
			Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, r.rng.IntN(1000)))}
		if r.rng.IntN(4) == 0 {
			req.Key = r.keys[r.rng.IntN(len(r.keys))]
			req.Payload = json.RawMessage(`{"keyed":true}`)
		}
		if r.rng.IntN(5) == 0 {
			req.MaxWait = time.Duration(1+r.rng.IntN(60)) * time.Second
		}
		r.async(func() {
			res, err := r.sched.Submit(r.ctx, req)
			if err != nil {
				if !expected(err) {
					r.obs.unexpected(fmt.Errorf("submit: %w", err))
				}
				return
			}
			r.obs.submitted(res.Task)
		})
	case n < 55:
		leases := r.liveLeases()
		if len(leases) == 0 {
			return
		}
		tok := leases[r.rng.IntN(len(leases))]
		l, _ := r.obs.live(tok)
		if l == nil {
			return
		}
		tk, err := r.store.Task(r.ctx, l.task)
		if err != nil {
			return
		}
		r.obs.task(tk)
		heartbeat := r.rng.IntN(4) == 0
		r.async(func() {
			var err error
			if heartbeat {
				_, err = r.sched.Heartbeat(r.ctx, core.HeartbeatRequest{Tenant: tk.Tenant, TaskID: tk.ID, Lease: tok})
			} else {
				_, err = r.sched.Complete(r.ctx, core.CompleteRequest{Tenant: tk.Tenant, TaskID: tk.ID, Lease: tok, Status: core.StateSucceeded})
				if err == nil {
					r.obs.leaseEnded(tok)
				}
			}
			switch {
			case errors.Is(err, core.ErrLeaseLost):
				r.obs.leaseEnded(tok)
			case !expected(err):
				r.obs.unexpected(fmt.Errorf("complete or heartbeat: %w", err))
			}
		})
	case n < 60:
		ids := r.knownTasks()
		if len(ids) == 0 {
			return
		}
		id := ids[r.rng.IntN(len(ids))]
		r.async(func() {
			tk, err := r.store.Task(r.ctx, id)
			if err != nil {
				return
			}
			if _, err := r.sched.Cancel(r.ctx, tk.Tenant, id); !expected(err) {
				r.obs.unexpected(fmt.Errorf("cancel: %w", err))
			}
		})
	case n < 75:
		for _, recipient := range crashTenants {
			ms, err := r.store.Messages(r.ctx, tenant, recipient, 0, 1000)
			require.NoError(r.t, err)
			for _, m := range ms {
				r.obs.message(m)
			}
			if len(ms) > 0 && r.rng.IntN(3) == 0 {
				upTo := ms[r.rng.IntN(len(ms))].Cursor
				r.obs.seen(func() {
					k := tenant + "/" + recipient
					r.obs.issued[k] = max(r.obs.issued[k], upTo)
				})
				r.async(func() {
					err := r.sched.Ack(r.ctx, tenant, recipient, upTo)
					if err == nil {
						r.obs.acked(tenant, recipient, upTo)
					} else if !expected(err) {
						r.obs.unexpected(fmt.Errorf("ack: %w", err))
					}
				})
			}
		}
	case n < 85:
		for _, id := range r.knownTasks() {
			tk, err := r.store.Task(r.ctx, id)
			if errors.Is(err, core.ErrNotFound) {
				continue
			}
			require.NoError(r.t, err)
			r.obs.task(tk)
		}
	case n < 90:
		evs, err := r.store.Events(r.ctx, core.AuditQuery{Tenant: tenant, From: t0.Add(-time.Hour), To: t0.Add(100 * time.Hour), Limit: 10000})
		require.NoError(r.t, err)
		for _, e := range evs {
			r.obs.event(e)
		}
	case n < 95:
		r.clock.Advance(time.Duration(r.rng.IntN(20)) * time.Second)
	default:
		r.async(func() {
			if _, err := r.sched.Sweep(r.ctx); !expected(err) {
				r.obs.unexpected(fmt.Errorf("sweep: %w", err))
			}
		})
	}
}

// crash freezes the observer, takes the power-cut image of the file system
// with whatever is in flight, lets the old store finish, and reopens the
// store on the image.
func (r *crashRun) crash() {
	r.t.Helper()
	r.obs.mu.Lock()
	r.obs.frozen = true
	r.obs.mu.Unlock()
	image := r.fs.CrashClone(vfs.CrashCloneCfg{})
	r.fs.release()
	r.ops.Wait()
	require.NoError(r.t, r.store.Close())

	r.obs.mu.Lock()
	r.obs.frozen = false
	r.obs.mu.Unlock()
	r.open(image)
}

// quiesce lets every operation in flight finish.
func (r *crashRun) quiesce() {
	r.fs.release()
	r.ops.Wait()
}

// verify checks the store against everything observed: nothing seen is
// gone or different, acknowledged cursors stay acknowledged, and the pools'
// running tasks together with the leases their holders still hold stay
// within capacity.
func (r *crashRun) verify(when string) {
	r.t.Helper()
	o := r.obs
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, err := range o.errs {
		r.t.Errorf("%s: unexpected error answered: %v", when, err)
	}
	o.errs = nil

	current := map[string]core.Task{}
	for id := range o.submits {
		tk, err := r.store.Task(r.ctx, id)
		if errors.Is(err, core.ErrNotFound) {
			r.t.Errorf("%s: task %s, named by an answered submission, is gone", when, id)
			continue
		}
		require.NoError(r.t, err)
		current[id] = tk
	}
	for id, vs := range o.tasks {
		tk, err := r.store.Task(r.ctx, id)
		if errors.Is(err, core.ErrNotFound) {
			r.t.Errorf("%s: task %s, read before, is gone", when, id)
			continue
		}
		require.NoError(r.t, err)
		current[id] = tk
		newest := slices.Max(slices.Collect(maps.Keys(vs)))
		if tk.Version < newest {
			r.t.Errorf("%s: task %s went back from version %d (read before) to %d", when, id, newest, tk.Version)
		} else if c, ok := vs[tk.Version]; ok && c != content(tk) {
			r.t.Errorf("%s: task %s version %d changed:\n  read before %s\n  now %s", when, id, tk.Version, c, content(tk))
		}
	}

	for _, l := range o.leases {
		if _, ok := current[l.task]; ok {
			continue
		}
		tk, err := r.store.Task(r.ctx, l.task)
		if errors.Is(err, core.ErrNotFound) {
			continue // reported with the lease below
		}
		require.NoError(r.t, err)
		current[l.task] = tk
	}

	boxes := map[string][]core.Message{}
	for _, tenant := range crashTenants {
		for _, recipient := range crashTenants {
			ms, err := r.store.Messages(r.ctx, tenant, recipient, 0, 100000)
			require.NoError(r.t, err)
			boxes[tenant+"/"+recipient] = ms
			if a := o.acks[tenant+"/"+recipient]; len(ms) > 0 && ms[0].Cursor <= a {
				r.t.Errorf("%s: mailbox %s/%s shows cursor %d, acknowledged up to %d before", when, tenant, recipient, ms[0].Cursor, a)
			}
		}
	}
	now := map[string]string{}
	for _, ms := range boxes {
		for _, m := range ms {
			now[fmt.Sprintf("%s/%s/%d", m.Tenant, m.Recipient, m.Cursor)] = content(m)
		}
	}
	for k, c := range o.messages {
		parts := splitKey(k)
		tenant, recipient := parts[0], parts[1]
		var cur core.Cursor
		_, _ = fmt.Sscanf(parts[2], "%d", &cur)
		if cur <= o.issued[tenant+"/"+recipient] {
			continue // acknowledged, perhaps by an ack in flight at the crash: no longer listed
		}
		got, ok := now[k]
		switch {
		case !ok:
			r.t.Errorf("%s: message %s, read before, is gone: %s", when, k, c)
		case got != c:
			r.t.Errorf("%s: cursor %s names another message than before:\n  before %s\n  now %s", when, k, c, got)
		}
	}
	for _, tenant := range crashTenants {
		evs, err := r.store.Events(r.ctx, core.AuditQuery{Tenant: tenant, From: t0.Add(-time.Hour), To: t0.Add(100 * time.Hour), Limit: 100000})
		require.NoError(r.t, err)
		got := map[string]string{}
		for _, e := range evs {
			got[fmt.Sprintf("%s/%d", e.Tenant, e.Seq)] = content(e)
		}
		for k, c := range o.events {
			if splitKey(k)[0] != tenant {
				continue
			}
			if g, ok := got[k]; !ok {
				r.t.Errorf("%s: audit event %s, read before, is gone: %s", when, k, c)
			} else if g != c {
				r.t.Errorf("%s: audit event %s changed:\n  before %s\n  now %s", when, k, c, g)
			}
		}
	}

	// Capacity: the tasks the store runs, plus every lease handed out that
	// its holder still holds (not completed, not told it is lost, not
	// timed out by the clock) but that the store no longer knows.
	clockNow := r.clock.Now()
	for _, pc := range crashPools {
		held := map[string]bool{} // task ids
		for id, tk := range current {
			if tk.Pool == pc.Name && tk.State == core.StateRunning {
				held[id] = true
			}
		}
		for tok, l := range o.leases {
			if l.pool != pc.Name || l.ended || !clockNow.Before(l.expires) {
				continue
			}
			tk, ok := current[l.task]
			if !ok || tk.Lease != tok {
				o.ghosts++
				r.t.Errorf("%s: lease %s of task %s, handed out before, is unknown to the store (task now %s, lease %q)", when, tok, l.task, tk.State, tk.Lease)
				held[l.task+"/"+tok] = true
			}
		}
		if len(held) > pc.Capacity {
			r.t.Errorf("%s: pool %s runs %d tasks (counting leases still held), capacity %d", when, pc.Name, len(held), pc.Capacity)
		}
		p, err := r.store.Pool(r.ctx, pc.Name)
		require.NoError(r.t, err)
		running := 0
		for _, tk := range current {
			if tk.Pool == pc.Name && tk.State == core.StateRunning {
				running++
			}
		}
		if p.Running > pc.Capacity || p.Running < running {
			r.t.Errorf("%s: pool %s counts %d running, %d running tasks are known, capacity %d", when, pc.Name, p.Running, running, pc.Capacity)
		}
	}
}

func splitKey(k string) []string {
	var parts []string
	start := 0
	for i := range len(k) {
		if k[i] == '/' {
			parts = append(parts, k[start:i])
			start = i + 1
		}
	}
	return append(parts, k[start:])
}

// crashSchedule runs one random schedule of epochs: random steps with syncs
// held and released at random, a check once everything in flight is done,
// more steps, a power cut with whatever is in flight, and a check of the
// reopened store against everything seen before.
func crashSchedule(t *testing.T, seed uint64, epochs, steps int) {
	r := &crashRun{t: t, ctx: context.Background(), rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		clock: core.NewStubClock(t0), obs: newObserver(t)}
	for i := range 6 {
		r.keys = append(r.keys, fmt.Sprintf("key-%d", i))
	}
	r.open(vfs.NewCrashableMem())
	defer func() {
		r.quiesce()
		_ = r.store.Close()
	}()
	for _, pc := range crashPools {
		require.NoError(t, r.sched.PutPool(r.ctx, pc))
	}
	for e := range epochs {
		for range steps {
			r.step()
		}
		r.quiesce()
		r.verify(fmt.Sprintf("epoch %d, before the crash", e))
		for range steps {
			r.step()
		}
		r.crash()
		r.verify(fmt.Sprintf("epoch %d, after the crash", e))
		if t.Failed() {
			t.Logf("seed %d failed in epoch %d", seed, e)
			return
		}
	}
	r.obs.mu.Lock()
	defer r.obs.mu.Unlock()
	t.Logf("seed %d: %d tasks, %d messages, %d events, %d leases seen over %d crashes",
		seed, len(r.obs.tasks), len(r.obs.messages), len(r.obs.events), len(r.obs.leases), epochs)
}

// TestCrashVisibility is the model-based power-cut test: many random
// schedules of commits and reads with WAL syncs held at random, each cut by
// crashes at random points with operations in flight. Whatever a reader saw
// before a crash must be there, identical, after the store reopens on what
// the disk kept; no cursor, task version or audit sequence ever names two
// things; and leases handed out count against capacity until they end.
func TestCrashVisibility(t *testing.T) {
	t.Parallel()
	const seeds = 24
	base := uint64(time.Now().UnixNano())
	for i := range seeds {
		seed := uint64(i + 1)
		if i == seeds-1 {
			seed = base
		}
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			crashSchedule(t, seed, 4, 60)
		})
	}
}
