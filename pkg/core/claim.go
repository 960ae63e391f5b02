package core

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Limits of a claim.
const (
	// MaxClaim bounds the tasks one claim takes (SQS receives at most 10).
	MaxClaim = 10
	// MaxClaimWait bounds how long a claim waits for work, as a mailbox
	// long poll does.
	MaxClaimWait = 20 * time.Second
)

// Worker is who runs tasks of pull pools: a name, which the audit trail
// records on every claim, and the pools it may work in. A worker may claim,
// heartbeat, complete and cancel the tasks of any tenant in its pools, and
// nothing else.
type Worker struct {
	Name  string
	Pools []string
}

// mayWork reports whether w works in pool.
func (w *Worker) mayWork(pool string) bool {
	return slices.Contains(w.Pools, pool)
}

// forbidden is the error of a worker's request for a pool outside its own.
func (w *Worker) forbidden(pool string) error {
	return fmt.Errorf("%w: worker %s does not work in pool %s", ErrForbidden, w.Name, pool)
}

// ClaimRequest asks for up to Max tasks of a pull pool, waiting up to Wait
// for the first.
type ClaimRequest struct {
	Worker Worker
	Pool   string
	Max    int           // 1 to MaxClaim; zero: 1
	Wait   time.Duration // 0 to MaxClaimWait
}

func (r *ClaimRequest) validate() error {
	switch {
	case r.Worker.Name == "":
		return Invalid("worker", "worker name is required")
	case r.Max < 0 || r.Max > MaxClaim:
		return Invalid("max", "max must be 1-%d, got %d", MaxClaim, r.Max)
	case r.Wait < 0 || r.Wait > MaxClaimWait:
		return Invalid("wait", "wait must be 0-%s, got %s", MaxClaimWait, r.Wait)
	case !r.Worker.mayWork(r.Pool):
		return r.Worker.forbidden(r.Pool)
	}
	return nil
}

// Claim starts up to req.Max parked tasks of a pull pool for req.Worker and
// returns them running, each with its lease and payload. A claim is the
// start: under the pool's capacity, never at or after a task's deadline,
// fair between tenants as the parking queue is, and never the same task
// for two claims (each start is a compare-and-set of the parked task).
// With nothing to start it waits up to req.Wait, then returns no task and
// no error. A permit pool is ErrInvalidState: its tasks start on their own.
func (s *Scheduler) Claim(ctx context.Context, req ClaimRequest) ([]Task, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	if req.Max == 0 {
		req.Max = 1
	}
	p, err := s.readPool(ctx, req.Pool)
	if err != nil {
		return nil, err
	}
	if !p.Pulls() {
		return nil, fmt.Errorf("%w: pool %s is a permit pool: its tasks start without claims", ErrInvalidState, req.Pool)
	}
	got, err := s.claimNow(ctx, req.Pool, req.Max, &req.Worker)
	if err != nil || len(got) > 0 || req.Wait == 0 {
		return got, err
	}

	// Wait on the caller's wall-clock time, as a mailbox long poll does: a
	// park or a freed slot in this process signals at once; the poll finds
	// what other processes parked or freed. The wait's end ends only the
	// waiting: a receive or a start in flight runs on the request's context
	// to its end, so that no message is left received and unhandled (a
	// queue hides it for its visibility timeout, and on SQS FIFO blocks its
	// tenant's group meanwhile).
	waiting, cancel := context.WithTimeout(ctx, req.Wait)
	defer cancel()
	changed, stop := s.claimers.Watch(req.Pool)
	defer stop()
	poll := time.NewTicker(s.cfg.MailboxPoll)
	defer poll.Stop()
	lp, longPolls := s.b.(QueueLongPoller)
	for {
		// Try after subscribing, so that no park slips between the two.
		got, err := s.claimNow(ctx, req.Pool, req.Max, &req.Worker)
		if err == nil && len(got) == 0 && longPolls {
			got, err = s.claimLongPoll(ctx, waiting, lp, req)
		}
		if err != nil || len(got) > 0 {
			return got, err
		}
		select {
		case <-waiting.Done():
			return nil, ctx.Err()
		case <-changed:
		case <-poll.C:
		}
	}
}

