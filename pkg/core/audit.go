package core

import (
	"context"
	"time"
)

// MaxAuditRange bounds the time range of one audit query.
const MaxAuditRange = 31 * 24 * time.Hour

// AuditQuery selects a tenant's audit events. A zero From or To is left out
// (see Audit); a given one lies within [MinTime, MaxTime].
type AuditQuery struct {
	Tenant string
	From   time.Time // inclusive
	To     time.Time // exclusive
	Pool   string    // optional filter
	TaskID string    // optional filter
	After  AuditCursor
	Limit  int // zero: DefaultPageLimit
}

// AuditPage is one page of audit events.
type AuditPage struct {
	Events []Event
	// Next is the cursor of the following page; zero when this one is the last.
	Next AuditCursor
}

// Audit returns a page of the tenant's events in [From, To), oldest first.
// A zero To means now; a zero From means To minus 24 hours.
func (s *Scheduler) Audit(ctx context.Context, q AuditQuery) (AuditPage, error) {
	if q.Tenant == "" {
		return AuditPage{}, Invalid("tenant", "tenant is required")
	}
	switch {
	case !q.From.IsZero() && (q.From.Before(MinTime) || q.From.After(MaxTime)):
		return AuditPage{}, Invalid("from", "from must be from %s to %s", MinTime.Format(time.RFC3339), MaxTime.Format(time.RFC3339Nano))
	case !q.To.IsZero() && (q.To.Before(MinTime) || q.To.After(MaxTime)):
		return AuditPage{}, Invalid("to", "to must be from %s to %s", MinTime.Format(time.RFC3339), MaxTime.Format(time.RFC3339Nano))
	}
	if q.To.IsZero() {
		q.To = s.clock.Now().Add(time.Nanosecond)
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-24 * time.Hour)
		if q.From.Before(MinTime) {
			q.From = MinTime // nothing lies before it
		}
	}
	switch {
	case !q.From.Before(q.To):
		return AuditPage{}, Invalid("from", "from must be before to")
	case q.To.Sub(q.From) > MaxAuditRange:
		return AuditPage{}, Invalid("to", "the range must be at most %s", MaxAuditRange)
	case q.Limit < 0 || q.Limit > MaxPageLimit:
		return AuditPage{}, Invalid("limit", "limit must be 1-%d, got %d", MaxPageLimit, q.Limit)
	}
	if q.Limit == 0 {
		q.Limit = DefaultPageLimit
	}
	evs, err := s.b.Events(ctx, q)
	if err != nil {
		return AuditPage{}, err
	}
	// A page is full at q.Limit events, or when it might have ended before
	// an event that did not fit (stores stop there; this holds the rule for
	// one that does not).
	full := len(evs) >= q.Limit
	total := 0
	for i := range evs {
		size := EventBytes(&evs[i])
		if i >= q.Limit || !PageFits(i, total, size) {
			evs, full = evs[:i], true
			break
		}
		total += size
	}
	page := AuditPage{Events: evs}
	if len(evs) > 0 && (full || !PageFits(len(evs), total, maxEventBytes)) {
		last := evs[len(evs)-1]
		page.Next = AuditCursor{At: last.At, Seq: last.Seq}
	}
	return page, nil
}

// maxEventBytes bounds EventBytes of the events core writes: a tenant of at
// most 128 bytes, a pool name of at most 64, a task id, state and event
// names, and a detail of a few words, even if every byte were escaped.
const maxEventBytes = 16 << 10

// EventBytes is the size of e as a page counts it: its text fields as JSON
// strings (see MessageBytes and PageFits).
func EventBytes(e *Event) int {
	return jsonStringLen(e.Tenant) + jsonStringLen(e.Pool) + jsonStringLen(e.TaskID) + jsonStringLen(e.Type) +
		jsonStringLen(string(e.From)) + jsonStringLen(string(e.To)) + jsonStringLen(e.Detail)
}
