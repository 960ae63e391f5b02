package coretest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// ErrInjected is the error a FaultInjector returns for a call it fails.
var ErrInjected = errors.New("coretest: injected fault")

// FaultConfig sets the probability (0 to 1) of each fault a FaultInjector
// injects into the parking queue, the one port that is at-least-once.
type FaultConfig struct {
	// Seed makes the faults reproducible.
	Seed uint64
	// SendTwice enqueues a message twice (a duplicate delivery later).
	SendTwice float64
	// SendFailsAfter enqueues the message, then reports failure.
	SendFailsAfter float64
	// SendLost reports failure without enqueuing the message.
	SendLost float64
	// ReceiveTwice returns one of the received messages twice.
	ReceiveTwice float64
	// DeleteFailsAfter deletes the message, then reports failure.
	DeleteFailsAfter float64
	// CommitFailsAfter applies a transaction, then reports failure, as
	// when a process crashes between its write and its next step.
	CommitFailsAfter float64
}

// FaultInjector wraps a real backend and injects the faults of an
// at-least-once queue and of calls whose outcome the caller does not learn
// (a crash right after a write).
// Everything else goes to the wrapped backend unchanged. It does not pass on
// core.MailboxWatcher: long polls over it poll.
type FaultInjector struct {
	core.Backend

	mu       sync.Mutex
	cfg      FaultConfig
	rng      *rand.Rand
	lost     map[string]bool // task id -> its last send was lost
	injected atomic.Int64
	commits  atomic.Int64 // commits reported failed after the fact
}

var _ core.Backend = (*FaultInjector)(nil)

// NewFaultInjector wraps b.
func NewFaultInjector(b core.Backend, cfg FaultConfig) *FaultInjector {
	f := &FaultInjector{Backend: b, lost: map[string]bool{}}
	f.SetConfig(cfg)
	return f
}

// SetConfig replaces the fault probabilities and reseeds.
func (f *FaultInjector) SetConfig(cfg FaultConfig) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg = cfg
	f.rng = rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
}

// Lost reports whether the last send of task id was lost, so that no queue
// message of it may exist unless an earlier send put one there.
func (f *FaultInjector) Lost(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lost[id]
}

func (f *FaultInjector) setLost(id string, lost bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if lost {
		f.lost[id] = true
	} else {
		delete(f.lost, id)
	}
}

// CommitFaults reports how many commits were reported failed after the fact.
func (f *FaultInjector) CommitFaults() int64 { return f.commits.Load() }

// Injected reports how many faults were injected so far.
func (f *FaultInjector) Injected() int64 { return f.injected.Load() }

// roll reports whether a fault of probability p happens now.
func (f *FaultInjector) roll(p func(FaultConfig) float64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rng.Float64() < p(f.cfg) {
		f.injected.Add(1)
		return true
	}
	return false
}

func (f *FaultInjector) pick(n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.IntN(n)
}

// Send enqueues p, perhaps twice, perhaps not at all, perhaps reporting a
// failure after the fact.
func (f *FaultInjector) Send(ctx context.Context, pool string, p core.Parked) error {
	if f.roll(func(c FaultConfig) float64 { return c.SendLost }) {
		f.setLost(p.TaskID, true)
		return fmt.Errorf("send %s: %w (message lost)", p.TaskID, ErrInjected)
	}
	if err := f.Backend.Send(ctx, pool, p); err != nil {
		return err
	}
	f.setLost(p.TaskID, false)
	if f.roll(func(c FaultConfig) float64 { return c.SendTwice }) {
		if err := f.Backend.Send(ctx, pool, p); err != nil {
			return err
		}
	}
	if f.roll(func(c FaultConfig) float64 { return c.SendFailsAfter }) {
		return fmt.Errorf("send %s: %w (after the fact)", p.TaskID, ErrInjected)
	}
	return nil
}

// Receive returns the wrapped backend's messages, perhaps one of them twice.
func (f *FaultInjector) Receive(ctx context.Context, pool string, max int) ([]core.Delivery, error) {
	ds, err := f.Backend.Receive(ctx, pool, max)
	if err != nil || len(ds) == 0 {
		return ds, err
	}
	if f.roll(func(c FaultConfig) float64 { return c.ReceiveTwice }) {
		ds = append(ds, ds[f.pick(len(ds))])
	}
	return ds, nil
}

// Commit applies txn, perhaps reporting a failure after the fact. A parked
// task written by such a commit has had no queue message sent: it counts as
// lost until a send succeeds.
func (f *FaultInjector) Commit(ctx context.Context, txn *core.Txn) error {
	if err := f.Backend.Commit(ctx, txn); err != nil {
		return err
	}
	if !f.roll(func(c FaultConfig) float64 { return c.CommitFailsAfter }) {
		return nil
	}
	f.commits.Add(1)
	for _, w := range txn.Tasks {
		if w.Task.State == core.StateParked && w.Task.Unsent && w.Expect == 0 {
			f.setLost(w.Task.ID, true)
		}
	}
	return fmt.Errorf("commit: %w (after the fact)", ErrInjected)
}

// Delete deletes the message, perhaps reporting a failure after the fact.
func (f *FaultInjector) Delete(ctx context.Context, pool, receipt string) error {
	if err := f.Backend.Delete(ctx, pool, receipt); err != nil {
		return err
	}
	if f.roll(func(c FaultConfig) float64 { return c.DeleteFailsAfter }) {
		return fmt.Errorf("delete %s: %w (after the fact)", receipt, ErrInjected)
	}
	return nil
}
