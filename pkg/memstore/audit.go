package memstore

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// auditLog is one tenant's events in (At, Seq) order.
type auditLog struct {
	mu     sync.Mutex
	events []core.Event
}

func (s *Store) auditLogsOf(evs []core.Event) []itemRef[auditLog] {
	return collect[auditLog](&s.audits, len(evs), func(i int) string { return evs[i].Tenant })
}

// append adds e, numbered seq (greater than every number before it), in
// (At, Seq) order; the caller holds l.mu. Writers' clocks are read before
// their commits, so an event may land slightly out of order: within a
// pool, Commit raises it to the pool's last stamp (core.Txn.StampAfter),
// but the tenant's log holds events of other pools.
func (l *auditLog) append(e core.Event, seq uint64) {
	e.Seq = seq
	n := len(l.events)
	if n == 0 || !e.At.Before(l.events[n-1].At) {
		l.events = append(l.events, e)
		return
	}
	i := sort.Search(n, func(i int) bool { return l.events[i].At.After(e.At) })
	l.events = append(l.events, core.Event{})
	copy(l.events[i+1:], l.events[i:])
	l.events[i] = e
}

// Events answers an audit query; see core.AuditStore.
func (s *Store) Events(_ context.Context, q core.AuditQuery) ([]core.Event, error) {
	l := peek[auditLog](&s.audits, q.Tenant)
	if l == nil {
		return nil, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.events), func(i int) bool {
		e := &l.events[i]
		return !e.At.Before(q.From) && !q.After.Covers(e.At, e.Seq)
	})
	var out []core.Event
	total := 0
	for ; i < len(l.events) && len(out) < q.Limit; i++ {
		e := &l.events[i]
		if !e.At.Before(q.To) {
			break
		}
		if q.After.Covers(e.At, e.Seq) || q.Pool != "" && e.Pool != q.Pool || q.TaskID != "" && e.TaskID != q.TaskID {
			continue
		}
		size := core.EventBytes(e)
		if !core.PageFits(len(out), total, size) {
			break
		}
		total += size
		out = append(out, *e)
	}
	return out, nil
}

// purge drops events before t; the caller holds l.mu.
func (l *auditLog) purge(t time.Time) int {
	n := sort.Search(len(l.events), func(i int) bool { return !l.events[i].At.Before(t) })
	if n > 0 {
		l.events = append(l.events[:0:0], l.events[n:]...)
	}
	return n
}

// Purge removes messages and events past retention.
func (s *Store) Purge(_ context.Context, messagesBefore, eventsBefore time.Time) (int, error) {
	n := 0
	s.mailboxes.Range(func(_, v any) bool {
		b := v.(*mailbox)
		b.mu.Lock()
		n += b.purge(messagesBefore)
		b.mu.Unlock()
		return true
	})
	s.audits.Range(func(_, v any) bool {
		l := v.(*auditLog)
		l.mu.Lock()
		n += l.purge(eventsBefore)
		l.mu.Unlock()
		return true
	})
	return n, nil
}
