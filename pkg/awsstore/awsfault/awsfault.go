package awsfault

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/parkinglot/parkinglot/pkg/awsstore"
)

// ErrDead is the error of every call made after the injector's limit.
var ErrDead = errors.New("awsfault: the process died")

// Injector counts the AWS calls of the clients it wraps and fails every
// call past its limit. It is safe for concurrent use.
type Injector struct {
	ddb awsstore.DynamoDBAPI
	sqs awsstore.SQSAPI

	mu      sync.Mutex
	armed   bool
	left    int      // calls still let through while armed
	dead    bool     // a call was refused: the process is dead
	calls   []string // operations let through since Arm
	refused string   // the first operation refused
	failIf  func(op string) error
}

// New wraps the real clients ddb and sqs.
func New(ddb awsstore.DynamoDBAPI, sqs awsstore.SQSAPI) *Injector {
	return &Injector{ddb: ddb, sqs: sqs}
}

// DynamoDB returns the wrapped DynamoDB client.
func (i *Injector) DynamoDB() awsstore.DynamoDBAPI { return dynamoDB{i} }

// SQS returns the wrapped SQS client.
func (i *Injector) SQS() awsstore.SQSAPI { return sqsClient{i} }

// Arm lets n more calls through and fails every later call with ErrDead.
// It forgets the calls seen before.
func (i *Injector) Arm(n int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.armed, i.left, i.dead, i.calls, i.refused = true, n, false, nil, ""
}

// Disarm lets every call through again (a new process on the same clients).
func (i *Injector) Disarm() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.armed, i.dead = false, false
}

// FailIf makes calls fail with the error f returns for their operation
// name ("DynamoDB.TransactWriteItems", "SQS.SendMessage", ...), without
// killing the process; nil f or a nil error lets them through. Tests use
// it to build states such as a parked task whose send failed.
func (i *Injector) FailIf(f func(op string) error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.failIf = f
}

// Dead reports whether the armed limit was reached: some call was refused.
func (i *Injector) Dead() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.dead
}

// Calls returns the operations let through since Arm, in order, and the
// first one refused ("" if none).
func (i *Injector) Calls() (through []string, refused string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]string(nil), i.calls...), i.refused
}

// enter decides whether the call op may go through.
func (i *Injector) enter(op string) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.failIf != nil {
		if err := i.failIf(op); err != nil {
			return fmt.Errorf("awsfault: %s: %w", op, err)
		}
	}
	if !i.armed {
		return nil
	}
	if i.dead || i.left <= 0 {
		if !i.dead {
			i.refused = op
		}
		i.dead = true
		return fmt.Errorf("awsfault: %s: %w", op, ErrDead)
	}
	i.left--
	i.calls = append(i.calls, op)
	return nil
}

// call runs f if the injector lets op through.
func call[O any](i *Injector, op string, f func() (*O, error)) (*O, error) {
	if err := i.enter(op); err != nil {
		return nil, err
	}
	return f()
}

type dynamoDB struct{ i *Injector }

var _ awsstore.DynamoDBAPI = dynamoDB{}

func (d dynamoDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return call(d.i, "DynamoDB.GetItem", func() (*dynamodb.GetItemOutput, error) { return d.i.ddb.GetItem(ctx, in, o...) })
}

func (d dynamoDB) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	return call(d.i, "DynamoDB.BatchGetItem", func() (*dynamodb.BatchGetItemOutput, error) { return d.i.ddb.BatchGetItem(ctx, in, o...) })
}

func (d dynamoDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return call(d.i, "DynamoDB.UpdateItem", func() (*dynamodb.UpdateItemOutput, error) { return d.i.ddb.UpdateItem(ctx, in, o...) })
}

func (d dynamoDB) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return call(d.i, "DynamoDB.Query", func() (*dynamodb.QueryOutput, error) { return d.i.ddb.Query(ctx, in, o...) })
}

func (d dynamoDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	return call(d.i, "DynamoDB.TransactWriteItems", func() (*dynamodb.TransactWriteItemsOutput, error) { return d.i.ddb.TransactWriteItems(ctx, in, o...) })
}

func (d dynamoDB) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return call(d.i, "DynamoDB.BatchWriteItem", func() (*dynamodb.BatchWriteItemOutput, error) { return d.i.ddb.BatchWriteItem(ctx, in, o...) })
}

func (d dynamoDB) CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, o ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	return call(d.i, "DynamoDB.CreateTable", func() (*dynamodb.CreateTableOutput, error) { return d.i.ddb.CreateTable(ctx, in, o...) })
}

func (d dynamoDB) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, o ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	return call(d.i, "DynamoDB.DescribeTable", func() (*dynamodb.DescribeTableOutput, error) { return d.i.ddb.DescribeTable(ctx, in, o...) })
}

func (d dynamoDB) UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error) {
	return call(d.i, "DynamoDB.UpdateTimeToLive", func() (*dynamodb.UpdateTimeToLiveOutput, error) { return d.i.ddb.UpdateTimeToLive(ctx, in, o...) })
}

type sqsClient struct{ i *Injector }

var _ awsstore.SQSAPI = sqsClient{}

func (s sqsClient) GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, o ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error) {
	return call(s.i, "SQS.GetQueueUrl", func() (*sqs.GetQueueUrlOutput, error) { return s.i.sqs.GetQueueUrl(ctx, in, o...) })
}

func (s sqsClient) CreateQueue(ctx context.Context, in *sqs.CreateQueueInput, o ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error) {
	return call(s.i, "SQS.CreateQueue", func() (*sqs.CreateQueueOutput, error) { return s.i.sqs.CreateQueue(ctx, in, o...) })
}

func (s sqsClient) SendMessage(ctx context.Context, in *sqs.SendMessageInput, o ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return call(s.i, "SQS.SendMessage", func() (*sqs.SendMessageOutput, error) { return s.i.sqs.SendMessage(ctx, in, o...) })
}

func (s sqsClient) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, o ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	return call(s.i, "SQS.ReceiveMessage", func() (*sqs.ReceiveMessageOutput, error) { return s.i.sqs.ReceiveMessage(ctx, in, o...) })
}

func (s sqsClient) DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, o ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	return call(s.i, "SQS.DeleteMessage", func() (*sqs.DeleteMessageOutput, error) { return s.i.sqs.DeleteMessage(ctx, in, o...) })
}

func (s sqsClient) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, o ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	return call(s.i, "SQS.ChangeMessageVisibility", func() (*sqs.ChangeMessageVisibilityOutput, error) {
		return s.i.sqs.ChangeMessageVisibility(ctx, in, o...)
	})
}

func (s sqsClient) ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, o ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	return call(s.i, "SQS.ChangeMessageVisibilityBatch", func() (*sqs.ChangeMessageVisibilityBatchOutput, error) {
		return s.i.sqs.ChangeMessageVisibilityBatch(ctx, in, o...)
	})
}

func (s sqsClient) GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, o ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	return call(s.i, "SQS.GetQueueAttributes", func() (*sqs.GetQueueAttributesOutput, error) { return s.i.sqs.GetQueueAttributes(ctx, in, o...) })
}
