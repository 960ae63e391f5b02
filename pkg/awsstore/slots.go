package awsstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Slot shards (PoolConfig.SlotShards >= 2) spread a pool's running count
// over N shard items POOL#<pool>#<i> (sk SHARD), so that starts and releases
// no longer all write the one pool item. Shard i holds capacity_i (the
// capacity split as evenly as possible), running_i, hasParked (1 while the
// pool item's parked > 0) and shards = N. The pool item keeps the
// configuration and parked; its running stays 0.
//
//   - A start increments one shard on running_i < capacity_i; the Store
//     picks the shard (pickOrder: those that had room at its last read of
//     the pool first; the next one when a shard is full; ErrNoCapacity only
//     when all N were full). The task item records the shard (attribute
//     slot).
//   - A release decrements the shard its task records; a hand-off gives the
//     released task's shard to the started task, on running_i <= capacity_i.
//   - FirstInLine (parked = 0) is checked as hasParked = 0 on the shard the
//     transaction writes anyway, so that a start or release in a pool with
//     nothing parked writes no item every other start or release writes.
//     hasParked equals parked > 0 at every commit: the transactions that move
//     parked from 0 or to 0 (conditioned on parked = 0, or parked = k for a
//     delta of -k) set or clear it on every shard; the others are
//     conditioned on parked staying on the same side of 0. The Store guesses
//     which case applies from the parked count it saw last, and a wrong guess
//     costs one cancelled attempt.
//   - Every shard write is conditioned on shards = N, and every write of the
//     pool item on slotShards = N (on slotShards <= 1 for unsharded pools),
//     so a Store that guessed the layout wrong, or saw it before PutPool
//     changed it, has its transaction cancelled and re-reads the pool item.
//     PutPool changes N only while no task runs.
//
// Never more than capacity run: each start leaves its shard at or below its
// capacity_i, and the capacities sum to the pool's.

// noSlot marks a task that holds no slot shard.
const noSlot = -1

// poolLayout is what a Store last saw of a pool's slot layout.
type poolLayout struct {
	shards int // SlotShards as stored; 0 or 1: the pool item counts running
	parked int // parked as last seen; a guess, checked by conditions
	// As last read by readLayout: the pool's capacity and whether it
	// drains (splitCapacity).
	capacity int
	drain    bool
	// room is each shard's capacity minus its running count as last read
	// by Pool or Pools; nil if unknown.
	room []int
}

func (l poolLayout) sharded() bool { return l.shards >= 2 }

// layoutCache holds the layouts this Store saw, by pool.
type layoutCache struct {
	mu sync.Mutex
	m  map[string]poolLayout
}

func (c *layoutCache) get(pool string) poolLayout {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[pool]
}

func (c *layoutCache) put(pool string, l poolLayout) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= layoutCacheMax {
		c.m = make(map[string]poolLayout)
	}
	c.m[pool] = l
}

const layoutCacheMax = 4096

// slotCache remembers which shard each task held at a version. An item's
// content at a version never changes, so an entry is never stale: a Commit
// expecting another version fails on the version condition.
type slotCache struct {
	mu sync.Mutex
	m  map[string]taskSlot
}

type taskSlot struct {
	version int64
	slot    int
}

const slotCacheMax = 1 << 16

func (c *slotCache) get(id string, version int64) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || e.version != version {
		return 0, false
	}
	return e.slot, true
}

func (c *slotCache) put(id string, version int64, slot int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= slotCacheMax {
		c.m = make(map[string]taskSlot)
	}
	if e, ok := c.m[id]; !ok || e.version <= version {
		c.m[id] = taskSlot{version: version, slot: slot}
	}
}

// shardCapacity is shard i's share of capacity over n shards.
func shardCapacity(capacity, n, i int) int {
	c := capacity / n
	if i < capacity%n {
		c++
	}
	return c
}

