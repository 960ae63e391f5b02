package awsstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TableSchema returns the CreateTable input of the backend's table: keys,
// the four sparse global secondary indexes (due, unsent, pools, expiry) and
// on-demand billing. Infrastructure code can build the same table from it.
func TableSchema(table string) *dynamodb.CreateTableInput {
	s := func(name string) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(name), AttributeType: types.ScalarAttributeTypeS}
	}
	n := func(name string) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(name), AttributeType: types.ScalarAttributeTypeN}
	}
	keys := func(hash, rng string) []types.KeySchemaElement {
		return []types.KeySchemaElement{
			{AttributeName: aws.String(hash), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(rng), KeyType: types.KeyTypeRange},
		}
	}
	keysOnly := &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly}
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			s(attrPK), s(attrSK), s(attrDueP), n(attrDueAt), s(attrUnsentP), s(attrPools), s(attrExpP), n(attrExpAt),
		},
		KeySchema: keys(attrPK, attrSK),
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
			{IndexName: aws.String(indexDue), KeySchema: keys(attrDueP, attrDueAt), Projection: keysOnly},
			{IndexName: aws.String(indexUnsent), KeySchema: keys(attrUnsentP, attrPK), Projection: keysOnly},
			{IndexName: aws.String(indexPools), KeySchema: keys(attrPools, attrPK), Projection: keysOnly},
			{IndexName: aws.String(indexExpiry), KeySchema: keys(attrExpP, attrExpAt), Projection: keysOnly},
		},
	}
}

// CreateResources creates the table (with TTL on the "expires" attribute)
// if it is missing and waits until it is active, then creates the parking
// queue of every pool it holds. For local use: deployments create these
// with the stack.
func (s *Store) CreateResources(ctx context.Context) error {
	_, err := s.db.CreateTable(ctx, TableSchema(s.opts.Table))
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("awsstore: create table %s: %w", s.opts.Table, err)
	}
	w := dynamodb.NewTableExistsWaiter(s.db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = 2 * time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: s.table}, 5*time.Minute); err != nil {
		return fmt.Errorf("awsstore: wait for table %s: %w", s.opts.Table, err)
	}
	_, err = s.db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: s.table,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(attrTTL), Enabled: aws.Bool(true),
		},
	})
	if err != nil && !ttlAlreadyOn(err) {
		return fmt.Errorf("awsstore: enable TTL on %s: %w", s.opts.Table, err)
	}
	pools, err := s.Pools(ctx)
	if err != nil {
		return err
	}
	for _, p := range pools {
		if err := s.createQueue(ctx, p.Name); err != nil {
			return err
		}
	}
	return nil
}

func ttlAlreadyOn(err error) bool {
	var ve interface{ ErrorMessage() string }
	return errors.As(err, &ve) && containsFold(ve.ErrorMessage(), "already enabled")
}
