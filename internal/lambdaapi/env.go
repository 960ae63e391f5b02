package lambdaapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/parkinglot/parkinglot/internal/awsconfig"
	"github.com/parkinglot/parkinglot/internal/push"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// Environment variables that LoadEnv reads, besides awsconfig's
// (PARKINGLOT_TABLE, PARKINGLOT_QUEUE_PREFIX, AWS_REGION, AWS_ENDPOINT_URL).
const (
	EnvTenantClaim     = "PARKINGLOT_TENANT_CLAIM"     // default "tenant"
	EnvTenantAttribute = "PARKINGLOT_TENANT_ATTRIBUTE" // default "tenant"
	EnvPoolAttribute   = "PARKINGLOT_POOL_ATTRIBUTE"   // default "pool"
	EnvEventSources    = "PARKINGLOT_EVENT_SOURCES"    // "source=tenant,source2=tenant2"
	EnvSweepEvery      = "PARKINGLOT_SWEEP_EVERY"      // Go duration; default: one sweep per invocation
	EnvSweepFor        = "PARKINGLOT_SWEEP_FOR"        // Go duration; default 50s
	EnvNamespace       = "PARKINGLOT_METRICS_NAMESPACE"
	// EnvTargets is a JSON object of the push pools' targets by pool
	// name: {"hooks": {"type": "http", "url": "https://...", "secretEnv":
	// "HOOK_SECRET", "mode": "sync", "timeout": "30s", "maxAttempts": 5},
	// "jobs": {"type": "lambda", "function": "name or ARN", "qualifier":
	// "live"}, "mail": {"type": "sqs", "queueUrl": "https://sqs..."}}.
	// Optional. The fields are those of the server's YAML
	// (internal/config.Target). The pools themselves are not configuration
	// of the functions: they live in the table, written at deploy time
	// (CustomResource) or by `parkinglot pools apply`, and read by core on
	// every transition; only the targets, runtime configuration that may
	// name secrets, travel in the environment, so that its size grows with
	// the push pools only. An http target's secret is never in this JSON:
	// secretEnv names the function's environment variable that holds it,
	// or secretArn a Secrets Manager secret whose string it is, read at
	// cold start (Env.ResolveSecrets; the function needs
	// secretsmanager:GetSecretValue on it). submit, dispatch and expire
	// push; dispatch also takes the results queue's SQS events
	// (Handler.Results).
	EnvTargets = "PARKINGLOT_TARGETS"
	// EnvPools was the pools' configuration, written by every cold start.
	// It is refused, so that an old deployment fails loudly instead of
	// running without its pools' updates: apply the pools to the table.
	EnvPools = "PARKINGLOT_POOLS"
)

// Env is a function's configuration from its environment, read once at
// cold start.
type Env struct {
	Store           awsconfig.Settings
	TenantClaim     string
	TenantAttribute string
	PoolAttribute   string
	SourceTenants   map[string]string
	SweepEvery      time.Duration
	SweepFor        time.Duration
	Namespace       string
	// Targets are the push pools' targets, by pool name, with their
	// secrets read from the environment.
	Targets map[string]push.Target
	// SecretARNs name the Secrets Manager secrets of the targets, by pool,
	// whose secret ResolveSecrets reads.
	SecretARNs map[string]string
}

// SecretGetter is the call of *secretsmanager.Client that ResolveSecrets
// makes.
type SecretGetter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// ResolveSecrets reads the secrets of e.SecretARNs into their targets, or
// returns an error naming the pool whose secret could not be read.
func (e *Env) ResolveSecrets(ctx context.Context, c SecretGetter) error {
	for pool, arn := range e.SecretARNs {
		out, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
		if err != nil {
			return fmt.Errorf("lambdaapi: pool %s: target.secretArn: %w", pool, err)
		}
		if aws.ToString(out.SecretString) == "" {
			return fmt.Errorf("lambdaapi: pool %s: target.secretArn: the secret has no string value", pool)
		}
		t := e.Targets[pool]
		t.Secret = aws.ToString(out.SecretString)
		e.Targets[pool] = t
	}
	return nil
}

