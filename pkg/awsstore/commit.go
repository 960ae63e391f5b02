package awsstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// maxCommitAttempts bounds the attempts of one Commit that lose only the
// race for an event's sort key (or meet a transaction conflict or
// throttling reported as a cancellation reason).
const maxCommitAttempts = 64

// maxTxnItems is DynamoDB's limit on the items of one transaction.
const maxTxnItems = 100

type partKind int

const (
	partTask partKind = iota
	partKey
	partPool
	partShard
	partMessage
	partEvent
)

// part names what one item of a TransactWriteItems call is.
type part struct {
	kind partKind
	i    int // index in txn.Tasks, or the shard
}

// Commit applies txn as one TransactWriteItems call; see core.Committer.
//
// The items are, in order: each task's put (conditioned on its version), the
// idempotency key's put (attribute_not_exists), the pool's conditional
// counter update, the mailbox messages as pending items (pendingSKs, put
// conditioned on absence; Messages numbers them), and the audit events. When
// the only failed conditions are pending messages' or events' sort keys
// (another writer took the key), Commit retries with fresh ones: that is not
// a conflict of the transition.
func (s *Store) Commit(ctx context.Context, txn *core.Txn) error {
	if err := checkTxn(txn); err != nil {
		return err
	}
	// An unknown pool is taken as unsharded: the conditions on the pool
	// item and on running tasks' slot attribute catch a wrong guess.
	st := &commitState{pool: layoutPool(txn)}
	if st.pool != "" {
		st.lay = s.layouts.get(st.pool)
	}
	for attempt := 1; ; attempt++ {
		if st.pool != "" && st.lay.sharded() && (st.sp == nil || st.sp.n != st.lay.shards) {
			sp, err := s.planSlots(ctx, txn, st.lay.shards)
			if err != nil {
				return err
			}
			st.sp = sp
		}
		if !st.lay.sharded() {
			st.sp = nil
		}
		items, parts, err := s.buildTxn(txn, st)
		if err != nil {
			return err
		}
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
			TransactItems:          items,
			ReturnConsumedCapacity: s.rcc,
		})
		if err == nil {
			s.committed(txn, st)
			return nil
		}
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			return fmt.Errorf("awsstore: commit %s: %w", describe(txn), err)
		}
		wait, err := s.cancelled(ctx, txn, parts, tce.CancellationReasons, st)
		if err != nil {
			return err
		}
		if attempt >= maxCommitAttempts {
			return fmt.Errorf("awsstore: commit %s: gave up after %d attempts lost to other writers", describe(txn), attempt)
		}
		if wait {
			if err := backoff(ctx, attempt); err != nil {
				return fmt.Errorf("awsstore: commit %s: %w", describe(txn), err)
			}
		}
	}
}

// commitState is what one Commit knows of the pool's slot layout.
type commitState struct {
	pool string // the pool whose layout applies
	lay  poolLayout
	// rebalanced is set once Commit tried to split a draining pool's
	// capacity again.
	rebalanced bool
	sp         *slotPlan // nil on an unsharded pool
	// stamp is the order condition of the last attempt (stamp.go).
	stamp *stampCheck
}

// layoutPool is the pool whose slot layout txn depends on: its Pool, or,
// for a transaction that moves no counter (a heartbeat), its tasks' pool.
func layoutPool(txn *core.Txn) string {
	if txn.Pool != "" || len(txn.Tasks) == 0 {
		return txn.Pool
	}
	return txn.Tasks[0].Task.Pool
}

// committed caches what a successful commit wrote: each task's slot at its
// new version and the pool's parked count.
func (s *Store) committed(txn *core.Txn, st *commitState) {
	for i, w := range txn.Tasks {
		slot := noSlot
		if st.sp != nil {
			slot = st.sp.slots[i]
		}
		s.slots.put(w.Task.ID, w.Expect+1, slot)
	}
	if st.pool != "" && txn.ParkedDelta != 0 {
		l := st.lay
		l.parked = max(l.parked+txn.ParkedDelta, 0)
		s.layouts.put(st.pool, l)
	}
}

// checkTxn refuses, before any request, a transaction that is malformed
// (core.Txn.CheckShape) or that cannot fit in one TransactWriteItems call.
func checkTxn(txn *core.Txn) error {
	if err := txn.CheckShape(); err != nil {
		return fmt.Errorf("awsstore: %w", err)
	}
	n := len(txn.Tasks) + len(txn.Events) + len(txn.Messages) + 2
	if n > maxTxnItems {
		return fmt.Errorf("awsstore: commit: %d items exceed a transaction's %d", n, maxTxnItems)
	}
	return nil
}

func describe(txn *core.Txn) string {
	if len(txn.Tasks) > 0 {
		return "task " + txn.Tasks[0].Task.ID
	}
	return "pool " + txn.Pool
}

