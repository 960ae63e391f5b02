package parkinglot_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/internal/push"
)

// targetsEnv is a function's PARKINGLOT_TARGETS, as the template has it.
func targetsEnv(fn map[string]any) any {
	return fn["Environment"].(map[string]any)["Variables"].(map[string]any)[lambdaapi.EnvTargets]
}

// Deployed values of the user's resources that the pools' environment
// names, by the prefix of their logical id and the attribute ("Ref" for a
// Ref).
var deployed = map[string]string{
	"Thumbs.Arn":     "arn:aws:lambda:us-east-1:123456789012:function:UserStack-Thumbs",
	"HookSecret.Ref": "arn:aws:secretsmanager:us-east-1:123456789012:secret:HookSecret-AbCdEf",
	"Jobs.Ref":       "https://sqs.us-east-1.amazonaws.com/123456789012/UserStack-Jobs",
}

// resolve is v, a string or an Fn::Join of strings, Refs and Fn::GetAtts,
// with each reference replaced by its deployed value (values, else
// deployed); an unknown reference fails t.
func resolve(t *testing.T, v any, values map[string]string) string {
	t.Helper()
	if values == nil {
		values = deployed
	}
	lookup := func(id, attr string) string {
		for k, val := range values {
			prefix, a, _ := strings.Cut(k, ".")
			if a == attr && strings.HasPrefix(id, prefix) {
				return val
			}
		}
		t.Fatalf("no deployed value for %s.%s", id, attr)
		return ""
	}
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		if id, ok := x["Ref"].(string); ok {
			return lookup(id, "Ref")
		}
		if att, ok := x["Fn::GetAtt"].([]any); ok {
			return lookup(att[0].(string), att[1].(string))
		}
		if j, ok := x["Fn::Join"].([]any); ok {
			var parts []string
			for _, p := range j[1].([]any) {
				parts = append(parts, resolve(t, p, values))
			}
			return strings.Join(parts, j[0].(string))
		}
	}
	t.Fatalf("cannot resolve %v", v)
	return ""
}

// idOf is the logical id of the template's only resource of type typ
// whose id starts with prefix.
func idOf(t *testing.T, tpl map[string]any, typ, prefix string) string {
	t.Helper()
	var ids []string
	for _, r := range ofType(tpl, typ) {
		if strings.HasPrefix(r.ID, prefix) {
			ids = append(ids, r.ID)
		}
	}
	require.Len(t, ids, 1, "%s %s*", typ, prefix)
	return ids[0]
}

// statements returns the statements, as JSON, of the policies attached to
// role (a Ref or a role name).
func statements(t *testing.T, tpl map[string]any, role any) []string {
	t.Helper()
	var out []string
	for _, p := range ofType(tpl, "AWS::IAM::Policy") {
		if !slices.ContainsFunc(p.Props["Roles"].([]any), func(r any) bool { return js(t, r) == js(t, role) }) {
			continue
		}
		for _, st := range p.Props["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			out = append(out, js(t, st))
		}
	}
	return out
}