// LoadEnv reads the environment through getenv (os.Getenv in a main), or
// returns an error naming the bad variable.
func LoadEnv(getenv func(string) string) (Env, error) {
	st, err := awsconfig.FromEnv(getenv)
	if err != nil {
		return Env{}, err
	}
	e := Env{
		Store: st, TenantClaim: getenv(EnvTenantClaim), TenantAttribute: getenv(EnvTenantAttribute),
		PoolAttribute: getenv(EnvPoolAttribute), Namespace: getenv(EnvNamespace),
	}
	if e.SourceTenants, err = parseSources(getenv(EnvEventSources)); err != nil {
		return Env{}, err
	}
	for _, d := range []struct {
		name string
		to   *time.Duration
	}{{EnvSweepEvery, &e.SweepEvery}, {EnvSweepFor, &e.SweepFor}} {
		v := getenv(d.name)
		if v == "" {
			continue
		}
		if *d.to, err = time.ParseDuration(v); err != nil || *d.to <= 0 {
			return Env{}, fmt.Errorf("lambdaapi: %s must be a positive duration such as 10s, got %q", d.name, v)
		}
	}
	if getenv(EnvPools) != "" {
		return Env{}, fmt.Errorf("lambdaapi: %s is no longer read: pools live in the table (apply them with the stack's custom resource or `parkinglot pools apply`), push targets in %s", EnvPools, EnvTargets)
	}
	if e.Targets, e.SecretARNs, err = parseTargets(getenv(EnvTargets), getenv); err != nil {
		return Env{}, err
	}
	return e, nil
}

// Config returns the handler configuration of fn over s.
func (e Env) Config(fn Function, s *core.Scheduler, log *slog.Logger, mets *Metrics) Config {
	return Config{
		Function: fn, Scheduler: s, TenantClaim: e.TenantClaim, TenantAttribute: e.TenantAttribute,
		PoolAttribute: e.PoolAttribute, SourceTenants: e.SourceTenants, SweepEvery: e.SweepEvery,
		SweepFor: e.SweepFor, Logger: log, Metrics: mets,
	}
}

func parseSources(v string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		src, tenant, ok := strings.Cut(kv, "=")
		src, tenant = strings.TrimSpace(src), strings.TrimSpace(tenant)
		if !ok || src == "" || tenant == "" {
			return nil, fmt.Errorf("lambdaapi: %s: %q is not source=tenant", EnvEventSources, kv)
		}
		if strings.HasPrefix(src, "aws.") {
			return nil, fmt.Errorf("lambdaapi: %s: source %q is AWS's own, not a producer's", EnvEventSources, src)
		}
		if _, dup := out[src]; dup {
			return nil, fmt.Errorf("lambdaapi: %s: source %q is mapped twice", EnvEventSources, src)
		}
		out[src] = tenant
	}
	return out, nil
}

// PoolSpec is one pool as the stack's custom resource carries it (its
// Pools property, a JSON array of these; ParsePools): every field of
// core.PoolConfig, durations as Go durations. A push pool's target is not
// here but in the functions' EnvTargets.
type PoolSpec struct {
	Name           string `json:"name"`
	Capacity       int    `json:"capacity"`
	MaxParked      int    `json:"maxParked"`
	DefaultMaxWait string `json:"defaultMaxWait,omitempty"`
	RunTimeout     string `json:"runTimeout,omitempty"`
	SlotShards     int    `json:"slotShards,omitempty"`
	Executor       string `json:"executor,omitempty"`
}

// PoolSpecOf is c as a PoolSpec.
func PoolSpecOf(c core.PoolConfig) PoolSpec {
	return PoolSpec{Name: c.Name, Capacity: c.Capacity, MaxParked: c.MaxParked, DefaultMaxWait: c.DefaultMaxWait.String(),
		RunTimeout: c.RunTimeout.String(), SlotShards: c.SlotShards, Executor: string(c.Executor)}
}

