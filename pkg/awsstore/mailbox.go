package awsstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parkinglot/parkinglot/pkg/core"
)

const (
	// maxPromote is the most pending messages one promotion numbers: the
	// mailbox item's update and, per message, its numbered put and its
	// pending item's delete fit one transaction's 100 items.
	maxPromote = (maxTxnItems - 1) / 2
	// maxPromoteBytes bounds the message bytes one promotion copies, well
	// within a transaction's 4 MB (the Query that reads them returns at
	// most 1 MB anyway).
	maxPromoteBytes = 2 << 20
	// maxPromoteAttempts bounds the promotions one Messages call tries.
	// One that loses (another reader numbered the messages first, or a
	// transaction conflict) reads again; after the last, Messages returns
	// the numbered messages it read, which the contract allows.
	maxPromoteAttempts = 4
)

// Messages returns up to limit messages of (tenant, recipient) after both
// after and the acknowledged cursor: a read of the mailbox item (seq,
// acked), then one strongly consistent Query of the mailbox's partition
// from the sort key of cursor max(after, acked)+1 upward. It returns the
// numbered messages ("MSG#") and then the pending ones ("PEND#", in stamp
// order); if the page has room for pending messages, Messages numbers up
// to maxPromote of them first, in one transaction (promote): the mailbox
// item's seq goes from n to n+k conditioned on seq = n, each message is put
// under cursor n+i and its pending item deleted. A message committed after
// a reader saw cursor c is pending until a later Messages call numbers it,
// above c.
func (s *Store) Messages(ctx context.Context, tenant, recipient string, after core.Cursor, limit int) ([]core.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	b := mboxPK(tenant, recipient)
	for attempt := 1; ; attempt++ {
		h, err := s.head(ctx, b)
		if err != nil {
			return nil, err
		}
		from := max(uint64(after), h.Acked)
		out, err := s.db.Query(ctx, &dynamodb.QueryInput{
			TableName:              s.table,
			KeyConditionExpression: aws.String("pk = :pk AND sk >= :lo"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk": str(b), ":lo": str(msgSK(from + 1)),
			},
			ConsistentRead:         aws.Bool(true),
			Limit:                  aws.Int32(int32(min(limit, 1000))),
			ReturnConsumedCapacity: s.rcc,
		})
		if err != nil {
			return nil, fmt.Errorf("awsstore: read mailbox: %w", err)
		}
		// One Query returns at most 1 MB of items: the page read is bounded
		// before PageFits cuts it.
		var msgs, pend []core.Message
		var pendItems []map[string]types.AttributeValue
		total, newest := 0, h.Seq
		for _, it := range out.Items {
			m, err := decodeMessage(it)
			if err != nil {
				return nil, err
			}
			size := core.MessageBytes(&m)
			if !core.PageFits(len(msgs)+len(pend), total, size) {
				break
			}
			if sk, _ := it[attrSK].(*types.AttributeValueMemberS); sk != nil && strings.HasPrefix(sk.Value, skPendPrefix) {
				if len(pend) == maxPromote || len(pend) > 0 && total+size > maxPromoteBytes {
					break
				}
				pend = append(pend, m)
				pendItems = append(pendItems, it)
			} else {
				newest = max(newest, uint64(m.Cursor))
				msgs = append(msgs, m)
			}
			total += size
		}
		if len(pend) == 0 || newest > h.Seq {
			// Nothing to number, or another reader numbered messages
			// since the mailbox item was read: its seq condition would
			// fail. The numbered messages read are a page.
			return msgs, nil
		}
		err = s.promote(ctx, b, h.Seq, pendItems)
		if err == nil {
			for i := range pend {
				pend[i].Cursor = core.Cursor(h.Seq + uint64(i) + 1)
			}
			return append(msgs, pend...), nil
		}
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) {
			return nil, fmt.Errorf("awsstore: number mailbox messages: %w", err)
		}
		if attempt >= maxPromoteAttempts {
			return msgs, nil
		}
		if err := backoff(ctx, attempt); err != nil {
			return nil, fmt.Errorf("awsstore: number mailbox messages: %w", err)
		}
	}
}