// checkPush checks the user's push pools in its template: the targets in
// the functions' environment, read back by lambdaapi.LoadEnv; the results
// queue, its DLQ, alarm and dispatch's event source; the lambda targets'
// destinations; and the exact grants that pushing and reporting results
// take.
func checkPush(t *testing.T, tpl map[string]any, fns map[string]map[string]any) {
	key := getAtt(idOf(t, tpl, "AWS::KMS::Key", "DataKey"), "Arn")
	thumbs := idOf(t, tpl, "AWS::Lambda::Function", "Thumbs")
	secret := idOf(t, tpl, "AWS::SecretsManager::Secret", "HookSecret")
	jobs := idOf(t, tpl, "AWS::SQS::Queue", "Jobs")
	queueKey := idOf(t, tpl, "AWS::KMS::Key", "QueueKey")
	results := idOf(t, tpl, "AWS::SQS::Queue", "SchedulerResultsQueue")
	resultsDLQ := idOf(t, tpl, "AWS::SQS::Queue", "SchedulerResultsDLQ")
	reportsARN := "arn:aws:lambda:us-east-1:123456789012:function:reports"

	// The environment: the same for the three functions that push, and in
	// lambdaapi's format: LoadEnv reads the targets back.
	raw := resolve(t, targetsEnv(fns["submit"]), nil)
	for _, f := range []string{"dispatch", "expire"} {
		require.Equal(t, raw, resolve(t, targetsEnv(fns[f]), nil), f)
	}
	require.Nil(t, targetsEnv(fns["mailbox"]))
	require.NotContains(t, raw, `"secret"`)
	require.NotContains(t, raw, `"secretEnv"`)
	env, err := lambdaapi.LoadEnv(func(k string) string {
		return map[string]string{"AWS_REGION": "us-east-1", "PARKINGLOT_TABLE": "t", lambdaapi.EnvTargets: raw}[k]
	})
	require.NoError(t, err)
	require.Equal(t, map[string]push.Target{
		"thumbs": {Type: "lambda", Function: deployed["Thumbs.Arn"], Timeout: push.DefaultTimeout, MaxAttempts: push.DefaultMaxAttempts},
		"reports": {Type: "lambda", Function: reportsARN, Qualifier: "live",
			Timeout: push.DefaultTimeout, MaxAttempts: 3},
		"previews": {Type: "lambda", Function: deployed["Thumbs.Arn"], Timeout: push.DefaultTimeout, MaxAttempts: push.DefaultMaxAttempts},
		"hooks": {Type: "http", URL: "https://hooks.example.com/parkinglot", Mode: "async",
			Timeout: 10 * time.Second, MaxAttempts: push.DefaultMaxAttempts},
		"jobs": {Type: "sqs", QueueURL: deployed["Jobs.Ref"], Timeout: push.DefaultTimeout, MaxAttempts: push.DefaultMaxAttempts},
	}, env.Targets)
	require.Equal(t, map[string]string{"hooks": deployed["HookSecret.Ref"]}, env.SecretARNs)
	// The pools custom resource carries them as push pools, without
	// their targets.
	crs := ofType(tpl, lambdaapi.PoolsResourceType)
	require.Len(t, crs, 1)
	pools, err := lambdaapi.ParsePools(crs[0].Props[lambdaapi.PropPools].(string))
	require.NoError(t, err)
	var pushPools []string
	for _, p := range pools {
		if p.Pushes() {
			pushPools = append(pushPools, p.Name)
		}
	}
	require.Equal(t, []string{"thumbs", "reports", "hooks", "jobs", "previews"}, pushPools)
	require.NotContains(t, crs[0].Props[lambdaapi.PropPools], "arn:")

	// The results queue: standard (Lambda destinations take no FIFO
	// queue), the user's key, a DLQ after 5 receives, TLS only.
	var rq, dlq map[string]any
	for _, q := range ofType(tpl, "AWS::SQS::Queue") {
		switch q.ID {
		case results:
			rq = q.Props
		case resultsDLQ:
			dlq = q.Props
		}
	}
	require.Nil(t, rq["FifoQueue"])
	require.Equal(t, key, rq["KmsMasterKeyId"])
	require.Equal(t, key, dlq["KmsMasterKeyId"])
	require.Equal(t, map[string]any{"deadLetterTargetArn": getAtt(resultsDLQ, "Arn"), "maxReceiveCount": 5.0}, rq["RedrivePolicy"])
	require.EqualValues(t, 6*25, rq["VisibilityTimeout"], "six times dispatch's timeout")
	for _, q := range []string{results, resultsDLQ} {
		tls := false
		for _, p := range ofType(tpl, "AWS::SQS::QueuePolicy") {
			if js(t, p.Props["Queues"]) == js(t, []any{map[string]any{"Ref": q}}) {
				tls = strings.Contains(js(t, p.Props["PolicyDocument"]), `"Condition":{"Bool":{"aws:SecureTransport":"false"}},"Effect":"Deny"`)
			}
		}
		require.True(t, tls, "%s denies requests without TLS", q)
	}

	// Dispatch consumes it, reporting partial batch failures.
	var mappings []map[string]any
	for _, m := range ofType(tpl, "AWS::Lambda::EventSourceMapping") {
		if js(t, m.Props["EventSourceArn"]) == js(t, getAtt(results, "Arn")) {
			mappings = append(mappings, m.Props)
		}
	}
	require.Len(t, mappings, 1)
	require.Equal(t, map[string]any{"Ref": idOf(t, tpl, "AWS::Lambda::Function", "SchedulerFndispatch")}, mappings[0]["FunctionName"])
	require.EqualValues(t, 10, mappings[0]["BatchSize"])
	require.Equal(t, []any{"ReportBatchItemFailures"}, mappings[0]["FunctionResponseTypes"])

	// The lambda targets' destinations, on success and on failure: the
	// app's function unqualified, once for its two pools, the imported one
	// on its qualifier. Lambda gives up on an event (and the failure
	// destination fails its task) before the task's lease ends: at the
	// pool's run timeout less the function's timeout (the default 3 s) for
	// the app's function, the smallest of its two pools' (previews, 2m);
	// at the run timeout of 30 s for the imported function, whose timeout
	// the construct cannot know, rounded up to Lambda's minimum of 60 s.
	dest := map[string]any{"Destination": getAtt(results, "Arn")}
	var configs []map[string]any
	for _, c := range ofType(tpl, "AWS::Lambda::EventInvokeConfig") {
		if strings.Contains(js(t, c.Props["DestinationConfig"]), results) {
			require.Equal(t, map[string]any{"OnSuccess": dest, "OnFailure": dest}, c.Props["DestinationConfig"], c.ID)
			require.EqualValues(t, 0, c.Props["MaximumRetryAttempts"], "a function error is the task's outcome, not retried")
			configs = append(configs, map[string]any{"FunctionName": c.Props["FunctionName"], "Qualifier": c.Props["Qualifier"],
				"MaximumEventAgeInSeconds": c.Props["MaximumEventAgeInSeconds"]})
		}
	}
	require.ElementsMatch(t, []map[string]any{
		{"FunctionName": map[string]any{"Ref": thumbs}, "Qualifier": "$LATEST", "MaximumEventAgeInSeconds": 2*60.0 - 3},
		{"FunctionName": "reports", "Qualifier": "live", "MaximumEventAgeInSeconds": 60.0},
	}, configs)

	// The grants. Submit, dispatch and expire push: each may invoke the
	// two functions (the imported one on its qualifier), read the secret
	// and send to the queue with its key; mailbox none of it.
	kms := []any{"kms:Decrypt", "kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"}
	pushing := []string{
		js(t, map[string]any{"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": getAtt(thumbs, "Arn")}),
		js(t, map[string]any{"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": reportsARN + ":live"}),
		js(t, map[string]any{"Action": []any{"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}, "Effect": "Allow",
			"Resource": map[string]any{"Ref": secret}}),
		js(t, map[string]any{"Action": []any{"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}, "Effect": "Allow",
			"Resource": getAtt(jobs, "Arn")}),
		js(t, map[string]any{"Action": kms, "Effect": "Allow", "Resource": getAtt(queueKey, "Arn")}),
	}
	consume := []string{
		js(t, map[string]any{"Action": []any{"sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueUrl",
			"sqs:DeleteMessage", "sqs:GetQueueAttributes"}, "Effect": "Allow", "Resource": getAtt(results, "Arn")}),
	}
	targets := []string{thumbs, secret, jobs, queueKey, reportsARN}
	for f, fn := range fns {
		var onTargets, onResults []string
		for _, st := range statements(t, tpl, map[string]any{"Ref": fn["Role"].(map[string]any)["Fn::GetAtt"].([]any)[0]}) {
			if slices.ContainsFunc(targets, func(id string) bool { return strings.Contains(st, id) }) {
				onTargets = append(onTargets, st)
			}
			if strings.Contains(st, results) {
				onResults = append(onResults, st)
			}
		}
		switch f {
		case "mailbox":
			require.Empty(t, onTargets, f)
			require.Empty(t, onResults, f)
		case "dispatch":
			require.ElementsMatch(t, pushing, onTargets, f)
			require.Equal(t, consume, onResults, f)
		default:
			require.ElementsMatch(t, pushing, onTargets, f)
			require.Empty(t, onResults, f)
		}
	}
	// The lambda targets may send their destination records to the
	// results queue, with its key.
	sends := []string{
		js(t, map[string]any{"Action": []any{"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}, "Effect": "Allow",
			"Resource": getAtt(results, "Arn")}),
		js(t, map[string]any{"Action": kms, "Effect": "Allow", "Resource": key}),
	}
	thumbsRole := idOf(t, tpl, "AWS::IAM::Role", "ThumbsServiceRole")
	require.ElementsMatch(t, sends, statements(t, tpl, map[string]any{"Ref": thumbsRole}))
	require.ElementsMatch(t, sends, statements(t, tpl, "reports"))

	// The results DLQ alarms when not empty.
	alarm := false
	for _, a := range ofType(tpl, "AWS::CloudWatch::Alarm") {
		if js(t, a.Props["Dimensions"]) == js(t, []any{map[string]any{"Name": "QueueName", "Value": getAtt(resultsDLQ, "QueueName")}}) {
			alarm = a.Props["MetricName"] == "ApproximateNumberOfMessagesVisible" && a.Props["Threshold"] == 1.0
		}
	}
	require.True(t, alarm, "an alarm on the results DLQ")
}
