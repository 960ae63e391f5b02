package awsstore

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// purgeBatch is one page of the expiry index and one BatchWriteItem call
// (DynamoDB takes at most 25 writes per call).
const purgeBatch = 25

// Purge deletes mailbox messages created before messagesBefore and audit
// events before eventsBefore. It pages through the expiry index (one page
// of at most 25 keys per shard and kind at a time) and deletes each page
// with one BatchWriteItem. TTL deletes the same items on AWS, up to days
// late; correctness never waits for either.
func (s *Store) Purge(ctx context.Context, messagesBefore, eventsBefore time.Time) (int, error) {
	total := 0
	for _, k := range []struct {
		kind   string
		before time.Time
	}{{"EXP#M", messagesBefore}, {"EXP#E", eventsBefore}} {
		if k.before.IsZero() {
			continue
		}
		for shard := range s.opts.IndexShards {
			n, err := s.purgeShard(ctx, shardKey(k.kind, shard), k.before)
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

func (s *Store) purgeShard(ctx context.Context, partition string, before time.Time) (int, error) {
	n := 0
	var start map[string]types.AttributeValue
	for {
		out, err := s.db.Query(ctx, &dynamodb.QueryInput{
			TableName:              s.table,
			IndexName:              aws.String(indexExpiry),
			KeyConditionExpression: aws.String("exp_p = :p AND exp_at < :t"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":p": str(partition), ":t": num(before.UnixNano()),
			},
			Limit:                  aws.Int32(purgeBatch),
			ExclusiveStartKey:      start,
			ReturnConsumedCapacity: s.rcc,
		})
		if err != nil {
			return n, fmt.Errorf("awsstore: purge: expiry index: %w", err)
		}
		if len(out.Items) > 0 {
			reqs := make([]types.WriteRequest, len(out.Items))
			for i, it := range out.Items {
				reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{
					Key: map[string]types.AttributeValue{attrPK: it[attrPK], attrSK: it[attrSK]},
				}}
			}
			if err := s.batchWrite(ctx, reqs); err != nil {
				return n, fmt.Errorf("awsstore: purge: %w", err)
			}
			n += len(reqs)
		}
		if out.LastEvaluatedKey == nil {
			return n, nil
		}
		start = out.LastEvaluatedKey
	}
}

// batchWrite applies at most 25 write requests, retrying unprocessed ones
// with backoff until ctx ends.
func (s *Store) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	req := map[string][]types.WriteRequest{s.opts.Table: reqs}
	for attempt := 0; len(req) > 0; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return err
			}
		}
		out, err := s.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: req, ReturnConsumedCapacity: s.rcc})
		if err != nil {
			return err
		}
		req = out.UnprocessedItems
	}
	return nil
}