// splitCapacity splits capacity over shards running running[i] tasks: each
// shard gets at least its running count and the free slots are spread
// evenly. If the shards run more than capacity, every share is 0 and drain
// is set: no shard starts a task until Commit finds the pool below its
// capacity and splits it again (rebalance), as an unsharded pool starts
// nothing until its running count drops below a lowered capacity.
func splitCapacity(capacity int, running []int) (caps []int, drain bool) {
	n := len(running)
	caps = make([]int, n)
	total := 0
	for _, r := range running {
		total += max(r, 0)
	}
	if total > capacity {
		return caps, true
	}
	free := capacity - total
	for i, r := range running {
		caps[i] = max(r, 0) + free/n
		if i < free%n {
			caps[i]++
		}
	}
	return caps, false
}

func boolNum(b bool) int {
	if b {
		return 1
	}
	return 0
}

// readShards reads a pool's n shard items, strongly consistent, by index.
func (s *Store) readShards(ctx context.Context, pool string, n int) ([]shardItem, error) {
	items, err := s.batchGet(ctx, shardKeys(pool, n))
	if err != nil {
		return nil, fmt.Errorf("read slot shards of %s: %w", pool, err)
	}
	out := make([]shardItem, n)
	seen := 0
	for _, it := range items {
		pk, _ := it[attrPK].(*types.AttributeValueMemberS)
		sh, err := decodeShard(it)
		if err != nil {
			return nil, err
		}
		for i := range n {
			if pk != nil && pk.Value == shardPK(pool, i) && sh.Shards == n {
				out[i] = sh
				seen++
			}
		}
	}
	if seen != n {
		return nil, fmt.Errorf("read %d of the %d slot shards of %s (slotShards changing?): %w", seen, n, pool, core.ErrConflict)
	}
	return out, nil
}

// rebalance splits the capacity of a draining pool (see splitCapacity)
// again once its shards run fewer tasks than its capacity, and reports
// whether it did.
func (s *Store) rebalance(ctx context.Context, pool string, n int) (bool, error) {
	l, err := s.readLayout(ctx, pool)
	if err != nil || l.shards != n || !l.drain {
		return false, err
	}
	shards, err := s.readShards(ctx, pool, n)
	if err != nil {
		return false, fmt.Errorf("awsstore: rebalance: %w", err)
	}
	running := make([]int, n)
	for i, sh := range shards {
		running[i] = sh.Running
	}
	caps, drain := splitCapacity(l.capacity, running)
	if drain {
		return false, nil
	}
	main, err := s.condWrite(itemKey(poolPK(pool), skPool),
		expression.Name(attrDrain).Equal(expression.Value(1)).
			And(expression.Name(attrShards).Equal(expression.Value(n))).
			And(expression.Name("capacity").Equal(expression.Value(l.capacity))),
		ptr(expression.Set(expression.Name(attrDrain), expression.Value(0))))
	if err != nil {
		return false, fmt.Errorf("awsstore: rebalance %s: %w", pool, err)
	}
	items := []types.TransactWriteItem{main}
	for i := range n {
		it, err := s.condWrite(itemKey(shardPK(pool, i), skShard),
			expression.Name("shards").Equal(expression.Value(n)).
				And(expression.Name("running").LessThanEqual(expression.Value(caps[i]))),
			ptr(expression.Set(expression.Name("capacity"), expression.Value(caps[i]))))
		if err != nil {
			return false, fmt.Errorf("awsstore: rebalance %s: %w", pool, err)
		}
		items = append(items, it)
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items, ReturnConsumedCapacity: s.rcc})
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		return false, nil // another writer moved first; the caller finds no slot
	}
	if err != nil {
		return false, fmt.Errorf("awsstore: rebalance %s: %w", pool, err)
	}
	return true, nil
}

func ptr[T any](v T) *T { return &v }

// pickOrder is the order in which a start tries a pool's n shards: from a
// random one on, first those that had a free slot when this Store last read
// the pool (core reads it just before it admits), then the others.
func (s *Store) pickOrder(pool string, n int) []int {
	room := s.layouts.get(pool).room
	start := rand.IntN(n)
	order := make([]int, 0, n)
	for _, free := range []bool{true, false} {
		for k := range n {
			i := (start + k) % n
			if (len(room) != n || room[i] > 0) == free {
				order = append(order, i)
			}
		}
	}
	return order
}

