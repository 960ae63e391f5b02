package core

import (
	"math"
	"sync"
	"time"
)

// MinTime and MaxTime bound the times core takes from outside (a deadline,
// an audit range): the instants that nanoseconds since the Unix epoch in an
// int64, as stores keep them, can name. The zero time.Time lies outside:
// core takes it for a time left out.
var (
	MinTime = time.Unix(0, 0).UTC()
	MaxTime = time.Unix(0, math.MaxInt64).UTC()
)

// Clock tells the time. Core reads time only through a Clock.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock, in UTC.
type SystemClock struct{}

// Now returns the current UTC time.
func (SystemClock) Now() time.Time { return time.Now().UTC() }

// StubClock is a Clock for tests: it stands still until told to move.
// It is safe for concurrent use.
type StubClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewStubClock returns a StubClock reading t.
func NewStubClock(t time.Time) *StubClock { return &StubClock{now: t.UTC()} }

// Now returns the stub's current time.
func (c *StubClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the stub forward by d.
func (c *StubClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Set moves the stub to t.
func (c *StubClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t.UTC()
	c.mu.Unlock()
}
