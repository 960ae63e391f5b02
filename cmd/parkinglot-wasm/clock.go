package main

import (
	"sync"
	"time"
)

// browserClock is the browser's wall clock at the resolution of its
// monotonic one. Under js/wasm, time.Now's wall reading comes from Date
// (milliseconds) and its monotonic reading from performance.now
// (microseconds or finer): a burst of transitions would share one
// millisecond, and a wake latency measured on the wall clock would be 0 or
// 1 ms. This clock reads the wall clock once and advances it by the
// monotonic clock; it takes the wall clock again when the two drift more
// than a second apart (the machine slept, or its clock was set).
type browserClock struct {
	mu   sync.Mutex
	base time.Time // a time.Now reading: wall and monotonic
}

// maxDrift is how far the clock may run from the wall clock before it is
// set to it again.
const maxDrift = time.Second

func newBrowserClock() *browserClock { return &browserClock{base: time.Now()} }

// Now returns the current UTC time.
func (c *browserClock) Now() time.Time {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.base.Add(now.Sub(c.base)) // the base's wall, advanced monotonically
	if d := t.Round(0).Sub(now.Round(0)); d > maxDrift || d < -maxDrift {
		c.base, t = now, now
	}
	return t.UTC()
}
