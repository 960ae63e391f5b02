package coretest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// BenchWake measures wake latency on backend — a slot freed to the next
// parked task started — from the audit trail: for each parked→running
// event, the time since the latest running→terminal event of the pool
// before it. The pool has 16 slots and every submission past them parks; a
// permit-mode worker completes each task as soon as its started message
// arrives. It reports wake-p50-µs, wake-p95-µs and wake-p99-µs.
func BenchWake(b *testing.B, backend core.Backend) {
	ctx := context.Background()
	s, err := core.New(core.Config{Backend: backend})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.PutPool(ctx, core.PoolConfig{Name: "p", Capacity: 16, MaxParked: 1 << 20, DefaultMaxWait: time.Hour, RunTimeout: time.Hour}); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
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
	})
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
	var lat []time.Duration
	var lastFree time.Time
	for {
		page, err := s.Audit(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
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
