package pebblestore

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
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
	seq uint64 // last sequence number handed out
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

// run is the writer: it takes every request waiting, up to maxBatch, and
// commits them in one batch with one fsync.
func (s *Store) run() {
	defer close(s.stopped)
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

// commit applies group in one batch, synced once. If a request fails in a way that
// may have left part of its writes, the batch is abandoned and each request
// is retried in a batch of its own.
func (s *Store) commit(group []*op) {
	errs := make([]error, len(group))
	err := s.tryCommit(group, errs)
	if err != nil && len(group) > 1 {
		for _, o := range group {
			s.commit([]*op{o})
		}
		return
	}
	for i, o := range group {
		if err != nil {
			errs[i] = err
		}
		if o.done != nil {
			o.done <- errs[i]
		}
	}
}

func (s *Store) tryCommit(group []*op, errs []error) (err error) {
	defer guard(&err, "commit")
	w := s.db.NewIndexedBatch()
	defer w.Close()
	b := &batch{seq: s.seq}
	posts := make([]func(), 0, len(group))
	for i, o := range group {
		post, err := o.apply(w, b)
		if err != nil {
			var r refusal
			if !errors.As(err, &r) {
				return err
			}
			errs[i] = err
			continue
		}
		if post != nil {
			posts = append(posts, post)
		}
	}
	if b.seq != s.seq {
		if err := w.Set(keySeq, appendU64(nil, b.seq), nil); err != nil {
			return fmt.Errorf("pebblestore: put seq: %w", err)
		}
	}
	if !w.Empty() {
		if err := w.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("pebblestore: commit: %w", err)
		}
	}
	s.seq = b.seq
	for _, p := range posts {
		p()
	}
	return nil
}
