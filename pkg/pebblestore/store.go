package pebblestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/sys/unix"

	"github.com/parkinglot/parkinglot/internal/watch"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// Files of the store's own beside Pebble's in the data directory.
const (
	// LockFile is held by one process at a time.
	LockFile = "parkinglot.lock"
	// MarkerFile is written once the store is created: a directory that has
	// it but whose Pebble data lacks the store's format version lost its data.
	MarkerFile = "parkinglot.store"
	// CleanFile is written and synced by Close, and removed by Open once the
	// store is open: a store opened without it was not closed cleanly by the
	// process before, and Open logs what it recovered.
	CleanFile = "parkinglot.clean"
)

// ErrClosed is returned by calls on a closed Store.
var ErrClosed = errors.New("pebblestore: store is closed")

// ErrInUse is wrapped by the error of Open and Check on a data directory
// that another process (or another Store of this one) has open.
var ErrInUse = errors.New("in use by another process")

// Options configure a Store. Zero fields take the defaults documented on each.
type Options struct {
	// Clock drives the parking queue's visibility timeout. Default: core.SystemClock.
	Clock core.Clock
	// Visibility is how long a received queue message stays hidden unless
	// deleted or released. Default: 30s.
	Visibility time.Duration
	// MaxBatch bounds how many requests share one batch and fsync.
	// 1 syncs every request on its own. Default: 1024.
	MaxBatch int
	// CacheSize is Pebble's block cache in bytes. Default: 32 MiB.
	CacheSize int64
	// Logger receives Pebble's error reports and, at level Warn, the one
	// line Open logs after an unclean shutdown. Default: discard.
	Logger *slog.Logger
	// FS is the file system the data directory is on. Default: the
	// operating system's, with the directory locked by flock(2). Tests pass
	// Pebble's crashable in-memory file system (vfs.NewCrashableMem) to
	// simulate a power cut: only what was synced survives.
	FS vfs.FS
}

