package web

import (
	"flag"
	"fmt"
	"testing"
)

var benchTasks = flag.Int("web.bench-tasks", 20000, "tasks per run of BenchmarkBrowser")

// BenchmarkBrowser measures the web runtime inside its worker (and, in
// mode page, from the page: n permits acquired at once, each released as
// soon as it starts) in
// headless Chromium, as web/bench.js does in Node (see there for the
// modes). It runs in the dedicated worker of a cross-origin isolated page
// (see isolatedSite): Chromium gives a SharedWorker the 100 µs clock
// whatever the headers, which would round every wake latency to 0 or 100
// µs; the scheduler's code is the same in both: `go test -run '^$' -bench Browser -benchtime 1x -count 3
// ./tests/web`. Each run is a fresh browser; b.N is ignored (the run is
// -web.bench-tasks lifecycles, timed by the worker itself).
func BenchmarkBrowser(b *testing.B) {
	for _, mode := range []string{"core", "lifecycle", "wake", "page"} {
		b.Run(mode, func(b *testing.B) {
			ctx := browser(b)
			page, _ := tab(b, ctx, isolatedSite(b)+"/demo.html?shared=0&view=0", true)
			if !eval[bool](b, page, `crossOriginIsolated`) {
				b.Fatal("the page is not cross-origin isolated: its clock would be 100 µs coarse")
			}
			b.ResetTimer()
			run := fmt.Sprintf(`demo.lot.bench(%q, %d)`, mode, *benchTasks)
			if mode == "page" {
				run = fmt.Sprintf(`(async () => {
					await demo.lot.putPools([{name: 'page', capacity: 16, maxParked: %[1]d}]);
					const t0 = performance.now();
					await Promise.all(Array.from({length: %[1]d}, async () => (await demo.lot.acquire('page', {heartbeat: false})).release()));
					return {perSecond: %[1]d / ((performance.now() - t0) / 1000)};
				})()`, *benchTasks)
			}
			res := eval[struct {
				PerSecond     float64 `json:"perSecond"`
				P50, P95, P99 float64
				Wakes         int `json:"wakes"`
			}](b, page, run)
			b.StopTimer()
			b.ReportMetric(res.PerSecond, "lifecycles/s")
			if mode == "wake" {
				b.ReportMetric(float64(res.Wakes)/float64(*benchTasks), "wakes/op")
				b.ReportMetric(res.P50, "wake-p50-µs")
				b.ReportMetric(res.P95, "wake-p95-µs")
				b.ReportMetric(res.P99, "wake-p99-µs")
			}
		})
	}
}
