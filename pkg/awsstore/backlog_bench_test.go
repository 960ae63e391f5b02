package awsstore_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// backlogObserver feeds started tasks to the workers and records wake
// latencies and the running count.
type backlogObserver struct {
	ready chan core.Task

	mu         sync.Mutex
	wakes      []time.Duration
	running    int
	maxRunning int
	ended      int
	done       chan struct{}
	total      int
}

func (o *backlogObserver) Started(t *core.Task, wake time.Duration) {
	o.mu.Lock()
	if wake >= 0 {
		o.wakes = append(o.wakes, wake)
	}
	o.running++
	o.maxRunning = max(o.maxRunning, o.running)
	o.mu.Unlock()
	o.ready <- *t
}

func (o *backlogObserver) Ended(*core.Task) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.running--
	o.ended++
	if o.ended == o.total {
		close(o.done)
	}
}

// heldCounter counts the receives whose messages are not all deleted or
// released yet: the hand-offs and dispatches holding parked messages at
// once. It also counts releases that handed their slot off.
type heldCounter struct {
	core.Backend
	mu            sync.Mutex
	calls         int
	holder        map[string]int // receipt -> receive call
	left          map[int]int    // receive call -> messages it still holds
	held, maxHeld int
	handOffs      int
	lone          int
}

func (h *heldCounter) Receive(ctx context.Context, pool string, n int) ([]core.Delivery, error) {
	ds, err := h.Backend.Receive(ctx, pool, n)
	if len(ds) == 0 {
		return ds, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.holder == nil {
		h.holder, h.left = map[string]int{}, map[int]int{}
	}
	h.calls++
	for _, d := range ds {
		h.holder[d.Receipt] = h.calls
	}
	h.left[h.calls] = len(ds)
	h.held++
	h.maxHeld = max(h.maxHeld, h.held)
	return ds, err
}

func (h *heldCounter) done(receipt string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.holder[receipt]
	if !ok {
		return
	}
	delete(h.holder, receipt)
	if h.left[c]--; h.left[c] == 0 {
		delete(h.left, c)
		h.held--
	}
}

func (h *heldCounter) Delete(ctx context.Context, pool, receipt string) error {
	h.done(receipt)
	return h.Backend.Delete(ctx, pool, receipt)
}

func (h *heldCounter) Release(ctx context.Context, pool, receipt string) error {
	h.done(receipt)
	return h.Backend.Release(ctx, pool, receipt)
}

func (h *heldCounter) Commit(ctx context.Context, txn *core.Txn) error {
	err := h.Backend.Commit(ctx, txn)
	if err == nil {
		h.mu.Lock()
		switch {
		case txn.RunningDelta == 0 && txn.ParkedDelta == -1 && txn.NeedSlot:
			h.handOffs++ // a release that started the next parked task
		case txn.RunningDelta == -1:
			h.lone++ // a release that left the start to a dispatch
		}
		h.mu.Unlock()
	}
	return err
}

// BenchmarkTenantBacklog measures hand-offs in a pool with a backlog of few
// tenants: a permit pool of capacity 6, 3 tenants with 30 parked tasks each
// behind 6 running ones; 6 workers complete each task they see start after
// holding it 500 ms, so that every completion hands its slot to a parked
// task if it can receive one. With Options.GroupBuckets 1 (the message
// group is the tenant) at most 3 receivers hold a message at once; with
// more buckets, up to the 6 hand-offs. It reports wake latency (release →
// next start committed, real time on moto: not AWS performance), the
// share of releases that handed off, and the most receives holding
// messages at once. Run with -benchtime 1x.
func BenchmarkTenantBacklog(b *testing.B) {
	for _, buckets := range []int{1, awsstore.DefaultGroupBuckets} {
		b.Run(fmt.Sprint("buckets=", buckets), func(b *testing.B) {
			for b.Loop() {
				tenantBacklog(b, buckets)
			}
		})
	}
}

func tenantBacklog(b *testing.B, buckets int) {
	const capacity, tenants, perTenant, hold = 6, 3, 30, 500 * time.Millisecond
	bu := setup(b, setupOpts{groupBuckets: buckets})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	total := capacity + tenants*perTenant
	obs := &backlogObserver{ready: make(chan core.Task, total), done: make(chan struct{}), total: total}
	h := &heldCounter{Backend: bu.store}
	s, err := core.New(core.Config{Backend: h, Observer: obs})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.PutPool(ctx, poolCfg("gpu", capacity, 1000)); err != nil {
		b.Fatal(err)
	}
	for i := range total {
		tenant := fmt.Sprint("tenant", i%tenants)
		if _, err := s.Submit(ctx, core.SubmitRequest{Tenant: tenant, Pool: "gpu", RunTimeout: time.Hour, MaxWait: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range capacity {
		wg.Go(func() {
			for {
				select {
				case <-obs.done:
					return
				case <-ctx.Done():
					return
				case t := <-obs.ready:
					time.Sleep(hold)
					if _, err := s.Complete(ctx, core.CompleteRequest{Tenant: t.Tenant, TaskID: t.ID, Lease: t.Lease, Status: core.StateSucceeded}); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	}
	// The safety net: what no release could start, the sweep dispatches.
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-obs.done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				if _, err := s.Sweep(ctx); err != nil {
					b.Error(err)
				}
			}
		}
	})
	select {
	case <-obs.done:
	case <-ctx.Done():
		b.Fatalf("only %d of %d tasks ended", obs.ended, total)
	}
	elapsed := time.Since(start)
	wg.Wait()
	slices.Sort(obs.wakes)
	q := func(f float64) float64 { return obs.wakes[int(f*float64(len(obs.wakes)-1))].Seconds() * 1000 }
	b.ReportMetric(q(0.5), "wake-p50-ms")
	b.ReportMetric(q(0.95), "wake-p95-ms")
	b.ReportMetric(float64(h.handOffs)/float64(h.handOffs+h.lone), "handoff-ratio")
	b.ReportMetric(float64(h.maxHeld), "max-holders")
	b.ReportMetric(float64(obs.maxRunning), "max-running")
	b.ReportMetric(float64(total)/elapsed.Seconds(), "lifecycles/s")
}