// WithDefaults returns a copy of o with zero fields set to their defaults.
func (o Options) WithDefaults() Options {
	if o.Clock == nil {
		o.Clock = core.SystemClock{}
	}
	if o.Visibility == 0 {
		o.Visibility = 30 * time.Second
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 1024
	}
	if o.CacheSize == 0 {
		o.CacheSize = 32 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FS == nil {
		// The plain file system: Pebble's default wraps it in a disk-health
		// checker whose goroutine a failed Open leaves running.
		o.FS = vfs.Default
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.Visibility < 0:
		return errors.New("pebblestore: Options.Visibility must not be negative")
	case o.MaxBatch < 1:
		return errors.New("pebblestore: Options.MaxBatch must be at least 1")
	case o.CacheSize < 0:
		return errors.New("pebblestore: Options.CacheSize must not be negative")
	}
	return nil
}

// Store is the Pebble backend. Open one with Open; Close it when done.
type Store struct {
	db         *pebble.DB
	fs         vfs.FS
	lock       io.Closer    // the store's own lock file
	plock      *pebble.Lock // Pebble's LOCK, taken before pebble.Open
	created    bool         // Open made a new store
	path       string
	clock      core.Clock
	visibility time.Duration
	maxBatch   int

	// The writer goroutine owns every write batch and seq.
	ops     chan *op
	synced  chan *pending // applied batches waiting for their sync
	stopped chan struct{}
	closeMu sync.RWMutex
	closed  bool
	seq     uint64 // last sequence number committed

	queues sync.Map // pool -> *queue

	// What readers see: the state as of the last durable batch. The writer
	// goes ahead of it (see run); nothing leaves the store before its
	// batch is synced.
	viewMu sync.RWMutex
	view   *view    // nil once closed
	pools  sync.Map // name -> *core.Pool, immutable, as of view

	// The writer's own state, as of the last applied batch: pool items
	// and the heads of running tasks. Only the writer uses them.
	wpools  map[string]*core.Pool
	running map[string]taskHead

	watchers watch.Set // by mailboxKey
}

var (
	_ core.Backend        = (*Store)(nil)
	_ core.MailboxWatcher = (*Store)(nil)
)

// Open opens (creating if needed) the store in directory path. It fails at
// once, with an error wrapping ErrInUse, if another process has the
// directory open, and with an error wrapping ErrCorrupt if the data fails
// its checks. After an unclean shutdown it logs what it recovered.
func Open(path string, opts Options) (*Store, error) {
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := opts.FS.MkdirAll(path, 0o750); err != nil {
		return nil, fmt.Errorf("pebblestore: create data directory: %w", err)
	}
	lock, err := lockDir(opts.FS, path)
	if err != nil {
		return nil, err
	}
	s := &Store{
		fs: opts.FS, lock: lock, path: path, clock: opts.Clock, visibility: opts.Visibility, maxBatch: opts.MaxBatch,
		ops: make(chan *op, opts.MaxBatch), synced: make(chan *pending, 4), stopped: make(chan struct{}),
		wpools:  make(map[string]*core.Pool),
		running: make(map[string]taskHead),
	}
	if err := s.open(opts); err != nil {
		_ = lock.Close()
		return nil, err
	}
	if err := s.recovered(opts.Logger); err != nil {
		s.publish(nil)
		_ = s.closeDB()
		_ = s.plock.Close()
		_ = lock.Close()
		return nil, err
	}
	go s.run()
	go s.sync()
	return s, nil
}

// lockDir takes the directory's lock file, or fails at once: with
// flock(2) on the operating system's file system, with fsys.Lock on another.
func lockDir(fsys vfs.FS, path string) (io.Closer, error) {
	name := fsys.PathJoin(path, LockFile)
	if fsys != vfs.Default {
		l, err := fsys.Lock(name)
		var pe *fs.PathError
		switch {
		case errors.As(err, &pe):
			return nil, fmt.Errorf("pebblestore: lock data directory %s: %w", path, err)
		case err != nil:
			return nil, fmt.Errorf("pebblestore: data directory %s is %w: %w", path, ErrInUse, err)
		}
		return l, nil
	}
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: lock data directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("pebblestore: data directory %s is %w", path, ErrInUse)
		}
		return nil, fmt.Errorf("pebblestore: lock data directory %s: %w", path, err)
	}
	return f, nil
}

func (s *Store) open(opts Options) (err error) {
	defer guard(&err, "open "+s.path)
	db, plock, err := openPebble(s.path, opts, false)
	if err != nil {
		return err
	}
	s.db, s.plock = db, plock
	if err := s.check(); err != nil {
		_ = db.Close()
		_ = plock.Close()
		return err
	}
	s.view = newView(db.NewSnapshot())
	return nil
}

// pebbleOptions are the store's Pebble options.
func pebbleOptions(opts Options, cache *pebble.Cache) *pebble.Options {
	po := &pebble.Options{
		Cache:  cache,
		Logger: pebbleLogger{opts.Logger},
		FS:     opts.FS,
		// Damaged data found by a read is that read's error (wrapping
		// ErrCorrupt), not the end of the process.
		EventListener: &pebble.EventListener{
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				opts.Logger.Error("pebblestore: data file is corrupt", "path", info.Path, "err", info.Details)
			},
			BackgroundError: func(err error) {
				opts.Logger.Error("pebblestore: background error", "err", err)
			},
		},
		FormatMajorVersion: pebble.FormatNewest,
		// Every transition rewrites its pool item and task item and moves
		// the mailbox's newest cursor: a memtable twice the default flushes
		// each such key once for more writes, and flushes (and the
		// compactions they cause) less often. Measured against 4, 16 and
		// 64 MiB, 8 MiB took the least CPU per lifecycle and gave the
		// lowest wake latency (a larger skiplist is slower to search and
		// insert into).
		MemTableSize:                8 << 20,
		MemTableStopWritesThreshold: 4,
	}
	for i := range po.Levels {
		// New task ids and idempotency keys are looked up to be absent: a
		// Bloom filter answers most such reads without reading a block.
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return po
}

