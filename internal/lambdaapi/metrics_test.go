package lambdaapi_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// TestEMFLine checks the Embedded Metric Format envelope: every metric named
// in the directive is a number at the top level, every dimension a string.
func TestEMFLine(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	clock := core.NewStubClock(epoch)
	m := lambdaapi.NewMetrics(&buf, "Test", clock)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Emit([]string{"Function", "Pool"}, map[string]string{"Function": "submit", "Pool": "gpu", "requestId": "r"},
				lambdaapi.Metric{Name: "Requests", Unit: lambdaapi.Count, Value: float64(i)},
				lambdaapi.Metric{Name: "Latency", Unit: lambdaapi.Milliseconds, Value: 1.5})
		}()
	}
	wg.Wait()
	lines := buf.lines(t)
	require.Len(t, lines, 20, "one line each, none interleaved")
	for _, l := range lines {
		aws := l["_aws"].(map[string]any)
		require.Equal(t, float64(epoch.UnixMilli()), aws["Timestamp"])
		dirs := aws["CloudWatchMetrics"].([]any)
		require.Len(t, dirs, 1)
		d := dirs[0].(map[string]any)
		require.Equal(t, "Test", d["Namespace"])
		require.Equal(t, []any{[]any{"Function", "Pool"}}, d["Dimensions"])
		for _, dim := range []string{"Function", "Pool"} {
			require.IsType(t, "", l[dim])
		}
		for _, def := range d["Metrics"].([]any) {
			name := def.(map[string]any)["Name"].(string)
			require.IsType(t, 0.0, l[name], name)
		}
		require.Equal(t, 1.5, l["Latency"])
	}
	raw := buf.buf.String()
	require.Equal(t, 20, strings.Count(raw, "\n"))
	require.True(t, json.Valid([]byte(strings.Split(raw, "\n")[0])))

	// A nil Metrics is silent.
	var none *lambdaapi.Metrics
	none.Emit(nil, nil, lambdaapi.Metric{Name: "X", Unit: lambdaapi.Count, Value: 1})
}

func TestObserverWakeLatency(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	obs := lambdaapi.NewMetrics(&buf, "", core.NewStubClock(epoch)).Observer()
	task := &core.Task{ID: "t", Pool: "gpu", SubmittedAt: epoch, StartedAt: epoch.Add(time.Second), State: core.StateRunning}
	obs.Started(task, 1500*time.Microsecond)
	obs.Started(task, -1)
	lines := buf.lines(t)
	require.Len(t, lines, 2)
	require.Equal(t, "wake", lines[0]["StartKind"])
	require.Equal(t, 1.5, lines[0]["WakeLatency"])
	require.Equal(t, "dispatch", lines[1]["StartKind"])
	require.NotContains(t, lines[1], "WakeLatency")
}
