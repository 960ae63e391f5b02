package lambdaapi_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/internal/push"
	"github.com/parkinglot/parkinglot/pkg/core"
)

func TestLoadEnv(t *testing.T) {
	t.Parallel()
	base := map[string]string{"AWS_REGION": "eu-west-1", "PARKINGLOT_TABLE": "tbl"}
	env := func(extra map[string]string) func(string) string {
		return func(k string) string {
			if v, ok := extra[k]; ok {
				return v
			}
			return base[k]
		}
	}
	e, err := lambdaapi.LoadEnv(env(map[string]string{
		lambdaapi.EnvEventSources: " com.acme.orders=acme, com.globex.jobs=globex ",
		lambdaapi.EnvSweepEvery:   "10s",
		lambdaapi.EnvTenantClaim:  "custom:tenant",
		lambdaapi.EnvPools:        `[{"name":"gpu","capacity":4,"maxParked":100,"runTimeout":"2m"}]`,
	}))
	require.NoError(t, err)
	require.Equal(t, "tbl", e.Store.Table)
	require.Equal(t, map[string]string{"com.acme.orders": "acme", "com.globex.jobs": "globex"}, e.SourceTenants)
	require.Equal(t, 10*time.Second, e.SweepEvery)
	require.Equal(t, "custom:tenant", e.TenantClaim)
	require.Equal(t, []core.PoolConfig{{Name: "gpu", Capacity: 4, MaxParked: 100, DefaultMaxWait: 10 * time.Minute, RunTimeout: 2 * time.Minute}}, e.Pools)

	for name, extra := range map[string]map[string]string{
		"no table":          {"PARKINGLOT_TABLE": ""},
		"bad source":        {lambdaapi.EnvEventSources: "com.acme.orders"},
		"aws source":        {lambdaapi.EnvEventSources: "aws.events=acme"},
		"twice":             {lambdaapi.EnvEventSources: "a=x,a=y"},
		"bad sweep":         {lambdaapi.EnvSweepEvery: "often"},
		"negative sweep":    {lambdaapi.EnvSweepFor: "-1s"},
		"bad pools":         {lambdaapi.EnvPools: `{"name":"gpu"}`},
		"unknown pool key":  {lambdaapi.EnvPools: `[{"name":"gpu","capacity":1,"size":2}]`},
		"invalid pool":      {lambdaapi.EnvPools: `[{"name":"gpu","capacity":0}]`},
		"bad pool duration": {lambdaapi.EnvPools: `[{"name":"gpu","capacity":1,"runTimeout":"x"}]`},
	} {
		_, err := lambdaapi.LoadEnv(env(extra))
		require.Error(t, err, name)
	}
}

func TestLoadEnvTargets(t *testing.T) {
	t.Parallel()
	vars := map[string]string{
		"AWS_REGION": "eu-west-1", "PARKINGLOT_TABLE": "tbl", "HOOK_SECRET": "s3cret",
		lambdaapi.EnvPools: `[
			{"name":"hook","capacity":2,"executor":"push","target":{"type":"http","url":"https://hooks.example/run","secretEnv":"HOOK_SECRET","mode":"async","timeout":"5s","maxAttempts":3}},
			{"name":"fn","capacity":2,"executor":"push","target":{"type":"lambda","function":"worker","qualifier":"live"}},
			{"name":"q","capacity":2,"executor":"push","target":{"type":"sqs","queueUrl":"https://sqs.eu-west-1.amazonaws.com/1/work"}},
			{"name":"vault","capacity":1,"executor":"push","target":{"type":"http","url":"https://hooks.example/v","secretArn":"arn:aws:secretsmanager:eu-west-1:1:secret:hook"}},
			{"name":"pull","capacity":1,"executor":"pull"}]`,
	}
	e, err := lambdaapi.LoadEnv(func(k string) string { return vars[k] })
	require.NoError(t, err)
	require.Len(t, e.Pools, 5)
	require.Equal(t, map[string]string{"vault": "arn:aws:secretsmanager:eu-west-1:1:secret:hook"}, e.SecretARNs)
	require.Equal(t, map[string]push.Target{
		"hook":  {Type: push.TypeHTTP, URL: "https://hooks.example/run", Secret: "s3cret", Mode: push.ModeAsync, Timeout: 5 * time.Second, MaxAttempts: 3},
		"fn":    {Type: push.TypeLambda, Function: "worker", Qualifier: "live", Timeout: push.DefaultTimeout, MaxAttempts: push.DefaultMaxAttempts},
		"q":     {Type: push.TypeSQS, QueueURL: "https://sqs.eu-west-1.amazonaws.com/1/work", Timeout: push.DefaultTimeout, MaxAttempts: push.DefaultMaxAttempts},
		"vault": {Type: push.TypeHTTP, URL: "https://hooks.example/v", Mode: push.ModeSync, Timeout: push.DefaultTimeout, MaxAttempts: push.DefaultMaxAttempts},
	}, e.Targets, "a secretArn's secret is read by ResolveSecrets")

	for name, pools := range map[string]string{
		"push without target":   `[{"name":"p","capacity":1,"executor":"push"}]`,
		"target of a pull pool": `[{"name":"p","capacity":1,"executor":"pull","target":{"type":"sqs","queueUrl":"u"}}]`,
		"secret inline":         `[{"name":"p","capacity":1,"executor":"push","target":{"type":"http","url":"https://x","secret":"s"}}]`,
		"secretEnv unset":       `[{"name":"p","capacity":1,"executor":"push","target":{"type":"http","url":"https://x","secretEnv":"NOPE"}}]`,
		"two secrets":           `[{"name":"p","capacity":1,"executor":"push","target":{"type":"http","url":"https://x","secretEnv":"AWS_REGION","secretArn":"arn"}}]`,
		"bad type":              `[{"name":"p","capacity":1,"executor":"push","target":{"type":"ftp"}}]`,
		"lambda sans function":  `[{"name":"p","capacity":1,"executor":"push","target":{"type":"lambda"}}]`,
		"bad timeout":           `[{"name":"p","capacity":1,"executor":"push","target":{"type":"sqs","queueUrl":"u","timeout":"soon"}}]`,
	} {
		vars := map[string]string{"AWS_REGION": "eu-west-1", "PARKINGLOT_TABLE": "tbl", lambdaapi.EnvPools: pools}
		_, err := lambdaapi.LoadEnv(func(k string) string { return vars[k] })
		require.Error(t, err, name)
	}
}

func TestWithDefaultKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		``:                     `{"key":"k"}`,
		`{}`:                   `{"key":"k"}`,
		` { "payload": 1 } `:   `{"key":"k","payload": 1 }`,
		`{"key":"mine","a":1}`: `{"key":"mine","a":1}`,
		`{"a":1,"a":2}`:        `{"key":"k","a":1,"a":2}`,
		`[]`:                   `[]`,
		`{} {}`:                `{} {}`,
		`{"payload":`:          `{"payload":`,
		`null`:                 `null`,
	} {
		require.Equal(t, want, string(lambdaapi.WithDefaultKey([]byte(in), "k")), "%q", in)
	}
}

func TestWithRequestID(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(lambdaapi.WithRequestID(slog.NewJSONHandler(&buf, nil))).With("function", "submit").WithGroup("g")
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "req-1"})
	log.InfoContext(ctx, "with")
	log.InfoContext(context.Background(), "without")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	require.Contains(t, lines[0], `"requestId":"req-1"`)
	require.Contains(t, lines[0], `"function":"submit"`)
	require.NotContains(t, lines[1], "requestId")
}
