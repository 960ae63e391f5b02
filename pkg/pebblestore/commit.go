package boltstore

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Commit applies txn atomically and durably; see core.Committer.
func (s *Store) Commit(ctx context.Context, txn *core.Txn) error {
	return s.do(ctx, func(tx *bolt.Tx, b *batch) (func(), error) {
		return s.applyTxn(tx, b, txn)
	})
}

// applyTxn checks every condition of txn against tx, then writes it.
func (s *Store) applyTxn(tx *bolt.Tx, b *batch, txn *core.Txn) (func(), error) {
	pools := tx.Bucket(bucketPools)
	tasks := tx.Bucket(bucketTasks)

	// Check every condition.
	var pool *core.Pool
	if txn.Pool != "" && (txn.RunningDelta != 0 || txn.ParkedDelta != 0 || txn.NeedSlot || txn.FirstInLine || txn.NeedParkRoom) {
		v := pools.Get([]byte(txn.Pool))
		if v == nil {
			return nil, refuse(fmt.Errorf("boltstore: commit: %w: %s", core.ErrPoolNotFound, txn.Pool))
		}
		pool = new(core.Pool)
		if err := decode(v, pool); err != nil {
			return nil, err
		}
	}
	olds := make([]core.Task, len(txn.Tasks))
	for i, w := range txn.Tasks {
		for _, u := range txn.Tasks[:i] {
			if u.Task.ID == w.Task.ID {
				return nil, refuse(fmt.Errorf("boltstore: commit: task %s written twice", w.Task.ID))
			}
		}
		v := tasks.Get([]byte(w.Task.ID))
		if v != nil {
			if err := decode(v, &olds[i]); err != nil {
				return nil, err
			}
		}
		if w.Expect == 0 && v != nil || w.Expect != 0 && (v == nil || olds[i].Version != w.Expect) {
			return nil, refuse(fmt.Errorf("boltstore: commit task %s: %w", w.Task.ID, core.ErrConflict))
		}
	}
	var keyKey []byte
	if txn.Key != nil {
		keyKey = append(appendStr(nil, txn.Key.Tenant), txn.Key.Key...)
		if tx.Bucket(bucketKeys).Get(keyKey) != nil {
			return nil, refuse(fmt.Errorf("boltstore: commit key %q: %w", txn.Key.Key, core.ErrKeyExists))
		}
	}
	if pool != nil {
		switch {
		case txn.NeedSlot && pool.Running >= pool.Capacity, txn.FirstInLine && pool.Parked > 0:
			return nil, refuse(fmt.Errorf("boltstore: commit pool %s: %w", txn.Pool, core.ErrNoCapacity))
		case txn.NeedParkRoom && pool.Parked >= pool.MaxParked:
			return nil, refuse(fmt.Errorf("boltstore: commit pool %s: %w", txn.Pool, core.ErrPoolFull))
		}
	}

	// Write everything.
	if pool != nil {
		pool.Running += txn.RunningDelta
		pool.Parked += txn.ParkedDelta
		if err := putValue(pools, []byte(txn.Pool), pool); err != nil {
			return nil, err
		}
	}
	due, unsent := tx.Bucket(bucketDue), tx.Bucket(bucketUnsent)
	for i, w := range txn.Tasks {
		t := w.Task
		t.Version = w.Expect + 1
		id := []byte(t.ID)
		if err := putValue(tasks, id, &t); err != nil {
			return nil, err
		}
		if oldDue, newDue := olds[i].DueAt(), t.DueAt(); !oldDue.Equal(newDue) {
			if !oldDue.IsZero() {
				if err := due.Delete(append(appendTime(nil, oldDue), id...)); err != nil {
					return nil, fmt.Errorf("boltstore: unindex due %s: %w", t.ID, err)
				}
			}
			if !newDue.IsZero() {
				if err := due.Put(append(appendTime(nil, newDue), id...), nil); err != nil {
					return nil, fmt.Errorf("boltstore: index due %s: %w", t.ID, err)
				}
			}
		}
		var err error
		switch {
		case t.Unsent && !olds[i].Unsent:
			err = unsent.Put(id, nil)
		case !t.Unsent && olds[i].Unsent:
			err = unsent.Delete(id)
		}
		if err != nil {
			return nil, fmt.Errorf("boltstore: index unsent %s: %w", t.ID, err)
		}
	}
	if txn.Key != nil {
		if err := putValue(tx.Bucket(bucketKeys), keyKey, txn.Key); err != nil {
			return nil, err
		}
	}
	var boxes []string
	if len(txn.Messages) > 0 {
		mbox, mlog := tx.Bucket(bucketMbox), tx.Bucket(bucketMlog)
		for _, m := range txn.Messages {
			m.Cursor = core.Cursor(b.next())
			box := mailboxKey(m.Tenant, m.Recipient)
			cur := appendU64(nil, uint64(m.Cursor))
			if err := putValue(mbox, append(box, cur...), &m); err != nil {
				return nil, err
			}
			if err := mlog.Put(cur, append(appendTime(nil, m.At), box...)); err != nil {
				return nil, fmt.Errorf("boltstore: log message: %w", err)
			}
			boxes = append(boxes, string(box))
		}
	}
	if len(txn.Events) > 0 {
		audit := tx.Bucket(bucketAudit)
		for _, e := range txn.Events {
			e.Seq = b.next()
			k := appendU64(appendTime(appendStr(nil, e.Tenant), e.At), e.Seq)
			if err := putValue(audit, k, &e); err != nil {
				return nil, err
			}
		}
	}
	if len(boxes) == 0 {
		return nil, nil
	}
	return func() { s.notify(boxes) }, nil
}
