package awsstore

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Attribute and index names of the single table (doc.go has the layout).
const (
	attrPK      = "pk"
	attrSK      = "sk"
	attrDueP    = "due_p"
	attrDueAt   = "due_at"
	attrUnsentP = "unsent_p"
	attrPools   = "pools_p"
	attrExpP    = "exp_p"
	attrExpAt   = "exp_at"
	attrTTL     = "expires"
	attrSlot    = "slot"
	attrShards  = "slotShards"
	attrDrain   = "drain"

	indexDue    = "due"
	indexUnsent = "unsent"
	indexPools  = "pools"
	indexExpiry = "expiry"

	poolsPartition = "POOLS"

	prefixPool  = "POOL#"
	prefixTask  = "TASK#"
	prefixKey   = "KEY#"
	prefixMbox  = "MBOX#"
	prefixAudit = "AUDIT#"

	skPool = "POOL"
	skTask = "TASK"
	skKey  = "KEY"
	skHead = "HEAD"

	skShard = "SHARD"

	skMsgPrefix  = "MSG#"
	skPendPrefix = "PEND#"
	skEvPrefix   = "EV#"
)

// esc makes a key component safe to join with '#': it escapes '%' and '#'.
func esc(s string) string {
	if !strings.ContainsAny(s, "%#") {
		return s
	}
	return strings.NewReplacer("%", "%25", "#", "%23").Replace(s)
}

func poolPK(name string) string              { return prefixPool + name }
func shardPK(pool string, i int) string      { return fmt.Sprintf("%s%s#%d", prefixPool, pool, i) }
func taskPK(id string) string                { return prefixTask + id }
func keyPK(tenant, key string) string        { return prefixKey + esc(tenant) + "#" + esc(key) }
func mboxPK(tenant, recipient string) string { return prefixMbox + esc(tenant) + "#" + esc(recipient) }
func auditPK(tenant string) string           { return prefixAudit + esc(tenant) }

// msgSK is the sort key of the mailbox message with cursor c: fixed width,
// so that string order is cursor order.
func msgSK(c uint64) string { return fmt.Sprintf("%s%020d", skMsgPrefix, c) }

// pendSK is the sort key of a mailbox message not numbered yet: the stamp
// that orders it among the pending messages, then the writing Store's nonce
// and its count of pending messages, which make the key unique. "PEND#"
// sorts after "MSG#", so a Query of a mailbox from a message's key upward
// returns the numbered messages, then the pending ones in stamp order.
func pendSK(stamp uint64, nonce string, n uint64) string {
	return fmt.Sprintf("%s%020d#%s#%020d", skPendPrefix, stamp, nonce, n)
}

// evSK is the sort key of an audit event: (At, Seq), fixed width.
func evSK(atNanos int64, seq uint64) string {
	return fmt.Sprintf("%s%020d#%020d", skEvPrefix, max(atNanos, 0), seq)
}

func itemKey(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(pk), attrSK: str(sk)}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func num[T int | int64 | uint64](n T) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: fmt.Sprint(n)}
}

// nanos encodes a time as Unix nanoseconds, zero as 0.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func raw(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}

type poolItem struct {
	Name           string `dynamodbav:"name"`
	Capacity       int    `dynamodbav:"capacity"`
	MaxParked      int    `dynamodbav:"maxParked"`
	DefaultMaxWait int64  `dynamodbav:"defaultMaxWait"`
	RunTimeout     int64  `dynamodbav:"runTimeout"`
	Running        int    `dynamodbav:"running"`
	Parked         int    `dynamodbav:"parked"`
	SlotShards     int    `dynamodbav:"slotShards"`
	Executor       string `dynamodbav:"executor,omitempty"`
	// Drain is 1 while a sharded pool's capacity is below its running
	// count: the shards' capacities are 0 until Commit rebalances them.
	Drain int `dynamodbav:"drain"`
	// LastAt and LastSeq order the pool's transactions (stamp.go).
	LastAt  int64  `dynamodbav:"lastAt,omitempty"`
	LastSeq uint64 `dynamodbav:"lastSeq,omitempty"`
}

