package awsstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// DynamoDBAPI is the part of the DynamoDB client the backend calls.
type DynamoDBAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
}

// SQSAPI is the part of the SQS client the backend calls.
type SQSAPI interface {
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	CreateQueue(ctx context.Context, in *sqs.CreateQueueInput, optFns ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, optFns ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

var (
	_ DynamoDBAPI = (*dynamodb.Client)(nil)
	_ SQSAPI      = (*sqs.Client)(nil)
)

// Options configure a Store. Zero fields take the defaults documented on
// each; WithDefaults fills them and Validate names the first bad field.
type Options struct {
	// DynamoDB is the table's client, built once by the caller (with
	// NewRetryer as its retryer). Required.
	DynamoDB DynamoDBAPI
	// SQS is the parking queues' client, built once by the caller. Required.
	SQS SQSAPI
	// Table is the DynamoDB table name. Required.
	Table string
	// QueuePrefix starts every parking queue's name. Default: "parkinglot-".
	QueuePrefix string
	// Visibility is how long a received parking message stays hidden unless
	// deleted or released; whole seconds, 1s to 12h. Default: 30s.
	Visibility time.Duration
	// Clock also ends the visibility of the messages this Store received:
	// a message whose Visibility has passed on Clock is made visible again
	// (ChangeMessageVisibility 0) before the pool's next Receive, even if
	// SQS's own timer has not run out. Tests drive it with a stub clock.
	// Default: core.SystemClock.
	Clock core.Clock
	// ReceiveWait is the SQS long-poll wait of Receive; whole seconds, 0 to
	// 20s. Default: 0 (short poll).
	ReceiveWait time.Duration
	// GroupBuckets spreads each tenant's parked messages over this many
	// SQS message groups (the tenant and a bucket chosen by a hash of the
	// task id), so that up to GroupBuckets receivers at once can hold one
	// tenant's messages: a FIFO group is blocked while any of its messages
	// is in flight. Every tenant gets the same number of groups, so tenants
	// with a backlog keep equal shares. Order within a tenant is FIFO per
	// bucket only. 1 makes the group the tenant alone. Changing it on a
	// live queue changes the groups of new messages only. 1 to 64. Default:
	// DefaultGroupBuckets.
	GroupBuckets int
	// IndexShards spreads the due, unsent and expiry indexes over this many
	// index partitions, 1 to 64. Default: 4.
	IndexShards int
	// MessageRetention and EventRetention set the TTL attribute of mailbox
	// messages and audit events: the core.Config's MailboxRetention and
	// AuditRetention, whose defaults are theirs (core.DefaultMailboxRetention
	// and core.DefaultAuditRetention).
	MessageRetention time.Duration
	EventRetention   time.Duration
	// CreateQueues makes PutPool create the pool's parking queue if missing
	// (local use; deployments create queues with the stack).
	CreateQueues bool
	// ReturnConsumedCapacity asks DynamoDB to report the capacity each call
	// consumed, for RequestCounter. Default: off.
	ReturnConsumedCapacity bool
}

// WithDefaults returns a copy of o with zero fields set to their defaults.
func (o Options) WithDefaults() Options {
	if o.QueuePrefix == "" {
		o.QueuePrefix = "parkinglot-"
	}
	if o.Clock == nil {
		o.Clock = core.SystemClock{}
	}
	if o.Visibility == 0 {
		o.Visibility = 30 * time.Second
	}
	if o.IndexShards == 0 {
		o.IndexShards = 4
	}
	if o.GroupBuckets == 0 {
		o.GroupBuckets = DefaultGroupBuckets
	}
	if o.MessageRetention == 0 {
		o.MessageRetention = core.DefaultMailboxRetention
	}
	if o.EventRetention == 0 {
		o.EventRetention = core.DefaultAuditRetention
	}
	return o
}

// Validate names the first bad field.
func (o Options) Validate() error {
	switch {
	case o.DynamoDB == nil:
		return errors.New("awsstore: Options.DynamoDB is required")
	case o.SQS == nil:
		return errors.New("awsstore: Options.SQS is required")
	case o.Table == "":
		return errors.New("awsstore: Options.Table is required")
	case !validQueueChars(o.QueuePrefix) || len(o.QueuePrefix) > 40:
		return fmt.Errorf("awsstore: Options.QueuePrefix %q must be at most 40 characters of [A-Za-z0-9_-]", o.QueuePrefix)
	case o.Visibility < time.Second || o.Visibility > 12*time.Hour || o.Visibility%time.Second != 0:
		return fmt.Errorf("awsstore: Options.Visibility must be whole seconds from 1s to 12h, got %s", o.Visibility)
	case o.ReceiveWait < 0 || o.ReceiveWait > 20*time.Second || o.ReceiveWait%time.Second != 0:
		return fmt.Errorf("awsstore: Options.ReceiveWait must be whole seconds from 0 to 20s, got %s", o.ReceiveWait)
	case o.GroupBuckets < 1 || o.GroupBuckets > 64:
		return fmt.Errorf("awsstore: Options.GroupBuckets must be 1-64, got %d", o.GroupBuckets)
	case o.IndexShards < 1 || o.IndexShards > 64:
		return fmt.Errorf("awsstore: Options.IndexShards must be 1-64, got %d", o.IndexShards)
	case o.MessageRetention < time.Second || o.EventRetention < time.Second:
		return errors.New("awsstore: Options.MessageRetention and EventRetention must be at least 1s")
	}
	return nil
}

// Store is the DynamoDB + SQS backend. It is safe for concurrent use, also
// by several processes over one table.
type Store struct {
	opts   Options
	db     DynamoDBAPI
	sqs    SQSAPI
	table  *string
	rcc    types.ReturnConsumedCapacity
	queues sync.Map // pool -> queue URL

	mu       sync.Mutex
	inflight map[string]map[string]inflight // pool -> receipt -> message
	served   map[string]map[string]uint64   // pool -> tenant -> serial of its last delete
	serial   uint64
	lastSeq  uint64 // last event sequence number given
	// Pending mailbox messages' keys (pendingSKs): the last stamp given,
	// this Store's random nonce and its count of pending messages.
	lastStamp uint64
	nonce     string
	pending   uint64
	layouts   layoutCache // pool -> slot layout last seen
	slots     slotCache   // task -> slot shard held at a version
}

var _ core.Backend = (*Store)(nil)

// New returns a Store over opts, or an error naming the bad option. It makes
// no AWS call; CreateResources creates the table and queues for local use.
func New(_ context.Context, opts Options) (*Store, error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Store{opts: opts, db: opts.DynamoDB, sqs: opts.SQS, table: aws.String(opts.Table)}
	if opts.ReturnConsumedCapacity {
		s.rcc = types.ReturnConsumedCapacityIndexes
	}
	s.nonce = newNonce()
	s.inflight = make(map[string]map[string]inflight)
	s.served = make(map[string]map[string]uint64)
	return s, nil
}

// Options returns the store's options, with defaults filled.
func (s *Store) Options() Options { return s.opts }

// PutPool creates the pool item or updates its configuration, keeping its
// counters; with Options.CreateQueues it also creates the pool's queue.
// An unsharded pool that stays so takes one UpdateItem; a sharded one, or a
// change of cfg.SlotShards, one read of the pool and one transaction (see
// putShardedPool).
func (s *Store) PutPool(ctx context.Context, cfg core.PoolConfig) error {
	if cfg.SlotShards < 0 || cfg.SlotShards > core.MaxSlotShards {
		return core.Invalid("slotShards", "pool %s: slotShards must be 0-%d, got %d", cfg.Name, core.MaxSlotShards, cfg.SlotShards)
	}
	done := false
	if cfg.SlotShards < 2 {
		var err error
		if done, err = s.putUnshardedPool(ctx, cfg); err != nil {
			return err
		}
	}
	if !done {
		if err := s.putShardedPool(ctx, cfg); err != nil {
			return err
		}
	}
	if s.opts.CreateQueues {
		if err := s.createQueue(ctx, cfg.Name); err != nil {
			return err
		}
	}
	return nil
}

// poolConfigUpdate sets cfg's attributes on the pool item.
func poolConfigUpdate(cfg core.PoolConfig) expression.UpdateBuilder {
	return expression.Set(expression.Name("name"), expression.Value(cfg.Name)).
		Set(expression.Name(attrPools), expression.Value(poolsPartition)).
		Set(expression.Name("capacity"), expression.Value(cfg.Capacity)).
		Set(expression.Name("maxParked"), expression.Value(cfg.MaxParked)).
		Set(expression.Name("defaultMaxWait"), expression.Value(int64(cfg.DefaultMaxWait))).
		Set(expression.Name("runTimeout"), expression.Value(int64(cfg.RunTimeout))).
		Set(expression.Name(attrShards), expression.Value(cfg.SlotShards)).
		Set(expression.Name("executor"), expression.Value(string(cfg.Executor))).
		Set(expression.Name("parked"), expression.IfNotExists(expression.Name("parked"), expression.Value(0)))
}

// unshardedCond holds on a pool item of an unsharded pool, or none.
func unshardedCond() expression.ConditionBuilder {
	return expression.Or(expression.AttributeNotExists(expression.Name(attrShards)),
		expression.Name(attrShards).LessThanEqual(expression.Value(1)))
}

// putUnshardedPool writes cfg (SlotShards 0 or 1) to a pool item that is
// absent or unsharded, and reports false if the pool is sharded. An update
// that meets a transaction in flight on the pool item
// (TransactionConflictException, which the SDK does not retry) is tried
// again after a backoff, up to maxPutPoolAttempts times.
func (s *Store) putUnshardedPool(ctx context.Context, cfg core.PoolConfig) (bool, error) {
	upd := poolConfigUpdate(cfg).
		Set(expression.Name("running"), expression.IfNotExists(expression.Name("running"), expression.Value(0)))
	ex, err := expression.NewBuilder().WithUpdate(upd).WithCondition(unshardedCond()).Build()
	if err != nil {
		return false, fmt.Errorf("awsstore: put pool %s: %w", cfg.Name, err)
	}
	for attempt := 1; ; attempt++ {
		_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 s.table,
			Key:                       itemKey(poolPK(cfg.Name), skPool),
			UpdateExpression:          ex.Update(),
			ConditionExpression:       ex.Condition(),
			ExpressionAttributeNames:  ex.Names(),
			ExpressionAttributeValues: ex.Values(),
			ReturnConsumedCapacity:    s.rcc,
		})
		var tc *types.TransactionConflictException
		if !errors.As(err, &tc) {
			break
		}
		if attempt >= maxPutPoolAttempts {
			return false, fmt.Errorf("awsstore: put pool %s: gave up after %d attempts lost to transactions on the pool: %w", cfg.Name, attempt, err)
		}
		if err := backoff(ctx, attempt); err != nil {
			return false, fmt.Errorf("awsstore: put pool %s: %w", cfg.Name, err)
		}
	}
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("awsstore: put pool %s: %w", cfg.Name, err)
	}
	l := s.layouts.get(cfg.Name)
	l.shards = cfg.SlotShards
	s.layouts.put(cfg.Name, l)
	return true, nil
}