// ParsePools reads a JSON array of PoolSpec, or returns an error naming
// the bad entry. Missing durations default as the server's do
// (defaultMaxWait 10m, runTimeout 5m).
func ParsePools(v string) ([]core.PoolConfig, error) {
	var ps []PoolSpec
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ps); err != nil {
		return nil, fmt.Errorf("lambdaapi: pools: %w", err)
	}
	out := make([]core.PoolConfig, len(ps))
	for i, p := range ps {
		c := core.PoolConfig{Name: p.Name, Capacity: p.Capacity, MaxParked: p.MaxParked, DefaultMaxWait: 10 * time.Minute,
			RunTimeout: 5 * time.Minute, SlotShards: p.SlotShards, Executor: core.Executor(p.Executor)}
		for _, d := range []struct {
			name, v string
			to      *time.Duration
		}{{"defaultMaxWait", p.DefaultMaxWait, &c.DefaultMaxWait}, {"runTimeout", p.RunTimeout, &c.RunTimeout}} {
			if d.v == "" {
				continue
			}
			var err error
			if *d.to, err = time.ParseDuration(d.v); err != nil {
				return nil, fmt.Errorf("lambdaapi: pools[%d].%s: %w", i, d.name, err)
			}
		}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("lambdaapi: pools[%d]: %w", i, err)
		}
		out[i] = c
	}
	return out, nil
}

// envTarget is a push pool's target in EnvTargets.
type envTarget struct {
	Type        string `json:"type"`
	URL         string `json:"url,omitempty"`
	SecretEnv   string `json:"secretEnv,omitempty"`
	SecretARN   string `json:"secretArn,omitempty"`
	Mode        string `json:"mode,omitempty"`
	Function    string `json:"function,omitempty"`
	Qualifier   string `json:"qualifier,omitempty"`
	QueueURL    string `json:"queueUrl,omitempty"`
	Timeout     string `json:"timeout,omitempty"`
	MaxAttempts int    `json:"maxAttempts,omitempty"`
}

// target returns et as pool's push target, its secret read through getenv.
func (et envTarget) target(pool string, getenv func(string) string) (push.Target, error) {
	t := push.Target{
		Type: et.Type, URL: et.URL, Mode: et.Mode, Function: et.Function, Qualifier: et.Qualifier,
		QueueURL: et.QueueURL, MaxAttempts: et.MaxAttempts,
	}
	if et.Timeout != "" {
		var err error
		if t.Timeout, err = time.ParseDuration(et.Timeout); err != nil {
			return push.Target{}, fmt.Errorf("lambdaapi: %s: %s.timeout: %w", EnvTargets, pool, err)
		}
	}
	if et.SecretEnv != "" && et.SecretARN != "" {
		return push.Target{}, fmt.Errorf("lambdaapi: %s: %s: set secretEnv or secretArn, not both", EnvTargets, pool)
	}
	if et.SecretEnv != "" {
		if t.Secret = getenv(et.SecretEnv); t.Secret == "" {
			return push.Target{}, fmt.Errorf("lambdaapi: %s: %s.secretEnv: the environment variable %s is not set", EnvTargets, pool, et.SecretEnv)
		}
	}
	t = t.WithDefaults()
	if err := t.Validate(pool); err != nil {
		return push.Target{}, fmt.Errorf("lambdaapi: %s: %w", EnvTargets, err)
	}
	return t, nil
}

func parseTargets(v string, getenv func(string) string) (map[string]push.Target, map[string]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil, nil
	}
	var ets map[string]envTarget
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ets); err != nil {
		return nil, nil, fmt.Errorf("lambdaapi: %s: %w", EnvTargets, err)
	}
	targets := map[string]push.Target{}
	arns := map[string]string{}
	for pool, et := range ets {
		var ie *core.InvalidError
		if err := (core.PoolConfig{Name: pool}).Validate(); errors.As(err, &ie) && ie.Field == "name" {
			return nil, nil, fmt.Errorf("lambdaapi: %s: %w", EnvTargets, err)
		}
		t, err := et.target(pool, getenv)
		if err != nil {
			return nil, nil, err
		}
		targets[pool] = t
		if et.SecretARN != "" {
			arns[pool] = et.SecretARN
		}
	}
	return targets, arns, nil
}
