package loadtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/api"
)

func TestReportCountsOverlap(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	r := &run{pools: map[string]api.Pool{"p": {Name: "p", Capacity: 2}}, tasks: map[string]*task{}}
	add := func(id string, recv, end time.Duration, outcomes ...string) {
		r.tasks[id] = &task{id: id, pool: "p", submitted: true, starts: 1, recv: recv, end: end, outcomes: outcomes}
	}
	add("a", 0, 10*ms, "succeeded")
	add("b", 1*ms, 5*ms, "succeeded")
	add("c", 5*ms, 8*ms, "succeeded") // starts as b ends: a handover, no overlap
	rep := r.report(time.Second)
	require.Zero(t, rep.OverCapacity)
	require.Equal(t, 2, rep.MaxOverlap["p"])

	add("d", 6*ms, 7*ms, "succeeded", "succeeded") // a, c, d overlap; d has two outcomes
	r.tasks["e"] = &task{id: "e", pool: "p", submitted: true}
	rep = r.report(time.Second)
	require.Equal(t, 1, rep.OverCapacity)
	require.Equal(t, 3, rep.MaxOverlap["p"])
	require.Equal(t, 1, rep.DupOutcome)
	require.Equal(t, 1, rep.NoOutcome)
	require.False(t, rep.OK())
}

func TestReportLateStart(t *testing.T) {
	t.Parallel()
	d := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &run{pools: map[string]api.Pool{"p": {Name: "p", Capacity: 5}}, tasks: map[string]*task{
		"ok":   {id: "ok", pool: "p", submitted: true, starts: 1, deadline: d, startAt: d.Add(-time.Nanosecond), outcomes: []string{"succeeded"}},
		"late": {id: "late", pool: "p", submitted: true, starts: 1, deadline: d, startAt: d, outcomes: []string{"succeeded"}},
	}}
	rep := r.report(time.Second)
	require.Equal(t, 1, rep.LateStarts)
}

func TestPairWakes(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(us int) time.Time { return t0.Add(time.Duration(us) * time.Microsecond) }
	es := []auditEvent{
		{at(0), "", "running"},
		{at(1), "running", "succeeded"}, // nothing parked: not a wake
		{at(2), "", "running"},
		{at(3), "", "parked"},
		{at(4), "", "parked"},
		{at(10), "running", "failed"}, // freed with 2 parked
		{at(15), "parked", "running"}, // wake: 5us
		{at(20), "running", "timed_out"},
		{at(21), "parked", "expired"}, // the other parked task expired instead
		{at(30), "running", "succeeded"},
	}
	require.Equal(t, []time.Duration{5 * time.Microsecond}, pairWakes(es))

	s := summarize([]time.Duration{4, 1, 3, 2})
	require.Equal(t, WakeStats{N: 4, P50: 2, P95: 4, P99: 4, Max: 4}, s)
}
