package coretest

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// BenchWake measures wake latency on backend: from the moment a running
// task's release is decided to the commit of the next parked task's start,
// as the scheduler's Observer reports it (Observer.Started's wake). The
// pool has 16 slots; b.N tasks are submitted first (untimed; all but 16
// park), then 16 workers complete each task as soon as its started message
// arrives, so that every release but the last 16 wakes a parked task. It
// reports wake-p50-µs, wake-p95-µs and wake-p99-µs, and wakes/op, the
// share of starts that were wake-ups.
func BenchWake(b *testing.B, backend core.Backend) {
	const slots, submitters = 16, 8
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	obs := &wakeLog{}
	s, err := core.New(core.Config{Backend: backend, Observer: obs})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.PutPool(ctx, core.PoolConfig{Name: "p", Capacity: slots, MaxParked: 1 << 30, DefaultMaxWait: time.Hour, RunTimeout: time.Hour}); err != nil {
		b.Fatal(err)
	}
	var sub sync.WaitGroup
	for i := range submitters {
		sub.Go(func() {
			for range b.N/submitters + min(1, max(0, b.N%submitters-i)) {
				if _, err := s.Submit(ctx, core.SubmitRequest{Tenant: "t", Pool: "p"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	sub.Wait()

	b.ReportAllocs()
	b.ResetTimer()
	work := make(chan core.Message, slots)
	var completed atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(work)
		var after core.Cursor
		for {
			page, err := s.Mailbox(ctx, core.MailboxRequest{Tenant: "t", Recipient: "t", After: after, Limit: core.MaxPageLimit, Wait: time.Second})
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				b.Error(err)
				return
			}
			after = page.Next
			for _, m := range page.Messages {
				if m.Type == core.MessageStarted {
					work <- m
				}
			}
		}
	})
	for range slots {
		wg.Go(func() {
			for m := range work {
				if _, err := s.Complete(ctx, core.CompleteRequest{Tenant: "t", TaskID: m.TaskID, Lease: m.Lease, Status: core.StateSucceeded}); err != nil {
					b.Error(err)
				}
				if completed.Add(1) == int64(b.N) {
					close(done)
				}
			}
		})
	}
	<-done
	b.StopTimer()
	cancel()
	wg.Wait()
	lat := obs.wakes()
	b.ReportMetric(float64(len(lat))/float64(b.N), "wakes/op")
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(pct(0.50), "wake-p50-µs")
	b.ReportMetric(pct(0.95), "wake-p95-µs")
	b.ReportMetric(pct(0.99), "wake-p99-µs")
}

// wakeLog records the wake latencies an Observer hears of.
type wakeLog struct {
	mu  sync.Mutex
	lat []time.Duration
}

func (w *wakeLog) Started(_ *core.Task, wake time.Duration) {
	if wake < 0 {
		return
	}
	w.mu.Lock()
	w.lat = append(w.lat, wake)
	w.mu.Unlock()
}

func (w *wakeLog) Ended(*core.Task) {}

func (w *wakeLog) wakes() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.lat)
}

// BenchAudit measures audit queries of sched with q: the first page of
// core.DefaultPageLimit events (full-export) and every page of the window
// in pages of core.MaxPageLimit (full-export), which must export about
// want events (within tolerancePct percent).
func BenchAudit(b *testing.B, sched *core.Scheduler, q core.AuditQuery, want, tolerancePct int) {
	ctx := context.Background()
	b.Run("first-page", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			page, err := sched.Audit(ctx, q)
			if err != nil || len(page.Events) != core.DefaultPageLimit {
				b.Fatalf("%d events, %v", len(page.Events), err)
			}
		}
	})
	b.Run("full-export", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			q := q
			q.Limit = core.MaxPageLimit
			n = 0
			for {
				page, err := sched.Audit(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				n += len(page.Events)
				if page.Next.IsZero() {
					break
				}
				q.After = page.Next
			}
		}
		if n < want*(100-tolerancePct)/100 || n > want*(100+tolerancePct)/100 {
			b.Fatalf("exported %d events, want about %d", n, want)
		}
		b.ReportMetric(float64(n), "events")
	})
}