// shardItem is slot shard i of a pool with SlotShards >= 2 (slots.go): its
// share of the capacity, the tasks running on it, whether the pool has
// parked tasks (1 or 0, kept equal to parked > 0 of the pool item), and the
// shard count of the layout it belongs to.
type shardItem struct {
	Capacity  int `dynamodbav:"capacity"`
	Running   int `dynamodbav:"running"`
	HasParked int `dynamodbav:"hasParked"`
	Shards    int `dynamodbav:"shards"`
}

func decodeShard(av map[string]types.AttributeValue) (shardItem, error) {
	var it shardItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return shardItem{}, fmt.Errorf("awsstore: decode slot shard: %w", err)
	}
	return it, nil
}

func decodePool(av map[string]types.AttributeValue) (core.Pool, error) {
	var it poolItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return core.Pool{}, fmt.Errorf("awsstore: decode pool: %w", err)
	}
	return core.Pool{
		PoolConfig: core.PoolConfig{
			Name: it.Name, Capacity: it.Capacity, MaxParked: it.MaxParked,
			DefaultMaxWait: time.Duration(it.DefaultMaxWait), RunTimeout: time.Duration(it.RunTimeout),
			SlotShards: it.SlotShards, Executor: core.Executor(it.Executor),
		},
		Running: it.Running,
		Parked:  it.Parked,
		LastAt:  fromNanos(it.LastAt),
	}, nil
}

func sortPools(ps []core.Pool) {
	slices.SortFunc(ps, func(a, b core.Pool) int { return cmp.Compare(a.Name, b.Name) })
}

func sortBy[T any](s []T, f func(a, b T) int) { slices.SortStableFunc(s, f) }

func compareInt(a, b int64) int { return cmp.Compare(a, b) }

// taskItem is a task as stored. DueP/DueAt index non-terminal tasks by due
// time and UnsentP indexes parked tasks whose queue message may be unsent;
// both are absent otherwise (sparse indexes).
type taskItem struct {
	PK             string `dynamodbav:"pk"`
	SK             string `dynamodbav:"sk"`
	ID             string `dynamodbav:"id"`
	Key            string `dynamodbav:"key,omitempty"`
	Tenant         string `dynamodbav:"tenant"`
	Pool           string `dynamodbav:"pool"`
	Recipient      string `dynamodbav:"recipient,omitempty"`
	State          string `dynamodbav:"state"`
	Payload        []byte `dynamodbav:"payload,omitempty"`
	SubmittedAt    int64  `dynamodbav:"submittedAt,omitempty"`
	Deadline       int64  `dynamodbav:"deadline,omitempty"`
	RunTimeout     int64  `dynamodbav:"runTimeout,omitempty"`
	StartedAt      int64  `dynamodbav:"startedAt,omitempty"`
	Lease          string `dynamodbav:"lease,omitempty"`
	LeaseExpiresAt int64  `dynamodbav:"leaseExpiresAt,omitempty"`
	EndedAt        int64  `dynamodbav:"endedAt,omitempty"`
	Result         []byte `dynamodbav:"result,omitempty"`
	Error          string `dynamodbav:"error,omitempty"`
	BodyHash       string `dynamodbav:"bodyHash,omitempty"`
	Unsent         bool   `dynamodbav:"unsent,omitempty"`
	PushAt         int64  `dynamodbav:"pushAt,omitempty"`
	PushAttempts   int    `dynamodbav:"pushAttempts,omitempty"`
	Version        int64  `dynamodbav:"version"`
	// Slot is the slot shard a running task holds, in a pool with
	// SlotShards >= 2; absent otherwise.
	Slot *int `dynamodbav:"slot,omitempty"`

	DueP    string `dynamodbav:"due_p,omitempty"`
	DueAt   int64  `dynamodbav:"due_at,omitempty"`
	UnsentP string `dynamodbav:"unsent_p,omitempty"`
}

