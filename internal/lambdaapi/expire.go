package lambdaapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Schedule serves expire's scheduled EventBridge event: it runs Sweep
// (expiry of parked tasks past their deadline, reclaim of lapsed leases,
// re-send of unsent outbox entries, a safety-net dispatch of every pool, and
// purge past retention), reports pool gauges, and with Config.SweepEvery
// repeats until SweepFor has passed or the invocation's deadline nears. It
// returns the totals, and the errors of the sweeps joined, so that a failing
// sweep shows in the function's error metric; what it repaired stays done.
func (h *Handler) Schedule(ctx context.Context, ev events.EventBridgeEvent) (core.SweepStats, error) {
	var total core.SweepStats
	var errs []error
	start := time.Now()
	for n := 0; ; n++ {
		st, err := h.s.Sweep(ctx)
		total.Expired += st.Expired
		total.TimedOut += st.TimedOut
		total.Resent += st.Resent
		total.Pushed += st.Pushed
		total.Reconciled += st.Reconciled
		total.Started += st.Started
		total.Purged += st.Purged
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep %d: %w", n+1, err))
		}
		h.log.InfoContext(ctx, "sweep", "event", ev.ID, "expired", st.Expired, "timedOut", st.TimedOut,
			"resent", st.Resent, "pushed", st.Pushed, "reconciled", st.Reconciled, "started", st.Started, "purged", st.Purged, "err", err)
		h.mets.Emit([]string{"Function"}, map[string]string{"Function": string(h.fn)},
			Metric{Name: "Sweeps", Unit: Count, Value: 1},
			Metric{Name: "Expired", Unit: Count, Value: float64(st.Expired)},
			Metric{Name: "TimedOut", Unit: Count, Value: float64(st.TimedOut)},
			Metric{Name: "Resent", Unit: Count, Value: float64(st.Resent)},
			Metric{Name: "Repushed", Unit: Count, Value: float64(st.Pushed)},
			Metric{Name: "Reconciled", Unit: Count, Value: float64(st.Reconciled)},
			Metric{Name: "SweepStarted", Unit: Count, Value: float64(st.Started)},
			Metric{Name: "Purged", Unit: Count, Value: float64(st.Purged)})
		if err := h.poolGauges(ctx); err != nil {
			errs = append(errs, err)
		}
		if !h.sweepAgain(ctx, start) {
			break
		}
	}
	return total, errors.Join(errs...)
}

// sweepAgain waits SweepEvery and reports whether another sweep fits.
func (h *Handler) sweepAgain(ctx context.Context, start time.Time) bool {
	every := h.cfg.SweepEvery
	if every <= 0 || time.Since(start)+every > h.cfg.SweepFor {
		return false
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 2*every {
		return false
	}
	t := time.NewTimer(every)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// poolGauges reports every pool's running, parked and saturation
// (running / capacity), for the pool saturation alarm.
func (h *Handler) poolGauges(ctx context.Context) error {
	pools, err := h.s.Pools(ctx)
	if err != nil {
		return fmt.Errorf("pool gauges: %w", err)
	}
	for _, p := range pools {
		sat := 0.0
		if p.Capacity > 0 {
			sat = 100 * float64(p.Running) / float64(p.Capacity)
		}
		h.mets.Emit([]string{"Pool"}, map[string]string{"Pool": p.Name},
			Metric{Name: "PoolRunning", Unit: Count, Value: float64(p.Running)},
			Metric{Name: "PoolParked", Unit: Count, Value: float64(p.Parked)},
			Metric{Name: "PoolCapacity", Unit: Count, Value: float64(p.Capacity)},
			Metric{Name: "PoolSaturation", Unit: Percent, Value: sat})
	}
	return nil
}