// claimNow starts up to max parked tasks of pool for w, without waiting.
// Tasks it started are returned even with an error, which is then only
// logged: their starts are committed, and the claimer holds their leases.
func (s *Scheduler) claimNow(ctx context.Context, pool string, max int, w *Worker) ([]Task, error) {
	got, err := s.startQueued(ctx, pool, max, time.Time{}, w)
	return s.claimed(ctx, pool, w, got, err)
}

// claimed is what a claim of pool for w answers after starting got with
// err: the tasks it started, even if it stopped early (their starts are
// committed, and the claimer holds their leases: err is then only logged),
// else err.
func (s *Scheduler) claimed(ctx context.Context, pool string, w *Worker, got []Task, err error) ([]Task, error) {
	if err != nil && len(got) > 0 {
		s.log.WarnContext(ctx, "claim stopped early", "pool", pool, "worker", w.Name, "started", len(got), "err", err)
		err = nil
	}
	return got, err
}

// claimLongPoll waits on the pool's queue itself for a claim (a
// QueueLongPoller's long poll, up to the end of waiting) when the pool has
// free slots, and starts what arrives for the claimer, on ctx. It returns
// at once, with nothing, when the pool is full: a slot frees by a release,
// which the claim's signal or poll notices.
func (s *Scheduler) claimLongPoll(ctx, waiting context.Context, lp QueueLongPoller, req ClaimRequest) ([]Task, error) {
	p, err := s.readPool(ctx, req.Pool)
	if err != nil {
		return nil, err
	}
	free := p.Capacity - p.Running
	left, ok := waiting.Deadline()
	wait := time.Until(left).Truncate(time.Second)
	if free <= 0 || !ok || wait < time.Second {
		return nil, nil
	}
	ds, err := lp.ReceiveWait(ctx, req.Pool, min(free, req.Max), min(wait, MaxClaimWait))
	if err != nil || len(ds) == 0 {
		return nil, err
	}
	got, _, err := s.startDeliveries(ctx, p, ds, time.Time{}, &req.Worker)
	return s.claimed(ctx, req.Pool, &req.Worker, got, err)
}

// claimDetail is the audit detail of a start for a claimer.
func claimDetail(w *Worker) string {
	if w == nil {
		return ""
	}
	return "claimed by " + w.Name
}

// WaitTask returns tenant's task id once it is no longer parked, waiting up
// to wait for it to start or end (a task that stays parked is returned as
// it is when the wait runs out); with wait 0, at once. Many callers that
// share one recipient can each wait for their own task this way without
// taking each other's mailbox messages. It answers the tenant: a task of a
// pull or push pool comes without its lease, which the claiming worker or
// the pool's target holds (tenantView).
func (s *Scheduler) WaitTask(ctx context.Context, tenant, id string, wait time.Duration) (Task, error) {
	t, err := s.waitTask(ctx, tenant, id, wait)
	if err != nil {
		return Task{}, err
	}
	return s.tenantView(ctx, t, nil)
}

// waitTask is WaitTask with the task as stored.
func (s *Scheduler) waitTask(ctx context.Context, tenant, id string, wait time.Duration) (Task, error) {
	if wait < 0 || wait > MaxMailboxWait {
		return Task{}, Invalid("wait", "wait must be 0-%s, got %s", MaxMailboxWait, wait)
	}
	t, err := s.tenantTask(ctx, tenant, id)
	if err != nil || t.State != StateParked || wait == 0 {
		return t, err
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	changed, stop := s.tasks.Watch(id)
	defer stop()
	poll := time.NewTicker(s.cfg.MailboxPoll)
	defer poll.Stop()
	for {
		cur, err := s.tenantTask(ctx, tenant, id)
		switch {
		case err != nil && ctx.Err() != nil:
			return t, nil
		case err != nil:
			return Task{}, err
		case cur.State != StateParked:
			return cur, nil
		}
		t = cur
		select {
		case <-ctx.Done():
			return t, nil
		case <-changed:
		case <-poll.C:
		}
	}
}