// slotPlan is how one Commit on a sharded pool uses the shards.
type slotPlan struct {
	n     int
	slots []int // per txn.Tasks: the shard the written item holds, or noSlot
	fresh int   // index in txn.Tasks of the task that takes a new slot, or -1
	drop  []int // shards whose running count a release lowers
	reuse []int // shards a released task hands to a started one
	// up and down are running changes that no task write accounts for
	// (core makes none; the port contract does): up is added to the
	// picked shard, down taken from shards that hold that many.
	up    int
	down  map[int]int
	spill int   // taken from shard 0 beyond what the shards hold
	order []int // shards to try for the fresh start, in turn
	pick  int   // the shard tried now: order[full]
	full  int   // shards found full for it
}

// picks reports whether the plan takes a new slot on the picked shard.
func (sp *slotPlan) picks() bool { return sp.fresh >= 0 || sp.up > 0 }

// planSlots decides which shards txn writes on a pool of n shards: it looks
// up the shard of each task that may hold one (running before or after).
func (s *Store) planSlots(ctx context.Context, txn *core.Txn, n int) (*slotPlan, error) {
	sp := &slotPlan{n: n, slots: make([]int, len(txn.Tasks)), fresh: -1, order: s.pickOrder(txn.Pool, n)}
	sp.pick = sp.order[0]
	var starts []int
	var freed []int
	for i, w := range txn.Tasks {
		running := w.Task.State == core.StateRunning
		old := noSlot
		if w.Expect > 0 && (running || txn.RunningDelta < 0 || txn.NeedSlot) {
			var err error
			if old, err = s.taskSlot(ctx, w); err != nil {
				return nil, err
			}
			if old >= n {
				return nil, fmt.Errorf("awsstore: commit task %s: holds slot shard %d of pool %s, which has %d", w.Task.ID, old, txn.Pool, n)
			}
		}
		sp.slots[i] = noSlot
		switch {
		case running && old != noSlot:
			sp.slots[i] = old
		case running:
			starts = append(starts, i)
		case old != noSlot:
			freed = append(freed, old)
		}
	}
	for len(starts) > 0 && len(freed) > 0 {
		sp.slots[starts[0]] = freed[0]
		sp.reuse = append(sp.reuse, freed[0])
		starts, freed = starts[1:], freed[1:]
	}
	sp.drop = freed
	if len(starts) > 1 {
		return nil, fmt.Errorf("awsstore: commit %s: %d tasks start in one transaction", describe(txn), len(starts))
	}
	if len(starts) == 1 {
		sp.fresh = starts[0]
	}
	switch extra := txn.RunningDelta - (len(starts) - len(freed)); {
	case extra > 0:
		sp.up = extra
		if txn.NeedSlot && len(starts)+extra > 1 {
			return nil, fmt.Errorf("awsstore: pool %s: NeedSlot with running delta %d", txn.Pool, txn.RunningDelta)
		}
	case extra < 0:
		down, spill, err := s.spreadDown(ctx, txn.Pool, n, -extra)
		if err != nil {
			return nil, err
		}
		sp.down, sp.spill = down, spill
	}
	return sp, nil
}

// spreadDown reads a pool's n shards and spreads a decrease of k over those
// that hold running tasks, most loaded first; whatever they do not hold
// goes to shard 0 (a running count below 0, as a caller's unbalanced
// deltas leave it on an unsharded pool).
func (s *Store) spreadDown(ctx context.Context, pool string, n, k int) (map[int]int, int, error) {
	items, err := s.batchGet(ctx, shardKeys(pool, n))
	if err != nil {
		return nil, 0, fmt.Errorf("awsstore: read slot shards of %s: %w", pool, err)
	}
	running := make([]int, n)
	for _, it := range items {
		pk, _ := it[attrPK].(*types.AttributeValueMemberS)
		sh, err := decodeShard(it)
		if err != nil || pk == nil {
			return nil, 0, fmt.Errorf("awsstore: read slot shards of %s: %w", pool, errors.Join(err, errors.New("bad shard item")))
		}
		for i := range n {
			if pk.Value == shardPK(pool, i) {
				running[i] = sh.Running
			}
		}
	}
	down := map[int]int{}
	for k > 0 {
		best := 0
		for i := range n {
			if running[i] > running[best] {
				best = i
			}
		}
		if running[best] <= 0 {
			return down, k, nil
		}
		take := min(k, running[best])
		down[best] += take
		running[best] -= take
		k -= take
	}
	return down, 0, nil
}

