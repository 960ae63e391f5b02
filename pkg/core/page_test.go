package core_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

// TestMessageBytesCountsJSON: a message's size is its text as the API
// writes it (encoding/json without HTML escaping), so a page's response
// stays within MaxPageBytes plus its fixed fields.
func TestMessageBytesCountsJSON(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "tab\tnew\nline\r\b\f", "\x00\x01\x1f\x7f",
		"<html> & co", "é ü 日本 🙂", "\u2028\u2029", "bad \xff\xfe byte", "\xe2\x80"} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(s))
		want := buf.Len() - 1 // the newline
		m := core.Message{Error: s}
		base := core.MessageBytes(&core.Message{})
		require.Equal(t, want-2, core.MessageBytes(&m)-base, "%q", s)
	}
	m := core.Message{Result: json.RawMessage(`{"a":[1,2]}`)}
	require.Equal(t, len(m.Result), core.MessageBytes(&m)-core.MessageBytes(&core.Message{}))
}

func TestPageFits(t *testing.T) {
	t.Parallel()
	require.True(t, core.PageFits(0, 0, core.MaxPageBytes*2), "the first entry always fits")
	require.True(t, core.PageFits(3, core.MaxPageBytes-10, 10))
	require.False(t, core.PageFits(3, core.MaxPageBytes-10, 11))
}

// greedy is a backend whose mailbox and audit reads ignore PageFits and
// return up to the limit by count, as a store that does not stop would.
type greedy struct{ core.Backend }

func (g greedy) Messages(ctx context.Context, tenant, recipient string, after core.Cursor, limit int) ([]core.Message, error) {
	var out []core.Message
	for len(out) < limit {
		page, err := g.Backend.Messages(ctx, tenant, recipient, after, limit-len(out))
		if err != nil || len(page) == 0 {
			return out, err
		}
		out = append(out, page...)
		after = page[len(page)-1].Cursor
	}
	return out, nil
}

func (g greedy) Events(ctx context.Context, q core.AuditQuery) ([]core.Event, error) {
	var out []core.Event
	limit := q.Limit
	for len(out) < limit {
		q.Limit = limit - len(out)
		page, err := g.Backend.Events(ctx, q)
		if err != nil || len(page) == 0 {
			return out, err
		}
		out = append(out, page...)
		last := page[len(page)-1]
		q.After = core.AuditCursor{At: last.At, Seq: last.Seq}
	}
	return out, nil
}

// TestPagesEndByContent: Mailbox and Audit cut a page by content even over
// a store that does not, and next goes on from the cut with nothing lost
// or repeated.
func TestPagesEndByContent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := core.NewStubClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	inner := memstore.New(memstore.Options{Clock: clock})
	result := json.RawMessage(`"` + strings.Repeat("r", core.MaxResultBytes-2) + `"`)
	detail := strings.Repeat("d", 15<<10) // events core writes are far smaller
	const n, events = 40, 300             // 5 MiB of messages, 4.4 MiB of events
	for i := range events {
		at := clock.Now()
		id := fmt.Sprintf("t%03d", i)
		txn := &core.Txn{Events: []core.Event{{At: at, Tenant: "acme", Pool: "p", TaskID: id, Type: core.EventComplete, Detail: detail}}}
		if i < n {
			txn.Messages = []core.Message{{Tenant: "acme", Recipient: "box", TaskID: id, Pool: "p", Type: "succeeded", Result: result, At: at}}
		}
		require.NoError(t, inner.Commit(ctx, txn))
		clock.Advance(time.Millisecond)
	}
	for name, b := range map[string]core.Backend{"greedy": greedy{inner}, "memstore": inner} {
		t.Run(name, func(t *testing.T) {
			s, err := core.New(core.Config{Backend: b, Clock: clock})
			require.NoError(t, err)
			var msgs []core.Message
			var after core.Cursor
			for range n + 1 {
				page, err := s.Mailbox(ctx, core.MailboxRequest{Tenant: "acme", Recipient: "box", After: after, Limit: core.MaxPageLimit})
				require.NoError(t, err)
				if len(page.Messages) == 0 {
					require.Equal(t, after, page.Next)
					break
				}
				total := 0
				for i := range page.Messages {
					total += core.MessageBytes(&page.Messages[i])
				}
				require.LessOrEqual(t, total, core.MaxPageBytes)
				require.Equal(t, page.Messages[len(page.Messages)-1].Cursor, page.Next)
				msgs = append(msgs, page.Messages...)
				after = page.Next
			}
			require.Len(t, msgs, n)
			for i, m := range msgs {
				require.Equal(t, fmt.Sprintf("t%03d", i), m.TaskID)
			}

			var evs []core.Event
			q := core.AuditQuery{Tenant: "acme", Limit: core.MaxPageLimit}
			for range events + 1 {
				page, err := s.Audit(ctx, q)
				require.NoError(t, err)
				total := 0
				for i := range page.Events {
					total += core.EventBytes(&page.Events[i])
				}
				require.LessOrEqual(t, total, core.MaxPageBytes)
				require.Less(t, len(page.Events), events, "the page ends by content")
				evs = append(evs, page.Events...)
				if page.Next.IsZero() {
					break
				}
				q.After = page.Next
			}
			require.Equal(t, events, len(evs))
			for i, e := range evs {
				require.Equal(t, fmt.Sprintf("t%03d", i), e.TaskID)
			}
		})
	}
}
