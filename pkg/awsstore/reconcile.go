package awsstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parkinglot/parkinglot/pkg/core"
)

var _ core.QueueReconciler = (*Store)(nil)

// QueueShort reports whether pool's queue holds fewer messages (visible, in
// flight and delayed, SQS's approximate counts) than parked: one
// GetQueueAttributes call. SQS's counts lag by up to about a minute, so a
// queue emptied a moment ago may look full, and one a burst of parks just
// reached may look short.
func (s *Store) QueueShort(ctx context.Context, pool string, parked int) (bool, error) {
	u, err := s.queueURL(ctx, pool)
	if err != nil {
		return false, err
	}
	names := []sqstypes.QueueAttributeName{
		sqstypes.QueueAttributeNameApproximateNumberOfMessages,
		sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed,
	}
	out, err := s.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(u), AttributeNames: names})
	if err != nil {
		return false, fmt.Errorf("awsstore: count messages of pool %s: %w", pool, err)
	}
	total := 0
	for _, n := range names {
		if v, ok := out.Attributes[string(n)]; ok {
			c, err := strconv.Atoi(v)
			if err != nil {
				return false, fmt.Errorf("awsstore: count messages of pool %s: %s = %q", pool, n, v)
			}
			total += c
		}
	}
	return total < parked, nil
}

// NonTerminal pages through the due index, which holds every non-terminal
// task (parked ones by deadline, running ones by lease end), shard by
// shard: one Query per page. The cursor is the shard and the last key
// returned, "<shard>/<due_at>/<pk>", or a shard alone for its start.
func (s *Store) NonTerminal(ctx context.Context, after string, limit int) ([]string, string, error) {
	shard := 0
	var start map[string]types.AttributeValue
	if after != "" {
		bad := fmt.Errorf("awsstore: due index: bad cursor %q", after)
		parts := strings.SplitN(after, "/", 3)
		var err error
		if shard, err = strconv.Atoi(parts[0]); err != nil || shard < 0 || shard >= s.opts.IndexShards {
			return nil, "", bad
		}
		switch len(parts) {
		case 1: // the start of a shard
		case 3:
			at, err := strconv.ParseInt(parts[1], 10, 64)
			if err != nil {
				return nil, "", bad
			}
			start = map[string]types.AttributeValue{
				attrPK: str(parts[2]), attrSK: str(skTask),
				attrDueP: str(shardKey("DUE", shard)), attrDueAt: num(at),
			}
		default:
			return nil, "", bad
		}
	}
	if limit <= 0 {
		return nil, after, nil
	}
	for ; shard < s.opts.IndexShards; shard, start = shard+1, nil {
		out, err := s.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 s.table,
			IndexName:                 aws.String(indexDue),
			KeyConditionExpression:    aws.String("#p = :p"),
			ExpressionAttributeNames:  map[string]string{"#p": attrDueP},
			ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(shardKey("DUE", shard))},
			ExclusiveStartKey:         start,
			Limit:                     aws.Int32(int32(min(limit, 1000))),
			ReturnConsumedCapacity:    s.rcc,
		})
		if err != nil {
			return nil, "", fmt.Errorf("awsstore: due index: %w", err)
		}
		ids := make([]string, 0, len(out.Items))
		var lastPK string
		var lastAt int64
		for _, it := range out.Items {
			pk, ok := it[attrPK].(*types.AttributeValueMemberS)
			at, ok2 := it[attrDueAt].(*types.AttributeValueMemberN)
			if !ok || !ok2 {
				return nil, "", fmt.Errorf("awsstore: due index: item without pk or due_at")
			}
			n, err := strconv.ParseInt(at.Value, 10, 64)
			if err != nil {
				return nil, "", fmt.Errorf("awsstore: due index: due_at %q: %w", at.Value, err)
			}
			ids = append(ids, strings.TrimPrefix(pk.Value, prefixTask))
			lastPK, lastAt = pk.Value, n
		}
		if len(out.LastEvaluatedKey) > 0 && len(ids) > 0 {
			return ids, fmt.Sprintf("%d/%d/%s", shard, lastAt, lastPK), nil
		}
		if len(out.LastEvaluatedKey) > 0 {
			// A page of nothing but a key: go on from it.
			pk, _ := out.LastEvaluatedKey[attrPK].(*types.AttributeValueMemberS)
			at, _ := out.LastEvaluatedKey[attrDueAt].(*types.AttributeValueMemberN)
			if pk == nil || at == nil {
				return nil, "", fmt.Errorf("awsstore: due index: bad last key")
			}
			return nil, fmt.Sprintf("%d/%s/%s", shard, at.Value, pk.Value), nil
		}
		if len(ids) > 0 {
			next := ""
			if shard+1 < s.opts.IndexShards {
				next = strconv.Itoa(shard + 1)
			}
			return ids, next, nil
		}
	}
	return nil, "", nil
}