// maxPutPoolAttempts bounds PutPool's transactions lost to concurrent
// commits on the same pool.
const maxPutPoolAttempts = 16

// putShardedPool writes cfg to the pool item and its shard items in one
// transaction, after reading the pool (and nothing if cfg is what the pool
// has already): with the layout unchanged it sets
// each shard's capacity share; a change of layout (unsharded to sharded,
// back, or another shard count) needs no task running, which the
// transaction checks on every counter it replaces, and sets every new
// shard's hasParked from the pool's parked count, which it checks too.
func (s *Store) putShardedPool(ctx context.Context, cfg core.PoolConfig) error {
	newN := max(cfg.SlotShards, 1)
	for attempt := 1; ; attempt++ {
		cur, err := s.Pool(ctx, cfg.Name)
		exists := err == nil
		if err != nil && !errors.Is(err, core.ErrPoolNotFound) {
			return fmt.Errorf("awsstore: put pool %s: %w", cfg.Name, err)
		}
		oldN := max(cur.SlotShards, 1)
		if !exists {
			oldN = 0
		}
		relayout := oldN != newN
		if exists && cur.PoolConfig == cfg {
			// Unchanged (a process starting with the same configuration):
			// no write, so no conflict with the pool's transactions.
			return nil
		}
		if exists && relayout && cur.Running > 0 {
			return core.Invalid("slotShards", "pool %s: slotShards cannot change from %d to %d while %d tasks run",
				cfg.Name, cur.SlotShards, cfg.SlotShards, cur.Running)
		}
		caps, drain := make([]int, newN), false
		for i := range caps {
			caps[i] = shardCapacity(cfg.Capacity, newN, i)
		}
		if exists && !relayout {
			shards, err := s.readShards(ctx, cfg.Name, newN)
			if err != nil {
				return fmt.Errorf("awsstore: put pool %s: %w", cfg.Name, err)
			}
			running := make([]int, newN)
			for i, sh := range shards {
				running[i] = sh.Running
			}
			caps, drain = splitCapacity(cfg.Capacity, running)
		}
		items, err := s.putPoolItems(cfg, exists, oldN, newN, cur.Parked, caps, drain)
		if err != nil {
			return err
		}
		_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items, ReturnConsumedCapacity: s.rcc})
		if err == nil {
			s.layouts.put(cfg.Name, poolLayout{shards: cfg.SlotShards, parked: cur.Parked})
			return nil
		}
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			return fmt.Errorf("awsstore: put pool %s: %w", cfg.Name, err)
		}
		// A task started or ended, or the pool changed, since the read.
		if attempt >= maxPutPoolAttempts {
			return fmt.Errorf("awsstore: put pool %s: gave up after %d attempts lost to other writers", cfg.Name, attempt)
		}
		if err := backoff(ctx, attempt); err != nil {
			return fmt.Errorf("awsstore: put pool %s: %w", cfg.Name, err)
		}
	}
}

