package awsstore

import (
	"context"
	"fmt"
	"math"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Events answers an audit query with strongly consistent Query pages of the
// tenant's partition, sort key (At, Seq) from max(From, After) to To, with
// the pool and task filters as a FilterExpression.
func (s *Store) Events(ctx context.Context, q core.AuditQuery) ([]core.Event, error) {
	if q.Limit <= 0 || !q.From.Before(q.To) {
		return nil, nil
	}
	lo := evSK(nanos(q.From), 0)
	if !q.After.IsZero() && !q.After.At.Before(q.From) {
		if q.After.Seq == math.MaxUint64 {
			lo = evSK(nanos(q.After.At)+1, 0)
		} else {
			lo = evSK(nanos(q.After.At), q.After.Seq+1)
		}
	}
	hi := evSK(q.To.UnixNano()-1, math.MaxUint64)
	if lo > hi {
		return nil, nil
	}
	in := &dynamodb.QueryInput{
		TableName:              s.table,
		KeyConditionExpression: aws.String("pk = :pk AND sk BETWEEN :lo AND :hi"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(auditPK(q.Tenant)), ":lo": str(lo), ":hi": str(hi),
		},
		ConsistentRead:         aws.Bool(true),
		Limit:                  aws.Int32(int32(min(q.Limit, 1000))),
		ReturnConsumedCapacity: s.rcc,
	}
	var filters []string
	if q.Pool != "" {
		filters = append(filters, "#pool = :pool")
		in.ExpressionAttributeValues[":pool"] = str(q.Pool)
		in.ExpressionAttributeNames = map[string]string{"#pool": "pool"}
	}
	if q.TaskID != "" {
		filters = append(filters, "#task = :task")
		in.ExpressionAttributeValues[":task"] = str(q.TaskID)
		if in.ExpressionAttributeNames == nil {
			in.ExpressionAttributeNames = map[string]string{}
		}
		in.ExpressionAttributeNames["#task"] = "taskId"
	}
	switch len(filters) {
	case 1:
		in.FilterExpression = aws.String(filters[0])
	case 2:
		in.FilterExpression = aws.String(filters[0] + " AND " + filters[1])
	}
	var evs []core.Event
	total := 0
	for len(evs) < q.Limit {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("awsstore: audit query: %w", err)
		}
		for _, it := range out.Items {
			e, err := decodeEvent(it)
			if err != nil {
				return nil, err
			}
			size := core.EventBytes(&e)
			if !core.PageFits(len(evs), total, size) {
				return evs, nil
			}
			total += size
			evs = append(evs, e)
			if len(evs) == q.Limit {
				break
			}
		}
		if out.LastEvaluatedKey == nil {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return evs, nil
}
