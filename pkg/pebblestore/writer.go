package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// op is one write request for the writer goroutine.
type op struct {
	// apply checks the request's conditions in w and writes it. It returns
	// a refusal (see refuse) having written nothing, or any other error
	// after which the whole batch is abandoned. post runs after the
	// batch is durable.
	apply func(w *pebble.Batch, b *batch) (post func(), err error)
	done  chan error // nil: nobody waits
}

// batch is the state of one group commit.
type batch struct {
	seq   uint64                // last sequence number handed out
	pools map[string]*core.Pool // pool items written in this batch
	tasks map[string]taskHead   // tasks written in this batch
}

func (b *batch) next() uint64 {
	b.seq++
	return b.seq
}

// refusal is a failed condition: the request wrote nothing.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

func refuse(err error) error { return refusal{err} }

// do hands apply to the writer and waits until it is durable or refused.
func (s *Store) do(ctx context.Context, apply func(*pebble.Batch, *batch) (func(), error)) error {
	o := &op{apply: apply, done: make(chan error, 1)}
	if err := s.enqueue(o); err != nil {
		return err
	}
	select {
	case err := <-o.done:
		var r refusal
		if errors.As(err, &r) {
			return r.err
		}
		return err
	case <-ctx.Done():
		return fmt.Errorf("pebblestore: outcome unknown: %w", ctx.Err())
	}
}

// doAsync hands apply to the writer without waiting.
func (s *Store) doAsync(apply func(*pebble.Batch, *batch) (func(), error)) error {
	return s.enqueue(&op{apply: apply})
}

func (s *Store) enqueue(o *op) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.ops <- o
	return nil
}

// run is the writer: it takes every request waiting, up to maxBatch,
// applies them in one batch, and hands the batch to the syncer, then goes on
// with the next batch while the WAL is synced. Applying the next batch
// while the last one is being synced is what keeps the writer busy: the
// fsync is off its critical path.
//
// The writer alone reads ahead of durability: the next batch's conditions
// are checked against the previous one's writes before they are synced,
// which is safe because Pebble syncs the WAL in commit order, so a crash
// that loses batch N loses N+1 with it. Nothing else does: readers see the
// view of the last synced batch (see view), and the syncer answers each
// request, runs its post-commit actions (mailbox wake-ups, queue pushes)
// and publishes its batch's view only after the batch is durable, in
// commit order. A refused request is answered after its batch's sync too,
// so that a refusal never reveals a write that a crash could take back,
// and a retry after a conflict reads the write it conflicted with.
func (s *Store) run() {
	defer close(s.synced)
	group := make([]*op, 0, s.maxBatch)
	for {
		o, ok := <-s.ops
		if !ok {
			return
		}
		group = append(group[:0], o)
	more:
		for len(group) < s.maxBatch {
			select {
			case o, ok := <-s.ops:
				if !ok {
					break more
				}
				group = append(group, o)
			default:
				break more
			}
		}
		s.commit(group)
	}
}

// pending is a batch applied, waiting for its WAL sync.
type pending struct {
	w     *pebble.Batch // nil: the batch wrote nothing
	view  *view         // the state after the batch; nil if w is nil
	pools map[string]*core.Pool
	ops   []*op
	errs  []error
	posts []func()
}

// sync answers each batch once the WAL holds it durably, in commit order.
func (s *Store) sync() {
	defer close(s.stopped)
	for p := range s.synced {
		var err error
		if p.w != nil {
			err = p.w.SyncWait()
			if err != nil {
				err = fmt.Errorf("pebblestore: outcome unknown: sync: %w", err)
			}
			_ = p.w.Close()
		}
		if err == nil && p.view != nil {
			for name, pool := range p.pools {
				s.pools.Store(name, pool)
			}
			s.publish(p.view)
			for _, post := range p.posts {
				post()
			}
		} else if p.view != nil {
			p.view.release()
		}
		for i, o := range p.ops {
			if err != nil {
				p.errs[i] = err
			}
			if o.done != nil {
				o.done <- p.errs[i]
			}
		}
	}
}

// commit applies group in one batch, synced once. If a request fails in a way that
// may have left part of its writes, the batch is abandoned and each request
// is retried in a batch of its own.
func (s *Store) commit(group []*op) {
	p := &pending{ops: slices.Clone(group), errs: make([]error, len(group))}
	err := s.tryCommit(p)
	if err != nil && len(group) > 1 {
		for _, o := range group {
			s.commit([]*op{o})
		}
		return
	}
	if err != nil {
		p.w, p.view, p.pools, p.posts = nil, nil, nil, nil
		p.errs[0] = err
	}
	s.synced <- p
}

func (s *Store) tryCommit(p *pending) (err error) {
	defer guard(&err, "commit")
	w := s.db.NewIndexedBatch()
	applied := false
	defer func() {
		if !applied {
			_ = w.Close()
		}
	}()
	b := &batch{seq: s.seq}
	for i, o := range p.ops {
		post, err := o.apply(w, b)
		if err != nil {
			var r refusal
			if !errors.As(err, &r) {
				return err
			}
			p.errs[i] = err
			continue
		}
		if post != nil {
			p.posts = append(p.posts, post)
		}
	}
	if b.seq != s.seq {
		if err := w.Set(keySeq, appendU64(nil, b.seq), nil); err != nil {
			return fmt.Errorf("pebblestore: put seq: %w", err)
		}
	}
	if !w.Empty() {
		if err := s.db.ApplyNoSyncWait(w, pebble.Sync); err != nil {
			return fmt.Errorf("pebblestore: commit: %w", err)
		}
		applied = true
		p.w = w
		// The state after this batch: the writer is Pebble's only
		// committer, so the snapshot holds exactly the batches so far.
		p.view = newView(s.db.NewSnapshot())
		p.pools = b.pools
	}
	s.seq = b.seq
	for name, pool := range b.pools {
		s.wpools[name] = pool
	}
	for id, h := range b.tasks {
		if h.running {
			s.running[id] = h
		} else {
			delete(s.running, id)
		}
	}
	return nil
}