// putPoolItems is PutPool's transaction from a pool read with oldN shards
// (0: absent; 1: unsharded) to newN, parked being parked.
func (s *Store) putPoolItems(cfg core.PoolConfig, exists bool, oldN, newN, parked int, caps []int, drain bool) ([]types.TransactWriteItem, error) {
	var items []types.TransactWriteItem
	upd := poolConfigUpdate(cfg).Set(expression.Name(attrDrain), expression.Value(boolNum(drain)))
	var cond expression.ConditionBuilder
	switch {
	case !exists:
		cond = expression.AttributeNotExists(expression.Name(attrPK))
	case oldN == 1:
		cond = unshardedCond()
	default:
		cond = expression.Name(attrShards).Equal(expression.Value(oldN))
	}
	relayout := oldN != newN
	flag := 0
	if parked > 0 {
		flag = 1
	}
	if exists && relayout {
		if oldN == 1 {
			cond = cond.And(expression.Name("running").Equal(expression.Value(0)))
		}
		// The new shards' hasParked is parked > 0 as read.
		if flag == 1 {
			cond = cond.And(expression.Name("parked").GreaterThan(expression.Value(0)))
		} else {
			cond = cond.And(expression.Name("parked").Equal(expression.Value(0)))
		}
	}
	if newN == 1 || !exists {
		upd = upd.Set(expression.Name("running"), expression.Value(0))
	}
	ex, err := expression.NewBuilder().WithUpdate(upd).WithCondition(cond).Build()
	if err != nil {
		return nil, fmt.Errorf("awsstore: put pool %s: %w", cfg.Name, err)
	}
	items = append(items, types.TransactWriteItem{Update: &types.Update{
		TableName: s.table, Key: itemKey(poolPK(cfg.Name), skPool), UpdateExpression: ex.Update(),
		ConditionExpression: ex.Condition(), ExpressionAttributeNames: ex.Names(), ExpressionAttributeValues: ex.Values(),
	}})
	oldShards := oldN
	if oldN < 2 {
		oldShards = 0
	}
	newShards := newN
	if newN < 2 {
		newShards = 0
	}
	for i := range max(oldShards, newShards) {
		key := itemKey(shardPK(cfg.Name, i), skShard)
		switch {
		case !relayout:
			// Same layout: new capacity shares, each at least the shard's
			// running count as read (and checked), or all 0 while the pool
			// drains to a capacity lowered below its running count.
			cond := expression.Name("shards").Equal(expression.Value(newN))
			if !drain {
				cond = cond.And(expression.Name("running").LessThanEqual(expression.Value(caps[i])))
			}
			ex, err := expression.NewBuilder().
				WithUpdate(expression.Set(expression.Name("capacity"), expression.Value(caps[i]))).
				WithCondition(cond).Build()
			if err != nil {
				return nil, fmt.Errorf("awsstore: put pool %s: %w", cfg.Name, err)
			}
			items = append(items, types.TransactWriteItem{Update: &types.Update{
				TableName: s.table, Key: key, UpdateExpression: ex.Update(), ConditionExpression: ex.Condition(),
				ExpressionAttributeNames: ex.Names(), ExpressionAttributeValues: ex.Values(),
			}})
		case i >= newShards:
			items = append(items, types.TransactWriteItem{Delete: &types.Delete{
				TableName: s.table, Key: key, ConditionExpression: aws.String("running = :z AND shards = :o"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":z": num(0), ":o": num(oldN)},
			}})
		default:
			av, err := attributevalue.MarshalMap(shardItem{Capacity: caps[i], HasParked: flag, Shards: newN})
			if err != nil {
				return nil, fmt.Errorf("awsstore: put pool %s: %w", cfg.Name, err)
			}
			av[attrPK], av[attrSK] = key[attrPK], key[attrSK]
			put := &types.Put{TableName: s.table, Item: av}
			if i < oldShards {
				put.ConditionExpression = aws.String("running = :z AND shards = :o")
				put.ExpressionAttributeValues = map[string]types.AttributeValue{":z": num(0), ":o": num(oldN)}
			} else {
				put.ConditionExpression = aws.String("attribute_not_exists(pk)")
			}
			items = append(items, types.TransactWriteItem{Put: put})
		}
	}
	return items, nil
}

