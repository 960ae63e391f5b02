package main

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// What survives a reload (the worker keeps it in IndexedDB and gives it
// back to restore when it starts): every mailbox message and audit event
// within retention, with its cursor and sequence number as before, and
// every mailbox's acknowledged cursor. A reader's cursor from before the
// reload reads on where it was.
//
// What does not: pools (each start gives its own), tasks, idempotency
// keys and parked work. A task that was parked or running when the last
// worker of the origin went away has no outcome after it; its started
// message (and the events up to then) are there, its end is not.

// restoreArgs is what the worker read from IndexedDB.
type restoreArgs struct {
	Messages []core.Message `json:"messages"`
	Events   []core.Event   `json:"events"`
	Acks     []keptAck      `json:"acks"`
	// MailboxRetention and AuditRetention bound what is restored;
	// default core.DefaultMailboxRetention and core.DefaultAuditRetention.
	MailboxRetention string `json:"mailboxRetention,omitempty"`
	AuditRetention   string `json:"auditRetention,omitempty"`
}

// restoreResult tells the worker what to delete from IndexedDB: records
// past retention, which restore left out.
type restoreResult struct {
	// DropMessages maps a recipient to the cursor up to which its
	// messages are past retention.
	DropMessages map[string]core.Cursor `json:"dropMessages"`
	// DropEvents is the Seq up to which events are past retention.
	DropEvents uint64 `json:"dropEvents"`
	Messages   int    `json:"messages"`
	Events     int    `json:"events"`
}

// restore loads kept mailboxes and audit events into an engine that has
// committed nothing yet, keeping their cursors and sequence numbers. It
// leaves out what is past retention (the sweeper does not purge in this
// runtime: see newEngine), as a prefix of each mailbox and of the trail,
// so that the cursors of what remains stay as they were.
func (e *engine) restore(args []byte) (any, error) {
	var in restoreArgs
	err := decode(args, &in)
	if err != nil {
		return nil, err
	}
	w := e.store
	w.mu.Lock()
	committed := w.committed
	w.mu.Unlock()
	if committed {
		return nil, fmt.Errorf("%w: restore must come before any other write", core.ErrInvalidState)
	}
	keepMail, keepAudit := core.DefaultMailboxRetention, core.DefaultAuditRetention
	if in.MailboxRetention != "" {
		if keepMail, err = api.ParseDuration("retention.mailbox", in.MailboxRetention); err != nil {
			return nil, err
		}
	}
	if in.AuditRetention != "" {
		if keepAudit, err = api.ParseDuration("retention.audit", in.AuditRetention); err != nil {
			return nil, err
		}
	}
	now := e.s.Clock().Now()
	msgCutoff := now.Add(-keepMail)
	evCutoff := now.Add(-keepAudit)
	res := restoreResult{DropMessages: map[string]core.Cursor{}}

	// Each mailbox in cursor order; the memory store numbers messages from
	// 1, so a mailbox whose first kept cursor is c starts with c-1
	// placeholders, purged at once below.
	byBox := map[string][]core.Message{}
	for _, m := range in.Messages {
		if m.Tenant != tenant || m.Recipient == "" || m.Cursor == 0 {
			return nil, core.Invalid("messages", "a kept message must have tenant %q, a recipient and a cursor", tenant)
		}
		m.Result = api.RawJSON(m.Result) // a message without one was kept as null
		m.Payload = api.RawJSON(m.Payload)
		byBox[m.Recipient] = append(byBox[m.Recipient], m)
	}
	txn := &core.Txn{}
	for _, r := range slices.Sorted(maps.Keys(byBox)) {
		msgs := byBox[r]
		slices.SortFunc(msgs, func(a, b core.Message) int { return cmp.Compare(a.Cursor, b.Cursor) })
		msgs = slices.CompactFunc(msgs, func(a, b core.Message) bool { return a.Cursor == b.Cursor })
		drop := 0
		for i, m := range msgs {
			if m.At.Before(msgCutoff) {
				drop = i + 1
			}
		}
		if drop > 0 {
			res.DropMessages[r] = msgs[drop-1].Cursor
		}
		var next core.Cursor = 1
		for _, m := range msgs[drop:] {
			for ; next < m.Cursor; next++ {
				txn.Messages = append(txn.Messages, placeholderMessage(r))
			}
			txn.Messages = append(txn.Messages, m)
			next++
			res.Messages++
		}
		if len(msgs) > 0 {
			w.mailSeq[tenant+"\x00"+r] = msgs[len(msgs)-1].Cursor
		}
	}
	evs := slices.Clone(in.Events)
	slices.SortFunc(evs, func(a, b core.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	evs = slices.CompactFunc(evs, func(a, b core.Event) bool { return a.Seq == b.Seq })
	drop := 0
	for i, ev := range evs {
		if ev.Tenant != tenant || ev.Seq == 0 {
			return nil, core.Invalid("events", "a kept event must have tenant %q and a sequence number", tenant)
		}
		if ev.At.Before(evCutoff) {
			drop = i + 1
		}
	}
	if drop > 0 {
		res.DropEvents = evs[drop-1].Seq
	}
	var next uint64 = 1
	for _, ev := range evs[drop:] {
		for ; next < ev.Seq; next++ {
			txn.Events = append(txn.Events, core.Event{Tenant: tenant, At: core.MinTime, Type: "placeholder"})
		}
		txn.Events = append(txn.Events, ev)
		next++
		res.Events++
	}
	if len(evs) > 0 {
		w.eventSeq[tenant] = evs[len(evs)-1].Seq
	}
	if len(txn.Messages)+len(txn.Events) > 0 {
		// Straight to the memory store: this is no new write to count.
		if err := w.Store.Commit(e.ctx, txn); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		before := core.MinTime.Add(1)
		if _, err := w.Store.Purge(e.ctx, before, before); err != nil {
			return nil, fmt.Errorf("restore: drop placeholders: %w", err)
		}
	}
	for _, a := range in.Acks {
		if a.UpTo == 0 || a.UpTo > w.mailSeq[tenant+"\x00"+a.Recipient] {
			continue // past what was kept: nothing to hide
		}
		if err := w.Store.Ack(e.ctx, tenant, a.Recipient, a.UpTo); err != nil {
			return nil, fmt.Errorf("restore: ack %s: %w", a.Recipient, err)
		}
	}
	return res, nil
}

// placeholderMessage stands for a message past retention while a mailbox
// is restored; it is purged at once.
func placeholderMessage(recipient string) core.Message {
	return core.Message{Tenant: tenant, Recipient: recipient, At: core.MinTime, Type: "placeholder"}
}
