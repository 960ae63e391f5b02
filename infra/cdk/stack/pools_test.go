package stack

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/infra/cdk/parkinglot"
	"github.com/parkinglot/parkinglot/internal/config"
	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
)

// maxTableName is the longest DynamoDB table name: the bound of the
// environment's one reference, PARKINGLOT_TABLE, once resolved.
const maxTableName = 255

// lambdaEnvLimit is Lambda's limit on a function's environment: the keys
// and values of its variables together, at most 4 KB.
const lambdaEnvLimit = 4096

// manyPools is the pools of TestManyPools: more than one stack holds
// (CloudFormation takes at most 500 resources per stack, the stack has
// about 80 besides its pools, and each pool brings up to 8: its queue and
// DLQ, their two queue policies, and up to four alarms), so that the pools
// past parkinglot.DefaultPoolsInStack go into nested stacks.
const manyPools = 100

// Limits of CloudFormation and IAM that synthesis does not check.
const (
	maxOutputs, maxParameters = 200, 200
	maxManagedPolicy          = 6144  // characters of a managed policy
	maxInlinePolicies         = 10240 // characters of a role's inline policies together
	maxManagedPerRole         = 10    // managed policies attached to a role (default quota)
	// refSize is what a reference in a policy (a queue's or the
	// table's ARN) may take once resolved: CDK's own estimate.
	refSize = 150
)

// template is a synthesized template, as far as the limits go.
type template struct {
	Resources map[string]struct {
		Type       string
		Properties map[string]any
	}
	Outputs, Parameters map[string]any
}

func readTemplate(t *testing.T, path string) template {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var tpl template
	require.NoError(t, json.Unmarshal(b, &tpl))
	return tpl
}

// synthMany synthesizes app, with cdk-nag's checks, and returns the
// templates of st: its own first, then its nested stacks'. Every template
// is within CloudFormation's limits of resources, outputs and parameters,
// and cdk-nag finds nothing unsuppressed.
func synthMany(t *testing.T, app awscdk.App, st awscdk.Stack, dir string) (paths []string, tpls []template) {
	t.Helper()
	Checks(app)
	asm := app.Synth(nil)
	require.Empty(t, Findings(asm), "unsuppressed cdk-nag findings or other warnings, nested stacks included")
	nested, err := filepath.Glob(filepath.Join(dir, *st.ArtifactId()+"*.nested.template.json"))
	require.NoError(t, err)
	paths = append([]string{*asm.GetStackArtifact(st.ArtifactId()).TemplateFullPath()}, nested...)
	for _, path := range paths {
		tpl := readTemplate(t, path)
		t.Logf("%s: %d resources, %d outputs, %d parameters", filepath.Base(path), len(tpl.Resources), len(tpl.Outputs), len(tpl.Parameters))
		require.Less(t, len(tpl.Resources), 500, "%s: CloudFormation's limit of resources per stack", path)
		require.LessOrEqual(t, len(tpl.Outputs), maxOutputs, path)
		require.LessOrEqual(t, len(tpl.Parameters), maxParameters, path)
		tpls = append(tpls, tpl)
	}
	return paths, tpls
}

// size is v's length as JSON, each reference counted as refSize.
func size(t *testing.T, v any) int {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["Ref"]; ok {
			return refSize
		}
		if _, ok := x["Fn::GetAtt"]; ok {
			return refSize
		}
		if j, ok := x["Fn::Join"].([]any); ok {
			n := 0
			for _, p := range j[1].([]any) {
				n += size(t, p) - 2 // within one string
			}
			return n + 2
		}
		n := 2
		for k, e := range x {
			n += len(k) + 4 + size(t, e)
		}
		return n
	case []any:
		n := 2
		for _, e := range x {
			n += size(t, e) + 1
		}
		return n
	default:
		return len(canon(t, x))
	}
}

// checkPolicies checks the roles' policies in tpl against IAM's limits,
// each reference counted as refSize: CDK moves a role's statements past
// its inline size into managed policies, but whole, so that a statement on
// too many queues would be a managed policy past IAM's limit.
func checkPolicies(t *testing.T, tpl template) {
	t.Helper()
	inline, managed := map[string]int{}, map[string]int{}
	for id, r := range tpl.Resources {
		if r.Type != "AWS::IAM::Policy" && r.Type != "AWS::IAM::ManagedPolicy" {
			continue
		}
		n := size(t, r.Properties["PolicyDocument"])
		for _, role := range r.Properties["Roles"].([]any) {
			if r.Type == "AWS::IAM::Policy" {
				inline[canon(t, role)] += n
			} else {
				managed[canon(t, role)]++
				require.LessOrEqual(t, n, maxManagedPolicy, "%s: IAM's limit of a managed policy", id)
			}
		}
	}
	for role, n := range inline {
		require.LessOrEqual(t, n, maxInlinePolicies, "%s: IAM's limit of a role's inline policies", role)
	}
	for id, r := range tpl.Resources {
		if r.Type == "AWS::IAM::Role" {
			arns, _ := r.Properties["ManagedPolicyArns"].([]any)
			n := len(arns) + managed[canon(t, ref(id))]
			require.LessOrEqual(t, n, maxManagedPerRole, "%s: managed policies", id)
		}
	}
}

