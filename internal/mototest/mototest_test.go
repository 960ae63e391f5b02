package mototest_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parkinglot/parkinglot/internal/mototest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartServesDynamoDBAndSQSAndStops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := mototest.Launch(ctx)
	require.NoError(t, err)
	defer s.Stop()

	cfg := s.Config()
	ddb := dynamodb.NewFromConfig(cfg)
	q := sqs.NewFromConfig(cfg)

	_, err = q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("probe")})
	require.NoError(t, err)
	out, err := q.ListQueues(ctx, &sqs.ListQueuesInput{})
	require.NoError(t, err)
	require.Len(t, out.QueueUrls, 1)

	require.NoError(t, s.Reset(ctx))
	out, err = q.ListQueues(ctx, &sqs.ListQueuesInput{})
	require.NoError(t, err)
	require.Empty(t, out.QueueUrls, "reset drops every queue")

	tables, err := ddb.ListTables(ctx, &dynamodb.ListTablesInput{})
	require.NoError(t, err)
	require.Empty(t, tables.TableNames)

	s.Stop()
	require.True(t, s.Exited())
	_, err = ddb.ListTables(ctx, &dynamodb.ListTablesInput{}, func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 })
	require.Error(t, err, "a stopped server answers nothing")
}