// itemOf is t's fields as stored at version, without the index attributes.
func itemOf(t *core.Task, version int64) taskItem {
	return taskItem{
		PK: taskPK(t.ID), SK: skTask, ID: t.ID, Key: t.Key, Tenant: t.Tenant, Pool: t.Pool,
		Recipient: t.Recipient, State: string(t.State), Payload: t.Payload,
		SubmittedAt: nanos(t.SubmittedAt), Deadline: nanos(t.Deadline), RunTimeout: int64(t.RunTimeout),
		StartedAt: nanos(t.StartedAt), Lease: t.Lease, LeaseExpiresAt: nanos(t.LeaseExpiresAt),
		EndedAt: nanos(t.EndedAt), Result: t.Result, Error: t.Error, BodyHash: t.BodyHash,
		Unsent: t.Unsent, PushAt: nanos(t.PushAt), PushAttempts: t.PushAttempts, Version: version,
	}
}

// encodeTask encodes t at version; slot is the shard it holds, or noSlot.
func (s *Store) encodeTask(t *core.Task, version int64, slot int) (map[string]types.AttributeValue, error) {
	it := itemOf(t, version)
	if slot != noSlot {
		it.Slot = &slot
	}
	if due := t.DueAt(); !due.IsZero() {
		it.DueP = shardKey("DUE", s.shard(t.ID))
		it.DueAt = due.UnixNano()
	}
	if t.Unsent && t.State == core.StateParked {
		it.UnsentP = shardKey("UNSENT", s.shard(t.ID))
	}
	av, err := attributevalue.MarshalMap(it)
	if err != nil {
		return nil, fmt.Errorf("awsstore: encode task %s: %w", t.ID, err)
	}
	return av, nil
}

// decodeTask decodes a task item and the slot shard it holds (noSlot if none).
func decodeTask(av map[string]types.AttributeValue) (core.Task, int, error) {
	var it taskItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return core.Task{}, noSlot, fmt.Errorf("awsstore: decode task: %w", err)
	}
	slot := noSlot
	if it.Slot != nil {
		slot = *it.Slot
	}
	return it.task(), slot, nil
}

// task is the task it stores.
func (it *taskItem) task() core.Task {
	return core.Task{
		ID: it.ID, Key: it.Key, Tenant: it.Tenant, Pool: it.Pool, Recipient: it.Recipient,
		State: core.State(it.State), Payload: raw(it.Payload),
		SubmittedAt: fromNanos(it.SubmittedAt), Deadline: fromNanos(it.Deadline),
		RunTimeout: time.Duration(it.RunTimeout), StartedAt: fromNanos(it.StartedAt),
		Lease: it.Lease, LeaseExpiresAt: fromNanos(it.LeaseExpiresAt), EndedAt: fromNanos(it.EndedAt),
		Result: raw(it.Result), Error: it.Error, BodyHash: it.BodyHash, Unsent: it.Unsent,
		PushAt: fromNanos(it.PushAt), PushAttempts: it.PushAttempts,
		Version: it.Version,
	}
}

type keyItem struct {
	PK       string `dynamodbav:"pk"`
	SK       string `dynamodbav:"sk"`
	Tenant   string `dynamodbav:"tenant"`
	Key      string `dynamodbav:"key"`
	TaskID   string `dynamodbav:"taskId"`
	BodyHash string `dynamodbav:"bodyHash"`
}

// messageItem is a mailbox message; ExpP/ExpAt index it for Purge and
// Expires is its TTL.
type messageItem struct {
	PK        string `dynamodbav:"pk"`
	SK        string `dynamodbav:"sk"`
	Cursor    uint64 `dynamodbav:"cursor"`
	Tenant    string `dynamodbav:"tenant"`
	Recipient string `dynamodbav:"recipient"`
	TaskID    string `dynamodbav:"taskId"`
	Pool      string `dynamodbav:"pool"`
	Type      string `dynamodbav:"type"`
	// A started message's task fields: with the payload, the item stays
	// within DynamoDB's 400 KB as the task item does.
	Key            string `dynamodbav:"key,omitempty"`
	Payload        []byte `dynamodbav:"payload,omitempty"`
	Deadline       int64  `dynamodbav:"deadline,omitempty"`
	Lease          string `dynamodbav:"lease,omitempty"`
	LeaseExpiresAt int64  `dynamodbav:"leaseExpiresAt,omitempty"`
	Result         []byte `dynamodbav:"result,omitempty"`
	Error          string `dynamodbav:"error,omitempty"`
	At             int64  `dynamodbav:"at"`
	ExpP           string `dynamodbav:"exp_p"`
	ExpAt          int64  `dynamodbav:"exp_at"`
	Expires        int64  `dynamodbav:"expires"`
}

