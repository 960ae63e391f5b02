package pgstore_test

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/core/coretest"
	"github.com/parkinglot/parkinglot/pkg/pgstore"
)

// roundTrips counts what the store sends: every query is one round trip,
// every batch one round trip for all its statements.
type roundTrips struct {
	trips, statements atomic.Int64
}

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.trips.Add(1)
	r.statements.Add(1)
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.trips.Add(1)
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	r.statements.Add(1)
}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (r *roundTrips) report(b *testing.B, per string) {
	b.ReportMetric(float64(r.trips.Load())/float64(b.N), "roundtrips/"+per)
	b.ReportMetric(float64(r.statements.Load())/float64(b.N), "statements/"+per)
}

func benchScheduler(b *testing.B, s *pgstore.Store, pools ...core.PoolConfig) *core.Scheduler {
	b.Helper()
	sched, err := core.New(core.Config{Backend: s})
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range pools {
		if err := sched.PutPool(context.Background(), p); err != nil {
			b.Fatal(err)
		}
	}
	return sched
}

// BenchmarkLifecycle measures durable lifecycles — submit (admitted at
// once) then complete, each a committed, fsync'd transaction — from 64
// goroutines on a pool that never fills, so that the store is the
// bottleneck, as pkg/pebblestore's benchmark of the same name does. It
// reports lifecycles/s and the round trips and statements per lifecycle.
func BenchmarkLifecycle(b *testing.B) {
	rt := &roundTrips{}
	st := open(b, pgstore.Options{MaxConns: 16, Tracer: rt})
	s := benchScheduler(b, st, core.PoolConfig{Name: "p", Capacity: 1 << 20, MaxParked: 1 << 20, DefaultMaxWait: time.Hour, RunTimeout: time.Hour})
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(32) // 64 goroutines on 2 cores
	b.ReportAllocs()
	rt.trips.Store(0)
	rt.statements.Store(0)
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
	rt.report(b, "lifecycle")
}

// BenchmarkSubmit measures durable submissions from 4 producers, each
// admitted at once (one commit: pool counter, task, audit event, started
// message): submits/s and the p50 and p99 of one submit.
func BenchmarkSubmit(b *testing.B) {
	const producers = 4
	rt := &roundTrips{}
	st := open(b, pgstore.Options{MaxConns: 8, Tracer: rt})
	s := benchScheduler(b, st, core.PoolConfig{Name: "p", Capacity: 1 << 30, MaxParked: 1, DefaultMaxWait: time.Hour, RunTimeout: time.Hour})
	ctx := context.Background()
	var mu sync.Mutex
	var lat []time.Duration
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	rt.trips.Store(0)
	rt.statements.Store(0)
	b.ResetTimer()
	for range producers {
		wg.Go(func() {
			var mine []time.Duration
			for next.Add(1) <= int64(b.N) {
				t := time.Now()
				if _, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "p", Payload: []byte(`{"frame":7}`)}); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "submits/s")
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	rt.report(b, "submit")
}

// BenchmarkWake measures wake latency — a slot freed to the next parked
// task started — with core's BenchWake: 16 slots, every submission past
// them parks, and 16 permit-mode workers complete each task when its
// started message arrives (their long polls woken by LISTEN/NOTIFY).
func BenchmarkWake(b *testing.B) {
	coretest.BenchWake(b, open(b, pgstore.Options{MaxConns: 16}))
}

var auditEvents = flag.Int("audit-events", 1_000_000, "events in the store of BenchmarkAudit")

// BenchmarkAudit queries one tenant's 24-hour window with *auditEvents
// events in the table (10 tenants over 30 days, written by the server with
// generate_series; a tenth of them the tenant's, about a thirtieth of
// those in the window): the first page of 100, and the full export of the
// window in pages of 1000. The primary key (tenant, at, seq) is the only
// index either reads.
func BenchmarkAudit(b *testing.B) {
	const tenants, days = 10, 30
	st := open(b, pgstore.Options{})
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	span := int64(days * 24 * time.Hour)
	if _, err := st.DB().Exec(ctx, `
		INSERT INTO events (tenant, at, pool, task_id, type, from_state, to_state, detail)
		SELECT 'tenant' || (i % $2), $3::bigint + (i::bigint * ($4::bigint / $1)), 'p', md5(i::text), 'start', 'parked', 'running', ''
		FROM generate_series(0, $1 - 1) AS i`, *auditEvents, tenants, t0.UnixNano(), span); err != nil {
		b.Fatal(err)
	}
	if _, err := st.DB().Exec(ctx, `ANALYZE events`); err != nil {
		b.Fatal(err)
	}
	sched, err := core.New(core.Config{Backend: st})
	if err != nil {
		b.Fatal(err)
	}
	from := t0.Add(days * 24 * time.Hour / 2)
	q := core.AuditQuery{Tenant: "tenant3", From: from, To: from.Add(24 * time.Hour)}
	coretest.BenchAudit(b, sched, q, *auditEvents/tenants/days, 5)
}

// BenchmarkHotRow is the floor under one pool's (or one mailbox's)
// transitions: commits/s of a one-row UPDATE that every committer makes
// (row=hot), beside inserts that share no row (row=none), from 32
// connections. A row lock is held until the commit's WAL flush, so hot
// commits queue one flush apart while the others share flushes.
func BenchmarkHotRow(b *testing.B) {
	st := open(b, pgstore.Options{MaxConns: 32})
	ctx := context.Background()
	if _, err := st.DB().Exec(ctx, `CREATE TABLE hot (id int PRIMARY KEY, v bigint); INSERT INTO hot VALUES (1, 0);
		CREATE TABLE cold (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v bigint)`); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, sql string }{
		{"row=hot", `UPDATE hot SET v = v + 1 WHERE id = 1`},
		{"row=none", `INSERT INTO cold (v) VALUES (1)`},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetParallelism(16) // 32 goroutines on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := st.DB().Exec(ctx, c.sql); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}
