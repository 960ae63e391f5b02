package main

import (
	"net/http"
	"strings"
	"sync"
	"time"
)

// rttTransport times each request of a Parkinglot client, from the call to
// the response's headers, by route: how much of a wake is one round trip
// to the server.
type rttTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	by   map[string][]time.Duration
}

func newRTT(next http.RoundTripper) *rttTransport {
	return &rttTransport{next: next, by: map[string][]time.Duration{}}
}

func route(r *http.Request) string {
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/complete"):
		return "complete"
	case strings.HasSuffix(p, "/claim"):
		return "claim"
	case strings.HasSuffix(p, "/ack"):
		return "ack"
	case strings.HasPrefix(p, "/v1/mailbox/"):
		return "mailbox"
	case r.Method == http.MethodPost && strings.HasSuffix(p, "/tasks"):
		return "submit"
	}
	return "other"
}

func (t *rttTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	d := time.Since(start)
	k := route(r)
	t.mu.Lock()
	t.by[k] = append(t.by[k], d)
	t.mu.Unlock()
	return resp, err
}

// summary returns each timed route's p50, p95 and p99.
func (t *rttTransport) summary() map[string][3]time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string][3]time.Duration{}
	for k, ds := range t.by {
		out[k] = percentiles(ds, 0.50, 0.95, 0.99)
	}
	return out
}
