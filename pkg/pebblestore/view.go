package pebblestore

import (
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// view is what readers see: a Pebble snapshot taken by the writer right
// after it applied a batch, published by the syncer once that batch's WAL
// sync has returned. Pebble makes an applied batch visible to plain reads
// before its sync completes (and so would its Apply with Sync), so no
// reader outside the writer reads the DB itself: every answer the store
// gives (a read, a refusal, a wake-up) reflects only durable writes, and a
// crash can take back nothing anyone has seen.
type view struct {
	snap *pebble.Snapshot
	// refs counts the readers using snap, plus one while the view is the
	// store's current one; the last release closes snap.
	refs atomic.Int64
}

func newView(snap *pebble.Snapshot) *view {
	v := &view{snap: snap}
	v.refs.Store(1)
	return v
}

func (v *view) release() {
	if v.refs.Add(-1) == 0 {
		_ = v.snap.Close()
	}
}

// read returns the current view, which the caller releases, or ErrClosed.
func (s *Store) read() (*view, error) {
	s.viewMu.RLock()
	defer s.viewMu.RUnlock()
	v := s.view
	if v == nil {
		return nil, ErrClosed
	}
	v.refs.Add(1)
	return v, nil
}

// publish makes v the current view.
func (s *Store) publish(v *view) {
	s.viewMu.Lock()
	old := s.view
	s.view = v
	s.viewMu.Unlock()
	if old != nil {
		old.release()
	}
}