// Pool returns the pool item, read strongly consistent, with running summed
// over its slot shards: one GetItem for an unsharded pool, one BatchGetItem
// of the pool and shard items for a pool this Store knows to be sharded
// (GetItem then BatchGetItem the first time). The shards are read each
// strongly consistent but not at one instant, so the sum of a pool in use
// may mix moments; the conditions of Commit decide, not this sum.
func (s *Store) Pool(ctx context.Context, name string) (core.Pool, error) {
	var main map[string]types.AttributeValue
	var shards []map[string]types.AttributeValue
	if l := s.layouts.get(name); l.sharded() {
		items, err := s.batchGet(ctx, append(shardKeys(name, l.shards), itemKey(poolPK(name), skPool)))
		if err != nil {
			return core.Pool{}, fmt.Errorf("awsstore: read pool %s: %w", name, err)
		}
		for _, it := range items {
			if sk, ok := it[attrSK].(*types.AttributeValueMemberS); ok && sk.Value == skPool {
				main = it
			} else {
				shards = append(shards, it)
			}
		}
	} else {
		out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: s.table, Key: itemKey(poolPK(name), skPool), ConsistentRead: aws.Bool(true),
			ReturnConsumedCapacity: s.rcc,
		})
		if err != nil {
			return core.Pool{}, fmt.Errorf("awsstore: read pool %s: %w", name, err)
		}
		main = out.Item
	}
	if main == nil {
		return core.Pool{}, fmt.Errorf("awsstore: pool %s: %w", name, core.ErrPoolNotFound)
	}
	p, err := decodePool(main)
	if err != nil {
		return core.Pool{}, err
	}
	l := poolLayout{shards: p.SlotShards, parked: p.Parked}
	if p.SlotShards < 2 {
		s.layouts.put(name, l)
		return p, nil
	}
	byName := map[string]*core.Pool{name: &p}
	found, rooms, err := sumShards(shards, byName)
	if err != nil {
		return core.Pool{}, err
	}
	if found[name] != p.SlotShards {
		// Read with another layout than the pool item's: read the shards
		// of this one.
		p.Running = 0
		if shards, err = s.batchGet(ctx, shardKeys(name, p.SlotShards)); err != nil {
			return core.Pool{}, fmt.Errorf("awsstore: read pool %s: %w", name, err)
		}
		if found, rooms, err = sumShards(shards, byName); err != nil {
			return core.Pool{}, err
		}
		if found[name] != p.SlotShards {
			return core.Pool{}, fmt.Errorf("awsstore: pool %s: read %d of its %d slot shards (slotShards changing?): %w",
				name, found[name], p.SlotShards, core.ErrConflict)
		}
	}
	l.room = rooms[name]
	s.layouts.put(name, l)
	return p, nil
}

