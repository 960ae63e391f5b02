package stack

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/internal/mototest"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// need is one IAM authorization an AWS call requires: an action on a
// resource (the table, "index/NAME", or a queue's name) and, for item
// writes and reads, the partition keys it touches.
type need struct {
	action, resource string
	keys             []string
}

func (n need) String() string {
	return n.action + " on " + n.resource + " " + strings.Join(n.keys, ",")
}

// recorder is SDK middleware that records the authorizations of every call
// a function's clients make, as IAM evaluates them: a transaction item by
// item (PutItem, UpdateItem, DeleteItem, ConditionCheckItem), a batch of
// visibility changes as ChangeMessageVisibility.
type recorder struct {
	mu    sync.Mutex
	needs []need
}

func (r *recorder) add(n need) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.needs = append(r.needs, n)
}

func pk(key map[string]types.AttributeValue) string {
	if s, ok := key["pk"].(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return "?"
}

func queueName(u *string) string { return path.Base(aws.ToString(u)) }

func (r *recorder) record(op string, in any) {
	const table = "table"
	switch v := in.(type) {
	case *dynamodb.GetItemInput:
		r.add(need{"dynamodb:GetItem", table, []string{pk(v.Key)}})
	case *dynamodb.PutItemInput:
		r.add(need{"dynamodb:PutItem", table, []string{pk(v.Item)}})
	case *dynamodb.UpdateItemInput:
		r.add(need{"dynamodb:UpdateItem", table, []string{pk(v.Key)}})
	case *dynamodb.DeleteItemInput:
		r.add(need{"dynamodb:DeleteItem", table, []string{pk(v.Key)}})
	case *dynamodb.BatchGetItemInput:
		var keys []string
		for _, ka := range v.RequestItems {
			for _, k := range ka.Keys {
				keys = append(keys, pk(k))
			}
		}
		r.add(need{"dynamodb:BatchGetItem", table, keys})
	case *dynamodb.BatchWriteItemInput:
		var keys []string
		for _, reqs := range v.RequestItems {
			for _, w := range reqs {
				if w.DeleteRequest != nil {
					keys = append(keys, pk(w.DeleteRequest.Key))
				} else {
					keys = append(keys, pk(w.PutRequest.Item))
				}
			}
		}
		r.add(need{"dynamodb:BatchWriteItem", table, keys})
	case *dynamodb.TransactWriteItemsInput:
		for _, it := range v.TransactItems {
			switch {
			case it.Put != nil:
				r.add(need{"dynamodb:PutItem", table, []string{pk(it.Put.Item)}})
			case it.Update != nil:
				r.add(need{"dynamodb:UpdateItem", table, []string{pk(it.Update.Key)}})
			case it.Delete != nil:
				r.add(need{"dynamodb:DeleteItem", table, []string{pk(it.Delete.Key)}})
			case it.ConditionCheck != nil:
				r.add(need{"dynamodb:ConditionCheckItem", table, []string{pk(it.ConditionCheck.Key)}})
			}
		}
	case *dynamodb.QueryInput:
		res := table
		if v.IndexName != nil {
			res = "index/" + *v.IndexName
		}
		r.add(need{"dynamodb:Query", res, nil})
	case *sqs.GetQueueUrlInput:
		r.add(need{"sqs:GetQueueUrl", aws.ToString(v.QueueName), nil})
	case *sqs.SendMessageInput:
		r.add(need{"sqs:SendMessage", queueName(v.QueueUrl), nil})
	case *sqs.ReceiveMessageInput:
		r.add(need{"sqs:ReceiveMessage", queueName(v.QueueUrl), nil})
	case *sqs.DeleteMessageInput:
		r.add(need{"sqs:DeleteMessage", queueName(v.QueueUrl), nil})
	case *sqs.ChangeMessageVisibilityInput:
		r.add(need{"sqs:ChangeMessageVisibility", queueName(v.QueueUrl), nil})
	case *sqs.ChangeMessageVisibilityBatchInput:
		r.add(need{"sqs:ChangeMessageVisibility", queueName(v.QueueUrl), nil})
	default:
		r.add(need{"unrecorded:" + op, "?", nil})
	}
}

func (r *recorder) register(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("recordAuthorizations",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			r.record(awsmiddleware.GetOperationName(ctx), in.Parameters)
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

// resourceOf is the template's expression of a recorded resource.
func resourceOf(t *testing.T, res string) any {
	table := getAtt(tableID(t), "Arn")
	switch {
	case res == "table":
		return table
	case strings.HasPrefix(res, "index/"):
		return map[string]any{"Fn::Join": []any{"", []any{table, "/" + res}}}
	}
	return getAtt(byProp(t, "AWS::SQS::Queue", "QueueName", res).ID, "Arn")
}

// permits reports whether the statements allow n: an Allow statement with
// its action and resource, whose dynamodb:LeadingKeys condition, if any,
// every key of n matches.
func permits(t *testing.T, sts []map[string]any, n need) bool {
	res := canon(t, resourceOf(t, n.resource))
	for _, st := range sts {
		if st["Effect"] != "Allow" || !slices.Contains(st["Action"].([]any), any(n.action)) ||
			!slices.ContainsFunc(st["Resource"].([]any), func(r any) bool { return canon(t, r) == res }) {
			continue
		}
		cond, ok := st["Condition"].(map[string]any)
		if !ok {
			return true
		}
		require.Len(t, cond, 1, "conditions this test does not evaluate: %v", cond)
		like := cond["ForAllValues:StringLike"].(map[string]any)
		require.Len(t, like, 1, "conditions this test does not evaluate: %v", cond)
		var patterns []string
		for _, p := range like["dynamodb:LeadingKeys"].([]any) {
			patterns = append(patterns, p.(string))
		}
		if len(n.keys) > 0 && allMatch(n.keys, patterns) {
			return true
		}
	}
	return false
}

func allMatch(keys, patterns []string) bool {
	for _, k := range keys {
		if !slices.ContainsFunc(patterns, func(p string) bool {
			return regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(p), `\*`, ".*") + "$").MatchString(k)
		}) {
			return false
		}
	}
	return true
}

// TestGrantsCoverEveryCall runs the four functions' handlers, each over
// SDK clients of its own that record every call, on the tables and queues
// the template deployed into moto, through a workload that takes every
// route and the sweep: submissions that start, park and are handed a slot,
// heartbeats, completions, cancels of running and parked tasks, a claim
// of a pull pool, mailbox reads and acks, audit, task and pool reads, and
// a sweep that expires, reclaims and purges. Every call must be allowed
// by the grants the template gives that function, conditions included
// (moto itself does not evaluate IAM on DynamoDB).
func TestGrantsCoverEveryCall(t *testing.T) {
	t.Parallel()
	moto := mototest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := moto.Config()
	stackName := "pl-cdk-" + uniq()
	deploy(ctx, t, cfg, stackName)
	physical := map[string]string{}
	res, err := cloudformation.NewFromConfig(cfg).ListStackResources(ctx, &cloudformation.ListStackResourcesInput{StackName: aws.String(stackName)})
	require.NoError(t, err)
	for _, r := range res.StackResourceSummaries {
		physical[aws.ToString(r.LogicalResourceId)] = aws.ToString(r.PhysicalResourceId)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	recs := map[lambdaapi.Function]*recorder{}
	handlers := map[lambdaapi.Function]lambda.Handler{}
	for _, f := range lambdaapi.Functions {
		fn, err := awslambda.NewFromConfig(cfg).GetFunctionConfiguration(ctx, &awslambda.GetFunctionConfigurationInput{
			FunctionName: aws.String(physical[functionID(t, f)]),
		})
		require.NoError(t, err)
		vars := fn.Environment.Variables
		vars["AWS_REGION"] = mototest.Region
		env, err := lambdaapi.LoadEnv(func(k string) string { return vars[k] })
		require.NoError(t, err, f)
		env.SweepEvery, env.SweepFor = 0, 0 // one sweep per invocation

		rec := &recorder{}
		recs[f] = rec
		db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.APIOptions = append(o.APIOptions, rec.register) })
		q := sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.APIOptions = append(o.APIOptions, rec.register) })
		store, err := awsstore.New(ctx, awsstore.Options{DynamoDB: db, SQS: q, Table: env.Store.Table, QueuePrefix: env.Store.QueuePrefix})
		require.NoError(t, err)
		cc := core.Config{Backend: store, Logger: log}
		if f == lambdaapi.Expire {
			// Expire sweeps a year later: every lease and deadline has
			// passed, every message and event is past retention.
			cc.Clock = laterClock{365 * 24 * time.Hour}
		}
		sched, err := core.New(cc)
		require.NoError(t, err)
		hc := env.Config(f, sched, log, nil)
		if f == lambdaapi.Expire {
			hc.PoolStore = store
		}
		h, err := lambdaapi.New(hc)
		require.NoError(t, err)
		handlers[f] = h
	}
	gw, err := lambdaapi.NewGateway(lambdaapi.GatewayOptions{Functions: handlers, Logger: log, Claims: map[string]map[string]string{
		"tenant": {"org": "acme", lambdaapi.SubjectClaim: "acme"},
		"worker": {lambdaapi.RoleClaim: lambdaapi.RoleWorker, lambdaapi.SubjectClaim: "w1", lambdaapi.PoolsClaim: "[render]"},
	}})
	require.NoError(t, err)
	srv := httptest.NewServer(gw)
	defer srv.Close()
	tenant, err := client.New(srv.URL, "tenant")
	require.NoError(t, err)
	worker, err := client.New(srv.URL, "worker")
	require.NoError(t, err)

	submit := func(pool string) api.Task {
		t.Helper()
		r, err := tenant.Submit(ctx, pool, api.SubmitRequest{Recipient: "inbox", Payload: json.RawMessage(`{"n":1}`)})
		require.NoError(t, err)
		return r.Task
	}
	// batch.jobs has one slot: a start, a park, a hand-off by complete.
	a, b := submit("batch.jobs"), submit("batch.jobs")
	require.Equal(t, "running", a.State)
	require.Equal(t, "parked", b.State)
	_, err = tenant.Heartbeat(ctx, a.ID, a.Lease, time.Minute)
	require.NoError(t, err)
	_, err = tenant.Complete(ctx, a.ID, api.CompleteRequest{Lease: a.Lease, Status: "succeeded"})
	require.NoError(t, err)
	b, err = tenant.Task(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, "running", b.State, "the completion handed its slot over")
	// A parked task cancelled, then the running one: a release.
	c := submit("batch.jobs")
	require.Equal(t, "parked", c.State)
	_, err = tenant.Cancel(ctx, c.ID)
	require.NoError(t, err)
	_, err = tenant.Cancel(ctx, b.ID)
	require.NoError(t, err)
	// A pull pool: the task parks until the worker claims it.
	x := submit("render")
	require.Equal(t, "parked", x.State)
	claimed, err := worker.Claim(ctx, "render", client.ClaimOptions{Wait: 5 * time.Second})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	_, err = worker.Complete(ctx, claimed[0].ID, api.CompleteRequest{Lease: claimed[0].Lease, Status: "succeeded"})
	require.NoError(t, err)
	// Reads, an ack.
	page, err := tenant.Mailbox(ctx, "inbox", client.MailboxOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, page.Messages)
	require.NoError(t, tenant.Ack(ctx, "inbox", page.Messages[len(page.Messages)-1].Cursor))
	_, err = tenant.Audit(ctx, client.AuditQuery{})
	require.NoError(t, err)
	_, err = tenant.Pools(ctx)
	require.NoError(t, err)
	_, err = tenant.Pool(ctx, "gpu")
	require.NoError(t, err)
	// One running task left for the sweep to time out, then the sweep.
	submit("gpu")
	ev, err := json.Marshal(events.EventBridgeEvent{Version: "0", ID: "schedule-1", DetailType: "Scheduled Event",
		Source: "aws.events", Time: time.Now().UTC(), Region: mototest.Region, Detail: json.RawMessage(`{}`)})
	require.NoError(t, err)
	_, err = handlers[lambdaapi.Expire].Invoke(ctx, ev)
	require.NoError(t, err)
	// The pools custom resource: cpu onto 4 slot shards and back (a
	// transaction that puts the shards, then deletes them).
	answers := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if !strings.Contains(string(b), `"Status":"SUCCESS"`) {
			t.Errorf("custom resource answer: %s", b)
		}
	}))
	defer answers.Close()
	for _, shards := range []int{4, 0} {
		pools := slices.Clone(synth.props.Pools)
		for i := range pools {
			if pools[i].Name == "cpu" {
				pools[i].SlotShards = shards
			}
		}
		specs := make([]lambdaapi.PoolSpec, len(pools))
		for i, p := range pools {
			specs[i] = lambdaapi.PoolSpecOf(p.Core())
		}
		raw, err := json.Marshal(specs)
		require.NoError(t, err)
		ev, err := json.Marshal(map[string]any{
			"RequestType": "Update", "ResponseURL": answers.URL, "StackId": stackName, "RequestId": "r" + uniq(),
			"ResourceType": lambdaapi.PoolsResourceType, "LogicalResourceId": "Pools", "PhysicalResourceId": "Pools",
			"ResourceProperties": map[string]any{"ServiceToken": "expire", lambdaapi.PropPools: string(raw)},
		})
		require.NoError(t, err)
		_, err = handlers[lambdaapi.Expire].Invoke(ctx, ev)
		require.NoError(t, err)
	}

	for _, f := range lambdaapi.Functions {
		sts := policy(t, f)
		seen := map[string]bool{}
		var denied []string
		for _, n := range recs[f].needs {
			seen[n.action+" "+n.resource] = true
			if !permits(t, sts, n) {
				denied = append(denied, n.String())
			}
		}
		require.Empty(t, denied, "%s: calls its grants do not allow", f)
		var kinds []string
		for k := range seen {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		t.Logf("%s made %d calls: %s", f, len(recs[f].needs), strings.Join(kinds, "; "))
	}
	// The workload took the conditioned grants' paths.
	took := func(f lambdaapi.Function, action string) bool {
		return slices.ContainsFunc(recs[f].needs, func(n need) bool { return n.action == action })
	}
	require.True(t, took(lambdaapi.Mailbox, "dynamodb:UpdateItem"), "mailbox acked")
	require.True(t, took(lambdaapi.Mailbox, "dynamodb:PutItem"), "mailbox numbered pending messages")
	require.True(t, took(lambdaapi.Expire, "dynamodb:BatchWriteItem"), "expire purged")
	require.True(t, took(lambdaapi.Submit, "sqs:SendMessage"), "submit parked")
	require.True(t, took(lambdaapi.Dispatch, "sqs:ReceiveMessage"), "dispatch woke parked work")
	require.True(t, took(lambdaapi.Expire, "dynamodb:Query"), "expire swept")
	require.True(t, took(lambdaapi.Expire, "dynamodb:DeleteItem"), "expire took cpu's slot shards back")
}

// laterClock is the system clock, shifted.
type laterClock struct{ by time.Duration }

func (c laterClock) Now() time.Time { return time.Now().Add(c.by) }