func (s *Store) buildTxn(txn *core.Txn, st *commitState) ([]types.TransactWriteItem, []part, error) {
	var items []types.TransactWriteItem
	var parts []part
	add := func(it types.TransactWriteItem, p part) {
		items = append(items, it)
		parts = append(parts, p)
	}
	base := s.eventSeqs(len(txn.Events))
	st.stamp = stampOf(txn, base)

	// The pool's items first (the shard a fresh start takes is decided
	// there), then the tasks that record it.
	var poolItems []types.TransactWriteItem
	var poolParts []part
	switch {
	case st.sp != nil:
		var err error
		if poolItems, poolParts, err = s.shardedWrites(txn, st.pool, st.sp, st.lay, st.stamp); err != nil {
			return nil, nil, err
		}
	case txn.TouchesPool():
		it, err := s.poolWrite(txn, st.stamp)
		if err != nil {
			return nil, nil, err
		}
		poolItems, poolParts = []types.TransactWriteItem{it}, []part{{kind: partPool}}
	}

	for i, w := range txn.Tasks {
		slot := noSlot
		if st.sp != nil {
			slot = st.sp.slots[i]
		}
		av, err := s.encodeTask(&w.Task, w.Expect+1, slot)
		if err != nil {
			return nil, nil, err
		}
		put := &types.Put{TableName: s.table, Item: av}
		switch {
		case w.Expect == 0:
			put.ConditionExpression = aws.String("attribute_not_exists(pk)")
		case st.sp == nil && w.Task.State == core.StateRunning:
			// Taken as unsharded: a running task must hold no slot shard,
			// or this put would drop the one it holds.
			put.ConditionExpression = aws.String("version = :v AND attribute_not_exists(slot)")
			put.ExpressionAttributeValues = map[string]types.AttributeValue{":v": num(w.Expect)}
			put.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
		default:
			put.ConditionExpression = aws.String("version = :v")
			put.ExpressionAttributeValues = map[string]types.AttributeValue{":v": num(w.Expect)}
		}
		if w.Expect != 0 && w.ExpectState != "" {
			put.ConditionExpression = aws.String(*put.ConditionExpression + " AND #st = :st")
			put.ExpressionAttributeNames = map[string]string{"#st": "state"}
			put.ExpressionAttributeValues[":st"] = str(string(w.ExpectState))
			put.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
		}
		add(types.TransactWriteItem{Put: put}, part{kind: partTask, i: i})
	}

	if k := txn.Key; k != nil {
		av, err := attributevalue.MarshalMap(keyItem{
			PK: keyPK(k.Tenant, k.Key), SK: skKey, Tenant: k.Tenant, Key: k.Key, TaskID: k.TaskID, BodyHash: k.BodyHash,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("awsstore: encode key: %w", err)
		}
		add(types.TransactWriteItem{Put: &types.Put{
			TableName: s.table, Item: av, ConditionExpression: aws.String("attribute_not_exists(pk)"),
		}}, part{kind: partKey})
	}

	for i := range poolItems {
		add(poolItems[i], poolParts[i])
	}

	sks := s.pendingSKs(txn)
	for i := range txn.Messages {
		av, err := s.encodeMessage(&txn.Messages[i], sks[i], 0)
		if err != nil {
			return nil, nil, err
		}
		add(types.TransactWriteItem{Put: &types.Put{
			TableName: s.table, Item: av, ConditionExpression: aws.String("attribute_not_exists(pk)"),
		}}, part{kind: partMessage})
	}

	for i := range txn.Events {
		av, err := s.encodeEvent(&txn.Events[i], base+uint64(i))
		if err != nil {
			return nil, nil, err
		}
		add(types.TransactWriteItem{Put: &types.Put{
			TableName: s.table, Item: av, ConditionExpression: aws.String("attribute_not_exists(pk)"),
		}}, part{kind: partEvent})
	}
	if len(items) > maxTxnItems {
		return nil, nil, fmt.Errorf("awsstore: commit %s: %d items exceed a transaction's %d", describe(txn), len(items), maxTxnItems)
	}
	return items, parts, nil
}

// eventSeqs reserves n event sequence numbers: the clock's reading in
// nanoseconds at the commit, or one past the last number this Store gave,
// whichever is greater. Events of equal At are so ordered by commit within a
// process and, across processes, by their clocks at commit. The event put is
// conditioned on absence, so two processes that pick the same number retry.
func (s *Store) eventSeqs(n int) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := max(s.lastSeq+1, uint64(max(s.opts.Clock.Now().UnixNano(), 0)))
	s.lastSeq = base + uint64(n)
	return base
}

