package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// WakeBuckets are the wake-latency histogram's upper bounds in seconds:
// sub-millisecond resolution where an in-process handoff lands, up to the
// design's 1 s target and past it.
var WakeBuckets = []float64{
	25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3,
	1, 2.5, 5,
}

// Observer is a core.Observer and a prometheus.Collector: it counts starts
// by pool and kind (immediate at submit, or a wake-up of parked work),
// outcomes by pool and terminal state, and the wake latency by pool.
type Observer struct {
	starts   *prometheus.CounterVec
	outcomes *prometheus.CounterVec
	wake     *prometheus.HistogramVec
	pushes   *prometheus.CounterVec
	pushTime *prometheus.HistogramVec
}

var (
	_ core.Observer        = (*Observer)(nil)
	_ prometheus.Collector = (*Observer)(nil)
)

// NewObserver returns an Observer; register it to expose its metrics.
func NewObserver() *Observer {
	return &Observer{
		starts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "parkinglot", Name: "task_starts_total",
			Help: "Tasks started, by pool and kind (immediate: at submit; wake: parked work started after a slot freed; dispatch: parked work started otherwise).",
		}, []string{"pool", "kind"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "parkinglot", Name: "task_outcomes_total",
			Help: "Tasks that reached a terminal state, by pool and outcome.",
		}, []string{"pool", "outcome"}),
		wake: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "parkinglot", Name: "wake_latency_seconds",
			Help:    "Time from a slot being freed to the next parked task of the pool starting.",
			Buckets: WakeBuckets,
		}, []string{"pool"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "parkinglot", Name: "push_attempts_total",
			Help: "Delivery attempts of push pools' starts to their targets, by pool and result (delivered: the target took the task or answered its outcome; failed: it did not, and the attempt is retried or the task fails).",
		}, []string{"pool", "result"}),
		pushTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "parkinglot", Name: "push_attempt_seconds",
			Help:    "Duration of a delivery attempt to a push pool's target (a sync target's whole run).",
			Buckets: prometheus.ExponentialBuckets(1e-3, 4, 10),
		}, []string{"pool"}),
	}
}

// Pushed counts one delivery attempt of a push pool (push.Options.OnAttempt).
func (o *Observer) Pushed(pool string, delivered bool, took time.Duration) {
	result := "failed"
	if delivered {
		result = "delivered"
	}
	o.pushes.WithLabelValues(pool, result).Inc()
	o.pushTime.WithLabelValues(pool).Observe(took.Seconds())
}

// Started implements core.Observer.
func (o *Observer) Started(t *core.Task, wake time.Duration) {
	kind := "dispatch"
	switch {
	case wake >= 0:
		kind = "wake"
		o.wake.WithLabelValues(t.Pool).Observe(wake.Seconds())
	case t.StartedAt.Equal(t.SubmittedAt):
		kind = "immediate"
	}
	o.starts.WithLabelValues(t.Pool, kind).Inc()
}

// Ended implements core.Observer.
func (o *Observer) Ended(t *core.Task) {
	o.outcomes.WithLabelValues(t.Pool, string(t.State)).Inc()
}

// Describe implements prometheus.Collector.
func (o *Observer) Describe(ch chan<- *prometheus.Desc) {
	o.starts.Describe(ch)
	o.outcomes.Describe(ch)
	o.wake.Describe(ch)
	o.pushes.Describe(ch)
	o.pushTime.Describe(ch)
}

// Collect implements prometheus.Collector.
func (o *Observer) Collect(ch chan<- prometheus.Metric) {
	o.starts.Collect(ch)
	o.outcomes.Collect(ch)
	o.wake.Collect(ch)
	o.pushes.Collect(ch)
	o.pushTime.Collect(ch)
}