// TestManyPools synthesizes the stack with manyPools pools (one on 8 slot
// shards): the first parkinglot.DefaultPoolsInStack pools in the stack, the
// others in nested stacks, every stack within CloudFormation's limits,
// every policy within IAM's, no cdk-nag finding, no cfn-lint error; every
// function's environment is the one of the 4-pool stack, within Lambda's
// 4 KB; the pools custom resource carries every pool with every field.
func TestManyPools(t *testing.T) {
	pools := make([]config.Pool, manyPools)
	for i := range pools {
		pools[i] = config.Pool{Name: fmt.Sprintf("pool-with-a-longish-name-%03d", i), Capacity: 1 + i%16, MaxParked: 1000 * (i + 1),
			DefaultMaxWait: time.Duration(1+i%30) * time.Minute, RunTimeout: time.Duration(1+i%10) * time.Minute,
			Executor: []string{"", "pull", "permit"}[i%3]}
	}
	pools[7].Capacity, pools[7].SlotShards = 64, 8
	pools[8].MaxParked = 0
	props := synth.props
	props.StackName, props.Pools = "ParkinglotMany", pools
	dir := t.TempDir()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(dir)})
	st, err := New(app, props)
	require.NoError(t, err)
	paths, tpls := synthMany(t, app, st.Stack, dir)
	nested := (manyPools - parkinglot.DefaultPoolsInStack + parkinglot.PoolsPerNestedStack - 1) / parkinglot.PoolsPerNestedStack
	require.Len(t, tpls, 1+nested)
	require.Len(t, st.Parkinglot.PoolStacks, nested)
	tpl := tpls[0]
	checkPolicies(t, tpl)

	// Each pool's queue and DLQ, and its alarms, are in one stack: the
	// first pools in the stack itself, named as in a stack of few pools.
	where := map[string]int{} // queue name -> template
	alarms := map[int]int{}
	for i, x := range tpls {
		for id, r := range x.Resources {
			switch r.Type {
			case "AWS::SQS::Queue":
				if n, ok := r.Properties["QueueName"].(string); ok {
					_, dup := where[n]
					require.False(t, dup, n)
					where[n] = i
					if i == 0 && strings.HasPrefix(n, synth.props.QueuePrefix+"pool-") {
						require.True(t, strings.HasPrefix(id, "Pool"+strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(n, synth.props.QueuePrefix), ".fifo"), "-", "")), id)
					}
				}
			case "AWS::CloudWatch::Alarm":
				alarms[i]++
			}
		}
	}
	for i, p := range pools {
		want := 0
		if i >= parkinglot.DefaultPoolsInStack {
			want = 1 + (i-parkinglot.DefaultPoolsInStack)/parkinglot.PoolsPerNestedStack
		}
		require.Equal(t, want, where[awsstore.QueueName(synth.props.QueuePrefix, p.Name)], p.Name)
		require.Equal(t, want, where[parkinglot.DLQName(synth.props.QueuePrefix, p.Name)], p.Name)
	}
	// 4 alarms per pool (3 for the one that parks nothing), and the
	// construct's own.
	require.Equal(t, 4*parkinglot.PoolsPerNestedStack, alarms[1])
	require.Equal(t, 4*(manyPools-parkinglot.DefaultPoolsInStack)-4*parkinglot.PoolsPerNestedStack, alarms[2])
	require.Equal(t, 4*parkinglot.DefaultPoolsInStack-1+2*len(lambdaapi.Functions)+1+3, alarms[0])

	fns := 0
	for id, r := range tpl.Resources {
		if r.Type != "AWS::Lambda::Function" {
			continue
		}
		fns++
		env := r.Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
		f := lambdaapi.Function(strings.TrimPrefix(r.Properties["Description"].(string), "Parkinglot "))
		four := byProp(t, "AWS::Lambda::Function", "Description", "Parkinglot "+string(f)).Props["Environment"].(map[string]any)["Variables"]
		require.Equal(t, canon(t, four), canon(t, env), "%s: the same environment with 4 pools and with %d", f, len(pools))
		size := envSize(t, id, env)
		t.Logf("%s: environment of at most %d bytes with %d pools", id, size, len(pools))
		require.Less(t, size, lambdaEnvLimit, id)
	}
	require.Equal(t, 4, fns)

	var crs []map[string]any
	for _, r := range tpl.Resources {
		if r.Type == lambdaapi.PoolsResourceType {
			crs = append(crs, r.Properties)
		}
	}
	require.Len(t, crs, 1)
	got, err := lambdaapi.ParsePools(crs[0][lambdaapi.PropPools].(string))
	require.NoError(t, err)
	require.Len(t, got, len(pools))
	for i, p := range pools {
		require.Equal(t, p.Core(), got[i])
	}
	require.Equal(t, 8, got[7].SlotShards)
	t.Logf("the pools property: %d bytes", len(crs[0][lambdaapi.PropPools].(string)))

	for _, path := range paths {
		t.Run("cfn-lint "+filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			cfnLintFile(t, filepath.Clean(path))
		})
	}
}

