package core

import (
	"context"
	"time"
	"unicode/utf8"
)

// MailboxRequest reads a recipient's mailbox.
type MailboxRequest struct {
	Tenant    string
	Recipient string
	After     Cursor
	Limit     int           // zero: DefaultPageLimit
	Wait      time.Duration // long poll: wait up to this long for a message
}

// MailboxPage is one page of a mailbox.
type MailboxPage struct {
	Messages []Message
	// Next is the cursor to pass as After for the following page.
	Next Cursor
}

func validRecipient(tenant, recipient string) error {
	switch {
	case tenant == "":
		return Invalid("tenant", "tenant is required")
	case recipient == "" || len(recipient) > maxRecipientLen:
		return Invalid("recipient", "recipient must be 1-%d bytes", maxRecipientLen)
	}
	return nil
}

// Mailbox returns the recipient's messages after req.After that are not
// acknowledged, waiting up to req.Wait for one if there are none.
func (s *Scheduler) Mailbox(ctx context.Context, req MailboxRequest) (MailboxPage, error) {
	if err := validRecipient(req.Tenant, req.Recipient); err != nil {
		return MailboxPage{}, err
	}
	switch {
	case req.Limit < 0 || req.Limit > MaxPageLimit:
		return MailboxPage{}, Invalid("limit", "limit must be 1-%d, got %d", MaxPageLimit, req.Limit)
	case req.Wait < 0 || req.Wait > MaxMailboxWait:
		return MailboxPage{}, Invalid("wait", "wait must be 0-%s, got %s", MaxMailboxWait, req.Wait)
	}
	if req.Limit == 0 {
		req.Limit = DefaultPageLimit
	}
	page, err := s.mailboxPage(ctx, req)
	if err != nil || len(page.Messages) > 0 || req.Wait == 0 {
		return page, err
	}

	// Long poll. This waits on the caller's wall-clock time, not on the
	// scheduler's Clock: it bounds how long a connection is held.
	ctx, cancel := context.WithTimeout(ctx, req.Wait)
	defer cancel()
	var changed <-chan struct{}
	if w, ok := s.b.(MailboxWatcher); ok {
		ch, stop := w.WatchMailbox(req.Tenant, req.Recipient)
		defer stop()
		changed = ch
	}
	poll := time.NewTicker(s.cfg.MailboxPoll)
	defer poll.Stop()
	for {
		// Read after subscribing, so that no message slips between the two.
		page, err := s.mailboxPage(ctx, req)
		if err != nil || len(page.Messages) > 0 {
			return page, err
		}
		select {
		case <-ctx.Done():
			return page, nil
		case <-changed:
		case <-poll.C:
		}
	}
}

func (s *Scheduler) mailboxPage(ctx context.Context, req MailboxRequest) (MailboxPage, error) {
	msgs, err := s.b.Messages(ctx, req.Tenant, req.Recipient, req.After, req.Limit)
	if err != nil {
		if ctx.Err() != nil && req.Wait > 0 {
			return MailboxPage{Next: req.After}, nil
		}
		return MailboxPage{}, err
	}
	// Stores stop at the first message that does not fit; this holds the
	// rule for one that does not.
	total := 0
	for i := range msgs {
		size := MessageBytes(&msgs[i])
		if i >= req.Limit || !PageFits(i, total, size) {
			msgs = msgs[:i]
			break
		}
		total += size
	}
	next := req.After
	if len(msgs) > 0 {
		next = msgs[len(msgs)-1].Cursor
	}
	return MailboxPage{Messages: msgs, Next: next}, nil
}

// PageFits reports whether an entry of size bytes (MessageBytes or
// EventBytes) may join a page of mailbox messages or audit events that
// holds n entries of total bytes: the first entry always does, however
// large; the others while the page stays within MaxPageBytes. A store's
// page read stops at the first entry that does not fit, so that it never
// holds much more than the page, and the page's cursor continues from the
// last entry it holds.
func PageFits(n, total, size int) bool {
	return n == 0 || total+size <= MaxPageBytes
}

// MessageBytes is the size of m as a page counts it: the bytes of its
// payload and result as they are stored, and of its text fields as JSON strings (quoted
// and escaped), so that a page's JSON stays within MaxPageBytes plus a
// small fixed size per message.
func MessageBytes(m *Message) int {
	return len(m.Payload) + len(m.Result) + jsonStringLen(m.Error) + jsonStringLen(m.TaskID) + jsonStringLen(m.Pool) +
		jsonStringLen(string(m.Type)) + jsonStringLen(m.Lease) + jsonStringLen(m.Key) + jsonStringLen(m.Tenant)
}

// jsonStringLen is the length of s encoded as a JSON string by
// encoding/json without HTML escaping: quotes, two-byte escapes, \u00XX for
// other control characters, \ufffd for each invalid byte, \u2028 and \u2029.
func jsonStringLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			switch {
			case b == '"' || b == '\\' || b == '\b' || b == '\f' || b == '\n' || b == '\r' || b == '\t':
				n += 2
			case b < 0x20:
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1, r == '\u2028', r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}

// Ack marks the recipient's messages up to and including upTo as handled:
// they are not returned again.
func (s *Scheduler) Ack(ctx context.Context, tenant, recipient string, upTo Cursor) error {
	if err := validRecipient(tenant, recipient); err != nil {
		return err
	}
	if upTo == 0 {
		return Invalid("upTo", "upTo is required")
	}
	return s.b.Ack(ctx, tenant, recipient, upTo)
}