// poolWrite is the pool item's part: the counter update with the admission
// conditions and the order condition c, or a bare condition check when the
// counters do not move and nothing is to be ordered.
func (s *Store) poolWrite(txn *core.Txn, c *stampCheck) (types.TransactWriteItem, error) {
	cond := expression.AttributeExists(expression.Name(attrPK)).
		And(expression.Or(expression.AttributeNotExists(expression.Name(attrShards)),
			expression.Name(attrShards).LessThanEqual(expression.Value(1))))
	if txn.NeedSlot {
		// running + RunningDelta <= capacity, as DynamoDB can compare but
		// not add: a start needs a free slot, a hand-off the released one.
		switch txn.RunningDelta {
		case 1:
			cond = cond.And(expression.Name("running").LessThan(expression.Name("capacity")))
		case 0:
			cond = cond.And(expression.Name("running").LessThanEqual(expression.Name("capacity")))
		default:
			return types.TransactWriteItem{}, fmt.Errorf("awsstore: pool %s: NeedSlot with running delta %d", txn.Pool, txn.RunningDelta)
		}
	}
	if txn.FirstInLine {
		cond = cond.And(expression.Name("parked").Equal(expression.Value(0)))
	}
	if txn.NeedParkRoom {
		cond = cond.And(expression.Name("parked").LessThan(expression.Name("maxParked")))
	}
	var upd *expression.UpdateBuilder
	if txn.RunningDelta != 0 || txn.ParkedDelta != 0 {
		u := expression.UpdateBuilder{}
		if txn.RunningDelta != 0 {
			u = u.Set(expression.Name("running"), expression.Name("running").Plus(expression.Value(txn.RunningDelta)))
		}
		if txn.ParkedDelta != 0 {
			u = u.Set(expression.Name("parked"), expression.Name("parked").Plus(expression.Value(txn.ParkedDelta)))
		}
		upd = &u
	}
	w, err := s.condWrite(itemKey(poolPK(txn.Pool), skPool), c.cond(cond), c.set(upd))
	if err != nil {
		return types.TransactWriteItem{}, fmt.Errorf("awsstore: pool %s condition: %w", txn.Pool, err)
	}
	return w, nil
}

// cancelled turns the cancellation reasons of a transaction into the core
// error of the first item that failed, or reports that the transaction is
// to be retried (wait: after a backoff).
func (s *Store) cancelled(ctx context.Context, txn *core.Txn, parts []part, reasons []types.CancellationReason, st *commitState) (wait bool, err error) {
	if len(reasons) != len(parts) {
		return false, fmt.Errorf("awsstore: commit %s: transaction cancelled with %d reasons for %d items", describe(txn), len(reasons), len(parts))
	}
	wait, err = s.cancelReasons(ctx, txn, parts, reasons, st)
	switch {
	case errors.Is(err, errRelayout):
		// Built on a layout the pool does not have: read it and retry.
		if st.pool == "" {
			return false, fmt.Errorf("awsstore: commit %s: %w", describe(txn), core.ErrConflict)
		}
		st.lay, err = s.readLayout(ctx, st.pool)
		st.sp = nil
		return false, err
	case errors.Is(err, errReplan):
		st.sp = nil
		return false, nil
	case errors.Is(err, errAllFull):
		// No shard has room: unless the pool drains to a lowered capacity
		// and can now split it again, there is no slot.
		if !st.rebalanced {
			st.rebalanced = true
			ok, err := s.rebalance(ctx, st.pool, st.sp.n)
			if err != nil {
				return false, err
			}
			if ok {
				st.sp.full = 0
				return false, nil
			}
		}
		return false, fmt.Errorf("awsstore: commit pool %s: all %d slot shards full: %w", txn.Pool, st.sp.n, core.ErrNoCapacity)
	}
	return wait, err
}

