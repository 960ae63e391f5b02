package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// PoolReader is the part of *core.Scheduler the pool collector reads.
type PoolReader interface {
	Pools(ctx context.Context) ([]core.PoolStats, error)
}

var _ PoolReader = (*core.Scheduler)(nil)

// PoolCollector reads every pool's counters at scrape time.
type PoolCollector struct {
	pools   PoolReader
	timeout time.Duration

	running, parked, capacity, maxParked, up *prometheus.Desc
}

var _ prometheus.Collector = (*PoolCollector)(nil)

// NewPoolCollector returns a collector over pools; each scrape reads them
// with the given timeout (zero: 5s).
func NewPoolCollector(pools PoolReader, timeout time.Duration) *PoolCollector {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	l := []string{"pool"}
	return &PoolCollector{
		pools: pools, timeout: timeout,
		running:   prometheus.NewDesc("parkinglot_pool_running", "Tasks of the pool holding a slot.", l, nil),
		parked:    prometheus.NewDesc("parkinglot_pool_parked", "Tasks of the pool waiting for a slot.", l, nil),
		capacity:  prometheus.NewDesc("parkinglot_pool_capacity", "The pool's hard limit of tasks running at once.", l, nil),
		maxParked: prometheus.NewDesc("parkinglot_pool_max_parked", "The pool's parked depth limit.", l, nil),
		up:        prometheus.NewDesc("parkinglot_pool_scrape_ok", "1 if the pools could be read from the store at this scrape, else 0.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.running
	ch <- c.parked
	ch <- c.capacity
	ch <- c.maxParked
	ch <- c.up
}

// Collect implements prometheus.Collector.
func (c *PoolCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	ps, err := c.pools.Pools(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, p := range ps {
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(p.Running), p.Name)
		ch <- prometheus.MustNewConstMetric(c.parked, prometheus.GaugeValue, float64(p.Parked), p.Name)
		ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, float64(p.Capacity), p.Name)
		ch <- prometheus.MustNewConstMetric(c.maxParked, prometheus.GaugeValue, float64(p.MaxParked), p.Name)
	}
}
