package loadtest

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
)

// Report is what a run measured and what the independent observer found.
type Report struct {
	Submitted int // submissions answered with a task (accepted or rejected)
	Accepted  int // of them, parked or running at submit
	Rejected  int // of them, rejected at submit (pool full)
	ShortWait int // of them, submitted with the short maxWait
	Started   int // tasks with a started message
	Completed int // completions acknowledged by the server
	Crashed   int // started tasks whose worker never completed them
	LeaseLost int // completions refused because the lease had ended first
	// Outcomes counts first outcome messages by type.
	Outcomes map[string]int
	Elapsed  time.Duration
	// LifecyclesPerSec is tasks that reached an outcome per second.
	LifecyclesPerSec float64
	// Wake is the server-side wake latency, from the audit trail.
	Wake WakeStats
	// Delivery is the time from a task's start to its worker's receipt of
	// the started message (long poll and client side included).
	Delivery WakeStats

	// The independent observer's findings, by the workers' own clocks.

	// OverCapacity counts the instants at which more intervals of a pool
	// overlapped than its capacity; MaxOverlap is the most seen per pool.
	OverCapacity int
	MaxOverlap   map[string]int
	// NoOutcome, DupOutcome: tasks with no outcome message, and with more
	// than one, in the mailboxes after the final drain.
	NoOutcome  int
	DupOutcome int
	// DupStarts: tasks with more than one started message.
	DupStarts int
	// LateStarts: tasks started at or after their deadline.
	LateStarts int
	// Errors are the first few request errors.
	Errors []string

	// Read is every mailbox message the workers and the final drain read,
	// in the order each mailbox gave them, with the index of the tenant
	// (token) that read it; CompletedIDs names every task whose completion
	// the server acknowledged. A check of the store after the run holds
	// them against what it kept.
	Read         []ReadMessage
	CompletedIDs []string
}

// ReadMessage is one mailbox message as a worker read it.
type ReadMessage struct {
	Tenant    int
	Recipient string
	api.Message
}

// WakeStats summarises latencies. For Report.Wake: slot freed (a running
// task of the pool reached a terminal state while the pool had parked
// work) to the next parked task of the pool started.
type WakeStats struct {
	N             int
	P50, P95, P99 time.Duration
	Max           time.Duration
}

// OK reports whether the observer found no violation of the invariants.
func (r Report) OK() bool {
	return r.OverCapacity == 0 && r.NoOutcome == 0 && r.DupOutcome == 0 && r.DupStarts == 0 && r.LateStarts == 0
}

func (r *run) report(elapsed time.Duration) Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := Report{Outcomes: map[string]int{}, Elapsed: elapsed, MaxOverlap: map[string]int{},
		Read: slices.Clone(r.read), CompletedIDs: slices.Clone(r.completed)}
	type edge struct {
		at    time.Duration
		delta int
	}
	edges := map[string][]edge{}
	var deliveries []time.Duration
	for _, tk := range r.tasks {
		if tk.submitted {
			rep.Submitted++
		}
		if tk.short {
			rep.ShortWait++
		}
		switch {
		case len(tk.outcomes) == 0:
			if tk.submitted {
				rep.NoOutcome++
			}
		case len(tk.outcomes) > 1:
			rep.DupOutcome++
		}
		if len(tk.outcomes) > 0 {
			rep.Outcomes[tk.outcomes[0]]++
			if tk.outcomes[0] == "rejected" && tk.starts == 0 {
				rep.Rejected++
			}
		}
		if tk.starts == 0 {
			continue
		}
		rep.Started++
		deliveries = append(deliveries, tk.delivery)
		if tk.starts > 1 {
			rep.DupStarts++
		}
		if tk.crash {
			rep.Crashed++
		}
		if !tk.deadline.IsZero() && !tk.startAt.Before(tk.deadline) {
			rep.LateStarts++
		}
		edges[tk.pool] = append(edges[tk.pool], edge{tk.recv, +1}, edge{tk.end, -1})
	}
	rep.Accepted = rep.Submitted - rep.Rejected
	rep.Delivery = summarize(deliveries)
	rep.Completed = int(r.completes.Load())
	rep.LeaseLost = int(r.leaseLost.Load())
	ended := 0
	for _, n := range rep.Outcomes {
		ended += n
	}
	if elapsed > 0 {
		rep.LifecyclesPerSec = float64(ended) / elapsed.Seconds()
	}
	for pool, es := range edges {
		// At equal instants, ends before starts: a slot handed over at
		// one instant is not an overlap.
		slices.SortFunc(es, func(a, b edge) int {
			return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.delta, b.delta))
		})
		capacity := r.pools[pool].Capacity
		n := 0
		for _, e := range es {
			n += e.delta
			if n > capacity {
				rep.OverCapacity++
			}
			rep.MaxOverlap[pool] = max(rep.MaxOverlap[pool], n)
		}
	}
	return rep
}

