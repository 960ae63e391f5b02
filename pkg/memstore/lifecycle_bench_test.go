package memstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/core/coretest"
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

// BenchmarkWake measures wake latency on the memory backend; see
// coretest.BenchWake.
func BenchmarkWake(b *testing.B) {
	coretest.BenchWake(b, memstore.New(memstore.Options{}))
}
