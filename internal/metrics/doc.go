// Package metrics exposes the scheduler to Prometheus: an Observer that
// counts starts and outcomes and records wake latency (slot freed to next
// parked task started), and a collector that reads each pool's running,
// parked and capacity figures from the scheduler at scrape time.
package metrics
