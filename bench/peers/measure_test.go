package main

import (
	"slices"
	"testing"
	"time"
)

func TestHoldsSeededAndInRange(t *testing.T) {
	w := Workload{Jobs: 1000, Seed: 7, MinHold: time.Millisecond, MaxHold: 15 * time.Millisecond}
	a, b := w.Holds(), w.Holds()
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave different holds")
	}
	for i, h := range a {
		if h < w.MinHold || h > w.MaxHold {
			t.Fatalf("hold %d = %s, outside %s-%s", i, h, w.MinHold, w.MaxHold)
		}
	}
	w.Seed = 8
	if slices.Equal(a, w.Holds()) {
		t.Fatal("another seed gave the same holds")
	}
}

// A return opens a wake only while enqueued work waits for it; the next
// entry closes the oldest open wake.
func TestRecorderWakes(t *testing.T) {
	rec := NewRecorder(make([]time.Duration, 4))
	rec.Enqueued(0)
	rec.Enter(0)
	rec.Return(0) // nothing waits: no wake
	rec.Enqueued(1)
	rec.Enqueued(2)
	rec.Enter(1) // no open wake: an entry into a free slot, not a wake
	rec.Return(1)
	time.Sleep(2 * time.Millisecond)
	rec.Enter(2) // closes the wake opened by job 1's return
	rec.Enqueued(3)
	rec.Return(2) // job 3 waits: a wake
	rec.Enter(3)
	rec.Return(3)
	select {
	case <-rec.Done():
	default:
		t.Fatal("every job returned but Done is open")
	}
	res := rec.Result("x")
	if res.Wakes != 2 {
		t.Fatalf("wakes = %d, want 2", res.Wakes)
	}
	if res.Wake[2] < 2*time.Millisecond {
		t.Fatalf("wake p99 = %s, want at least the 2ms between job 1's return and job 2's entry", res.Wake[2])
	}
	if res.MaxRunning != 1 || res.Missing != 0 || res.Doubles != 0 {
		t.Fatalf("max running %d, missing %d, doubles %d", res.MaxRunning, res.Missing, res.Doubles)
	}
}

// Two returns while one job waits open one wake, not two.
func TestRecorderOneWakePerWaitingJob(t *testing.T) {
	rec := NewRecorder(make([]time.Duration, 3))
	rec.Enqueued(0)
	rec.Enqueued(1)
	rec.Enter(0)
	rec.Enter(1)
	rec.Enqueued(2)
	rec.Return(0)
	rec.Return(1)
	rec.Enter(2)
	rec.Return(2)
	if res := rec.Result("x"); res.Wakes != 1 {
		t.Fatalf("wakes = %d, want 1", res.Wakes)
	}
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i))
	}
	if got := percentiles(ds, 0.5, 0.95, 0.99); got != [3]time.Duration{50, 95, 99} {
		t.Fatalf("percentiles = %v", got)
	}
	if median([]float64{3, 1, 2}) != 2 || median([]float64{4, 1, 2, 3}) != 2.5 {
		t.Fatal("median")
	}
}
