package core

import (
	"context"
	"time"
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
	next := req.After
	if len(msgs) > 0 {
		next = msgs[len(msgs)-1].Cursor
	}
	return MailboxPage{Messages: msgs, Next: next}, nil
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
