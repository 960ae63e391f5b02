package aws

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/awsstore/awsfault"
)

// TestInjector: armed with n, the injector lets exactly n calls reach moto
// and fails every later one, DynamoDB and SQS alike, until disarmed; FailIf
// fails chosen operations without killing the process.
func TestInjector(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard, not a speed bound
	defer cancel()
	ddb, sq := clean()
	inj := awsfault.New(ddb, sq)
	queue := "pl" + uniq()

	// Unarmed: everything goes through.
	_, err := inj.SQS().CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(queue)})
	require.NoError(t, err)

	inj.Arm(2)
	_, err = inj.SQS().GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(queue)})
	require.NoError(t, err)
	_, err = inj.DynamoDB().DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("pl-missing-" + uniq())})
	require.Error(t, err, "the call reached moto, which has no such table")
	require.NotErrorIs(t, err, awsfault.ErrDead)
	require.False(t, inj.Dead())

	_, err = inj.SQS().GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(queue)})
	require.ErrorIs(t, err, awsfault.ErrDead)
	_, err = inj.DynamoDB().GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("t")})
	require.ErrorIs(t, err, awsfault.ErrDead, "dead stays dead")
	require.True(t, inj.Dead())
	through, refused := inj.Calls()
	require.Equal(t, []string{"SQS.GetQueueUrl", "DynamoDB.DescribeTable"}, through)
	require.Equal(t, "SQS.GetQueueUrl", refused)

	inj.Disarm()
	injected := errors.New("injected")
	inj.FailIf(func(op string) error {
		if op == "SQS.GetQueueUrl" {
			return injected
		}
		return nil
	})
	_, err = inj.SQS().GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(queue)})
	require.ErrorIs(t, err, injected)
	require.False(t, inj.Dead())
	inj.FailIf(nil)
	_, err = inj.SQS().GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(queue)})
	require.NoError(t, err)
}
