package memstore_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

func benchScheduler(b *testing.B, pools ...core.PoolConfig) *core.Scheduler {
	b.Helper()
	s, err := core.New(core.Config{Backend: memstore.New(memstore.Options{})})
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

// BenchmarkLifecycle measures submit → start → complete with zero hold time,
// so the scheduler is the bottleneck. One op is one whole lifecycle.
func BenchmarkLifecycle(b *testing.B) {
	for _, tenants := range []int{1, 8} {
		b.Run(fmt.Sprintf("tenants=%d", tenants), func(b *testing.B) {
			ctx := context.Background()
			s := benchScheduler(b, core.PoolConfig{Name: "p", Capacity: 1 << 20, MaxParked: 1 << 20, DefaultMaxWait: time.Hour, RunTimeout: time.Hour})
			var n atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				tenant := fmt.Sprintf("t%d", n.Add(1)%int64(tenants))
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
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lifecycles/s")
		})
	}
}

// BenchmarkWake measures wake latency — a slot freed to the next parked task
// started — from the audit trail: for each parked→running event, the time
// since the latest running→terminal event of the pool before it. The pool
// has 16 slots and every submission past them parks; a permit-mode worker
// completes each task as soon as its started message arrives.
func BenchmarkWake(b *testing.B) {
	ctx := context.Background()
	const capacity = 16
	s := benchScheduler(b, core.PoolConfig{Name: "p", Capacity: capacity, MaxParked: 1 << 20, DefaultMaxWait: time.Hour, RunTimeout: time.Hour})
	// Permit-mode workers read starts from the mailbox.
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		var after core.Cursor
		completed := 0
		for completed < b.N {
			page, err := s.Mailbox(ctx, core.MailboxRequest{Tenant: "t", Recipient: "t", After: after, Limit: 1000, Wait: time.Second})
			if err != nil {
				b.Error(err)
				return
			}
			after = page.Next
			for _, m := range page.Messages {
				if m.Type != core.MessageStarted {
					continue
				}
				if _, err := s.Complete(ctx, core.CompleteRequest{Tenant: "t", TaskID: m.TaskID, Lease: m.Lease, Status: core.StateSucceeded}); err != nil {
					b.Error(err)
					return
				}
				completed++
			}
		}
		close(done)
	}()
	start := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := s.Submit(ctx, core.SubmitRequest{Tenant: "t", Pool: "p"}); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	wg.Wait()
	q := core.AuditQuery{Tenant: "t", From: start.Add(-time.Second), To: time.Now().Add(time.Second), Limit: core.MaxPageLimit}
	page, err := s.Audit(ctx, q)
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	var lastFree time.Time
	for {
		for _, e := range page.Events {
			switch {
			case e.From == core.StateRunning && e.To.Terminal():
				lastFree = e.At
			case e.From == core.StateParked && e.To == core.StateRunning && !lastFree.IsZero():
				lat = append(lat, e.At.Sub(lastFree))
			}
		}
		if page.Next.IsZero() {
			break
		}
		q.After = page.Next
		if page, err = s.Audit(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(pct(0.50), "wake-p50-µs")
	b.ReportMetric(pct(0.95), "wake-p95-µs")
	b.ReportMetric(pct(0.99), "wake-p99-µs")
}