// openPebble takes Pebble's LOCK in path and opens Pebble there, read-only
// for Check. The caller closes the DB, then the lock. Errors say what
// failed: the directory in use by another process, a permission, a
// resource of the system (disk space, open files), or damage (ErrCorrupt).
func openPebble(path string, opts Options, readOnly bool) (*pebble.DB, *pebble.Lock, error) {
	// The store's own lock keeps out other stores; Pebble's LOCK is also
	// held by anything else that opens the directory with Pebble.
	plock, err := pebble.LockDirectory(path, opts.FS)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			// Creating the LOCK file failed: a permission, a missing directory.
			return nil, nil, fmt.Errorf("pebblestore: lock data directory %s: %w", path, err)
		}
		// fcntl(2) refused the lock (EAGAIN or EACCES), or this process
		// holds it already.
		return nil, nil, fmt.Errorf("pebblestore: data directory %s is %w (Pebble's LOCK is held: %v)", path, ErrInUse, err)
	}
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref()
	po := pebbleOptions(opts, cache)
	po.Lock = plock
	po.ReadOnly = readOnly
	db, err := pebble.Open(path, po)
	if err != nil {
		// A failed Open releases its reference; this is the caller's.
		_ = plock.Close()
		return nil, nil, openError(path, err)
	}
	return db, plock, nil
}

// openError labels a failure of pebble.Open. An error of the system (a
// permission, no space, no file descriptors, a read-only file system) says
// so; a missing file (ENOENT: a table or WAL the manifest names is gone),
// an I/O error and everything Pebble refuses itself (a damaged manifest,
// WAL or table, a table whose size differs from the manifest's) is damage,
// ErrCorrupt.
func openError(path string, err error) error {
	var errno syscall.Errno
	switch {
	case errors.Is(err, pebble.ErrDBDoesNotExist):
		return fmt.Errorf("pebblestore: open %s: no store in this directory", path)
	case errors.As(err, &errno) && errno != syscall.ENOENT && errno != syscall.EIO:
		return fmt.Errorf("pebblestore: open %s: %w", path, err)
	}
	return fmt.Errorf("pebblestore: open %s: %w: %v", path, ErrCorrupt, err)
}

// check verifies the tables Pebble lists against the files on disk, the
// store's format, and reads the sequence number and the parking queues. A
// new directory gets its format version.
func (s *Store) check() error {
	if err := checkTables(s.db, s.fs, s.path); err != nil {
		return err
	}
	marker := s.fs.PathJoin(s.path, MarkerFile)
	_, merr := s.fs.Stat(marker)
	v, ok, err := get(s.db, keyFormat)
	if err != nil {
		return err
	}
	if !ok {
		if merr == nil {
			return fmt.Errorf("pebblestore: %s: %w: the store's data is gone (damaged or missing MANIFEST or WAL)", s.path, ErrCorrupt)
		}
		if it, err := s.db.NewIter(nil); err == nil {
			nonEmpty := it.First()
			_ = it.Close()
			if nonEmpty {
				return fmt.Errorf("pebblestore: %s: %w: no format version", s.path, ErrCorrupt)
			}
		}
		if err := s.db.Set(keyFormat, appendU64(nil, formatVersion), pebble.Sync); err != nil {
			return fmt.Errorf("pebblestore: write format version: %w", err)
		}
		if err := writeMarker(s.fs, marker); err != nil {
			return err
		}
		s.created = true
		return nil
	}
	if errors.Is(merr, fs.ErrNotExist) {
		// A store made before the marker existed, or the marker was lost
		// after a crash between the two writes: the data is there.
		if err := writeMarker(s.fs, marker); err != nil {
			return err
		}
	}
	if len(v) != 8 {
		return fmt.Errorf("pebblestore: %s: %w: malformed format version", s.path, ErrCorrupt)
	}
	if f := readU64(v); f != formatVersion {
		return fmt.Errorf("pebblestore: %s: format version %d, this build reads %d", s.path, f, formatVersion)
	}
	if v, ok, err := get(s.db, keySeq); err != nil {
		return err
	} else if ok {
		if len(v) != 8 {
			return fmt.Errorf("pebblestore: %s: %w: malformed sequence number", s.path, ErrCorrupt)
		}
		s.seq = readU64(v)
	}
	return s.loadQueues()
}

