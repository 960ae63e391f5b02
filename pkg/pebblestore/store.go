package boltstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// FileName is the data file's name inside the data directory.
const FileName = "parkinglot.db"

// ErrClosed is returned by calls on a closed Store.
var ErrClosed = errors.New("boltstore: store is closed")

// Options configure a Store. Zero fields take the defaults documented on each.
type Options struct {
	// Clock drives the parking queue's visibility timeout. Default: core.SystemClock.
	Clock core.Clock
	// Visibility is how long a received queue message stays hidden unless
	// deleted or released. Default: 30s.
	Visibility time.Duration
	// MaxBatch bounds how many requests share one transaction and fsync.
	// 1 syncs every request on its own. Default: 1024.
	MaxBatch int
	// LockTimeout is how long Open waits for another process to release the
	// data directory. Default: 10ms (fail at once).
	LockTimeout time.Duration
	// InitialMmapSize is the size bbolt maps at open, so that a growing file
	// rarely remaps under readers. Default: 256 MiB.
	InitialMmapSize int
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
	if o.LockTimeout == 0 {
		o.LockTimeout = 10 * time.Millisecond
	}
	if o.InitialMmapSize == 0 {
		o.InitialMmapSize = 256 << 20
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.Visibility < 0:
		return errors.New("boltstore: Options.Visibility must not be negative")
	case o.MaxBatch < 1:
		return errors.New("boltstore: Options.MaxBatch must be at least 1")
	case o.LockTimeout < 0:
		return errors.New("boltstore: Options.LockTimeout must not be negative")
	case o.InitialMmapSize < 0:
		return errors.New("boltstore: Options.InitialMmapSize must not be negative")
	}
	return nil
}

// Store is the bbolt backend. Open one with Open; Close it when done.
type Store struct {
	db         *bolt.DB
	path       string
	clock      core.Clock
	visibility time.Duration
	maxBatch   int

	// The writer goroutine owns every write transaction and seq.
	ops     chan *op
	stopped chan struct{}
	closeMu sync.RWMutex
	closed  bool
	seq     uint64 // last sequence number committed

	queues   sync.Map // pool -> *queue
	watchMu  sync.Mutex
	watchers map[string]map[chan struct{}]struct{} // mailboxKey -> channels
}

var (
	_ core.Backend        = (*Store)(nil)
	_ core.MailboxWatcher = (*Store)(nil)
)

// Open opens (creating if needed) the store in directory path. It fails at
// once if another process has the directory open, and with an error wrapping
// ErrCorrupt if the data file fails its checks.
func Open(path string, opts Options) (*Store, error) {
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(path, 0o750); err != nil {
		return nil, fmt.Errorf("boltstore: create data directory: %w", err)
	}
	file := filepath.Join(path, FileName)
	db, err := openBolt(file, opts)
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("boltstore: data directory %s is in use by another process", path)
		}
		return nil, err
	}
	s := &Store{
		db: db, path: path, clock: opts.Clock, visibility: opts.Visibility, maxBatch: opts.MaxBatch,
		ops: make(chan *op, opts.MaxBatch), stopped: make(chan struct{}),
		watchers: make(map[string]map[chan struct{}]struct{}),
	}
	if err := s.load(file); err != nil {
		_ = db.Close()
		return nil, err
	}
	go s.run()
	return s, nil
}

// openBolt opens the bbolt file, turning bbolt's panics and faults on a
// damaged file into errors.
func openBolt(file string, opts Options) (db *bolt.DB, err error) {
	if err := precheck(file); err != nil {
		return nil, err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer guard(&err, "open "+file)
	db, err = bolt.Open(file, 0o600, &bolt.Options{
		Timeout:         opts.LockTimeout,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: opts.InitialMmapSize,
	})
	var pathErr *fs.PathError
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bolterrors.ErrTimeout), errors.As(err, &pathErr):
		return nil, fmt.Errorf("boltstore: open %s: %w", file, err)
	}
	// Anything else bbolt refuses is the file's content: bad meta pages,
	// wrong magic or version, a size that does not fit its metadata.
	return nil, fmt.Errorf("boltstore: open %s: %w: %v", file, ErrCorrupt, err)
}

// guard turns a panic or memory fault of bbolt on a damaged file into an
// error wrapping ErrCorrupt. Defer it first in functions that touch the map.
func guard(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("boltstore: %s: %w: %v", what, ErrCorrupt, r)
	}
}

// load checks the file against its own metadata, creates the buckets of a
// new file, and reads the sequence number and the parking queues.
func (s *Store) load(file string) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer guard(&err, "load "+file)
	fi, err := os.Stat(file)
	if err != nil {
		return fmt.Errorf("boltstore: %w", err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if size := tx.Size(); fi.Size() < size {
			return fmt.Errorf("boltstore: %s: %w: file is %d bytes, its metadata says %d (truncated)", file, ErrCorrupt, fi.Size(), size)
		}
		if hasBuckets(tx) {
			return s.check(file, tx)
		}
		return errNew
	})
	if !errors.Is(err, errNew) {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("boltstore: create bucket %s: %w", name, err)
			}
		}
		return tx.Bucket(bucketMeta).Put(metaFormat, appendU64(nil, formatVersion))
	})
}