// taskSlot returns the shard that w's task holds at the version w expects:
// from the cache, or read strongly consistent. A task on which w's
// compare-and-set fails (core.TaskWrite.Conflicts) is ErrConflict at once.
func (s *Store) taskSlot(ctx context.Context, w core.TaskWrite) (int, error) {
	id, version := w.Task.ID, w.Expect
	if slot, ok := s.slots.get(id, version); ok {
		return slot, nil
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: s.table, Key: itemKey(taskPK(id), skTask), ConsistentRead: aws.Bool(true),
		ProjectionExpression:     aws.String("#v, #s, #st"),
		ExpressionAttributeNames: map[string]string{"#v": "version", "#s": attrSlot, "#st": "state"},
		ReturnConsumedCapacity:   s.rcc,
	})
	if err != nil {
		return 0, fmt.Errorf("awsstore: read task %s: %w", id, err)
	}
	var it struct {
		Version int64  `dynamodbav:"version"`
		Slot    *int   `dynamodbav:"slot"`
		State   string `dynamodbav:"state"`
	}
	if err := attributevalue.UnmarshalMap(out.Item, &it); err != nil {
		return 0, fmt.Errorf("awsstore: decode task %s: %w", id, err)
	}
	if w.Conflicts(out.Item != nil, it.Version, core.State(it.State)) {
		return 0, fmt.Errorf("awsstore: commit task %s: %w", id, core.ErrConflict)
	}
	slot := noSlot
	if it.Slot != nil {
		slot = *it.Slot
	}
	s.slots.put(id, version, slot)
	return slot, nil
}

// shardOp is what a transaction does to one shard.
type shardOp struct {
	delta     int
	atLeast   int  // running >= atLeast, when positive
	below     bool // running < capacity: a fresh start
	within    bool // running <= capacity: a hand-off
	noneParkd bool // hasParked = 0: FirstInLine
	flag      *int // hasParked set to this
}

// parkedCrosses reports whether txn's parked delta moves parked from or to
// 0, assuming parked is l.parked before it.
func parkedCrosses(txn *core.Txn, l poolLayout) bool {
	switch d := txn.ParkedDelta; {
	case d > 0:
		return l.parked <= 0
	case d < 0:
		return l.parked <= -d
	}
	return false
}