// checkTables verifies the tables Pebble lists against the files on disk.
func checkTables(db *pebble.DB, fsys vfs.FS, path string) error {
	tables, err := db.SSTables()
	if err != nil {
		return corrupt(fmt.Errorf("pebblestore: list tables of %s: %w", path, err))
	}
	for _, level := range tables {
		for _, t := range level {
			if t.Virtual {
				continue
			}
			name := fsys.PathJoin(path, fmt.Sprintf("%06d.sst", t.BackingSSTNum))
			fi, err := fsys.Stat(name)
			switch {
			case err != nil:
				return fmt.Errorf("pebblestore: %s: %w: %v", path, ErrCorrupt, err)
			case uint64(fi.Size()) != t.Size:
				return fmt.Errorf("pebblestore: %s: %w: %s is %d bytes, the manifest says %d (truncated)", path, ErrCorrupt, name, fi.Size(), t.Size)
			}
		}
	}
	return nil
}

// writeMarker writes and syncs the marker file and its directory entry.
func writeMarker(fsys vfs.FS, name string) error {
	return writeFile(fsys, name, "parkinglot pebblestore format 1\n")
}

// writeFile writes and syncs file name and its directory entry.
func writeFile(fsys vfs.FS, name, content string) error {
	f, err := fsys.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("pebblestore: write %s: %w", name, err)
	}
	_, err = f.Write([]byte(content))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(fsys, fsys.PathDir(name))
	}
	if err != nil {
		return fmt.Errorf("pebblestore: write %s: %w", name, err)
	}
	return nil
}

// recovered removes the clean-shutdown marker, durably, so that a crash
// from now on is seen by the next Open. Without the marker (and not a new
// store) the process before did not close the store: it logs one line of
// what the WAL replay recovered.
func (s *Store) recovered(log *slog.Logger) error {
	name := s.fs.PathJoin(s.path, CleanFile)
	_, err := s.fs.Stat(name)
	switch {
	case err == nil:
		if err := s.fs.Remove(name); err != nil {
			return fmt.Errorf("pebblestore: remove %s: %w", name, err)
		}
		if err := syncDir(s.fs, s.path); err != nil {
			return fmt.Errorf("pebblestore: remove %s: sync directory: %w", name, err)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("pebblestore: %w", err)
	case s.created:
		return nil
	}
	attrs := []any{"path", s.path, "seq", s.seq}
	var pools []any
	err = scan(s.db, []byte{spacePools}, nil, func(_, v []byte) (bool, error) {
		var p core.Pool
		if err := decode(v, &p); err != nil {
			return false, err
		}
		pools = append(pools, slog.Group(p.Name, "running", p.Running, "parked", p.Parked))
		return true, nil
	})
	attrs = append(attrs, slog.Group("pools", pools...))
	if err != nil {
		attrs = append(attrs, "err", err) // the read that meets it fails too
	}
	log.Warn("pebblestore: the store was not closed cleanly; recovered from its write-ahead log", attrs...)
	return nil
}

func syncDir(fsys vfs.FS, dir string) error {
	d, err := fsys.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// guard turns a panic while reading damaged data into an error wrapping
// ErrCorrupt. Defer it in functions that decode stored data.
func guard(err *error, what string) {
	if r := recover(); r != nil {
		if f, ok := r.(pebbleFatal); ok {
			panic(f) // Pebble cannot go on; neither can the store
		}
		*err = fmt.Errorf("pebblestore: %s: %w: %v", what, ErrCorrupt, r)
	}
}

// corrupt marks Pebble's corruption errors with ErrCorrupt.
func corrupt(err error) error {
	if err != nil && pebble.IsCorruptionError(err) && !errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}

// pebbleLogger passes Pebble's errors to slog. Pebble calls Fatalf when it
// cannot go on (a failed WAL or MANIFEST sync): that panics with a
// pebbleFatal, which guard lets through.
type pebbleLogger struct{ log *slog.Logger }

type pebbleFatal string

func (l pebbleLogger) Infof(string, ...any) {}
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	l.log.Error(msg)
	panic(pebbleFatal(msg))
}

// Close stops the writer after the requests already made and closes the store.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.ops)
	s.closeMu.Unlock()
	<-s.stopped
	s.publish(nil)
	err := s.closeDB()
	if err == nil {
		// Everything is synced: the next Open needs no recovery.
		err = writeFile(s.fs, s.fs.PathJoin(s.path, CleanFile), "closed cleanly\n")
	}
	if lerr := s.plock.Close(); err == nil && lerr != nil {
		err = lerr
	}
	if lerr := s.lock.Close(); err == nil && lerr != nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("pebblestore: close: %w", err)
	}
	return nil
}

