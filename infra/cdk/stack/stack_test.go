package stack

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/infra/cdk/parkinglot"
	"github.com/parkinglot/parkinglot/internal/awsconfig"
	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
)

// The tests read the synthesized template as JSON (not through the
// assertions package's matchers, whose failures abort the test binary).

type resource struct {
	ID         string
	Type       string
	Props      map[string]any
	Deletion   string
	Dependency []any
}

func resources(t *testing.T, typ string) []resource {
	t.Helper()
	rs, _ := synth.template["Resources"].(map[string]any)
	var out []resource
	for id, r := range rs {
		m := r.(map[string]any)
		if m["Type"] != typ {
			continue
		}
		props, _ := m["Properties"].(map[string]any)
		del, _ := m["DeletionPolicy"].(string)
		out = append(out, resource{ID: id, Type: typ, Props: props, Deletion: del})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func one(t *testing.T, typ string) resource {
	t.Helper()
	rs := resources(t, typ)
	require.Len(t, rs, 1, "resources of type %s", typ)
	return rs[0]
}

func ref(id string) map[string]any          { return map[string]any{"Ref": id} }
func getAtt(id, attr string) map[string]any { return map[string]any{"Fn::GetAtt": []any{id, attr}} }

// canon turns v into comparable JSON.
func canon(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func byProp(t *testing.T, typ, key string, want any) resource {
	t.Helper()
	for _, r := range resources(t, typ) {
		if canon(t, r.Props[key]) == canon(t, want) {
			return r
		}
	}
	t.Fatalf("no %s with %s = %s", typ, key, canon(t, want))
	return resource{}
}

// timeout is function f's default timeout in seconds.
func timeout(f lambdaapi.Function) float64 {
	return parkinglot.DefaultFunctionProps(parkinglot.Function(f)).Timeout.Seconds()
}

func tableID(t *testing.T) string { return one(t, "AWS::DynamoDB::Table").ID }

func TestTableMatchesAwsstoreSchema(t *testing.T) {
	t.Parallel()
	tbl := one(t, "AWS::DynamoDB::Table")
	want := awsstore.TableSchema("x")
	p := tbl.Props

	require.Equal(t, "PAY_PER_REQUEST", p["BillingMode"])
	require.Equal(t, string(types.BillingModePayPerRequest), p["BillingMode"])
	require.Equal(t, "Retain", tbl.Deletion, "the table outlives the stack")
	require.Equal(t, map[string]any{"PointInTimeRecoveryEnabled": true}, p["PointInTimeRecoverySpecification"])
	require.Equal(t, map[string]any{"AttributeName": parkinglot.TTLAttribute, "Enabled": true}, p["TimeToLiveSpecification"])

	keys := func(ks []types.KeySchemaElement) []any {
		var out []any
		for _, k := range ks {
			out = append(out, map[string]any{"AttributeName": *k.AttributeName, "KeyType": string(k.KeyType)})
		}
		return out
	}
	require.JSONEq(t, canon(t, keys(want.KeySchema)), canon(t, p["KeySchema"]))

	var attrs []string
	for _, d := range want.AttributeDefinitions {
		attrs = append(attrs, *d.AttributeName+":"+string(d.AttributeType))
	}
	var got []string
	for _, d := range p["AttributeDefinitions"].([]any) {
		m := d.(map[string]any)
		got = append(got, fmt.Sprint(m["AttributeName"], ":", m["AttributeType"]))
	}
	require.ElementsMatch(t, attrs, got)

	gsis := map[string]string{}
	for _, g := range p["GlobalSecondaryIndexes"].([]any) {
		m := g.(map[string]any)
		gsis[m["IndexName"].(string)] = canon(t, map[string]any{"k": m["KeySchema"], "p": m["Projection"]})
	}
	require.Len(t, gsis, len(want.GlobalSecondaryIndexes))
	for _, g := range want.GlobalSecondaryIndexes {
		require.JSONEq(t, canon(t, map[string]any{"k": keys(g.KeySchema), "p": map[string]any{"ProjectionType": string(g.Projection.ProjectionType)}}),
			gsis[*g.IndexName], "index %s", *g.IndexName)
	}
}

func redrive(t *testing.T, q resource) (dlqID string, max float64) {
	t.Helper()
	rp, ok := q.Props["RedrivePolicy"].(map[string]any)
	require.True(t, ok, "queue %s has no redrive policy", q.ID)
	arn := rp["deadLetterTargetArn"].(map[string]any)["Fn::GetAtt"].([]any)
	require.Equal(t, "Arn", arn[1])
	return arn[0].(string), rp["maxReceiveCount"].(float64)
}

func queueByID(t *testing.T, id string) resource {
	t.Helper()
	for _, q := range resources(t, "AWS::SQS::Queue") {
		if q.ID == id {
			return q
		}
	}
	t.Fatalf("no queue %s", id)
	return resource{}
}

func TestPoolQueues(t *testing.T) {
	t.Parallel()
	require.Len(t, resources(t, "AWS::SQS::Queue"), 2*len(synth.props.Pools)+2)
	for _, p := range synth.props.Pools {
		name := awsstore.QueueName(synth.props.QueuePrefix, p.Name)
		q := byProp(t, "AWS::SQS::Queue", "QueueName", name)
		require.Equal(t, true, q.Props["FifoQueue"], p.Name)
		require.Equal(t, "messageGroup", q.Props["DeduplicationScope"])
		require.Equal(t, "perMessageGroupId", q.Props["FifoThroughputLimit"])
		require.Equal(t, true, q.Props["SqsManagedSseEnabled"])
		require.EqualValues(t, 14*24*3600, q.Props["MessageRetentionPeriod"])
		dlqID, max := redrive(t, q)
		require.EqualValues(t, parkinglot.ParkMaxReceives, max)
		dlq := queueByID(t, dlqID)
		require.Equal(t, true, dlq.Props["FifoQueue"], "a FIFO queue's DLQ is FIFO")
		require.Equal(t, parkinglot.DLQName(synth.props.QueuePrefix, p.Name), dlq.Props["QueueName"])
		require.Nil(t, dlq.Props["RedrivePolicy"])
	}
	// The name of "batch.jobs" is the hashed form SQS accepts.
	require.NotContains(t, awsstore.QueueName(synth.props.QueuePrefix, "batch.jobs"), "batch.jobs")
}

func functionID(t *testing.T, f lambdaapi.Function) string {
	t.Helper()
	return byProp(t, "AWS::Lambda::Function", "Description", "Parkinglot "+string(f)).ID
}

func TestSubmitQueue(t *testing.T) {
	t.Parallel()
	var submit resource
	for _, q := range resources(t, "AWS::SQS::Queue") {
		if q.Props["FifoQueue"] == nil && q.Props["RedrivePolicy"] != nil {
			submit = q
		}
	}
	require.NotEmpty(t, submit.ID, "no standard queue with a DLQ")
	dlqID, max := redrive(t, submit)
	require.EqualValues(t, parkinglot.SubmitMaxReceives, max)
	require.Nil(t, queueByID(t, dlqID).Props["FifoQueue"])
	require.EqualValues(t, 6*timeout(lambdaapi.Submit), submit.Props["VisibilityTimeout"])

	esm := one(t, "AWS::Lambda::EventSourceMapping")
	require.Equal(t, getAtt(submit.ID, "Arn"), esm.Props["EventSourceArn"])
	require.Equal(t, ref(functionID(t, lambdaapi.Submit)), esm.Props["FunctionName"])
	require.Equal(t, []any{"ReportBatchItemFailures"}, esm.Props["FunctionResponseTypes"])
}

func TestFunctions(t *testing.T) {
	t.Parallel()
	fns := resources(t, "AWS::Lambda::Function")
	require.Len(t, fns, len(lambdaapi.Functions))
	keys := map[string]bool{}
	for _, f := range lambdaapi.Functions {
		fn := byProp(t, "AWS::Lambda::Function", "Description", "Parkinglot "+string(f))
		p := fn.Props
		require.Equal(t, "provided.al2023", p["Runtime"], f)
		require.Equal(t, []any{"arm64"}, p["Architectures"])
		require.Equal(t, "bootstrap", p["Handler"])
		require.EqualValues(t, timeout(f), p["Timeout"])
		require.EqualValues(t, 256, p["MemorySize"])
		if rc := parkinglot.DefaultFunctionProps(parkinglot.Function(f)).ReservedConcurrency; rc == parkinglot.Unreserved {
			require.Nil(t, p["ReservedConcurrentExecutions"], f)
		} else {
			require.EqualValues(t, rc, p["ReservedConcurrentExecutions"], f)
		}
		key := p["Code"].(map[string]any)["S3Key"].(string)
		require.True(t, strings.HasSuffix(key, ".zip"), key)
		keys[key] = true
		env := p["Environment"].(map[string]any)["Variables"].(map[string]any)
		require.Equal(t, ref(tableID(t)), env[awsconfig.EnvTable])
		require.Equal(t, synth.props.QueuePrefix, env[awsconfig.EnvQueuePrefix])
		require.Equal(t, "org", env[lambdaapi.EnvTenantClaim])
		require.Nil(t, env[lambdaapi.EnvPools], "the pools are in the table, not the environment")
		require.Nil(t, env[lambdaapi.EnvTargets], "no push pool, no targets")
		if f == lambdaapi.Expire {
			require.Equal(t, "10s", env[lambdaapi.EnvSweepEvery])
		} else {
			require.Nil(t, env[lambdaapi.EnvSweepEvery])
		}
		// The environment is what the functions accept.
		vars := map[string]string{"AWS_REGION": "us-east-1"}
		for k, v := range env {
			if s, ok := v.(string); ok {
				vars[k] = s
			} else {
				vars[k] = "table-name"
			}
		}
		e, err := lambdaapi.LoadEnv(func(k string) string { return vars[k] })
		require.NoError(t, err, f)
		if f == lambdaapi.Submit {
			require.Equal(t, map[string]string{"ci.runner": "ci", "billing.app": "acme"}, e.SourceTenants)
		} else {
			require.Empty(t, e.SourceTenants, f)
		}
		require.Empty(t, e.Targets, f)
	}
	require.Len(t, keys, len(lambdaapi.Functions), "each function has its own code asset")

	// Each asset is the function's own zip, shipped as is (no bundling).
	b, err := os.ReadFile(filepath.Join(synth.outdir, synth.props.StackName+".assets.json"))
	require.NoError(t, err)
	var manifest struct {
		Files map[string]struct {
			Source struct{ Path, Packaging string }
		}
	}
	require.NoError(t, json.Unmarshal(b, &manifest))
	for key := range keys {
		a, ok := manifest.Files[strings.TrimSuffix(key, ".zip")]
		require.True(t, ok, key)
		require.Equal(t, "file", a.Source.Packaging)
		staged, err := os.ReadFile(filepath.Join(synth.outdir, a.Source.Path))
		require.NoError(t, err)
		var found bool
		for _, f := range lambdaapi.Functions {
			src, err := os.ReadFile(synth.stack.Parkinglot.Props().Zip(parkinglot.Function(f)))
			require.NoError(t, err)
			found = found || string(src) == string(staged)
		}
		require.True(t, found, "asset %s is one of the zips", key)
	}
}

// policy returns the statements of the policies attached to function f's
// role, with their actions as lists.
func policy(t *testing.T, f lambdaapi.Function) []map[string]any {
	t.Helper()
	role := byProp(t, "AWS::Lambda::Function", "Description", "Parkinglot "+string(f)).Props["Role"].(map[string]any)["Fn::GetAtt"].([]any)[0]
	var out []map[string]any
	for _, p := range resources(t, "AWS::IAM::Policy") {
		if !slices.ContainsFunc(p.Props["Roles"].([]any), func(r any) bool { return canon(t, r) == canon(t, ref(role.(string))) }) {
			continue
		}
		for _, s := range p.Props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			st := s.(map[string]any)
			if a, ok := st["Action"].(string); ok {
				st["Action"] = []any{a}
			}
			if r, ok := st["Resource"]; ok {
				if _, list := r.([]any); !list {
					st["Resource"] = []any{r}
				}
			}
			out = append(out, st)
		}
	}
	return out
}

// allowed reports whether the statements allow action on a resource that
// equals res.
func allowed(t *testing.T, sts []map[string]any, action string, res any) bool {
	for _, st := range sts {
		if st["Effect"] != "Allow" || !slices.Contains(st["Action"].([]any), any(action)) {
			continue
		}
		for _, r := range st["Resource"].([]any) {
			if canon(t, r) == canon(t, res) {
				return true
			}
		}
	}
	return false
}

func actions(sts []map[string]any) []string {
	var out []string
	for _, st := range sts {
		for _, a := range st["Action"].([]any) {
			out = append(out, a.(string))
		}
	}
	return out
}

// grants returns what statements allow on res: each action with its
// condition as JSON ("" for none).
func grants(t *testing.T, sts []map[string]any, res any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, st := range sts {
		if st["Effect"] != "Allow" || !slices.ContainsFunc(st["Resource"].([]any), func(r any) bool { return canon(t, r) == canon(t, res) }) {
			continue
		}
		cond := ""
		if c, ok := st["Condition"]; ok {
			cond = canon(t, c)
		}
		for _, a := range st["Action"].([]any) {
			_, dup := out[a.(string)]
			require.False(t, dup, "%s granted twice on %v", a, res)
			out[a.(string)] = cond
		}
	}
	return out
}

func leading(keys ...string) string {
	k := make([]any, len(keys))
	for i, x := range keys {
		k[i] = x
	}
	b, _ := json.Marshal(map[string]any{"ForAllValues:StringLike": map[string]any{"dynamodb:LeadingKeys": k}})
	return string(b)
}

func TestGrantsPerFunction(t *testing.T) {
	t.Parallel()
	table := getAtt(tableID(t), "Arn")
	index := func(name string) any { return map[string]any{"Fn::Join": []any{"", []any{table, "/index/" + name}}} }
	transition := map[string]string{"dynamodb:GetItem": "", "dynamodb:BatchGetItem": "", "dynamodb:PutItem": "",
		"dynamodb:UpdateItem": "", "dynamodb:ConditionCheckItem": ""}
	withPurge := maps.Clone(transition)
	withPurge["dynamodb:DeleteItem"] = leading("POOL#*") // PutPool's slot shards, for the pools custom resource
	withPurge["dynamodb:BatchWriteItem"] = leading("MBOX#*", "AUDIT#*")
	wantTable := map[lambdaapi.Function]map[string]string{
		lambdaapi.Submit: transition, lambdaapi.Dispatch: transition, lambdaapi.Expire: withPurge,
		lambdaapi.Mailbox: {"dynamodb:GetItem": "", "dynamodb:BatchGetItem": "", "dynamodb:Query": "",
			"dynamodb:UpdateItem": leading("MBOX#*"), "dynamodb:PutItem": leading("MBOX#*"), "dynamodb:DeleteItem": leading("MBOX#*")},
	}
	query := map[string]string{"dynamodb:Query": ""}
	wantIndex := map[lambdaapi.Function]map[string]map[string]string{
		lambdaapi.Submit: {}, lambdaapi.Dispatch: {},
		lambdaapi.Expire:  {"due": query, "unsent": query, "pools": query, "expiry": query},
		lambdaapi.Mailbox: {"pools": query},
	}
	consume := map[string]string{"sqs:ReceiveMessage": "", "sqs:ChangeMessageVisibility": "", "sqs:DeleteMessage": "", "sqs:GetQueueUrl": ""}
	consumeSend := maps.Clone(consume)
	consumeSend["sqs:SendMessage"] = ""
	reconcile := maps.Clone(consumeSend) // expire counts a queue's messages against its parked tasks
	reconcile["sqs:GetQueueAttributes"] = ""
	wantQueue := map[lambdaapi.Function]map[string]string{
		lambdaapi.Submit: consumeSend, lambdaapi.Dispatch: consume, lambdaapi.Expire: reconcile, lambdaapi.Mailbox: {},
	}
	var poolQueues []any
	for _, p := range synth.props.Pools {
		poolQueues = append(poolQueues, getAtt(byProp(t, "AWS::SQS::Queue", "QueueName", awsstore.QueueName(synth.props.QueuePrefix, p.Name)).ID, "Arn"))
	}
	for _, f := range lambdaapi.Functions {
		sts := policy(t, f)
		require.Equal(t, wantTable[f], grants(t, sts, table), "%s: on the table", f)
		ddb := len(grants(t, sts, table))
		for _, name := range []string{"due", "unsent", "pools", "expiry"} {
			got := grants(t, sts, index(name))
			if want, ok := wantIndex[f][name]; ok {
				require.Equal(t, want, got, "%s: on index %s", f, name)
			} else {
				require.Empty(t, got, "%s: on index %s", f, name)
			}
			ddb += len(got)
		}
		for _, q := range poolQueues {
			require.Equal(t, wantQueue[f], grants(t, sts, q), "%s: on %v", f, q)
		}
		// No DynamoDB action on anything else (another table, every index).
		n := 0
		for _, st := range sts {
			for _, a := range st["Action"].([]any) {
				if strings.HasPrefix(a.(string), "dynamodb:") {
					n += len(st["Resource"].([]any))
				}
				require.NotEqual(t, "dynamodb:Scan", a, f)
			}
		}
		require.Equal(t, ddb, n, "%s: DynamoDB actions on other resources: %v", f, actions(sts))
	}
	// Only submit consumes the submit queue.
	var submitQ string
	for _, q := range resources(t, "AWS::SQS::Queue") {
		if q.Props["FifoQueue"] == nil && q.Props["RedrivePolicy"] != nil {
			submitQ = q.ID
		}
	}
	for _, f := range lambdaapi.Functions {
		require.Equal(t, f == lambdaapi.Submit, allowed(t, policy(t, f), "sqs:ReceiveMessage", getAtt(submitQ, "Arn")), f)
	}
	// No function is granted anything on every resource.
	for _, f := range lambdaapi.Functions {
		for _, st := range policy(t, f) {
			require.NotContains(t, st["Resource"], any("*"), "%s: %v", f, st["Action"])
		}
	}
}

func TestAPIRoutes(t *testing.T) {
	t.Parallel()
	api := one(t, "AWS::ApiGatewayV2::Api")
	require.Equal(t, "HTTP", api.Props["ProtocolType"])
	auth := one(t, "AWS::ApiGatewayV2::Authorizer")
	require.Equal(t, "JWT", auth.Props["AuthorizerType"])
	require.Equal(t, map[string]any{"Issuer": synth.props.JWTIssuer, "Audience": []any{"parkinglot", "cli"}}, auth.Props["JwtConfiguration"])

	// Route key -> function, through the integration's URI.
	integ := map[string]string{}
	for _, i := range resources(t, "AWS::ApiGatewayV2::Integration") {
		require.Equal(t, "2.0", i.Props["PayloadFormatVersion"])
		integ[i.ID] = i.Props["IntegrationUri"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
	}
	routes := map[string]string{}
	for _, r := range resources(t, "AWS::ApiGatewayV2::Route") {
		require.Equal(t, "JWT", r.Props["AuthorizationType"], r.Props["RouteKey"])
		require.Equal(t, ref(auth.ID), r.Props["AuthorizerId"])
		target := r.Props["Target"].(map[string]any)["Fn::Join"].([]any)[1].([]any)[1].(map[string]any)["Ref"].(string)
		routes[r.Props["RouteKey"].(string)] = integ[target]
	}
	want := map[string]string{"$default": functionID(t, lambdaapi.DefaultRoute)}
	for _, r := range lambdaapi.Routes() {
		want[r.Key()] = functionID(t, r.Function)
	}
	require.Equal(t, want, routes)

	// Every integration may invoke its function, from this API only.
	for _, f := range []lambdaapi.Function{lambdaapi.Submit, lambdaapi.Dispatch, lambdaapi.Mailbox} {
		found := false
		for _, p := range resources(t, "AWS::Lambda::Permission") {
			if canon(t, p.Props["FunctionName"]) == canon(t, getAtt(functionID(t, f), "Arn")) && p.Props["Principal"] == "apigateway.amazonaws.com" {
				found = found || strings.Contains(canon(t, p.Props["SourceArn"]), api.ID)
			}
		}
		require.True(t, found, "%s: no invoke permission for the API", f)
	}

	stage := one(t, "AWS::ApiGatewayV2::Stage")
	require.Equal(t, "$default", stage.Props["StageName"])
	require.Equal(t, true, stage.Props["AutoDeploy"])
	logs := stage.Props["AccessLogSettings"].(map[string]any)
	require.Equal(t, getAtt(byLogRetention(t, 90).ID, "Arn"), logs["DestinationArn"])
	var line map[string]string
	require.NoError(t, json.Unmarshal([]byte(logs["Format"].(string)), &line), "access log lines are JSON")
	require.Equal(t, "$context.requestId", line["requestId"])
	require.Equal(t, "$context.status", line["status"])
}

func byLogRetention(t *testing.T, days float64) resource {
	t.Helper()
	return byProp(t, "AWS::Logs::LogGroup", "RetentionInDays", days)
}

func TestExpireSchedule(t *testing.T) {
	t.Parallel()
	rule := byProp(t, "AWS::Events::Rule", "ScheduleExpression", "rate(1 minute)")
	require.Equal(t, "ENABLED", rule.Props["State"])
	targets := rule.Props["Targets"].([]any)
	require.Len(t, targets, 1)
	require.Equal(t, getAtt(functionID(t, lambdaapi.Expire), "Arn"), targets[0].(map[string]any)["Arn"])
	found := false
	for _, p := range resources(t, "AWS::Lambda::Permission") {
		if p.Props["Principal"] == "events.amazonaws.com" && canon(t, p.Props["SourceArn"]) == canon(t, getAtt(rule.ID, "Arn")) {
			require.Equal(t, getAtt(functionID(t, lambdaapi.Expire), "Arn"), p.Props["FunctionName"])
			found = true
		}
	}
	require.True(t, found)
}

func TestAlarms(t *testing.T) {
	t.Parallel()
	topic := one(t, "AWS::SNS::Topic")
	alarms := resources(t, "AWS::CloudWatch::Alarm")
	for _, a := range alarms {
		require.Equal(t, []any{ref(topic.ID)}, a.Props["AlarmActions"], a.ID)
	}
	// metric alarms by (namespace, metric, dimension value)
	type key struct{ ns, metric, dim string }
	simple := map[key]resource{}
	var math_ []resource
	for _, a := range alarms {
		if a.Props["Metrics"] != nil {
			math_ = append(math_, a)
			continue
		}
		dims := map[string]any{}
		for _, d := range a.Props["Dimensions"].([]any) {
			dims[d.(map[string]any)["Name"].(string)] = d.(map[string]any)["Value"]
		}
		var dim string
		if len(dims) == 1 {
			for _, v := range dims {
				dim = canon(t, v)
			}
		} else {
			dim = canon(t, dims)
		}
		simple[key{a.Props["Namespace"].(string), a.Props["MetricName"].(string), dim}] = a
	}
	for _, f := range lambdaapi.Functions {
		fn := canon(t, ref(functionID(t, f)))
		require.Contains(t, simple, key{"AWS/Lambda", "Errors", fn}, f)
		require.Contains(t, simple, key{"AWS/Lambda", "Throttles", fn}, f)
	}
	var dlqs []string
	for _, q := range resources(t, "AWS::SQS::Queue") {
		if q.Props["RedrivePolicy"] != nil {
			id, _ := redrive(t, q)
			dlqs = append(dlqs, id)
		}
	}
	require.Len(t, dlqs, len(synth.props.Pools)+1)
	for _, id := range dlqs {
		a, ok := simple[key{"AWS/SQS", "ApproximateNumberOfMessagesVisible", canon(t, getAtt(id, "QueueName"))}]
		require.True(t, ok, "no alarm on DLQ %s", id)
		require.EqualValues(t, 1, a.Props["Threshold"])
	}
	// Parked depth: one per pool that parks, at parkinglot.SaturationRatio of
	// maxParked, on its own queue's depth.
	want := map[string]float64{}
	for _, p := range synth.props.Pools {
		if p.MaxParked > 0 {
			q := byProp(t, "AWS::SQS::Queue", "QueueName", awsstore.QueueName(synth.props.QueuePrefix, p.Name))
			want[canon(t, getAtt(q.ID, "QueueName"))] = math.Ceil(parkinglot.SaturationRatio * float64(p.MaxParked))
		}
	}
	got := map[string]float64{}
	var throttles []resource
	for _, a := range math_ {
		if strings.Contains(canon(t, a.Props["Metrics"]), "AWS/DynamoDB") {
			throttles = append(throttles, a)
			continue
		}
		var queue string
		for _, m := range a.Props["Metrics"].([]any) {
			ms, ok := m.(map[string]any)["MetricStat"].(map[string]any)
			if !ok {
				continue
			}
			dim := ms["Metric"].(map[string]any)["Dimensions"].([]any)[0].(map[string]any)["Value"]
			if queue != "" {
				require.Equal(t, queue, canon(t, dim), "one queue per saturation alarm")
			}
			queue = canon(t, dim)
		}
		got[queue] = a.Props["Threshold"].(float64)
	}
	require.Equal(t, want, got)
	// Per pool, from the functions' EMF metrics: saturation (every slot
	// taken for 5 minutes) and rejections.
	for _, p := range synth.props.Pools {
		a, ok := simple[key{lambdaapi.DefaultNamespace, "PoolSaturation", canon(t, p.Name)}]
		require.True(t, ok, "no saturation alarm for %s", p.Name)
		require.EqualValues(t, 100, a.Props["Threshold"])
		require.EqualValues(t, 5, a.Props["EvaluationPeriods"])
		_, ok = simple[key{lambdaapi.DefaultNamespace, "Outcomes", canon(t, map[string]any{"Pool": p.Name, "Outcome": "rejected"})}]
		require.True(t, ok, "no rejection alarm for %s", p.Name)
	}
	// DynamoDB throttling: read + write throttle events of the table.
	require.Len(t, throttles, 1)
	metrics := map[string]any{}
	for _, m := range throttles[0].Props["Metrics"].([]any) {
		if ms, ok := m.(map[string]any)["MetricStat"].(map[string]any); ok {
			metric := ms["Metric"].(map[string]any)
			require.Equal(t, "AWS/DynamoDB", metric["Namespace"])
			require.Equal(t, "Sum", ms["Stat"])
			metrics[metric["MetricName"].(string)] = metric["Dimensions"]
		}
	}
	tableDim := []any{map[string]any{"Name": "TableName", "Value": ref(tableID(t))}}
	require.Equal(t, map[string]any{"ReadThrottleEvents": tableDim, "WriteThrottleEvents": tableDim}, metrics)
	require.EqualValues(t, 1, throttles[0].Props["Threshold"])
	// Expire stopped: fewer than 1 invocation in 5 minutes, no data
	// counting as breaching (a function that never runs publishes none).
	stopped, ok := simple[key{"AWS/Lambda", "Invocations", canon(t, ref(functionID(t, lambdaapi.Expire)))}]
	require.True(t, ok, "no alarm on expire's invocations")
	require.Equal(t, "LessThanThreshold", stopped.Props["ComparisonOperator"])
	require.EqualValues(t, 1, stopped.Props["Threshold"])
	require.EqualValues(t, 300, stopped.Props["Period"])
	require.Equal(t, "Sum", stopped.Props["Statistic"])
	require.Equal(t, "breaching", stopped.Props["TreatMissingData"])
	require.Len(t, alarms, 2*len(lambdaapi.Functions)+len(dlqs)+len(want)+2*len(synth.props.Pools)+1+2)

	dash := one(t, "AWS::CloudWatch::Dashboard")
	require.Equal(t, synth.props.StackName, dash.Props["DashboardName"])
}

func TestNagFindingsAllSuppressed(t *testing.T) {
	t.Parallel()
	require.Empty(t, synth.findings, "unsuppressed cdk-nag findings or other warnings")
	// Without its suppressions, the same stack has findings: the checks ran.
	var ids []string
	for _, f := range synth.unchecked {
		id, _, _ := strings.Cut(f.Message, ":")
		id, _, _ = strings.Cut(id, "[")
		ids = append(ids, id)
	}
	require.Contains(t, ids, "AwsSolutions-IAM4")
	require.NotContains(t, ids, "AwsSolutions-IAM5", "no wildcard in the functions' grants")
	// Every suppression in the template carries a reason.
	for id, r := range synth.template["Resources"].(map[string]any) {
		md, _ := r.(map[string]any)["Metadata"].(map[string]any)
		nag, _ := md["cdk_nag"].(map[string]any)
		for _, s := range asList(nag["rules_to_suppress"]) {
			reason, _ := s.(map[string]any)["reason"].(string)
			require.GreaterOrEqual(t, len(reason), 40, "%s: suppression without a real reason", id)
		}
	}
}

func asList(v any) []any { l, _ := v.([]any); return l }

func TestCfnLint(t *testing.T) {
	t.Parallel()
	cfnLintFile(t, synth.path)
}

// cfnLintFile fails t on any cfn-lint error in the template at path.
func cfnLintFile(t *testing.T, path string) {
	t.Helper()
	lint, err := exec.LookPath("cfn-lint")
	require.NoError(t, err, "cfn-lint is required (pip install cfn-lint)")
	out, err := exec.Command(lint, "--format", "parseable", path).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	// cfn-lint's exit code is a bit set: 2 errors, 4 warnings, 8 informational.
	require.Zero(t, code&2, "cfn-lint errors:\n%s", out)
	require.Zero(t, code&^(2|4|8), "cfn-lint failed:\n%s", out)
	if len(out) > 0 {
		t.Logf("cfn-lint warnings:\n%s", out)
	}
}

func TestEventSubmissions(t *testing.T) {
	t.Parallel()
	submit := functionID(t, lambdaapi.Submit)
	rule := byProp(t, "AWS::Events::Rule", "EventPattern", map[string]any{"source": []any{"billing.app", "ci.runner"}})
	targets := rule.Props["Targets"].([]any)
	require.Len(t, targets, 1)
	target := targets[0].(map[string]any)
	require.Equal(t, getAtt(submit, "Arn"), target["Arn"])
	dlq, _ := redrive(t, byProp(t, "AWS::SQS::Queue", "VisibilityTimeout", 6*timeout(lambdaapi.Submit)))
	require.Equal(t, map[string]any{"Arn": getAtt(dlq, "Arn")}, target["DeadLetterConfig"])

	// A submission that keeps failing goes to the submit DLQ after Lambda's
	// retries of the asynchronous invoke.
	cfg := one(t, "AWS::Lambda::EventInvokeConfig")
	require.Equal(t, ref(submit), cfg.Props["FunctionName"])
	require.EqualValues(t, 2, cfg.Props["MaximumRetryAttempts"])
	require.Equal(t, getAtt(dlq, "Arn"), cfg.Props["DestinationConfig"].(map[string]any)["OnFailure"].(map[string]any)["Destination"])
	require.True(t, allowed(t, policy(t, lambdaapi.Submit), "sqs:SendMessage", getAtt(dlq, "Arn")))
}

// TestStatefulLogicalIDsKept pins the logical ids of the table and of
// queues that hold parked work to those the stack had before it held the
// construct: a changed id makes CloudFormation create a new table (the old
// one is retained, with every task) and new queues.
func TestStatefulLogicalIDsKept(t *testing.T) {
	t.Parallel()
	rs := synth.template["Resources"].(map[string]any)
	for id, typ := range map[string]string{
		"TableCD117FA1":       "AWS::DynamoDB::Table",
		"Poolgpu9B884AD2":     "AWS::SQS::Queue",
		"PoolDLQgpu63AFFE11":  "AWS::SQS::Queue",
		"SubmitQueue0D2511FF": "AWS::SQS::Queue",
		"SubmitDLQ99A564AA":   "AWS::SQS::Queue",
	} {
		r, ok := rs[id].(map[string]any)
		require.True(t, ok, "no resource %s", id)
		require.Equal(t, typ, r["Type"], id)
	}
}
