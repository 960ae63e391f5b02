package memstore

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/parkinglot/parkinglot/internal/watch"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// mailbox is one recipient's mailbox item group: its messages in cursor
// order, the acknowledged cursor and the long-poll watchers.
type mailbox struct {
	mu       sync.Mutex
	msgs     []core.Message
	seq      uint64
	acked    core.Cursor
	watchers watch.List
}

func (s *Store) mailboxesOf(msgs []core.Message) []itemRef[mailbox] {
	return collect[mailbox](&s.mailboxes, len(msgs), func(i int) string {
		return msgs[i].Tenant + "\x00" + msgs[i].Recipient
	})
}

// mailboxOf finds m's mailbox among refs.
func mailboxOf(refs []itemRef[mailbox], m *core.Message) *mailbox {
	for _, r := range refs {
		k := r.key
		if len(k) == len(m.Tenant)+1+len(m.Recipient) && k[:len(m.Tenant)] == m.Tenant && k[len(m.Tenant)+1:] == m.Recipient {
			return r.it
		}
	}
	panic("memstore: mailbox not collected: " + m.Tenant + "/" + m.Recipient)
}

// append adds m with the next cursor; the caller holds b.mu.
func (b *mailbox) append(m core.Message) {
	b.seq++
	m.Cursor = core.Cursor(b.seq)
	b.msgs = append(b.msgs, m)
	b.watchers.Notify()
}

// Messages returns messages after max(after, acked), in cursor order.
func (s *Store) Messages(_ context.Context, tenant, recipient string, after core.Cursor, limit int) ([]core.Message, error) {
	b := peek[mailbox](&s.mailboxes, tenant+"\x00"+recipient)
	if b == nil {
		return nil, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	from := max(after, b.acked)
	i := sort.Search(len(b.msgs), func(i int) bool { return b.msgs[i].Cursor > from })
	var out []core.Message
	total := 0
	for ; i < len(b.msgs) && len(out) < limit; i++ {
		size := core.MessageBytes(&b.msgs[i])
		if !core.PageFits(len(out), total, size) {
			break
		}
		total += size
		out = append(out, b.msgs[i])
	}
	return out, nil
}

// Ack moves the acknowledged cursor forward to upTo, which must not be
// beyond the newest message.
func (s *Store) Ack(_ context.Context, tenant, recipient string, upTo core.Cursor) error {
	b := peek[mailbox](&s.mailboxes, tenant+"\x00"+recipient)
	if b == nil {
		return core.ErrAckBeyondNewest
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if upTo > core.Cursor(b.seq) {
		return core.ErrAckBeyondNewest
	}
	b.acked = max(b.acked, upTo)
	return nil
}

// WatchMailbox signals new messages of (tenant, recipient).
func (s *Store) WatchMailbox(tenant, recipient string) (<-chan struct{}, func()) {
	return load[mailbox](&s.mailboxes, tenant+"\x00"+recipient).watchers.Watch()
}

// purge drops messages created before t; the caller holds b.mu.
func (b *mailbox) purge(t time.Time) int {
	n := 0
	for n < len(b.msgs) && b.msgs[n].At.Before(t) {
		n++
	}
	if n > 0 {
		b.msgs = append(b.msgs[:0:0], b.msgs[n:]...)
	}
	return n
}
