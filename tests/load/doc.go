// Package load runs the load test against the real parkinglot binary:
// 10,000 submissions over two pools and three tenants with permit-mode
// workers, 2% of which crash, checked by the independent observer of
// internal/loadtest.
package load
