package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/infra/cdk/parkinglot"
	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/internal/mototest"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// TestTemplateDeploysAndServesTheBackend deploys the synthesized template
// into moto's CloudFormation (what `cdk deploy` does, minus the CLI: the
// bootstrap bucket and version parameter, the assets, CreateStack). moto
// creates the table, queues, functions, roles and rules and skips what it
// does not model (API Gateway v2, alarms, the dashboard). Then, with the
// environment CloudFormation gave the submit function, it runs tasks
// through core over awsstore on the deployed table and queues: the pools
// as the pools custom resource applied them (deploy answers it with
// expire's handler), a task parked into its pool's queue under the
// deployed name (a dotted pool name, hashed), and started from it when a
// slot frees.
func TestTemplateDeploysAndServesTheBackend(t *testing.T) {
	t.Parallel()
	moto := mototest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := moto.Config()
	stackName := "pl-cdk-" + uniq()
	outputs := deploy(ctx, t, cfg, stackName)
	require.Equal(t, synth.props.QueuePrefix, outputs["QueuePrefix"])

	physical := map[string]string{}
	res, err := cloudformation.NewFromConfig(cfg).ListStackResources(ctx, &cloudformation.ListStackResourcesInput{StackName: aws.String(stackName)})
	require.NoError(t, err)
	for _, r := range res.StackResourceSummaries {
		physical[aws.ToString(r.LogicalResourceId)] = aws.ToString(r.PhysicalResourceId)
	}
	fn, err := lambda.NewFromConfig(cfg).GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{
		FunctionName: aws.String(physical[functionID(t, lambdaapi.Submit)]),
	})
	require.NoError(t, err)
	require.Equal(t, "bootstrap", aws.ToString(fn.Handler))
	vars := fn.Environment.Variables
	vars["AWS_REGION"] = mototest.Region
	e, err := lambdaapi.LoadEnv(func(k string) string { return vars[k] })
	require.NoError(t, err)
	require.Equal(t, outputs["TableName"], e.Store.Table)

	db, q := dynamodb.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	store, err := awsstore.New(ctx, awsstore.Options{DynamoDB: db, SQS: q, Table: e.Store.Table, QueuePrefix: e.Store.QueuePrefix})
	require.NoError(t, err)
	sched, err := core.New(core.Config{Backend: store})
	require.NoError(t, err)

	pools, err := sched.Pools(ctx) // through the deployed pools index
	require.NoError(t, err)
	require.Len(t, pools, len(synth.props.Pools))
	for _, want := range synth.props.Pools {
		got, err := sched.Pool(ctx, want.Name)
		require.NoError(t, err)
		require.Equal(t, want.Capacity, got.Capacity, want.Name)
		require.Equal(t, want.MaxParked, got.MaxParked, want.Name)
		item, err := store.Pool(ctx, want.Name)
		require.NoError(t, err)
		require.Equal(t, want.Core(), item.PoolConfig, "every field, slotShards included")
	}

	// "batch.jobs" (capacity 1): the second task parks in the deployed
	// queue, and completing the first starts it from there.
	submit := func() core.Task {
		res, err := sched.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "batch.jobs"})
		require.NoError(t, err)
		return res.Task
	}
	first, second := submit(), submit()
	require.Equal(t, core.StateRunning, first.State)
	require.Equal(t, core.StateParked, second.State)
	u, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(awsstore.QueueName(e.Store.QueuePrefix, "batch.jobs"))})
	require.NoError(t, err)
	attrs, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: u.QueueUrl, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameRedrivePolicy},
	})
	require.NoError(t, err)
	require.Equal(t, "1", attrs.Attributes["ApproximateNumberOfMessages"], "the parked task's message is in the deployed queue")
	require.Contains(t, attrs.Attributes["RedrivePolicy"], parkinglot.DLQName(e.Store.QueuePrefix, "batch.jobs"))
	_, err = sched.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: first.ID, Lease: first.Lease, Status: core.StateSucceeded})
	require.NoError(t, err)
	got, err := sched.Task(ctx, "acme", second.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateRunning, got.State, "the release started the parked task from its queue")
}

// TestTTLAttributeIsAwsstores checks the template's TTL attribute against
// the one awsstore.CreateResources enables (moto's CloudFormation does not
// apply a table's TTL specification, so it is compared here).
func TestTTLAttributeIsAwsstores(t *testing.T) {
	t.Parallel()
	moto := mototest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := moto.Config()
	db := dynamodb.NewFromConfig(cfg)
	table := "pl-cdk-" + uniq()
	s, err := awsstore.New(ctx, awsstore.Options{DynamoDB: db, SQS: sqs.NewFromConfig(cfg), Table: table})
	require.NoError(t, err)
	require.NoError(t, s.CreateResources(ctx))
	d, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	require.NoError(t, err)
	ttl := one(t, "AWS::DynamoDB::Table").Props["TimeToLiveSpecification"].(map[string]any)
	require.Equal(t, aws.ToString(d.TimeToLiveDescription.AttributeName), ttl["AttributeName"])
}