// shardedWrites are the items of txn on a sharded pool: the pool item's
// update or condition check when parked moves or is checked, and each shard
// the transaction writes or checks, each with the order condition c.
func (s *Store) shardedWrites(txn *core.Txn, pool string, sp *slotPlan, l poolLayout, c *stampCheck) ([]types.TransactWriteItem, []part, error) {
	ops := map[int]*shardOp{}
	op := func(i int) *shardOp {
		if ops[i] == nil {
			ops[i] = &shardOp{}
		}
		return ops[i]
	}
	if sp.picks() {
		o := op(sp.pick)
		o.delta += sp.up
		o.below = txn.NeedSlot
		if sp.fresh >= 0 {
			o.delta++
			sp.slots[sp.fresh] = sp.pick
		}
	}
	for _, i := range sp.drop {
		op(i).delta--
	}
	for i, k := range sp.down {
		o := op(i)
		o.delta -= k
		o.atLeast = k
	}
	if sp.spill > 0 {
		op(0).delta -= sp.spill
	}
	for _, i := range sp.reuse {
		op(i).within = op(i).within || txn.NeedSlot
	}
	crosses := parkedCrosses(txn, l)
	if crosses {
		f := 0
		if txn.ParkedDelta > 0 {
			f = 1
		}
		for i := range sp.n {
			op(i).flag = &f
		}
	}
	// FirstInLine on a shard the transaction writes anyway; on the pool
	// item only when it has no shard to carry it.
	firstOnPool := txn.FirstInLine && len(ops) == 0
	if txn.FirstInLine && !firstOnPool {
		op(firstShard(ops)).noneParkd = true
	}

	var items []types.TransactWriteItem
	var parts []part
	if txn.ParkedDelta != 0 || txn.NeedParkRoom || firstOnPool {
		cond := expression.AttributeExists(expression.Name(attrPK)).
			And(expression.Name(attrShards).Equal(expression.Value(sp.n)))
		if firstOnPool {
			cond = cond.And(expression.Name("parked").Equal(expression.Value(0)))
		}
		if txn.NeedParkRoom {
			cond = cond.And(expression.Name("parked").LessThan(expression.Name("maxParked")))
		}
		if d := txn.ParkedDelta; d != 0 {
			// The side of 0 the shards' hasParked flags assume.
			k := max(-d, 0)
			switch {
			case crosses:
				cond = cond.And(expression.Name("parked").Equal(expression.Value(k)))
			default:
				cond = cond.And(expression.Name("parked").GreaterThan(expression.Value(k)))
			}
		}
		var upd *expression.UpdateBuilder
		if txn.ParkedDelta != 0 {
			u := expression.Set(expression.Name("parked"), expression.Name("parked").Plus(expression.Value(txn.ParkedDelta)))
			upd = &u
		}
		it, err := s.condWrite(itemKey(poolPK(pool), skPool), c.cond(cond), c.set(upd))
		if err != nil {
			return nil, nil, fmt.Errorf("awsstore: pool %s condition: %w", pool, err)
		}
		items = append(items, it)
		parts = append(parts, part{kind: partPool})
	}
	for i := range sp.n {
		o := ops[i]
		if o == nil {
			continue
		}
		cond := expression.Name("shards").Equal(expression.Value(sp.n))
		if o.atLeast > 0 {
			cond = cond.And(expression.Name("running").GreaterThanEqual(expression.Value(o.atLeast)))
		}
		if o.below {
			cond = cond.And(expression.Name("running").LessThan(expression.Name("capacity")))
		}
		if o.within {
			cond = cond.And(expression.Name("running").LessThanEqual(expression.Name("capacity")))
		}
		if o.noneParkd {
			cond = cond.And(expression.Name("hasParked").Equal(expression.Value(0)))
		}
		var upd *expression.UpdateBuilder
		if o.delta != 0 || o.flag != nil {
			var u expression.UpdateBuilder
			if o.delta != 0 {
				u = u.Set(expression.Name("running"), expression.Name("running").Plus(expression.Value(o.delta)))
			}
			if o.flag != nil {
				u = u.Set(expression.Name("hasParked"), expression.Value(*o.flag))
			}
			upd = &u
		}
		it, err := s.condWrite(itemKey(shardPK(pool, i), skShard), c.cond(cond), c.set(upd))
		if err != nil {
			return nil, nil, fmt.Errorf("awsstore: pool %s shard %d condition: %w", pool, i, err)
		}
		items = append(items, it)
		parts = append(parts, part{kind: partShard, i: i})
	}
	return items, parts, nil
}

func firstShard(ops map[int]*shardOp) int {
	first := -1
	for i := range ops {
		if first < 0 || i < first {
			first = i
		}
	}
	return first
}

// condWrite is an Update of key with cond, or a ConditionCheck when upd is
// nil; either returns the old item when the condition fails.
func (s *Store) condWrite(key map[string]types.AttributeValue, cond expression.ConditionBuilder, upd *expression.UpdateBuilder) (types.TransactWriteItem, error) {
	b := expression.NewBuilder().WithCondition(cond)
	if upd != nil {
		b = b.WithUpdate(*upd)
	}
	ex, err := b.Build()
	if err != nil {
		return types.TransactWriteItem{}, err
	}
	if upd == nil {
		return types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
			TableName: s.table, Key: key, ConditionExpression: ex.Condition(),
			ExpressionAttributeNames: ex.Names(), ExpressionAttributeValues: ex.Values(),
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}}, nil
	}
	return types.TransactWriteItem{Update: &types.Update{
		TableName: s.table, Key: key, UpdateExpression: ex.Update(), ConditionExpression: ex.Condition(),
		ExpressionAttributeNames: ex.Names(), ExpressionAttributeValues: ex.Values(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}}, nil
}

// errRelayout reports that a transaction was built on a layout the pool no
// longer has (or never had): Commit re-reads the pool item and retries.
var errRelayout = errors.New("awsstore: pool layout changed")

// errAllFull reports that a start found every shard full.
var errAllFull = errors.New("awsstore: every slot shard full")

