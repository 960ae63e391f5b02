package pebblestore

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Commit applies txn atomically and durably; see core.Committer.
func (s *Store) Commit(ctx context.Context, txn *core.Txn) error {
	return s.do(ctx, func(w *pebble.Batch, b *batch) (func(), error) {
		return s.applyTxn(w, b, txn)
	})
}

func taskKey(id string) []byte { return append(key(spaceTasks, len(id)), id...) }

// dueKey is the Due index entry of task id due at at.
func dueKey(at time.Time, id string) []byte {
	return append(appendTime(key(spaceDue, 8+len(id)), at), id...)
}

func unsentKey(id string) []byte { return append(key(spaceUnsent, len(id)), id...) }

// taskHead is what a commit needs of a task's stored version: the version
// to check, and the index entries to move.
type taskHead struct {
	exists  bool
	running bool
	state   core.State
	version int64
	due     time.Time
	unsent  bool
}

func headOf(t *core.Task) taskHead {
	return taskHead{exists: true, running: t.State == core.StateRunning, state: t.State, version: t.Version, due: t.DueAt(), unsent: t.Unsent}
}

// writerTask returns the head of task id as the writer sees it: written
// earlier in batch b, running as of the last applied batch (s.running), or
// stored. A completion's commit so finds its task without a read; running
// tasks are bounded by the pools' capacities, and so is s.running.
func (s *Store) writerTask(w *pebble.Batch, b *batch, id string) (taskHead, error) {
	if h, ok := b.tasks[id]; ok {
		return h, nil
	}
	if h, ok := s.running[id]; ok {
		return h, nil
	}
	var t core.Task
	ok, err := getValue(w, taskKey(id), &t)
	if err != nil || !ok {
		return taskHead{}, err
	}
	return headOf(&t), nil
}

// noteTask records t (as written, at its new version) in b, for s.running
// once b is applied.
func (b *batch) noteTask(t *core.Task) {
	if b.tasks == nil {
		b.tasks = make(map[string]taskHead)
	}
	b.tasks[t.ID] = headOf(t)
}

// applyTxn checks every condition of txn against w (the store as left by
// the requests before it in the group), then writes it.
func (s *Store) applyTxn(w *pebble.Batch, b *batch, txn *core.Txn) (func(), error) {
	// Check every condition.
	if err := txn.CheckShape(); err != nil {
		return nil, refuse(fmt.Errorf("pebblestore: %w", err))
	}
	var pool *core.Pool
	if txn.TouchesPool() {
		var ok bool
		var err error
		pool, ok, err = s.writerPool(w, b, txn.Pool)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, refuse(fmt.Errorf("pebblestore: commit: %w: %s", core.ErrPoolNotFound, txn.Pool))
		}
	}
	olds := make([]taskHead, len(txn.Tasks))
	for i, tw := range txn.Tasks {
		var err error
		olds[i], err = s.writerTask(w, b, tw.Task.ID)
		if err != nil {
			return nil, err
		}
		if tw.Conflicts(olds[i].exists, olds[i].version, olds[i].state) {
			return nil, refuse(fmt.Errorf("pebblestore: commit task %s: %w", tw.Task.ID, core.ErrConflict))
		}
	}
	var kk []byte
	if txn.Key != nil {
		kk = keyKey(txn.Key.Tenant, txn.Key.Key)
		_, ok, err := get(w, kk)
		if err != nil {
			return nil, err
		}
		if ok {
			return nil, refuse(fmt.Errorf("pebblestore: commit key %q: %w", txn.Key.Key, core.ErrKeyExists))
		}
	}
	if pool != nil {
		if err := txn.CheckPool(*pool); err != nil {
			return nil, refuse(fmt.Errorf("pebblestore: %w", err))
		}
	}
	// The stamp the pool's order allows (raising txn's times to it; the
	// writer is the pool's only committer, and numbers events in its
	// order), the last condition: no start moved to or past its deadline.
	var lastAt time.Time
	if pool != nil {
		var err error
		if lastAt, err = txn.StampAfter(pool.LastAt); err != nil {
			return nil, refuse(fmt.Errorf("pebblestore: commit %s: %w", txn.Pool, err))
		}
	}

	// Write everything.
	if pool != nil {
		pool.Running += txn.RunningDelta
		pool.Parked += txn.ParkedDelta
		pool.LastAt = lastAt
		if err := s.putPool(w, b, pool); err != nil {
			return nil, err
		}
	}
	for i, tw := range txn.Tasks {
		t := tw.Task
		t.Version = tw.Expect + 1
		if err := putValue(w, taskKey(t.ID), &t); err != nil {
			return nil, err
		}
		b.noteTask(&t)
		if oldDue, newDue := olds[i].due, t.DueAt(); !oldDue.Equal(newDue) {
			if !oldDue.IsZero() {
				if err := w.Delete(dueKey(oldDue, t.ID), nil); err != nil {
					return nil, fmt.Errorf("pebblestore: unindex due %s: %w", t.ID, err)
				}
			}
			if !newDue.IsZero() {
				if err := w.Set(dueKey(newDue, t.ID), nil, nil); err != nil {
					return nil, fmt.Errorf("pebblestore: index due %s: %w", t.ID, err)
				}
			}
		}
		var err error
		uk := unsentKey(t.ID)
		switch {
		case t.Unsent && !olds[i].unsent:
			err = w.Set(uk, nil, nil)
		case !t.Unsent && olds[i].unsent:
			err = w.Delete(uk, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("pebblestore: index unsent %s: %w", t.ID, err)
		}
	}
	if txn.Key != nil {
		if err := putValue(w, kk, txn.Key); err != nil {
			return nil, err
		}
	}
	var boxes []string
	for _, m := range txn.Messages {
		m.Cursor = core.Cursor(b.next())
		box := mailboxKey(m.Tenant, m.Recipient)
		if err := putValue(w, messageKey(box, m.Cursor), &m); err != nil {
			return nil, err
		}
		if err := w.Set(newestKey(box), appendU64(nil, uint64(m.Cursor)), nil); err != nil {
			return nil, fmt.Errorf("pebblestore: newest message: %w", err)
		}
		lk := appendU64(key(spaceMlog, 8), uint64(m.Cursor))
		if err := w.Set(lk, append(appendTime(nil, m.At), box...), nil); err != nil {
			return nil, fmt.Errorf("pebblestore: log message: %w", err)
		}
		boxes = append(boxes, string(box))
	}
	for _, e := range txn.Events {
		e.Seq = b.next()
		if err := putValue(w, eventKey(e.Tenant, e.At, e.Seq), &e); err != nil {
			return nil, err
		}
	}
	if len(boxes) == 0 {
		return nil, nil
	}
	return func() { s.notify(boxes) }, nil
}
