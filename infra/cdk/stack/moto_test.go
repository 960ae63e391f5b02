package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/internal/mototest"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// TestSynthesizedResourcesServeTheBackend creates, on moto, the table and
// the parking queues exactly as the template declares them (no
// CreateResources, no queue creation by the store), puts the pools the way
// the functions do from the template's PARKINGLOT_POOLS, and runs tasks
// through core over awsstore: a parked task's message must reach its pool's
// queue under the template's name, and a release must start it from there.
// It also checks that the TTL attribute of the template is the one
// awsstore.CreateResources enables.
func TestSynthesizedResourcesServeTheBackend(t *testing.T) {
	t.Parallel()
	moto := mototest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := moto.Config()
	db, q := dynamodb.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	table := "pl-cdk-" + uniq()

	// The table, from the template's properties.
	p := one(t, "AWS::DynamoDB::Table").Props
	in := &dynamodb.CreateTableInput{TableName: aws.String(table), BillingMode: ddbtypes.BillingMode(p["BillingMode"].(string))}
	keys := func(v any) []ddbtypes.KeySchemaElement {
		var out []ddbtypes.KeySchemaElement
		for _, k := range v.([]any) {
			m := k.(map[string]any)
			out = append(out, ddbtypes.KeySchemaElement{AttributeName: aws.String(m["AttributeName"].(string)), KeyType: ddbtypes.KeyType(m["KeyType"].(string))})
		}
		return out
	}
	in.KeySchema = keys(p["KeySchema"])
	for _, d := range p["AttributeDefinitions"].([]any) {
		m := d.(map[string]any)
		in.AttributeDefinitions = append(in.AttributeDefinitions, ddbtypes.AttributeDefinition{
			AttributeName: aws.String(m["AttributeName"].(string)), AttributeType: ddbtypes.ScalarAttributeType(m["AttributeType"].(string))})
	}
	for _, g := range p["GlobalSecondaryIndexes"].([]any) {
		m := g.(map[string]any)
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, ddbtypes.GlobalSecondaryIndex{
			IndexName: aws.String(m["IndexName"].(string)), KeySchema: keys(m["KeySchema"]),
			Projection: &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionType(m["Projection"].(map[string]any)["ProjectionType"].(string))},
		})
	}
	_, err := db.CreateTable(ctx, in)
	require.NoError(t, err)
	ttl := p["TimeToLiveSpecification"].(map[string]any)
	_, err = db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: aws.String(table),
		TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{AttributeName: aws.String(ttl["AttributeName"].(string)), Enabled: aws.Bool(true)}})
	require.NoError(t, err)

	// The parking queues, from the template's properties.
	for _, r := range resources(t, "AWS::SQS::Queue") {
		name, ok := r.Props["QueueName"].(string)
		if !ok {
			continue
		}
		attrs := map[string]string{}
		for _, k := range []string{"FifoQueue", "DeduplicationScope", "FifoThroughputLimit", "VisibilityTimeout", "MessageRetentionPeriod"} {
			switch v := r.Props[k].(type) {
			case nil:
			case float64:
				attrs[k] = strconv.FormatFloat(v, 'f', -1, 64)
			default:
				attrs[k] = fmt.Sprint(v)
			}
		}
		_, err := q.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
		require.NoError(t, err, "%s %v\n%s", name, attrs, moto.Stderr())
	}

	store, err := awsstore.New(ctx, awsstore.Options{DynamoDB: db, SQS: q, Table: table, QueuePrefix: synth.props.QueuePrefix})
	require.NoError(t, err)
	sched, err := core.New(core.Config{Backend: store})
	require.NoError(t, err)

	// The pools, as a function puts them at cold start from its environment.
	env := map[string]string{"AWS_REGION": mototest.Region}
	for k, v := range byProp(t, "AWS::Lambda::Function", "Description", "Parkinglot submit").Props["Environment"].(map[string]any)["Variables"].(map[string]any) {
		if s, ok := v.(string); ok {
			env[k] = s
		} else if canon(t, v) == canon(t, ref(tableID(t))) {
			env[k] = table // the deployed table's name
		}
	}
	e, err := lambdaapi.LoadEnv(func(k string) string { return env[k] })
	require.NoError(t, err)
	require.NoError(t, lambdaapi.PutPools(ctx, sched, e.Pools))
	pools, err := sched.Pools(ctx)
	require.NoError(t, err)
	require.Len(t, pools, len(synth.props.Pools))
	for _, want := range synth.props.Pools {
		got, err := sched.Pool(ctx, want.Name)
		require.NoError(t, err)
		require.Equal(t, want.Capacity, got.Capacity, want.Name)
		require.Equal(t, want.MaxParked, got.MaxParked, want.Name)
	}

	// A pool whose name SQS refuses as is ("batch.jobs", capacity 1): the
	// second task parks in the queue named by the template, and completing
	// the first starts it from there.
	submit := func() core.Task {
		res, err := sched.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "batch.jobs"})
		require.NoError(t, err)
		return res.Task
	}
	first, second := submit(), submit()
	require.Equal(t, core.StateRunning, first.State)
	require.Equal(t, core.StateParked, second.State)
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       queueURL(ctx, t, q, awsstore.QueueName(synth.props.QueuePrefix, "batch.jobs")),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages},
	})
	require.NoError(t, err)
	require.Equal(t, "1", attrs.Attributes["ApproximateNumberOfMessages"], "the parked task's message is in the template's queue")
	_, err = sched.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: first.ID, Lease: first.Lease, Status: core.StateSucceeded})
	require.NoError(t, err)
	got, err := sched.Task(ctx, "acme", second.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateRunning, got.State, "the release started the parked task from its queue")

	// The TTL attribute is the one awsstore enables itself.
	own := "pl-cdk-own-" + uniq()
	s2, err := awsstore.New(ctx, awsstore.Options{DynamoDB: db, SQS: q, Table: own, QueuePrefix: "own-"})
	require.NoError(t, err)
	require.NoError(t, s2.CreateResources(ctx))
	d, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(own)})
	require.NoError(t, err)
	require.Equal(t, TTLAttribute, aws.ToString(d.TimeToLiveDescription.AttributeName))
	require.Equal(t, TTLAttribute, ttl["AttributeName"])
}

func queueURL(ctx context.Context, t *testing.T, q *sqs.Client, name string) *string {
	t.Helper()
	out, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	require.NoError(t, err, name)
	return out.QueueUrl
}

func uniq() string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}