// errReplan reports that the shards a plan spread a decrease over no longer
// hold it: Commit plans again.
var errReplan = errors.New("awsstore: slot shards changed")

// shardFailure interprets the failed condition of shard i (old: the item as
// it was, nil if absent): a core error, errRelayout, or nil when the
// transaction is to be retried (moved to the next shard when a fresh
// start's shard was full).
func shardFailure(txn *core.Txn, sp *slotPlan, i int, old map[string]types.AttributeValue) (retryNow bool, err error) {
	if old == nil {
		return false, errRelayout
	}
	sh, err := decodeShard(old)
	if err != nil {
		return false, err
	}
	if sh.Shards != sp.n {
		return false, errRelayout
	}
	if txn.Overtakes(sh.HasParked) {
		return false, fmt.Errorf("awsstore: commit pool %s: %w", txn.Pool, core.ErrNoCapacity)
	}
	if k := sp.down[i]; k > 0 && sh.Running < k {
		return false, errReplan
	}
	if sp.picks() && i == sp.pick && txn.SlotMissingOn(sh.Running, 1, sh.Capacity) {
		sp.full++
		if sp.full >= sp.n {
			return false, errAllFull
		}
		sp.pick = sp.order[sp.full]
		return true, nil
	}
	for _, r := range sp.reuse {
		if r == i && txn.SlotMissingOn(sh.Running, 0, sh.Capacity) {
			return false, fmt.Errorf("awsstore: commit pool %s: %w", txn.Pool, core.ErrNoCapacity)
		}
	}
	return false, nil
}

// readLayout reads the pool item's layout and parked count, strongly
// consistent, and caches it.
func (s *Store) readLayout(ctx context.Context, pool string) (poolLayout, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: s.table, Key: itemKey(poolPK(pool), skPool), ConsistentRead: aws.Bool(true),
		ReturnConsumedCapacity: s.rcc,
	})
	if err != nil {
		return poolLayout{}, fmt.Errorf("awsstore: read pool %s: %w", pool, err)
	}
	if out.Item == nil {
		return poolLayout{}, fmt.Errorf("awsstore: pool %s: %w", pool, core.ErrPoolNotFound)
	}
	p, err := decodePool(out.Item)
	if err != nil {
		return poolLayout{}, err
	}
	l := poolLayout{shards: p.SlotShards, parked: p.Parked, capacity: p.Capacity}
	var it poolItem
	if err := attributevalue.UnmarshalMap(out.Item, &it); err == nil {
		l.drain = it.Drain == 1
	}
	s.layouts.put(pool, l)
	return l, nil
}

// shardKeys are the keys of a pool's n shard items.
func shardKeys(pool string, n int) []map[string]types.AttributeValue {
	keys := make([]map[string]types.AttributeValue, n)
	for i := range n {
		keys[i] = itemKey(shardPK(pool, i), skShard)
	}
	return keys
}

// sumShards adds the running counts of the shard items in items (as
// BatchGetItem returns them, in any order) to their pools in byName, and
// reports how many shards of each pool of the pool's layout it found and
// each shard's free slots.
func sumShards(items []map[string]types.AttributeValue, byName map[string]*core.Pool) (map[string]int, map[string][]int, error) {
	found := map[string]int{}
	rooms := map[string][]int{}
	for _, it := range items {
		pk, ok := it[attrPK].(*types.AttributeValueMemberS)
		if !ok {
			continue
		}
		rest, ok := strings.CutPrefix(pk.Value, prefixPool)
		j := strings.LastIndexByte(rest, '#')
		if !ok || j < 0 {
			continue
		}
		p := byName[rest[:j]]
		if p == nil {
			continue
		}
		sh, err := decodeShard(it)
		if err != nil {
			return nil, nil, err
		}
		if sh.Shards == p.SlotShards {
			p.Running += sh.Running
			found[p.Name]++
			if i, err := strconv.Atoi(rest[j+1:]); err == nil && i >= 0 && i < p.SlotShards {
				if rooms[p.Name] == nil {
					rooms[p.Name] = make([]int, p.SlotShards)
				}
				rooms[p.Name][i] = sh.Capacity - sh.Running
			}
		}
	}
	return found, rooms, nil
}
