package awsstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Messages returns up to limit messages of (tenant, recipient) after both
// after and the acknowledged cursor: a read of the mailbox item, then one
// strongly consistent Query of the mailbox's messages by sort key.
func (s *Store) Messages(ctx context.Context, tenant, recipient string, after core.Cursor, limit int) ([]core.Message, error) {
	b := mboxPK(tenant, recipient)
	h, err := s.head(ctx, b)
	if err != nil {
		return nil, err
	}
	from := max(uint64(after), h.Acked)
	if from >= h.Seq || limit <= 0 {
		return nil, nil
	}
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:              s.table,
		KeyConditionExpression: aws.String("pk = :pk AND sk BETWEEN :lo AND :hi"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(b), ":lo": str(msgSK(from + 1)), ":hi": str(msgSK(h.Seq)),
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
	msgs := make([]core.Message, 0, len(out.Items))
	total := 0
	for _, it := range out.Items {
		m, err := decodeMessage(it)
		if err != nil {
			return nil, err
		}
		size := core.MessageBytes(&m)
		if !core.PageFits(len(msgs), total, size) {
			break
		}
		total += size
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// Ack moves the mailbox's acknowledged cursor forward to upTo; a cursor at
// or behind it leaves it.
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