var errNew = errors.New("new file")

// check verifies an existing file's format and buckets, and reads the
// sequence number and the parking queues.
func (s *Store) check(file string, tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return fmt.Errorf("boltstore: %s: %w: bucket %q missing", file, ErrCorrupt, bucketMeta)
	}
	v := meta.Get(metaFormat)
	if len(v) != 8 {
		return fmt.Errorf("boltstore: %s: %w: no format version", file, ErrCorrupt)
	}
	if f := readU64(v); f != formatVersion {
		return fmt.Errorf("boltstore: %s: format version %d, this build reads %d", file, f, formatVersion)
	}
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("boltstore: %s: %w: bucket %q missing", file, ErrCorrupt, name)
		}
	}
	if v := meta.Get(metaSeq); v != nil {
		if len(v) != 8 {
			return fmt.Errorf("boltstore: %s: %w: malformed sequence number", file, ErrCorrupt)
		}
		s.seq = readU64(v)
	}
	return s.loadQueues(tx)
}

func hasBuckets(tx *bolt.Tx) bool {
	k, _ := tx.Cursor().First()
	return k != nil
}

// Close stops the writer after the requests already made and closes the file.
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
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore: close: %w", err)
	}
	return nil
}

// Path returns the data directory.
func (s *Store) Path() string { return s.path }

// view runs fn in a read transaction, guarded against a damaged file.
func (s *Store) view(what string, fn func(tx *bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer guard(&err, what)
	return s.db.View(fn)
}

// PutPool creates the pool or updates its configuration, keeping counters.
func (s *Store) PutPool(ctx context.Context, cfg core.PoolConfig) error {
	return s.do(ctx, func(tx *bolt.Tx, _ *batch) (func(), error) {
		b := tx.Bucket(bucketPools)
		var p core.Pool
		if v := b.Get([]byte(cfg.Name)); v != nil {
			if err := decode(v, &p); err != nil {
				return nil, err
			}
		}
		p.PoolConfig = cfg
		return nil, putValue(b, []byte(cfg.Name), &p)
	})
}

// Pool returns the pool item.
func (s *Store) Pool(_ context.Context, name string) (core.Pool, error) {
	var p core.Pool
	err := s.view("pool", func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPools).Get([]byte(name))
		if v == nil {
			return core.ErrPoolNotFound
		}
		return decode(v, &p)
	})
	return p, err
}

// Pools returns every pool item by name.
func (s *Store) Pools(_ context.Context) ([]core.Pool, error) {
	var out []core.Pool
	err := s.view("pools", func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPools).ForEach(func(_, v []byte) error {
			var p core.Pool
			if err := decode(v, &p); err != nil {
				return err
			}
			out = append(out, p)
			return nil
		})
	})
	return out, err
}

// Task returns the task item.
func (s *Store) Task(_ context.Context, id string) (core.Task, error) {
	var t core.Task
	err := s.view("task", func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTasks).Get([]byte(id))
		if v == nil {
			return core.ErrNotFound
		}
		return decode(v, &t)
	})
	return t, err
}

// Key returns the idempotency key item.
func (s *Store) Key(_ context.Context, tenant, key string) (core.KeyRecord, error) {
	var rec core.KeyRecord
	err := s.view("key", func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketKeys).Get(append(appendStr(nil, tenant), key...))
		if v == nil {
			return core.ErrNotFound
		}
		return decode(v, &rec)
	})
	return rec, err
}

// Due returns ids of non-terminal tasks due at or before t, soonest first.
func (s *Store) Due(_ context.Context, t time.Time, limit int) ([]string, error) {
	var ids []string
	end := appendTime(nil, t)
	err := s.view("due", func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.First(); k != nil && len(ids) < limit; k, _ = c.Next() {
			if len(k) < 8 {
				return fmt.Errorf("boltstore: due: %w: malformed key %x", ErrCorrupt, k)
			}
			if string(k[:8]) > string(end) {
				break
			}
			ids = append(ids, string(k[8:]))
		}
		return nil
	})
	return ids, err
}

// Unsent returns ids of tasks flagged Unsent.
func (s *Store) Unsent(_ context.Context, limit int) ([]string, error) {
	var ids []string
	err := s.view("unsent", func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketUnsent).Cursor()
		for k, _ := c.First(); k != nil && len(ids) < limit; k, _ = c.Next() {
			ids = append(ids, string(k))
		}
		return nil
	})
	return ids, err
}

func putValue(b *bolt.Bucket, k []byte, v any) error {
	enc, err := encode(v)
	if err != nil {
		return err
	}
	if err := b.Put(k, enc); err != nil {
		return fmt.Errorf("boltstore: put: %w", err)
	}
	return nil
}

func readU64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}
