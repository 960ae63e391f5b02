package core

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []Cursor{0, 1, 255, 1 << 40, math.MaxUint64} {
		got, err := ParseCursor(c.String())
		require.NoError(t, err)
		require.Equal(t, c, got)
	}
	require.Empty(t, Cursor(0).String())
	for _, bad := range []string{"!", "AAAA", "AAAAAAAAAAAAAAAA", "AAAAAAAAAA=", "a b"} {
		_, err := ParseCursor(bad)
		requireField(t, err, "cursor")
	}
}

func TestAuditCursor(t *testing.T) {
	t.Parallel()
	for _, c := range []AuditCursor{
		{},
		{At: t0, Seq: 0},
		{At: t0.Add(123 * time.Nanosecond), Seq: 7},
		{At: time.Unix(0, 0).UTC(), Seq: math.MaxUint64},
		{At: time.Unix(0, -1).UTC(), Seq: 1},
	} {
		got, err := ParseAuditCursor(c.String())
		require.NoError(t, err)
		require.True(t, c.At.Equal(got.At), "%v", c)
		require.Equal(t, c.Seq, got.Seq)
		require.Equal(t, c.IsZero(), got.IsZero())
	}
	c := AuditCursor{At: t0, Seq: 5}
	require.True(t, c.Covers(t0.Add(-1), 99))
	require.True(t, c.Covers(t0, 5))
	require.True(t, c.Covers(t0, 4))
	require.False(t, c.Covers(t0, 6))
	require.False(t, c.Covers(t0.Add(1), 0))
	require.False(t, AuditCursor{}.Covers(t0, 0), "the zero cursor covers nothing")
	_, err := ParseAuditCursor("short")
	requireField(t, err, "after")
}

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"", Cursor(1).String(), Cursor(math.MaxUint64).String(), "!!!!", "AAAAAAAAAAA", "AAAAAAAAAAB", "AAAAAAAAAAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			requireField(t, err, "cursor")
			require.Zero(t, c)
			return
		}
		again, err := ParseCursor(c.String())
		require.NoError(t, err)
		require.Equal(t, c, again)
		if s != "" && c != 0 {
			require.Len(t, c.String(), 11)
		}
	})
}

func FuzzParseAuditCursor(f *testing.F) {
	for _, s := range []string{"", (AuditCursor{At: t0, Seq: 3}).String(), "!!", "AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAB", "AAAAAAAAAAAAAAAAAAAAAAA", "////////////////////////"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseAuditCursor(s)
		if err != nil {
			requireField(t, err, "after")
			require.True(t, c.IsZero())
			return
		}
		again, err := ParseAuditCursor(c.String())
		require.NoError(t, err)
		require.True(t, c.At.Equal(again.At), "%v vs %v", c, again)
		require.Equal(t, c.Seq, again.Seq)
		require.Equal(t, time.UTC, c.At.Location())
	})
}
