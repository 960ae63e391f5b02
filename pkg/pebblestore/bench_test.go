package pebblestore_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/core/coretest"
	"github.com/parkinglot/parkinglot/pkg/memstore"
	"github.com/parkinglot/parkinglot/pkg/pebblestore"
)

var auditEvents = flag.Int("audit-events", 1_000_000, "events in the store of BenchmarkAudit and BenchmarkStartup")

type backendKind struct {
	name string
	open func(b *testing.B) (core.Backend, string)
}

var kinds = []backendKind{
	{"memory", func(*testing.B) (core.Backend, string) { return memstore.New(memstore.Options{}), "" }},
	{"embedded", func(b *testing.B) (core.Backend, string) {
		dir := b.TempDir()
		s, err := pebblestore.Open(dir, pebblestore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s, dir
	}},
}

func benchScheduler(b *testing.B, backend core.Backend, pools ...core.PoolConfig) *core.Scheduler {
	b.Helper()
	s, err := core.New(core.Config{Backend: backend})
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range pools {
		if err := s.PutPool(context.Background(), p); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

func dirBytes(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkLifecycle measures submit → start → complete with zero hold time
// through core.Scheduler, from 64 goroutines, on the memory store and on
// this one (durable: every transition fsync'd, in groups). One op is one
// whole lifecycle: two commits, each with its audit event and message. On
// the embedded store it also reports the data directory's bytes per
// lifecycle after the run.
func BenchmarkLifecycle(b *testing.B) {
	for _, k := range kinds {
		b.Run("store="+k.name, func(b *testing.B) {
			ctx := context.Background()
			backend, dir := k.open(b)
			s := benchScheduler(b, backend, core.PoolConfig{Name: "p", Capacity: 1 << 20, MaxParked: 1 << 20, DefaultMaxWait: time.Hour, RunTimeout: time.Hour})
			var n atomic.Int64
			b.SetParallelism(32) // 64 goroutines on 2 cores
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				tenant := fmt.Sprintf("t%d", n.Add(1)%8)
				for pb.Next() {
					res, err := s.Submit(ctx, core.SubmitRequest{Tenant: tenant, Pool: "p"})
					if err != nil || res.Task.State != core.StateRunning {
						b.Errorf("submit: %v %v", res.Task.State, err)
						return
					}
					if _, err := s.Complete(ctx, core.CompleteRequest{Tenant: tenant, TaskID: res.Task.ID, Lease: res.Task.Lease, Status: core.StateSucceeded}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lifecycles/s")
			if dir != "" {
				if err := backend.(*pebblestore.Store).Close(); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(dirBytes(b, dir))/float64(b.N), "disk-B/lifecycle")
			}
		})
	}
}

// BenchmarkWake measures wake latency — a slot freed to the next parked task
// started — from the audit trail, as pkg/memstore's benchmark of the same
// name does: a pool of 16 slots, every submission past them parks, and a
// permit-mode worker completes each task when its started message arrives.
func BenchmarkWake(b *testing.B) {
	for _, k := range kinds {
		b.Run("store="+k.name, func(b *testing.B) {
			backend, _ := k.open(b)
			coretest.BenchWake(b, backend)
		})
	}
}

// The audit data set: *auditEvents events of 10 tenants, spread evenly over
// 10 days, built once per run in a directory that TestMain removes.
const (
	auditTenants = 10
	auditSpan    = 10 * 24 * time.Hour
)

var (
	auditOnce sync.Once
	auditDir  string
	auditErr  error
	auditT0   = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

func auditData(b *testing.B) string {
	auditOnce.Do(func() {
		auditDir, auditErr = os.MkdirTemp("", "pebblestore-audit-")
		if auditErr != nil {
			return
		}
		var s *pebblestore.Store
		s, auditErr = pebblestore.Open(auditDir, pebblestore.Options{})
		if auditErr != nil {
			return
		}
		defer func() {
			if err := s.Close(); auditErr == nil {
				auditErr = err
			}
		}()
		const perTxn = 500
		step := auditSpan / time.Duration(*auditEvents)
		var wg sync.WaitGroup
		var next atomic.Int64
		var errOnce sync.Once
		for range 8 {
			wg.Go(func() {
				for {
					from := int(next.Add(perTxn)) - perTxn
					if from >= *auditEvents {
						return
					}
					txn := &core.Txn{}
					for i := from; i < min(from+perTxn, *auditEvents); i++ {
						txn.Events = append(txn.Events, core.Event{
							At: auditT0.Add(time.Duration(i) * step), Tenant: fmt.Sprint("tenant", i%auditTenants),
							Pool: "p", TaskID: fmt.Sprintf("%024x", i/4), Type: core.EventStart,
							From: core.StateParked, To: core.StateRunning,
						})
					}
					if err := s.Commit(context.Background(), txn); err != nil {
						errOnce.Do(func() { auditErr = err })
						return
					}
				}
			})
		}
		wg.Wait()
	})
	if auditErr != nil {
		b.Fatal(auditErr)
	}
	return auditDir
}

// BenchmarkAudit queries one tenant's 24-hour window with *auditEvents
// events in the store (a tenth of them the tenant's, a tenth of those in
// the window): the first page of 100, and the full export in pages of 1000.
func BenchmarkAudit(b *testing.B) {
	dir := auditData(b)
	s, err := pebblestore.Open(dir, pebblestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	sched := benchScheduler(b, s)
	from := auditT0.Add(auditSpan / 2)
	q := core.AuditQuery{Tenant: "tenant3", From: from, To: from.Add(24 * time.Hour)}
	coretest.BenchAudit(b, sched, q, *auditEvents/auditTenants/10, 1)
}

// BenchmarkStartup opens and closes the store with *auditEvents events in it.
func BenchmarkStartup(b *testing.B) {
	dir := auditData(b)
	b.ReportAllocs()
	for b.Loop() {
		s, err := pebblestore.Open(dir, pebblestore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(dirBytes(b, dir))/float64(*auditEvents), "disk-B/event")
}

// BenchmarkGroupCommit measures durable submit-like commits (pool counter,
// task, key, audit event, message) from 64 goroutines, with concurrent
// commits grouped into one fsync and with one fsync each (MaxBatch 1), and
// the p50/p99 latency of one commit.
func BenchmarkGroupCommit(b *testing.B) {
	for _, maxBatch := range []int{1024, 1} {
		b.Run(fmt.Sprintf("maxBatch=%d", maxBatch), func(b *testing.B) {
			ctx := context.Background()
			s, err := pebblestore.Open(b.TempDir(), pebblestore.Options{MaxBatch: maxBatch})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.PutPool(ctx, core.PoolConfig{Name: "p", Capacity: 1 << 30, MaxParked: 1, DefaultMaxWait: time.Hour, RunTimeout: time.Hour}); err != nil {
				b.Fatal(err)
			}
			var mu sync.Mutex
			var lat []time.Duration
			var n atomic.Int64
			now := time.Now().UTC()
			b.SetParallelism(32)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					id := fmt.Sprintf("%024x", n.Add(1))
					t := core.Task{ID: id, Key: id, Tenant: "acme", Pool: "p", Recipient: "acme", State: core.StateRunning,
						SubmittedAt: now, Deadline: now.Add(time.Hour), RunTimeout: time.Hour, StartedAt: now,
						Lease: "0123456789abcdef0123456789abcdef", LeaseExpiresAt: now.Add(time.Hour), BodyHash: "h"}
					txn := &core.Txn{Pool: "p", RunningDelta: 1, NeedSlot: true, FirstInLine: true,
						Tasks:    []core.TaskWrite{{Task: t}},
						Key:      &core.KeyRecord{Tenant: "acme", Key: id, TaskID: id, BodyHash: "h"},
						Events:   []core.Event{{At: now, Tenant: "acme", Pool: "p", TaskID: id, Type: core.EventSubmit, To: core.StateRunning}},
						Messages: []core.Message{{Tenant: "acme", Recipient: "acme", TaskID: id, Pool: "p", Type: core.MessageStarted, Lease: t.Lease, At: now}},
					}
					start := time.Now()
					if err := s.Commit(ctx, txn); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}

// BenchmarkFsync measures the disk's floor under the store: one 4 KiB
// write and fdatasync of a preallocated file in the benchmark's temporary
// directory (where the other benchmarks keep their stores), as a WAL
// append does. A durable wake-up needs at least one, so its latency is
// bounded below by this one's.
func BenchmarkFsync(b *testing.B) {
	b.ResetTimer()
	lat := fsyncLatencies(b, b.TempDir(), b.N)
	b.StopTimer()
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.95), "p95-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// fsyncLatencies times n writes of 4 KiB, each followed by fdatasync, to a
// file preallocated (and synced) in dir, and returns them sorted.
func fsyncLatencies(b *testing.B, dir string, n int) []time.Duration {
	b.Helper()
	f, err := os.CreateTemp(dir, "fsync")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	const block = 4 << 10
	buf := make([]byte, block)
	if err := f.Truncate(int64(n+1) * block); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, n)
	for i := range n {
		t := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*block); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
	}
	slices.Sort(lat)
	return lat
}

// fsyncP50 is the disk's fdatasync p50 in dir over n writes, so that a
// benchmark can report its latency beside the floor of the same run.
func fsyncP50(b *testing.B, dir string, n int) time.Duration {
	b.Helper()
	lat := fsyncLatencies(b, dir, n)
	return lat[len(lat)/2]
}

// BenchmarkHTTPSubmit measures durable submissions over real HTTP on
// loopback to the embedded store: 1 and 4 concurrent keep-alive clients,
// each submission admitted at once (one commit: pool counter, task, audit
// event, started message), answered only once fsync'd and visible. It
// reports submits/s, the p50 and p99 of one submit as its client sees it,
// and the disk's fdatasync p50 measured in the same directory just before,
// with the ratio of the two p50s.
func BenchmarkHTTPSubmit(b *testing.B) {
	for _, clients := range []int{1, 4} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			dir := b.TempDir()
			floor := fsyncP50(b, dir, 500)
			st, err := pebblestore.Open(filepath.Join(dir, "data"), pebblestore.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			s := benchScheduler(b, st, core.PoolConfig{Name: "p", Capacity: 1 << 30, MaxParked: 1, DefaultMaxWait: time.Hour, RunTimeout: time.Hour})
			srv := httptest.NewServer(httpapi.New(httpapi.Options{Scheduler: s, Auth: httpapi.NewTokenAuth(map[string]string{"t": "acme"})}))
			defer srv.Close()
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
			defer hc.CloseIdleConnections()
			submit := func() error {
				req, err := http.NewRequest("POST", srv.URL+"/v1/pools/p/tasks", strings.NewReader(`{"payload":{"frame":7}}`))
				if err != nil {
					return err
				}
				req.Header.Set("Authorization", "Bearer t")
				resp, err := hc.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err == nil && resp.StatusCode != http.StatusCreated {
					err = fmt.Errorf("submit: %d %s", resp.StatusCode, body)
				}
				return err
			}
			var mu sync.Mutex
			var lat []time.Duration
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					for next.Add(1) <= int64(b.N) {
						t := time.Now()
						if err := submit(); err != nil {
							b.Error(err)
							return
						}
						mine = append(mine, time.Since(t))
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "submits/s")
			if len(lat) > 0 {
				p50 := lat[len(lat)/2]
				b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
				b.ReportMetric(float64(floor.Microseconds()), "fsync-p50-µs")
				b.ReportMetric(float64(p50)/float64(floor), "p50/fsync-p50")
			}
		})
	}
}
