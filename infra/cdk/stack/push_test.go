package stack

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/infra/cdk/parkinglot"
)

// targetFunction is a function of the test's own, a push target, with
// timeout (0: Lambda's default).
func targetFunction(scope awscdk.Stack, id string, timeout time.Duration) awslambda.Function {
	props := &awslambda.FunctionProps{
		Runtime: awslambda.Runtime_PYTHON_3_13(), Handler: jsii.String("index.handler"),
		Code: awslambda.Code_FromInline(jsii.String("def handler(event, context):\n    return {}\n")),
	}
	if timeout != 0 {
		props.Timeout = awscdk.Duration_Seconds(jsii.Number(timeout.Seconds()))
	}
	return awslambda.NewFunction(scope, jsii.String(id), props)
}

// TestLambdaEnvironmentLimit: push pools whose targets would take a
// function's environment past Lambda's 4 KB, which Lambda refuses only at
// deployment, are refused at synthesis, with the function, the size and
// the limit; the most push pools the construct takes synthesize, and each
// function's environment, measured on the template, is within 4 KB and
// close to it (the construct's estimate is not too cautious).
func TestLambdaEnvironmentLimit(t *testing.T) {
	cp, err := synth.props.Construct()
	require.NoError(t, err)
	dir := t.TempDir()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(dir)})
	st := awscdk.NewStack(app, jsii.String("FullEnv"), nil)
	fn := targetFunction(st, "Target", 0)
	props := func(push int) *parkinglot.Props {
		p := cp
		p.Name, p.Pools = "FullEnv", slices.Clone(cp.Pools)
		for i := range push {
			p.Pools = append(p.Pools, parkinglot.Pool{Name: fmt.Sprintf("push-pool-with-a-longish-name-%03d", i),
				Capacity: 4, MaxParked: 100, Target: parkinglot.LambdaTarget(fn)})
		}
		p = p.WithDefaults()
		return &p
	}
	most := 0
	for props(most+1).Validate() == nil {
		most++
		require.Less(t, most, 100, "no limit")
	}
	t.Logf("at most %d push pools of a function's", most)
	require.Greater(t, most, 10)
	_, err = parkinglot.NewChecked(st, "Default", props(most+1))
	require.ErrorContains(t, err, "parkinglot: Pools: function submit's environment would take about ")
	require.ErrorContains(t, err, "over Lambda's limit of 4096 bytes")
	require.ErrorContains(t, err, fmt.Sprintf("the targets of %d push pools", most+1))
	require.Panics(t, func() { parkinglot.New(st, "Default", props(most+1)) })

	_, err = parkinglot.NewChecked(st, "Default", props(most))
	require.NoError(t, err)
	asm := app.Synth(nil)
	tpl := readTemplate(t, *asm.GetStackArtifact(st.ArtifactId()).TemplateFullPath())
	fns := 0
	for id, r := range tpl.Resources {
		if r.Type != "AWS::Lambda::Function" || !strings.HasPrefix(id, "Fn") {
			continue
		}
		fns++
		env := r.Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
		size := envSize(t, id, env)
		t.Logf("%s: environment of at most %d bytes", id, size)
		require.LessOrEqual(t, size, lambdaEnvLimit, id)
		if strings.HasPrefix(id, "Fnsubmit") {
			require.Greater(t, size, lambdaEnvLimit-250, "one more target (about 230 bytes) would not fit")
		}
	}
	require.Equal(t, 4, fns)
}

// TestLambdaTargetEventAge: each lambda target's asynchronous invocation
// configuration gives up on an event (its failure destination then fails
// the task) before the task's lease ends, which is at least the pool's run
// timeout after Lambda took the event: at the run timeout less the
// function's timeout, when the construct knows it (a function of the app,
// or an alias of one); for a function shared by pools, the smallest; in
// Lambda's bounds, 60 s to 6 h.
func TestLambdaTargetEventAge(t *testing.T) {
	cp, err := synth.props.Construct()
	require.NoError(t, err)
	dir := t.TempDir()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(dir)})
	st := awscdk.NewStack(app, jsii.String("EventAge"), nil)
	slow := targetFunction(st, "Slow", time.Minute)
	live := awslambda.NewAlias(st, jsii.String("Live"), &awslambda.AliasProps{AliasName: jsii.String("live"), Version: slow.CurrentVersion()})
	quick := targetFunction(st, "Quick", 0)
	imported := awslambda.Function_FromFunctionAttributes(st, jsii.String("Imported"), &awslambda.FunctionAttributes{
		FunctionArn: jsii.String("arn:aws:lambda:us-east-1:123456789012:function:imported"),
		Role: awsiam.Role_FromRoleArn(st, jsii.String("ImportedRole"),
			jsii.String("arn:aws:iam::123456789012:role/imported"), nil),
		SameEnvironment: jsii.Bool(true),
	})
	push := func(name string, run time.Duration, target parkinglot.Target) parkinglot.Pool {
		return parkinglot.Pool{Name: name, Capacity: 2, MaxParked: 10, RunTimeout: run, Target: target}
	}
	cp.Name = "EventAge"
	cp.Pools = append(slices.Clone(cp.Pools),
		push("alias", 10*time.Minute, parkinglot.LambdaTarget(live)),                                       // 600 - 60
		push("quick-long", 24*time.Hour, parkinglot.LambdaTarget(quick)),                                   // 6 h at most
		push("quick-short", 3*time.Minute+500*time.Millisecond, parkinglot.LambdaTarget(quick)),            // shared: 180.5 - 3, whole seconds
		push("imported-v1", 30*time.Second, parkinglot.LambdaTarget(imported, parkinglot.Qualifier("v1"))), // 60 at least
		push("imported-v2", 2*time.Hour, parkinglot.LambdaTarget(imported, parkinglot.Qualifier("v2"))),    // its own qualifier
	)
	_, err = parkinglot.NewChecked(st, "Default", &cp)
	require.NoError(t, err)
	asm := app.Synth(nil)
	tpl := readTemplate(t, *asm.GetStackArtifact(st.ArtifactId()).TemplateFullPath())
	id := func(prefix string) string {
		for id, r := range tpl.Resources {
			if r.Type == "AWS::Lambda::Function" && strings.HasPrefix(id, prefix) {
				return id
			}
		}
		t.Fatalf("no function %s*", prefix)
		return ""
	}
	// The lambda targets' configurations (those whose destination is the
	// results queue), by function and qualifier: the alias's qualifier is
	// its name, read from its ARN.
	got := map[string]any{}
	for _, r := range tpl.Resources {
		if r.Type != "AWS::Lambda::EventInvokeConfig" || !strings.Contains(canon(t, r.Properties["DestinationConfig"]), "ResultsQueue") {
			continue
		}
		q := canon(t, r.Properties["Qualifier"])
		if _, ok := r.Properties["Qualifier"].(string); !ok {
			require.Contains(t, q, `{"Ref":"Live`, "a token: the alias's name")
			q = `"live"`
		}
		got[canon(t, r.Properties["FunctionName"])+" "+q] = r.Properties["MaximumEventAgeInSeconds"]
	}
	ref := func(prefix string) string { return canon(t, map[string]any{"Ref": id(prefix)}) }
	require.Equal(t, map[string]any{
		ref("Slow") + ` "live"`:     10*60.0 - 60,
		ref("Quick") + ` "$LATEST"`: 3*60.0 - 3,
		`"imported" "v1"`:           60.0,
		`"imported" "v2"`:           2 * 3600.0,
	}, got)
}
