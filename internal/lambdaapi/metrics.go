package lambdaapi

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// DefaultNamespace is the CloudWatch namespace of the metrics.
const DefaultNamespace = "Parkinglot"

// Metrics writes CloudWatch Embedded Metric Format lines: one JSON object a
// line, which CloudWatch Logs turns into metrics when a function writes it to
// stdout. It is safe for concurrent use; lines are never interleaved.
type Metrics struct {
	w         io.Writer
	namespace string
	clock     core.Clock
	mu        sync.Mutex
}

// NewMetrics returns Metrics writing to w (os.Stdout in a function) in
// namespace (DefaultNamespace when empty), timestamped by clock (the system
// clock when nil).
func NewMetrics(w io.Writer, namespace string, clock core.Clock) *Metrics {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	if clock == nil {
		clock = core.SystemClock{}
	}
	return &Metrics{w: w, namespace: namespace, clock: clock}
}

// Unit is a CloudWatch metric unit.
type Unit string

// Units the functions report in.
const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
	Percent      Unit = "Percent"
)

// Metric is one value of an EMF line.
type Metric struct {
	Name  string
	Unit  Unit
	Value float64
}

// Emit writes one EMF line with the metrics, the dimension keys dims (each
// must be a key of props) and props, which become the line's properties
// (dimension values and searchable context such as the request id).
func (m *Metrics) Emit(dims []string, props map[string]string, ms ...Metric) {
	if m == nil || len(ms) == 0 {
		return
	}
	type metricDef struct {
		Name string `json:"Name"`
		Unit Unit   `json:"Unit"`
	}
	type directive struct {
		Namespace  string      `json:"Namespace"`
		Dimensions [][]string  `json:"Dimensions"`
		Metrics    []metricDef `json:"Metrics"`
	}
	line := make(map[string]any, len(props)+len(ms)+1)
	for k, v := range props {
		line[k] = v
	}
	d := directive{Namespace: m.namespace, Dimensions: [][]string{dims}}
	if dims == nil {
		d.Dimensions = [][]string{{}}
	}
	for _, x := range ms {
		d.Metrics = append(d.Metrics, metricDef{Name: x.Name, Unit: x.Unit})
		line[x.Name] = x.Value
	}
	line["_aws"] = map[string]any{
		"Timestamp":         m.clock.Now().UnixMilli(),
		"CloudWatchMetrics": []directive{d},
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(line); err != nil {
		return // only strings and numbers: cannot fail
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, _ = m.w.Write(buf.Bytes()) // stdout; nothing to do if it fails
}

// Observer returns a core.Observer that reports starts (with the wake
// latency of wake-ups) and outcomes per pool.
func (m *Metrics) Observer() core.Observer { return metricsObserver{m} }

type metricsObserver struct{ m *Metrics }

func (o metricsObserver) Started(t *core.Task, wake time.Duration) {
	kind := "immediate"
	ms := []Metric{{Name: "Starts", Unit: Count, Value: 1}}
	switch {
	case wake >= 0:
		kind = "wake"
		ms = append(ms, Metric{Name: "WakeLatency", Unit: Milliseconds, Value: float64(wake) / float64(time.Millisecond)})
	case t.StartedAt.After(t.SubmittedAt):
		kind = "dispatch"
	}
	o.m.Emit([]string{"Pool"}, map[string]string{"Pool": t.Pool, "StartKind": kind, "taskId": t.ID}, ms...)
}

func (o metricsObserver) Ended(t *core.Task) {
	o.m.Emit([]string{"Pool", "Outcome"}, map[string]string{"Pool": t.Pool, "Outcome": string(t.State), "taskId": t.ID},
		Metric{Name: "Outcomes", Unit: Count, Value: 1})
}