// closeDB closes Pebble. After a read of damaged data Pebble may find a
// table reference still held and panic; that is reported as an error.
func (s *Store) closeDB() (err error) {
	defer guard(&err, "close")
	return s.db.Close()
}

// Path returns the data directory.
func (s *Store) Path() string { return s.path }

// get returns a copy of the value at k.
func get(r pebble.Reader, k []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, corrupt(fmt.Errorf("pebblestore: get: %w", err))
	}
	out := bytes.Clone(v)
	_ = closer.Close()
	return out, true, nil
}

// getValue decodes the value at k into v.
func getValue(r pebble.Reader, k []byte, v any) (found bool, err error) {
	defer guard(&err, "get")
	b, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, corrupt(fmt.Errorf("pebblestore: get: %w", err))
	}
	defer closer.Close()
	return true, decode(b, v)
}

// scan calls fn for the keys with prefix p from key start on (nil: all),
// in order, until fn returns false.
func scan(r pebble.Reader, p, start []byte, fn func(k, v []byte) (bool, error)) (err error) {
	defer guard(&err, "scan")
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return corrupt(fmt.Errorf("pebblestore: scan: %w", err))
	}
	defer func() {
		if cerr := it.Close(); err == nil && cerr != nil {
			err = corrupt(fmt.Errorf("pebblestore: scan: %w", cerr))
		}
	}()
	ok := it.First()
	if start != nil {
		ok = it.SeekGE(start)
	}
	for ; ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return corrupt(fmt.Errorf("pebblestore: scan: %w", err))
		}
		more, err := fn(it.Key(), v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// PutPool creates the pool or updates its configuration, keeping counters.
func (s *Store) PutPool(ctx context.Context, cfg core.PoolConfig) error {
	return s.do(ctx, func(w *pebble.Batch, b *batch) (func(), error) {
		p, _, err := s.writerPool(w, b, cfg.Name)
		if err != nil {
			return nil, err
		}
		p.PoolConfig = cfg
		return nil, s.putPool(w, b, p)
	})
}

func poolKey(name string) []byte { return append(key(spacePools, len(name)), name...) }

// writerPool returns a copy of pool name as the writer sees it: written
// earlier in batch b, or as of the last applied batch (s.wpools), or stored.
// Every transition reads its pool; the cache spares a read through the
// batch and every level of the tree.
func (s *Store) writerPool(w *pebble.Batch, b *batch, name string) (*core.Pool, bool, error) {
	if p, ok := b.pools[name]; ok {
		cp := *p
		return &cp, true, nil
	}
	if v, ok := s.wpools[name]; ok {
		cp := *v
		return &cp, true, nil
	}
	p := new(core.Pool)
	ok, err := getValue(w, poolKey(name), p)
	return p, ok, err
}

// putPool writes p in w and notes it in b, for s.pools once b is applied.
func (s *Store) putPool(w *pebble.Batch, b *batch, p *core.Pool) error {
	if err := putValue(w, poolKey(p.Name), p); err != nil {
		return err
	}
	if b.pools == nil {
		b.pools = make(map[string]*core.Pool)
	}
	cp := *p
	b.pools[p.Name] = &cp
	return nil
}

// Pool returns the pool item as of the last durable batch.
func (s *Store) Pool(_ context.Context, name string) (core.Pool, error) {
	if v, ok := s.pools.Load(name); ok {
		return *v.(*core.Pool), nil
	}
	r, err := s.read()
	if err != nil {
		return core.Pool{}, err
	}
	defer r.release()
	var p core.Pool
	ok, err := getValue(r.snap, poolKey(name), &p)
	if err == nil && !ok {
		err = core.ErrPoolNotFound
	}
	if err != nil {
		return core.Pool{}, err // never a partly decoded value
	}
	return p, nil
}

// Pools returns every pool item by name.
func (s *Store) Pools(_ context.Context) ([]core.Pool, error) {
	r, err := s.read()
	if err != nil {
		return nil, err
	}
	defer r.release()
	var out []core.Pool
	err = scan(r.snap, []byte{spacePools}, nil, func(_, v []byte) (bool, error) {
		var p core.Pool
		if err := decode(v, &p); err != nil {
			return false, err
		}
		out = append(out, p)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Task returns the task item.
func (s *Store) Task(_ context.Context, id string) (core.Task, error) {
	r, err := s.read()
	if err != nil {
		return core.Task{}, err
	}
	defer r.release()
	var t core.Task
	ok, err := getValue(r.snap, append(key(spaceTasks, len(id)), id...), &t)
	if err == nil && !ok {
		err = core.ErrNotFound
	}
	if err != nil {
		return core.Task{}, err // never a partly decoded value
	}
	return t, nil
}

// Key returns the idempotency key item.
func (s *Store) Key(_ context.Context, tenant, k string) (core.KeyRecord, error) {
	r, err := s.read()
	if err != nil {
		return core.KeyRecord{}, err
	}
	defer r.release()
	var rec core.KeyRecord
	ok, err := getValue(r.snap, keyKey(tenant, k), &rec)
	if err == nil && !ok {
		err = core.ErrNotFound
	}
	if err != nil {
		return core.KeyRecord{}, err // never a partly decoded value
	}
	return rec, nil
}

func keyKey(tenant, k string) []byte {
	return append(appendStr(key(spaceKeys, len(tenant)+len(k)+2), tenant), k...)
}

// Due returns ids of non-terminal tasks due at or before t, soonest first.
func (s *Store) Due(_ context.Context, t time.Time, limit int) ([]string, error) {
	r, err := s.read()
	if err != nil {
		return nil, err
	}
	defer r.release()
	var ids []string
	end := appendTime(key(spaceDue, 8), t)
	err = scan(r.snap, []byte{spaceDue}, nil, func(k, _ []byte) (bool, error) {
		if len(k) < 9 {
			return false, fmt.Errorf("pebblestore: due: %w: malformed key %x", ErrCorrupt, k)
		}
		if bytes.Compare(k[:9], end) > 0 || len(ids) >= limit {
			return false, nil
		}
		ids = append(ids, string(k[9:]))
		return true, nil
	})
	return ids, err
}

// Unsent returns ids of tasks flagged Unsent.
func (s *Store) Unsent(_ context.Context, limit int) ([]string, error) {
	r, err := s.read()
	if err != nil {
		return nil, err
	}
	defer r.release()
	var ids []string
	err = scan(r.snap, []byte{spaceUnsent}, nil, func(k, _ []byte) (bool, error) {
		if len(ids) >= limit {
			return false, nil
		}
		ids = append(ids, string(k[1:]))
		return true, nil
	})
	return ids, err
}

func putValue(w *pebble.Batch, k []byte, v any) error {
	enc, err := encode(v)
	if err != nil {
		return err
	}
	if err := w.Set(k, enc, nil); err != nil {
		return fmt.Errorf("pebblestore: put: %w", err)
	}
	return nil
}

func readU64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}
