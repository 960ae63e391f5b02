package lambdaapi_test

import (
	"bytes"
	"context"
	"encoding/json"
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
	}))
	require.NoError(t, err)
	require.Equal(t, "tbl", e.Store.Table)
	require.Equal(t, map[string]string{"com.acme.orders": "acme", "com.globex.jobs": "globex"}, e.SourceTenants)
	require.Equal(t, 10*time.Second, e.SweepEvery)
	require.Equal(t, "custom:tenant", e.TenantClaim)
	require.Empty(t, e.Targets)

	for name, extra := range map[string]map[string]string{
		"no table":         {"PARKINGLOT_TABLE": ""},
		"bad source":       {lambdaapi.EnvEventSources: "com.acme.orders"},
		"aws source":       {lambdaapi.EnvEventSources: "aws.events=acme"},
		"twice":            {lambdaapi.EnvEventSources: "a=x,a=y"},
		"bad sweep":        {lambdaapi.EnvSweepEvery: "often"},
		"negative sweep":   {lambdaapi.EnvSweepFor: "-1s"},
		"pools in the env": {lambdaapi.EnvPools: `[{"name":"gpu","capacity":1}]`},
		"bad targets":      {lambdaapi.EnvTargets: `[{"name":"gpu"}]`},
		"bad target pool":  {lambdaapi.EnvTargets: `{"g/pu":{"type":"sqs","queueUrl":"u"}}`},
	} {
		_, err := lambdaapi.LoadEnv(env(extra))
		require.Error(t, err, name)
	}
}

func TestLoadEnvTargets(t *testing.T) {
	t.Parallel()
	vars := map[string]string{
		"AWS_REGION": "eu-west-1", "PARKINGLOT_TABLE": "tbl", "HOOK_SECRET": "s3cret",
		lambdaapi.EnvTargets: `{
			"hook": {"type":"http","url":"https://hooks.example/run","secretEnv":"HOOK_SECRET","mode":"async","timeout":"5s","maxAttempts":3},
			"fn": {"type":"lambda","function":"worker","qualifier":"live"},
			"q": {"type":"sqs","queueUrl":"https://sqs.eu-west-1.amazonaws.com/1/work"},
			"vault": {"type":"http","url":"https://hooks.example/v","secretArn":"arn:aws:secretsmanager:eu-west-1:1:secret:hook"}}`,
	}
	e, err := lambdaapi.LoadEnv(func(k string) string { return vars[k] })
	require.NoError(t, err)
	require.Equal(t, map[string]string{"vault": "arn:aws:secretsmanager:eu-west-1:1:secret:hook"}, e.SecretARNs)
	require.Equal(t, map[string]push.Target{
		"hook":  {Type: push.TypeHTTP, URL: "https://hooks.example/run", Secret: "s3cret", Mode: push.ModeAsync, Timeout: 5 * time.Second, MaxAttempts: 3},
		"fn":    {Type: push.TypeLambda, Function: "worker", Qualifier: "live", Timeout: push.DefaultTimeout, MaxAttempts: push.DefaultMaxAttempts},
		"q":     {Type: push.TypeSQS, QueueURL: "https://sqs.eu-west-1.amazonaws.com/1/work", Timeout: push.DefaultTimeout, MaxAttempts: push.DefaultMaxAttempts},
		"vault": {Type: push.TypeHTTP, URL: "https://hooks.example/v", Mode: push.ModeSync, Timeout: push.DefaultTimeout, MaxAttempts: push.DefaultMaxAttempts},
	}, e.Targets, "a secretArn's secret is read by ResolveSecrets")

	for name, targets := range map[string]string{
		"secret inline":        `{"p":{"type":"http","url":"https://x","secret":"s"}}`,
		"secretEnv unset":      `{"p":{"type":"http","url":"https://x","secretEnv":"NOPE"}}`,
		"two secrets":          `{"p":{"type":"http","url":"https://x","secretEnv":"AWS_REGION","secretArn":"arn"}}`,
		"bad type":             `{"p":{"type":"ftp"}}`,
		"lambda sans function": `{"p":{"type":"lambda"}}`,
		"bad timeout":          `{"p":{"type":"sqs","queueUrl":"u","timeout":"soon"}}`,
	} {
		vars := map[string]string{"AWS_REGION": "eu-west-1", "PARKINGLOT_TABLE": "tbl", lambdaapi.EnvTargets: targets}
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

func TestParsePools(t *testing.T) {
	t.Parallel()
	ps, err := lambdaapi.ParsePools(`[{"name":"gpu","capacity":4,"maxParked":100,"runTimeout":"2m"},
		{"name":"hot","capacity":64,"maxParked":5,"defaultMaxWait":"1h","runTimeout":"30s","slotShards":8,"executor":"push"}]`)
	require.NoError(t, err)
	require.Equal(t, []core.PoolConfig{
		{Name: "gpu", Capacity: 4, MaxParked: 100, DefaultMaxWait: 10 * time.Minute, RunTimeout: 2 * time.Minute},
		{Name: "hot", Capacity: 64, MaxParked: 5, DefaultMaxWait: time.Hour, RunTimeout: 30 * time.Second, SlotShards: 8, Executor: core.ExecutorPush},
	}, ps)
	for _, c := range ps {
		back, err := lambdaapi.ParsePools(mustJSON(t, []lambdaapi.PoolSpec{lambdaapi.PoolSpecOf(c)}))
		require.NoError(t, err)
		require.Equal(t, []core.PoolConfig{c}, back, "PoolSpecOf round-trips")
	}
	for name, v := range map[string]string{
		"not an array": `{"name":"gpu"}`,
		"unknown key":  `[{"name":"gpu","capacity":1,"size":2}]`,
		"a target":     `[{"name":"gpu","capacity":1,"executor":"push","target":{"type":"sqs"}}]`,
		"invalid":      `[{"name":"gpu","capacity":0}]`,
		"bad duration": `[{"name":"gpu","capacity":1,"runTimeout":"x"}]`,
		"shards > cap": `[{"name":"gpu","capacity":2,"slotShards":3}]`,
		"shards > max": `[{"name":"gpu","capacity":100,"slotShards":65}]`,
	} {
		_, err := lambdaapi.ParsePools(v)
		require.Error(t, err, name)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