// Pools lists pools through the pools index, then reads each pool item
// strongly consistent, and the slot shards of the sharded ones. A pool created a moment ago may be missing while the
// index catches up.
func (s *Store) Pools(ctx context.Context) ([]core.Pool, error) {
	var keys []map[string]types.AttributeValue
	var start map[string]types.AttributeValue
	for {
		out, err := s.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 s.table,
			IndexName:                 aws.String(indexPools),
			KeyConditionExpression:    aws.String("#p = :p"),
			ExpressionAttributeNames:  map[string]string{"#p": attrPools},
			ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: poolsPartition}},
			ExclusiveStartKey:         start,
			ReturnConsumedCapacity:    s.rcc,
		})
		if err != nil {
			return nil, fmt.Errorf("awsstore: list pools: %w", err)
		}
		for _, it := range out.Items {
			keys = append(keys, map[string]types.AttributeValue{attrPK: it[attrPK], attrSK: it[attrSK]})
		}
		if out.LastEvaluatedKey == nil {
			break
		}
		start = out.LastEvaluatedKey
	}
	items, err := s.batchGet(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("awsstore: read pools: %w", err)
	}
	pools := make([]core.Pool, 0, len(items))
	for _, it := range items {
		p, err := decodePool(it)
		if err != nil {
			return nil, err
		}
		pools = append(pools, p)
	}
	if err := s.sumPools(ctx, pools); err != nil {
		return nil, err
	}
	sortPools(pools)
	return pools, nil
}

