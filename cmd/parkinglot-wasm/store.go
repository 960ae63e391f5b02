package main

import (
	"context"
	"slices"
	"sync"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

// webStore is the memory store with what the web runtime adds around its
// commits: the names of the mailboxes that received messages (the worker
// wakes their readers) and, with persistence on, a journal of the messages
// and events committed, with the cursors and sequence numbers the memory
// store gave them, for the worker to keep in IndexedDB.
//
// It learns those cursors by counting: the memory store numbers a
// mailbox's messages 1, 2, 3... in commit order, and its events likewise
// (across tenants, and the web runtime has one), and every commit passes
// here. Commits are serialized by mu so
// that the count and the store's numbering follow the same order. That is
// the global lock core's ports are designed to do without: here it costs
// nothing, as a worker runs one call at a time.
type webStore struct {
	*memstore.Store

	mu        sync.Mutex
	mailSeq   map[string]core.Cursor // tenant\x00recipient -> its newest cursor
	eventSeq  map[string]uint64      // tenant -> its newest event's Seq
	mail      []string               // recipients that received messages since the last drain
	journal   bool                   // keep what is committed in kept
	kept      journal
	committed bool // anything committed yet: restore must come first
}

// journal is what the worker writes to IndexedDB.
type journal struct {
	Messages []core.Message `json:"messages,omitempty"`
	Events   []core.Event   `json:"events,omitempty"`
	Acks     []keptAck      `json:"acks,omitempty"`
}

// keptAck is a mailbox's acknowledged cursor.
type keptAck struct {
	Recipient string
	UpTo      core.Cursor
}

func newWebStore(s *memstore.Store) *webStore {
	return &webStore{Store: s, mailSeq: map[string]core.Cursor{}, eventSeq: map[string]uint64{}}
}

// Commit commits txn to the memory store and notes what it wrote.
func (w *webStore) Commit(ctx context.Context, txn *core.Txn) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.Store.Commit(ctx, txn); err != nil {
		return err
	}
	w.committed = true
	for _, m := range txn.Messages {
		k := m.Tenant + "\x00" + m.Recipient
		w.mailSeq[k]++
		if !slices.Contains(w.mail, m.Recipient) {
			w.mail = append(w.mail, m.Recipient)
		}
		if w.journal {
			m.Cursor = w.mailSeq[k]
			w.kept.Messages = append(w.kept.Messages, m)
		}
	}
	for _, e := range txn.Events {
		w.eventSeq[e.Tenant]++
		if w.journal {
			e.Seq = w.eventSeq[e.Tenant]
			w.kept.Events = append(w.kept.Events, e)
		}
	}
	return nil
}

// ackedTo journals an acknowledgement that the store accepted.
func (w *webStore) ackedTo(tenant, recipient string, upTo core.Cursor) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.journal {
		w.kept.Acks = append(w.kept.Acks, keptAck{Recipient: recipient, UpTo: upTo})
	}
}

// drain returns and clears the recipients that received messages and the
// journal since the last drain.
func (w *webStore) drain() ([]string, *journal) {
	w.mu.Lock()
	defer w.mu.Unlock()
	mail := w.mail
	w.mail = nil
	if len(w.kept.Messages) == 0 && len(w.kept.Events) == 0 && len(w.kept.Acks) == 0 {
		return mail, nil
	}
	kept := w.kept
	w.kept = journal{}
	return mail, &kept
}