// promote numbers the pending message items of mailbox b, whose last cursor
// is n, as n+1, n+2, ...: one transaction of the mailbox item's update
// (seq = n+k conditioned on seq = n), and per message a put of its numbered
// item (conditioned on absence) and the delete of its pending item
// (conditioned on presence).
func (s *Store) promote(ctx context.Context, b string, n uint64, pending []map[string]types.AttributeValue) error {
	items := make([]types.TransactWriteItem, 0, 1+2*len(pending))
	items = append(items, types.TransactWriteItem{Update: &types.Update{
		TableName:           s.table,
		Key:                 itemKey(b, skHead),
		UpdateExpression:    aws.String("SET seq = :k"),
		ConditionExpression: aws.String("attribute_not_exists(seq) OR seq = :n"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":n": num(n), ":k": num(n + uint64(len(pending))),
		},
	}})
	for i, it := range pending {
		c := n + uint64(i) + 1
		numbered := maps.Clone(it)
		numbered[attrSK] = str(msgSK(c))
		numbered["cursor"] = num(c)
		items = append(items,
			types.TransactWriteItem{Put: &types.Put{
				TableName: s.table, Item: numbered, ConditionExpression: aws.String("attribute_not_exists(pk)"),
			}},
			types.TransactWriteItem{Delete: &types.Delete{
				TableName: s.table, Key: map[string]types.AttributeValue{attrPK: it[attrPK], attrSK: it[attrSK]},
				ConditionExpression: aws.String("attribute_exists(pk)"),
			}})
	}
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{
		TransactItems: items, ReturnConsumedCapacity: s.rcc,
	})
	return err
}

// pendingSKs returns the sort keys of txn's messages as pending items
// (pendSK). The messages of one transaction share one stamp and are
// numbered in the transaction's order (a hand-off's outcome before the
// start it makes). The stamp is the Store's clock in nanoseconds at the
// commit, made strictly increasing within the Store, so that one process's
// messages are numbered in commit order and other processes' by their
// clocks, with two exceptions that keep a task's started message before its
// outcome whatever the clocks of the processes that wrote them: a
// transaction that starts a task is stamped with its StartedAt, and one
// with a later message of a task that started is stamped after that.
func (s *Store) pendingSKs(txn *core.Txn) []string {
	if len(txn.Messages) == 0 {
		return nil
	}
	now := uint64(max(s.opts.Clock.Now().UnixNano(), 0))
	var start, after uint64
	for i := range txn.Messages {
		m := &txn.Messages[i]
		for j := range txn.Tasks {
			t := &txn.Tasks[j].Task
			if t.ID != m.TaskID || t.StartedAt.IsZero() {
				continue
			}
			at := uint64(max(nanos(t.StartedAt), 0))
			if m.Type == core.MessageStarted {
				start = max(start, at)
			} else {
				after = max(after, at+1)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	stamp := start
	if start == 0 {
		stamp = max(s.lastStamp+1, now, after)
		s.lastStamp = stamp
	}
	out := make([]string, len(txn.Messages))
	for i := range txn.Messages {
		s.pending++
		out[i] = pendSK(stamp, s.nonce, s.pending)
	}
	return out
}

// newNonce is a Store's random name in its pending messages' keys.
func newNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Ack moves the mailbox's acknowledged cursor forward to upTo; a cursor at
// or behind it leaves it. A pending message has no cursor yet: the newest
// cursor is the mailbox item's seq, the last one Messages gave out.
func (s *Store) Ack(ctx context.Context, tenant, recipient string, upTo core.Cursor) error {
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        s.table,
		Key:              itemKey(mboxPK(tenant, recipient), skHead),
		UpdateExpression: aws.String("SET acked = :c"),
		// Never past the newest message (it would hide messages not yet
		// written), never back.
		ConditionExpression:                 aws.String("seq >= :c AND (attribute_not_exists(acked) OR acked < :c)"),
		ExpressionAttributeValues:           map[string]types.AttributeValue{":c": num(uint64(upTo))},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		ReturnConsumedCapacity:              s.rcc,
	})
	var ccf *types.ConditionalCheckFailedException
	if err == nil {
		return nil
	}
	if !errors.As(err, &ccf) {
		return fmt.Errorf("awsstore: ack: %w", err)
	}
	var seq uint64
	if v, ok := ccf.Item["seq"].(*types.AttributeValueMemberN); ok {
		if _, err := fmt.Sscan(v.Value, &seq); err != nil {
			return fmt.Errorf("awsstore: ack: mailbox seq %q: %w", v.Value, err)
		}
	}
	if uint64(upTo) > seq {
		return core.ErrAckBeyondNewest
	}
	return nil // already acknowledged that far
}