func (s *Store) cancelReasons(ctx context.Context, txn *core.Txn, parts []part, reasons []types.CancellationReason, st *commitState) (wait bool, err error) {
	retry, relayout, replan, allFull := false, false, false, false
	for i, r := range reasons {
		code := aws.ToString(r.Code)
		switch code {
		case "", "None":
			continue
		case "ConditionalCheckFailed":
		case "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded":
			retry, wait = true, true
			continue
		default:
			return false, fmt.Errorf("awsstore: commit %s: transaction cancelled: %s: %s", describe(txn), code, aws.ToString(r.Message))
		}
		p := parts[i]
		switch p.kind {
		case partTask:
			w := txn.Tasks[p.i]
			// A put taken as unsharded is also conditioned on the task
			// holding no slot shard: if its version held, that failed.
			if old, state, err := decodeOld(r.Item); err == nil && !w.Conflicts(true, old.version, state) && old.slot != noSlot {
				s.slots.put(w.Task.ID, old.version, old.slot)
				relayout = true
				continue
			}
			return false, fmt.Errorf("awsstore: commit task %s: %w", w.Task.ID, core.ErrConflict)
		case partKey:
			return false, fmt.Errorf("awsstore: commit key %q: %w", txn.Key.Key, core.ErrKeyExists)
		case partPool:
			perr, err := s.poolFailure(ctx, txn, r.Item, st)
			switch {
			case errors.Is(perr, errRelayout):
				relayout = true
				continue
			case errors.Is(perr, errRestamped):
				retry = true
				continue
			case err != nil || perr != nil:
				return false, errors.Join(perr, err)
			}
			retry = true
			if st.sp == nil {
				wait = true // the condition held again by the time we looked
			}
		case partShard:
			now, err := shardFailure(txn, st.sp, p.i, r.Item)
			switch {
			case errors.Is(err, errRelayout):
				relayout = true
				continue
			case errors.Is(err, errReplan):
				replan = true
				continue
			case errors.Is(err, errAllFull):
				allFull = true
				continue
			case err != nil:
				return false, err
			}
			restamped, err := s.restampFrom(txn, st.stamp, r.Item)
			if err != nil {
				return false, err
			}
			if restamped {
				now = true
			}
			retry = true
			wait = wait || !now
		case partMessage, partEvent:
			retry = true
		}
	}
	if relayout {
		return false, errRelayout
	}
	if replan {
		return false, errReplan
	}
	if allFull {
		return false, errAllFull
	}
	if !retry {
		return false, fmt.Errorf("awsstore: commit %s: transaction cancelled without a reason", describe(txn))
	}
	return wait, nil
}

// decodeOld reads the version and slot of a task item returned with a
// failed condition.
func decodeOld(av map[string]types.AttributeValue) (taskSlot, core.State, error) {
	if av == nil {
		return taskSlot{}, "", errors.New("awsstore: no item")
	}
	var it struct {
		Version int64  `dynamodbav:"version"`
		Slot    *int   `dynamodbav:"slot"`
		State   string `dynamodbav:"state"`
	}
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return taskSlot{}, "", err
	}
	ts := taskSlot{version: it.Version, slot: noSlot}
	if it.Slot != nil {
		ts.slot = *it.Slot
	}
	return ts, core.State(it.State), nil
}

// poolFailure names the pool condition that failed, from the pool item as
// it was (returned with the cancellation, or read now): a core error,
// errRelayout, or nil (retry) when none of txn's conditions fails on it. On
// a sharded pool it records the parked count it saw in st, so that the
// retry guesses the side of 0 right.
func (s *Store) poolFailure(ctx context.Context, txn *core.Txn, old map[string]types.AttributeValue, st *commitState) (error, error) {
	if old == nil {
		out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: s.table, Key: itemKey(poolPK(txn.Pool), skPool), ConsistentRead: aws.Bool(true),
			ReturnConsumedCapacity: s.rcc,
		})
		if err != nil {
			return nil, fmt.Errorf("awsstore: commit: read pool %s: %w", txn.Pool, err)
		}
		old = out.Item
	}
	if old == nil {
		return fmt.Errorf("awsstore: commit: %w: %s", core.ErrPoolNotFound, txn.Pool), nil
	}
	p, err := decodePool(old)
	if err != nil {
		return nil, err
	}
	if (p.SlotShards >= 2) != st.lay.sharded() || st.lay.sharded() && p.SlotShards != st.lay.shards {
		return errRelayout, nil
	}
	var perr error
	if st.lay.sharded() {
		st.lay.parked = p.Parked
		s.layouts.put(txn.Pool, st.lay)
		// Running is on the shards, and NeedSlot is checked there.
		perr = txn.CheckParked(p.Parked, p.MaxParked)
	} else {
		perr = txn.CheckPool(p)
	}
	if perr != nil {
		return fmt.Errorf("awsstore: %w", perr), nil
	}
	switch restamped, err := s.restampFrom(txn, st.stamp, old); {
	case err != nil:
		return err, nil
	case restamped:
		return errRestamped, nil
	}
	return nil, nil
}

type headItem struct {
	Seq   uint64 `dynamodbav:"seq"`
	Acked uint64 `dynamodbav:"acked"`
}

func (s *Store) head(ctx context.Context, b string) (headItem, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: s.table, Key: itemKey(b, skHead), ConsistentRead: aws.Bool(true),
		ReturnConsumedCapacity: s.rcc,
	})
	if err != nil {
		return headItem{}, fmt.Errorf("awsstore: read mailbox: %w", err)
	}
	var h headItem
	if err := attributevalue.UnmarshalMap(out.Item, &h); err != nil {
		return headItem{}, fmt.Errorf("awsstore: decode mailbox: %w", err)
	}
	return h, nil
}

// backoff waits a jittered, exponentially growing time bounded by 200ms, or
// until ctx ends.
func backoff(ctx context.Context, attempt int) error {
	d := min(5*time.Millisecond<<min(attempt, 6), 200*time.Millisecond)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
