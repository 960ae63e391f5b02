package core

import (
	"encoding/base64"
	"encoding/binary"
	"time"
)

// Cursor is a position in a mailbox. Zero is before the first message.
type Cursor uint64

// String encodes the cursor as an opaque token.
func (c Cursor) String() string {
	if c == 0 {
		return ""
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(c))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ParseCursor decodes a token made by Cursor.String. The empty token is zero.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 8 {
		return 0, Invalid("cursor", "malformed cursor %q", clip(s))
	}
	return Cursor(binary.BigEndian.Uint64(b)), nil
}

// AuditCursor is a position in a tenant's audit trail.
type AuditCursor struct {
	At  time.Time
	Seq uint64
}

// IsZero reports whether c is the start of the trail.
func (c AuditCursor) IsZero() bool { return c.At.IsZero() && c.Seq == 0 }

// String encodes the cursor as an opaque token.
func (c AuditCursor) String() string {
	if c.IsZero() {
		return ""
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(c.At.UnixNano()))
	binary.BigEndian.PutUint64(b[8:], c.Seq)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ParseAuditCursor decodes a token made by AuditCursor.String.
func ParseAuditCursor(s string) (AuditCursor, error) {
	if s == "" {
		return AuditCursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return AuditCursor{}, Invalid("after", "malformed cursor %q", clip(s))
	}
	return AuditCursor{
		At:  time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))).UTC(),
		Seq: binary.BigEndian.Uint64(b[8:]),
	}, nil
}

// Covers reports whether the event at position (at, seq) is at or before c,
// that is, was already returned on an earlier page.
func (c AuditCursor) Covers(at time.Time, seq uint64) bool {
	return at.Before(c.At) || at.Equal(c.At) && seq <= c.Seq
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