// encodeMessage encodes m under sort key sk with cursor c (0 while it is
// pending).
func (s *Store) encodeMessage(m *core.Message, sk string, c uint64) (map[string]types.AttributeValue, error) {
	pk := mboxPK(m.Tenant, m.Recipient)
	it := messageItem{
		PK: pk, SK: sk, Cursor: c, Tenant: m.Tenant, Recipient: m.Recipient, TaskID: m.TaskID,
		Pool: m.Pool, Type: string(m.Type), Key: m.Key, Payload: m.Payload, Deadline: nanos(m.Deadline),
		Lease: m.Lease, LeaseExpiresAt: nanos(m.LeaseExpiresAt), Result: m.Result, Error: m.Error,
		At: nanos(m.At), ExpP: shardKey("EXP#M", s.shard(pk)), ExpAt: nanos(m.At),
		Expires: m.At.Add(s.opts.MessageRetention).Unix(),
	}
	av, err := attributevalue.MarshalMap(it)
	if err != nil {
		return nil, fmt.Errorf("awsstore: encode message: %w", err)
	}
	return av, nil
}

func decodeMessage(av map[string]types.AttributeValue) (core.Message, error) {
	var it messageItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return core.Message{}, fmt.Errorf("awsstore: decode message: %w", err)
	}
	return core.Message{
		Cursor: core.Cursor(it.Cursor), Tenant: it.Tenant, Recipient: it.Recipient, TaskID: it.TaskID,
		Pool: it.Pool, Type: core.MessageType(it.Type), Key: it.Key, Payload: raw(it.Payload),
		Deadline: fromNanos(it.Deadline), Lease: it.Lease, LeaseExpiresAt: fromNanos(it.LeaseExpiresAt),
		Result: raw(it.Result), Error: it.Error, At: fromNanos(it.At),
	}, nil
}

// eventItem is an audit event; ExpP/ExpAt index it for Purge and Expires is
// its TTL.
type eventItem struct {
	PK      string `dynamodbav:"pk"`
	SK      string `dynamodbav:"sk"`
	Seq     uint64 `dynamodbav:"seq"`
	At      int64  `dynamodbav:"at"`
	Tenant  string `dynamodbav:"tenant"`
	Pool    string `dynamodbav:"pool"`
	TaskID  string `dynamodbav:"taskId"`
	Type    string `dynamodbav:"type"`
	From    string `dynamodbav:"from,omitempty"`
	To      string `dynamodbav:"to"`
	Detail  string `dynamodbav:"detail,omitempty"`
	ExpP    string `dynamodbav:"exp_p"`
	ExpAt   int64  `dynamodbav:"exp_at"`
	Expires int64  `dynamodbav:"expires"`
}

func (s *Store) encodeEvent(e *core.Event, seq uint64) (map[string]types.AttributeValue, error) {
	pk := auditPK(e.Tenant)
	it := eventItem{
		PK: pk, SK: evSK(nanos(e.At), seq), Seq: seq, At: nanos(e.At), Tenant: e.Tenant, Pool: e.Pool,
		TaskID: e.TaskID, Type: e.Type, From: string(e.From), To: string(e.To), Detail: e.Detail,
		ExpP: shardKey("EXP#E", s.shard(pk+strconv.FormatUint(seq, 10))), ExpAt: nanos(e.At),
		Expires: e.At.Add(s.opts.EventRetention).Unix(),
	}
	av, err := attributevalue.MarshalMap(it)
	if err != nil {
		return nil, fmt.Errorf("awsstore: encode event: %w", err)
	}
	return av, nil
}

func decodeEvent(av map[string]types.AttributeValue) (core.Event, error) {
	var it eventItem
	if err := attributevalue.UnmarshalMap(av, &it); err != nil {
		return core.Event{}, fmt.Errorf("awsstore: decode event: %w", err)
	}
	return core.Event{
		Seq: it.Seq, At: fromNanos(it.At), Tenant: it.Tenant, Pool: it.Pool, TaskID: it.TaskID,
		Type: it.Type, From: core.State(it.From), To: core.State(it.To), Detail: it.Detail,
	}, nil
}