// sumPools sets the running count of the sharded pools among pools from
// their shard items, read with one BatchGetItem per 100 shards.
func (s *Store) sumPools(ctx context.Context, pools []core.Pool) error {
	var keys []map[string]types.AttributeValue
	byName := map[string]*core.Pool{}
	for i := range pools {
		p := &pools[i]
		s.layouts.put(p.Name, poolLayout{shards: p.SlotShards, parked: p.Parked})
		if p.SlotShards >= 2 {
			keys = append(keys, shardKeys(p.Name, p.SlotShards)...)
			byName[p.Name] = p
		}
	}
	if len(keys) == 0 {
		return nil
	}
	items, err := s.batchGet(ctx, keys)
	if err != nil {
		return fmt.Errorf("awsstore: read slot shards: %w", err)
	}
	found, rooms, err := sumShards(items, byName)
	if err != nil {
		return err
	}
	for name, p := range byName {
		s.layouts.put(name, poolLayout{shards: p.SlotShards, parked: p.Parked, room: rooms[name]})
		if found[name] != p.SlotShards {
			// The layout changed between the reads: read this pool again.
			q, err := s.Pool(ctx, name)
			if err != nil {
				return err
			}
			*p = q
		}
	}
	return nil
}

// batchGet reads keys strongly consistent, 100 per call, retrying
// unprocessed keys.
func (s *Store) batchGet(ctx context.Context, keys []map[string]types.AttributeValue) ([]map[string]types.AttributeValue, error) {
	var items []map[string]types.AttributeValue
	for len(keys) > 0 {
		n := min(len(keys), 100)
		req := map[string]types.KeysAndAttributes{s.opts.Table: {Keys: keys[:n], ConsistentRead: aws.Bool(true)}}
		keys = keys[n:]
		for attempt := 0; len(req) > 0; attempt++ {
			if attempt > 0 {
				if err := backoff(ctx, attempt); err != nil {
					return nil, err
				}
			}
			out, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req, ReturnConsumedCapacity: s.rcc})
			if err != nil {
				return nil, err
			}
			items = append(items, out.Responses[s.opts.Table]...)
			req = out.UnprocessedKeys
		}
	}
	return items, nil
}

