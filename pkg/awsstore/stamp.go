package awsstore

import (
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// The audit trail in commit order (core.Txn.StampAfter). DynamoDB cannot
// raise a transaction's stamp inside the write, so every pool item a
// transaction writes (the pool item, and the slot shards of a sharded pool)
// keeps the stamp and the last event sequence number of the last
// transaction committed on it, and the write is conditioned on coming
// after them: (lastAt, lastSeq) < (stamp, first sequence number). A
// transaction refused for that alone is stamped again by core's rule from
// the item as it was (returned with the cancellation), numbered past it,
// and committed again: no extra request unless two transitions of the pool
// race. Core's rule refuses a new stamp that would move a start to or past
// its task's deadline: Commit then returns core.ErrLateStart, having
// written nothing (the refused attempt wrote nothing either), and core
// expires the task instead.
//
// On a sharded pool the order is per item: a pool's starts and releases on
// different shards do not share an item (that is the point of shards). Each
// shard's events replay in commit order within the shard's share of the
// capacity, and the shares add up to the capacity, so a replay of the pool
// still never shows more running than its capacity.
const (
	attrLastAt  = "lastAt"
	attrLastSeq = "lastSeq"
)

// stampCheck is the order condition of one attempt of a transaction.
type stampCheck struct {
	at          int64  // the stamp, Unix nanoseconds
	first, last uint64 // the attempt's event sequence numbers
}

// stampOf is the order condition of txn with events numbered from base, or
// nil when txn has nothing to order: no events, or no pool item written.
func stampOf(txn *core.Txn, base uint64) *stampCheck {
	at := txn.Stamp()
	if at.IsZero() || !txn.TouchesPool() {
		return nil
	}
	return &stampCheck{at: nanos(at), first: base, last: base + uint64(len(txn.Events)) - 1}
}

// cond adds c to cb.
func (c *stampCheck) cond(cb expression.ConditionBuilder) expression.ConditionBuilder {
	if c == nil {
		return cb
	}
	last, at := expression.Name(attrLastAt), expression.Value(c.at)
	return cb.And(expression.Or(
		expression.AttributeNotExists(last),
		last.LessThan(at),
		last.Equal(at).And(expression.Name(attrLastSeq).LessThan(expression.Value(c.first))),
	))
}

// set adds c's writes to u (nil: none yet).
func (c *stampCheck) set(u *expression.UpdateBuilder) *expression.UpdateBuilder {
	if c == nil {
		return u
	}
	if u == nil {
		u = &expression.UpdateBuilder{}
	}
	v := u.Set(expression.Name(attrLastAt), expression.Value(c.at)).
		Set(expression.Name(attrLastSeq), expression.Value(c.last))
	return &v
}

// errRestamped reports a transaction refused by its order condition alone
// and stamped again: Commit retries it at once.
var errRestamped = errors.New("awsstore: stamped again")

// restampFrom stamps txn again if c failed on old, a pool item as it was:
// core raises the stamp to the item's (core.Txn.StampAfter), and the
// Store's next event numbers are past the item's. It reports whether c
// failed on old; the error is core.ErrLateStart (wrapped) when core's rule
// refuses the new stamp, as it would move a start of txn to or past its
// task's deadline: the transaction is then refused, as written nowhere.
func (s *Store) restampFrom(txn *core.Txn, c *stampCheck, old map[string]types.AttributeValue) (bool, error) {
	if c == nil || old == nil {
		return false, nil
	}
	var it struct {
		LastAt  int64  `dynamodbav:"lastAt"`
		LastSeq uint64 `dynamodbav:"lastSeq"`
	}
	if err := attributevalue.UnmarshalMap(old, &it); err != nil || it.LastAt == 0 {
		return false, nil
	}
	last := fromNanos(it.LastAt)
	if !txn.StampBehind(last) && (it.LastAt != c.at || it.LastSeq < c.first) {
		return false, nil
	}
	if _, err := txn.StampAfter(last); err != nil {
		return true, fmt.Errorf("awsstore: commit %s: %w", describe(txn), err)
	}
	s.mu.Lock()
	s.lastSeq = max(s.lastSeq, it.LastSeq)
	s.mu.Unlock()
	return true, nil
}
