package api

import (
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// ParseDuration parses a positive Go duration string ("30s", "5m") given for
// field. A bad value is a *core.InvalidError naming field.
func ParseDuration(field, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, core.Invalid(field, "%s must be a Go duration such as \"30s\" or \"5m\", got %q", field, clipValue(s))
	}
	if d <= 0 {
		return 0, core.Invalid(field, "%s must be positive, got %q", field, clipValue(s))
	}
	return d, nil
}

// ParseTime parses an RFC 3339 time given for field and returns it in UTC.
// It must lie within [core.MinTime, core.MaxTime], the times a store
// represents: so a given time is never the zero time, which core takes for
// a field left out. A bad value is a *core.InvalidError naming field.
func ParseTime(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, core.Invalid(field, "%s must be an RFC 3339 time such as \"2026-01-02T15:04:05.999Z\", got %q", field, clipValue(s))
	}
	if t.Before(core.MinTime) || t.After(core.MaxTime) {
		return time.Time{}, core.Invalid(field, "%s must be from %s to %s, got %q", field,
			core.MinTime.Format(time.RFC3339), core.MaxTime.Format(time.RFC3339Nano), clipValue(s))
	}
	return t.UTC(), nil
}

// clipValue shortens an echoed bad value so that an error stays small.
func clipValue(s string) string {
	const limit = 64
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}