// envSize is the size of a function's environment once deployed, as
// Lambda measures it against its 4 KB: the variables as a JSON object,
// keys and values ({"KEY":"value",...}). The only reference outside
// PARKINGLOT_TARGETS, PARKINGLOT_TABLE, at its longest; in
// PARKINGLOT_TARGETS, each reference (a function's ARN, a queue's URL)
// counted as refSize.
func envSize(t *testing.T, id string, env map[string]any) int {
	t.Helper()
	n := 2 + len(env) - 1 // the braces and commas
	for k, v := range env {
		n += len(canon(t, k)) + 1 // the key and its colon
		switch {
		case k == lambdaapi.EnvTargets:
			n += size(t, v) // JSON escaped once, as a JSON string's value
		default:
			s, ok := v.(string)
			if !ok {
				require.Equal(t, "PARKINGLOT_TABLE", k, "%s: the only reference is the table's name", id)
				n += maxTableName + 2
			} else {
				n += len(canon(t, s))
			}
		}
	}
	return n
}

// TestManyPushPools embeds the construct with manyPools pools, one in ten
// a push pool (a function's, a webhook's, a queue's, in turn): every stack
// within CloudFormation's limits and every policy within IAM's, no cdk-nag
// finding, and the push targets in the environment within Lambda's 4 KB.
func TestManyPushPools(t *testing.T) {
	cp, err := synth.props.Construct()
	require.NoError(t, err)
	dir := t.TempDir()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(dir)})
	st := awscdk.NewStack(app, jsii.String("ManyPush"), nil)
	fn := awslambda.NewFunction(st, jsii.String("Target"), &awslambda.FunctionProps{
		Runtime: awslambda.Runtime_PYTHON_3_13(), Handler: jsii.String("index.handler"),
		Code: awslambda.Code_FromInline(jsii.String("def handler(event, context):\n    return {}\n")),
	})
	q := awssqs.NewQueue(st, jsii.String("Jobs"), &awssqs.QueueProps{EnforceSSL: jsii.Bool(true),
		Encryption: awssqs.QueueEncryption_SQS_MANAGED})
	cp.Name, cp.Pools = "ManyPush", nil
	push := 0
	for i := range manyPools {
		p := parkinglot.Pool{Name: fmt.Sprintf("pool-with-a-longish-name-%03d", i), Capacity: 4, MaxParked: 100}
		if i%10 == 9 {
			p.Target = []parkinglot.Target{parkinglot.LambdaTarget(fn),
				parkinglot.HTTPTarget("https://hooks.example.com/parkinglot/"+p.Name, nil, parkinglot.HTTPSync),
				parkinglot.SQSTarget(q)}[push%3]
			push++
		}
		cp.Pools = append(cp.Pools, p)
	}
	pl, err := parkinglot.NewChecked(st, "Default", &cp)
	require.NoError(t, err)
	cdknag.NagSuppressions_AddResourceSuppressions(fn, &[]*cdknag.NagPackSuppression{
		{Id: jsii.String("AwsSolutions-IAM4"), Reason: jsii.String("the test's own target function, not the construct's: its basic execution role")},
		{Id: jsii.String("AwsSolutions-L1"), Reason: jsii.String("the test's own target function, not the construct's: its runtime is beside the point")},
	}, jsii.Bool(true))
	cdknag.NagSuppressions_AddResourceSuppressions(q, &[]*cdknag.NagPackSuppression{
		{Id: jsii.String("AwsSolutions-SQS3"), Reason: jsii.String("the test's own target queue, not the construct's: it needs no DLQ")},
	}, jsii.Bool(true))
	_, tpls := synthMany(t, app, st, dir)
	require.Len(t, tpls, 1+len(pl.PoolStacks))
	require.Len(t, pl.PoolStacks, 2)
	checkPolicies(t, tpls[0])
	for id, r := range tpls[0].Resources {
		if r.Type != "AWS::Lambda::Function" || !strings.HasPrefix(id, "Fn") {
			continue
		}
		env := r.Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
		size := envSize(t, id, env)
		t.Logf("%s: environment of at most %d bytes with %d pools, %d pushing", id, size, manyPools, push)
		require.Less(t, size, lambdaEnvLimit, id)
	}
}