// deploy does what `cdk bootstrap` and `cdk deploy` would on moto, and
// returns the stack's outputs.
func deploy(ctx context.Context, t *testing.T, cfg aws.Config, stackName string) map[string]string {
	t.Helper()
	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	require.NoError(t, err)
	bucket := "cdk-hnb659fds-assets-" + aws.ToString(id.Account) + "-" + cfg.Region
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	_, err = s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	require.NoError(t, err)
	_, err = ssm.NewFromConfig(cfg).PutParameter(ctx, &ssm.PutParameterInput{
		Name: aws.String("/cdk-bootstrap/hnb659fds/version"), Type: ssmtypes.ParameterTypeString, Value: aws.String("30"), Overwrite: aws.Bool(true),
	})
	require.NoError(t, err)

	b, err := os.ReadFile(filepath.Join(synth.outdir, synth.props.StackName+".assets.json"))
	require.NoError(t, err)
	var manifest struct {
		Files map[string]struct {
			Source       struct{ Path string }
			Destinations map[string]struct{ ObjectKey string }
		}
	}
	require.NoError(t, json.Unmarshal(b, &manifest))
	for _, a := range manifest.Files {
		for _, d := range a.Destinations {
			body, err := os.ReadFile(filepath.Join(synth.outdir, a.Source.Path))
			require.NoError(t, err)
			_, err = s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(d.ObjectKey), Body: bytes.NewReader(body)})
			require.NoError(t, err)
		}
	}

	template, err := os.ReadFile(synth.path)
	require.NoError(t, err)
	cfn := cloudformation.NewFromConfig(cfg)
	_, err = cfn.CreateStack(ctx, &cloudformation.CreateStackInput{
		StackName: aws.String(stackName), TemplateBody: aws.String(string(template)),
		Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityIam},
	})
	require.NoError(t, err)
	answerPools(ctx, t, cfg, stackName)
	w := cloudformation.NewStackCreateCompleteWaiter(cfn, func(o *cloudformation.StackCreateCompleteWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second
	})
	out, err := w.WaitForOutput(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stackName)}, time.Minute)
	require.NoError(t, err, "stack %s did not reach CREATE_COMPLETE", stackName)
	outputs := map[string]string{}
	for _, o := range out.Stacks[0].Outputs {
		outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	return outputs
}

// answerPools stands in for Lambda invoking expire with the pools custom
// resource's Create request, which moto's CloudFormation cannot do without
// Docker (the stack then waits for the answer): it runs expire's handler
// in-process, configured by the environment CloudFormation gave expire,
// with the request CloudFormation would send, built from the template's
// resource, and the ResponseURL where moto takes the answer.
func answerPools(ctx context.Context, t *testing.T, cfg aws.Config, stackName string) {
	t.Helper()
	cf := cloudformation.NewFromConfig(cfg)
	st, err := cf.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stackName)})
	require.NoError(t, err)
	stackID := aws.ToString(st.Stacks[0].StackId)
	physical := map[string]string{}
	res, err := cf.ListStackResources(ctx, &cloudformation.ListStackResourcesInput{StackName: aws.String(stackName)})
	require.NoError(t, err)
	for _, r := range res.StackResourceSummaries {
		physical[aws.ToString(r.LogicalResourceId)] = aws.ToString(r.PhysicalResourceId)
	}
	cr := one(t, lambdaapi.PoolsResourceType)
	fn, err := lambda.NewFromConfig(cfg).GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{
		FunctionName: aws.String(physical[functionID(t, lambdaapi.Expire)]),
	})
	require.NoError(t, err)
	vars := fn.Environment.Variables
	vars["AWS_REGION"] = mototest.Region
	e, err := lambdaapi.LoadEnv(func(k string) string { return vars[k] })
	require.NoError(t, err)
	store, err := awsstore.New(ctx, awsstore.Options{DynamoDB: dynamodb.NewFromConfig(cfg), SQS: sqs.NewFromConfig(cfg),
		Table: e.Store.Table, QueuePrefix: e.Store.QueuePrefix})
	require.NoError(t, err)
	sched, err := core.New(core.Config{Backend: store})
	require.NoError(t, err)
	h, err := lambdaapi.New(lambdaapi.Config{Function: lambdaapi.Expire, Scheduler: sched, PoolStore: store})
	require.NoError(t, err)
	props := map[string]any{"ServiceToken": aws.ToString(fn.FunctionArn), lambdaapi.PropPools: cr.Props[lambdaapi.PropPools],
		lambdaapi.PropTable: e.Store.Table}
	ev, err := json.Marshal(map[string]any{
		"RequestType": "Create", "StackId": stackID, "RequestId": "moto-" + uniq(), "ResourceType": lambdaapi.PoolsResourceType,
		"LogicalResourceId": cr.ID, "ResourceProperties": props,
		"ResponseURL": aws.ToString(cfg.BaseEndpoint) + "/cloudformation_" + cfg.Region + "/cfnresponse?stack=" + url.QueryEscape(stackID),
	})
	require.NoError(t, err)
	_, err = h.Invoke(ctx, ev)
	require.NoError(t, err)
}

func uniq() string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}