// Task returns the task item, read strongly consistent.
func (s *Store) Task(ctx context.Context, id string) (core.Task, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: s.table, Key: itemKey(taskPK(id), skTask), ConsistentRead: aws.Bool(true),
		ReturnConsumedCapacity: s.rcc,
	})
	if err != nil {
		return core.Task{}, fmt.Errorf("awsstore: read task %s: %w", id, err)
	}
	if out.Item == nil {
		// Bare, as the other backends: the HTTP API shows its text, which
		// must not tell a missing task from another tenant's.
		return core.Task{}, core.ErrNotFound
	}
	t, slot, err := decodeTask(out.Item)
	if err != nil {
		return core.Task{}, err
	}
	s.slots.put(t.ID, t.Version, slot)
	return t, nil
}

// Key returns the idempotency key item, read strongly consistent.
func (s *Store) Key(ctx context.Context, tenant, key string) (core.KeyRecord, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: s.table, Key: itemKey(keyPK(tenant, key), skKey), ConsistentRead: aws.Bool(true),
		ReturnConsumedCapacity: s.rcc,
	})
	if err != nil {
		return core.KeyRecord{}, fmt.Errorf("awsstore: read key: %w", err)
	}
	if out.Item == nil {
		return core.KeyRecord{}, core.ErrNotFound
	}
	var it keyItem
	if err := attributevalue.UnmarshalMap(out.Item, &it); err != nil {
		return core.KeyRecord{}, fmt.Errorf("awsstore: decode key: %w", err)
	}
	return core.KeyRecord{Tenant: it.Tenant, Key: it.Key, TaskID: it.TaskID, BodyHash: it.BodyHash}, nil
}

// Due returns up to limit ids of tasks due at or before t, soonest first,
// merging the due index's shards. The index is eventually consistent.
func (s *Store) Due(ctx context.Context, t time.Time, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	type due struct {
		id string
		at int64
	}
	var all []due
	for shard := range s.opts.IndexShards {
		out, err := s.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 s.table,
			IndexName:                 aws.String(indexDue),
			KeyConditionExpression:    aws.String("#p = :p AND #a <= :t"),
			ExpressionAttributeNames:  map[string]string{"#p": attrDueP, "#a": attrDueAt},
			ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(shardKey("DUE", shard)), ":t": num(t.UnixNano())},
			Limit:                     aws.Int32(int32(min(limit, 1000))),
			ReturnConsumedCapacity:    s.rcc,
		})
		if err != nil {
			return nil, fmt.Errorf("awsstore: due index: %w", err)
		}
		for _, it := range out.Items {
			var k struct {
				PK    string `dynamodbav:"pk"`
				DueAt int64  `dynamodbav:"due_at"`
			}
			if err := attributevalue.UnmarshalMap(it, &k); err != nil {
				return nil, fmt.Errorf("awsstore: due index: %w", err)
			}
			all = append(all, due{id: strings.TrimPrefix(k.PK, prefixTask), at: k.DueAt})
		}
	}
	sortBy(all, func(a, b due) int { return compareInt(a.at, b.at) })
	if len(all) > limit {
		all = all[:limit]
	}
	ids := make([]string, len(all))
	for i, d := range all {
		ids[i] = d.id
	}
	return ids, nil
}

// Unsent returns up to limit ids of tasks flagged Unsent, from the sparse
// unsent index.
func (s *Store) Unsent(ctx context.Context, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	var ids []string
	for shard := 0; shard < s.opts.IndexShards && len(ids) < limit; shard++ {
		out, err := s.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 s.table,
			IndexName:                 aws.String(indexUnsent),
			KeyConditionExpression:    aws.String("#p = :p"),
			ExpressionAttributeNames:  map[string]string{"#p": attrUnsentP},
			ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(shardKey("UNSENT", shard))},
			Limit:                     aws.Int32(int32(min(limit-len(ids), 1000))),
			ReturnConsumedCapacity:    s.rcc,
		})
		if err != nil {
			return nil, fmt.Errorf("awsstore: unsent index: %w", err)
		}
		for _, it := range out.Items {
			pk, ok := it[attrPK].(*types.AttributeValueMemberS)
			if !ok {
				return nil, errors.New("awsstore: unsent index: item without pk")
			}
			ids = append(ids, strings.TrimPrefix(pk.Value, prefixTask))
		}
	}
	return ids, nil
}

// shard picks the index shard of an item key.
func (s *Store) shard(key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(s.opts.IndexShards))
}

func shardKey(kind string, shard int) string { return fmt.Sprintf("%s#%d", kind, shard) }
