package core

import (
	"context"
	"time"
)

// MaxAuditRange bounds the time range of one audit query.
const MaxAuditRange = 31 * 24 * time.Hour

// AuditQuery selects a tenant's audit events.
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
	if q.To.IsZero() {
		q.To = s.clock.Now().Add(time.Nanosecond)
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-24 * time.Hour)
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
	page := AuditPage{Events: evs}
	if len(evs) == q.Limit {
		last := evs[len(evs)-1]
		page.Next = AuditCursor{At: last.At, Seq: last.Seq}
	}
	return page, nil
}
