package enginebench

import (
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	bolt "go.etcd.io/bbolt"
	_ "modernc.org/sqlite"
)

// req is one submit-like transaction: bump the pool's counter, put the task,
// its audit event and its mailbox message.
type req struct {
	taskKey, task   []byte
	eventKey, event []byte
	msgKey, msg     []byte
	done            chan error
}

var poolKey = []byte("pool/p")

func newReq(seq uint64) *req {
	var id [12]byte
	_, _ = rand.Read(id[:])
	hexID := hex.EncodeToString(id[:])
	var ts [16]byte
	binary.BigEndian.PutUint64(ts[:], uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint64(ts[8:], seq)
	return &req{
		taskKey:  []byte("task/" + hexID),
		task:     pad(300),
		eventKey: append([]byte("audit/acme/"), ts[:]...),
		event:    pad(120),
		msgKey:   append([]byte("mbox/acme/acme/"), ts[8:]...),
		msg:      pad(150),
		done:     make(chan error, 1),
	}
}

func pad(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// engine applies a group of requests in one durable transaction.
type engine interface {
	apply(group []*req) error
	close() error
}

// groupWriter feeds an engine from one goroutine, taking every request
// waiting (up to max) into one transaction.
type groupWriter struct {
	e    engine
	ch   chan *req
	stop chan struct{}
}

func newGroupWriter(e engine, max int) *groupWriter {
	w := &groupWriter{e: e, ch: make(chan *req, 1024), stop: make(chan struct{})}
	go func() {
		defer close(w.stop)
		group := make([]*req, 0, max)
		for r := range w.ch {
			group = append(group[:0], r)
		more:
			for len(group) < max {
				select {
				case r, ok := <-w.ch:
					if !ok {
						break more
					}
					group = append(group, r)
				default:
					break more
				}
			}
			err := e.apply(group)
			for _, r := range group {
				r.done <- err
			}
		}
	}()
	return w
}

func (w *groupWriter) commit(r *req) error {
	w.ch <- r
	return <-r.done
}

func (w *groupWriter) close() error {
	close(w.ch)
	<-w.stop
	return w.e.close()
}

// bbolt: one read-write transaction per group.
type boltEngine struct{ db *bolt.DB }

func openBolt(b *testing.B) engine {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType, InitialMmapSize: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("kv"))
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return &boltEngine{db: db}
}

func (e *boltEngine) apply(group []*req) error {
	return e.db.Update(func(tx *bolt.Tx) error {
		kv := tx.Bucket([]byte("kv"))
		for _, r := range group {
			n := uint64(0)
			if v := kv.Get(poolKey); v != nil {
				n = binary.BigEndian.Uint64(v)
			}
			for _, p := range [][2][]byte{{poolKey, binary.BigEndian.AppendUint64(nil, n+1)}, {r.taskKey, r.task}, {r.eventKey, r.event}, {r.msgKey, r.msg}} {
				if err := kv.Put(p[0], p[1]); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (e *boltEngine) close() error { return e.db.Close() }

// Pebble: one batch per group, committed with a WAL fsync.
type pebbleEngine struct {
	db *pebble.DB
	mu sync.Mutex // the pool counter's read-modify-write when writers commit on their own
	n  uint64
}

func openPebble(b *testing.B) *pebbleEngine {
	db, err := pebble.Open(filepath.Join(b.TempDir(), "pebble"), &pebble.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return &pebbleEngine{db: db}
}

func (e *pebbleEngine) apply(group []*req) error {
	batch := e.db.NewIndexedBatch()
	defer batch.Close()
	for _, r := range group {
		n := uint64(0)
		if v, c, err := batch.Get(poolKey); err == nil {
			n = binary.BigEndian.Uint64(v)
			_ = c.Close()
		}
		for _, p := range [][2][]byte{{poolKey, binary.BigEndian.AppendUint64(nil, n+1)}, {r.taskKey, r.task}, {r.eventKey, r.event}, {r.msgKey, r.msg}} {
			if err := batch.Set(p[0], p[1], nil); err != nil {
				return err
			}
		}
	}
	return batch.Commit(pebble.Sync)
}

// commitOwn commits r from the caller's goroutine, relying on Pebble's own
// grouping of concurrent synced commits in its WAL; the pool counter is
// kept in memory under a short lock, so this mode checks no condition.
func (e *pebbleEngine) commitOwn(r *req) error {
	e.mu.Lock()
	e.n++
	n := e.n
	e.mu.Unlock()
	batch := e.db.NewBatch()
	defer batch.Close()
	for _, p := range [][2][]byte{{poolKey, binary.BigEndian.AppendUint64(nil, n)}, {r.taskKey, r.task}, {r.eventKey, r.event}, {r.msgKey, r.msg}} {
		if err := batch.Set(p[0], p[1], nil); err != nil {
			return err
		}
	}
	return batch.Commit(pebble.Sync)
}

func (e *pebbleEngine) close() error { return e.db.Close() }

// SQLite (pure Go driver) in WAL mode with synchronous=FULL: one SQL
// transaction per group on one connection.
type sqliteEngine struct{ db *sql.DB }

func openSQLite(b *testing.B) engine {
	db, err := sql.Open("sqlite", filepath.Join(b.TempDir(), "bench.sqlite")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID`); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO kv VALUES (?, ?)`, poolKey, binary.BigEndian.AppendUint64(nil, 0)); err != nil {
		b.Fatal(err)
	}
	return &sqliteEngine{db: db}
}

func (e *sqliteEngine) apply(group []*req) error {
	tx, err := e.db.Begin()
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for _, r := range group {
		var v []byte
		if err := tx.QueryRow(`SELECT v FROM kv WHERE k = ?`, poolKey).Scan(&v); err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE kv SET v = ? WHERE k = ?`, binary.BigEndian.AppendUint64(nil, binary.BigEndian.Uint64(v)+1), poolKey); err != nil {
			return err
		}
		for _, p := range [][2][]byte{{r.taskKey, r.task}, {r.eventKey, r.event}, {r.msgKey, r.msg}} {
			if _, err := tx.Exec(`INSERT INTO kv VALUES (?, ?)`, p[0], p[1]); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

func (e *sqliteEngine) close() error { return e.db.Close() }

// writers is the number of goroutines committing at once.
const writers = 64

// BenchmarkCommit measures durable submit-like commits from 64 goroutines:
// commits/s and the p50/p99 latency of one commit.
func BenchmarkCommit(b *testing.B) {
	type mode struct {
		name   string
		commit func(b *testing.B) (func(*req) error, func() error)
	}
	grouped := func(open func(*testing.B) engine, max int) func(b *testing.B) (func(*req) error, func() error) {
		return func(b *testing.B) (func(*req) error, func() error) {
			w := newGroupWriter(open(b), max)
			return w.commit, w.close
		}
	}
	modes := []mode{
		{"bbolt/fsync-each", grouped(openBolt, 1)},
		{"bbolt/group", grouped(openBolt, 1024)},
		{"pebble/fsync-each", grouped(func(b *testing.B) engine { return openPebble(b) }, 1)},
		{"pebble/group", grouped(func(b *testing.B) engine { return openPebble(b) }, 1024)},
		{"pebble/own-wal-grouping", func(b *testing.B) (func(*req) error, func() error) {
			e := openPebble(b)
			return e.commitOwn, e.close
		}},
		{"sqlite/fsync-each", grouped(openSQLite, 1)},
		{"sqlite/group", grouped(openSQLite, 1024)},
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			commit, closeFn := m.commit(b)
			var seq atomic.Uint64
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					r := newReq(seq.Add(1))
					t := time.Now()
					if err := commit(r); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(t))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			if err := closeFn(); err != nil {
				b.Fatal(err)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}