// wakeLatency reads every tenant's audit trail of the run's tasks and pairs each
// freed slot of a pool that had parked work with the pool's next
// parked->running start.
func (r *run) wakeLatency(ctx context.Context) (WakeStats, error) {
	byPool := map[string][]auditEvent{}
	from := r.t0.Add(-time.Minute)
	to := time.Now().Add(time.Minute)
	for _, t := range r.tenants {
		after := ""
		for {
			page, err := t.c.Audit(ctx, client.AuditQuery{From: from, To: to, After: after, Limit: 1000})
			if err != nil {
				return WakeStats{}, err
			}
			r.mu.Lock()
			for _, e := range page.Events {
				// Only this run's tasks: the tenants may have others.
				if _, ours := r.tasks[e.TaskID]; ours {
					byPool[e.Pool] = append(byPool[e.Pool], auditEvent{e.At, e.From, e.To})
				}
			}
			r.mu.Unlock()
			if page.Next == "" || len(page.Events) == 0 {
				break
			}
			after = page.Next
		}
	}
	var lat []time.Duration
	for _, es := range byPool {
		slices.SortStableFunc(es, func(a, b auditEvent) int { return a.at.Compare(b.at) })
		lat = append(lat, pairWakes(es)...)
	}
	return summarize(lat), nil
}

// auditEvent is the part of an audit event wake pairing reads.
type auditEvent struct {
	at       time.Time
	from, to string
}

// pairWakes pairs each slot freed while work was parked (a running task
// reaching a terminal state) with the pool's next parked->running start,
// oldest first, over one pool's events in time order.
func pairWakes(es []auditEvent) []time.Duration {
	var lat []time.Duration
	parked := 0
	var freed []time.Time
	for _, e := range es {
		switch {
		case e.from == "" && e.to == "parked":
			parked++
		case e.from == "parked" && e.to == "running":
			parked--
			if len(freed) > 0 {
				lat = append(lat, e.at.Sub(freed[0]))
				freed = freed[1:]
			}
		case e.from == "parked":
			parked-- // expired or cancelled while parked
		case e.from == "running" && e.to != "running":
			if parked > 0 {
				freed = append(freed, e.at)
			}
		}
	}
	return lat
}

func summarize(d []time.Duration) WakeStats {
	if len(d) == 0 {
		return WakeStats{}
	}
	slices.Sort(d)
	q := func(p float64) time.Duration {
		i := int(p*float64(len(d))+0.5) - 1
		return d[min(max(i, 0), len(d)-1)]
	}
	return WakeStats{N: len(d), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: d[len(d)-1]}
}

// Print writes the report for a person.
func (r Report) Print(w io.Writer) {
	fmt.Fprintf(w, "submitted %d (accepted %d, rejected at submit %d) in %s\n", r.Submitted, r.Accepted, r.Rejected, r.Elapsed.Round(time.Millisecond))
	if r.ShortWait > 0 {
		fmt.Fprintf(w, "submitted with the short maxWait: %d\n", r.ShortWait)
	}
	fmt.Fprintf(w, "started %d, completed %d, crashed %d (lease timed out), completions refused as lease lost %d\n", r.Started, r.Completed, r.Crashed, r.LeaseLost)
	var outs []string
	for k, v := range r.Outcomes {
		outs = append(outs, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(outs)
	fmt.Fprintf(w, "outcomes: %s\n", strings.Join(outs, ", "))
	fmt.Fprintf(w, "lifecycles/s: %.0f\n", r.LifecyclesPerSec)
	fmt.Fprintf(w, "wake latency (server, from the audit trail; %d wakes): p50 %s  p95 %s  p99 %s  max %s\n",
		r.Wake.N, r.Wake.P50, r.Wake.P95, r.Wake.P99, r.Wake.Max)
	fmt.Fprintf(w, "started message delivery (start to worker receipt): p50 %s  p95 %s  p99 %s  max %s\n",
		r.Delivery.P50, r.Delivery.P95, r.Delivery.P99, r.Delivery.Max)
	fmt.Fprintln(w, "independent observer (workers' own timestamps):")
	fmt.Fprintf(w, "  over-capacity starts: %d (max overlap by pool: %v)\n", r.OverCapacity, r.MaxOverlap)
	fmt.Fprintf(w, "  tasks without exactly one outcome: %d (none %d, more than one %d); duplicate starts: %d\n",
		r.NoOutcome+r.DupOutcome, r.NoOutcome, r.DupOutcome, r.DupStarts)
	fmt.Fprintf(w, "  late starts (at or after the deadline): %d\n", r.LateStarts)
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "request errors:\n  %s\n", strings.Join(r.Errors, "\n  "))
	}
}
