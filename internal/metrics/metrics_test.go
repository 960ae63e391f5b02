package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/metrics"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

type bundle struct {
	clock *core.StubClock
	sched *core.Scheduler
	reg   *prometheus.Registry
}

func setup(t *testing.T) bundle {
	t.Helper()
	clk := core.NewStubClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	obs := metrics.NewObserver()
	sched, err := core.New(core.Config{Backend: memstore.New(memstore.Options{Clock: clk}), Clock: clk, Observer: obs})
	require.NoError(t, err)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(obs))
	require.NoError(t, reg.Register(metrics.NewPoolCollector(sched, time.Second)))
	require.NoError(t, sched.PutPool(context.Background(), core.PoolConfig{Name: "gpu", Capacity: 1, MaxParked: 1, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}))
	return bundle{clock: clk, sched: sched, reg: reg}
}

// values gathers every sample as "name{label=value,...}" -> value.
func values(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
				out[key+"_sum"] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

func TestObserverAndPools(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	v := values(t, b.reg)
	require.Equal(t, 1.0, v["parkinglot_pool_capacity{pool=gpu}"])
	require.Equal(t, 0.0, v["parkinglot_pool_running{pool=gpu}"])
	require.Equal(t, 1.0, v["parkinglot_pool_scrape_ok"])

	a, err := b.sched.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "gpu"})
	require.NoError(t, err)
	require.Equal(t, core.StateRunning, a.Task.State)
	p, err := b.sched.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "gpu"})
	require.NoError(t, err)
	require.Equal(t, core.StateParked, p.Task.State)
	_, err = b.sched.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "gpu"})
	require.ErrorIs(t, err, core.ErrPoolFull)

	v = values(t, b.reg)
	require.Equal(t, 1.0, v["parkinglot_pool_running{pool=gpu}"])
	require.Equal(t, 1.0, v["parkinglot_pool_parked{pool=gpu}"])
	require.Equal(t, 1.0, v["parkinglot_task_starts_total{kind=immediate}{pool=gpu}"])
	require.Equal(t, 1.0, v["parkinglot_task_outcomes_total{outcome=rejected}{pool=gpu}"])

	b.clock.Advance(3 * time.Millisecond)
	_, err = b.sched.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: a.Task.ID, Lease: a.Task.Lease, Status: core.StateSucceeded})
	require.NoError(t, err)

	v = values(t, b.reg)
	require.Equal(t, 1.0, v["parkinglot_task_outcomes_total{outcome=succeeded}{pool=gpu}"])
	require.Equal(t, 1.0, v["parkinglot_task_starts_total{kind=wake}{pool=gpu}"])
	require.Equal(t, 1.0, v["parkinglot_wake_latency_seconds{pool=gpu}_count"])
	// The stub clock did not move between release and wake.
	require.Equal(t, 0.0, v["parkinglot_wake_latency_seconds{pool=gpu}_sum"])
	require.Equal(t, 1.0, v["parkinglot_pool_running{pool=gpu}"])
	require.Equal(t, 0.0, v["parkinglot_pool_parked{pool=gpu}"])
}

type failingPools struct{}

func (failingPools) Pools(context.Context) ([]core.PoolStats, error) {
	return nil, context.DeadlineExceeded
}

func TestPoolCollectorStoreDown(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(metrics.NewPoolCollector(failingPools{}, time.Second)))
	v := values(t, reg)
	require.Equal(t, map[string]float64{"parkinglot_pool_scrape_ok": 0}, v)
}

func TestWakeBucketsSubMillisecond(t *testing.T) {
	t.Parallel()
	require.Less(t, metrics.WakeBuckets[0], 1e-3)
	for i := 1; i < len(metrics.WakeBuckets); i++ {
		require.Less(t, metrics.WakeBuckets[i-1], metrics.WakeBuckets[i])
	}
}
