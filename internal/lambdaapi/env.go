package lambdaapi

import (
	"context"
	"encoding/json"
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
	// EnvPools is a JSON array of pools created or reconfigured at cold
	// start: [{"name": "gpu", "capacity": 4, "maxParked": 1000,
	// "defaultMaxWait": "10m", "runTimeout": "5m"}]. Optional. A push pool
	// ("executor": "push") has a "target", whose fields are those of the
	// server's YAML (internal/config.Target): {"type": "http", "url":
	// "https://...", "secretEnv": "HOOK_SECRET", "mode": "sync",
	// "timeout": "30s", "maxAttempts": 5}, {"type": "lambda", "function":
	// "name or ARN", "qualifier": "live"} or {"type": "sqs", "queueUrl":
	// "https://sqs..."}. An http target's secret is never in this JSON:
	// secretEnv names the function's environment variable that holds it,
	// or secretArn a Secrets Manager secret whose string it is, read at
	// cold start (Env.ResolveSecrets; the function needs
	// secretsmanager:GetSecretValue on it).
	// submit, dispatch and expire push; dispatch also takes the results
	// queue's SQS events (Handler.Results).
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
	Pools           []core.PoolConfig
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
	if e.Pools, e.Targets, e.SecretARNs, err = parsePools(getenv(EnvPools), getenv); err != nil {
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

type envPool struct {
	Name           string `json:"name"`
	Capacity       int    `json:"capacity"`
	MaxParked      int    `json:"maxParked"`
	DefaultMaxWait string `json:"defaultMaxWait"`
	RunTimeout     string `json:"runTimeout"`
	Executor       string `json:"executor,omitempty"`
	// Target is a push pool's.
	Target *envTarget `json:"target,omitempty"`
}

// envTarget is a push pool's target in EnvPools.
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
func (et envTarget) target(pool string, i int, getenv func(string) string) (push.Target, error) {
	t := push.Target{
		Type: et.Type, URL: et.URL, Mode: et.Mode, Function: et.Function, Qualifier: et.Qualifier,
		QueueURL: et.QueueURL, MaxAttempts: et.MaxAttempts,
	}
	if et.Timeout != "" {
		var err error
		if t.Timeout, err = time.ParseDuration(et.Timeout); err != nil {
			return push.Target{}, fmt.Errorf("lambdaapi: %s: [%d].target.timeout: %w", EnvPools, i, err)
		}
	}
	if et.SecretEnv != "" && et.SecretARN != "" {
		return push.Target{}, fmt.Errorf("lambdaapi: %s: [%d].target: set secretEnv or secretArn, not both", EnvPools, i)
	}
	if et.SecretEnv != "" {
		if t.Secret = getenv(et.SecretEnv); t.Secret == "" {
			return push.Target{}, fmt.Errorf("lambdaapi: %s: [%d].target.secretEnv: the environment variable %s is not set", EnvPools, i, et.SecretEnv)
		}
	}
	t = t.WithDefaults()
	if err := t.Validate(pool); err != nil {
		return push.Target{}, fmt.Errorf("lambdaapi: %s: [%d]: %w", EnvPools, i, err)
	}
	return t, nil
}

func parsePools(v string, getenv func(string) string) ([]core.PoolConfig, map[string]push.Target, map[string]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil, nil, nil
	}
	var ps []envPool
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ps); err != nil {
		return nil, nil, nil, fmt.Errorf("lambdaapi: %s: %w", EnvPools, err)
	}
	targets := map[string]push.Target{}
	arns := map[string]string{}
	out := make([]core.PoolConfig, len(ps))
	for i, p := range ps {
		c := core.PoolConfig{Name: p.Name, Capacity: p.Capacity, MaxParked: p.MaxParked, DefaultMaxWait: 10 * time.Minute, RunTimeout: 5 * time.Minute, Executor: core.Executor(p.Executor)}
		for _, d := range []struct {
			name, v string
			to      *time.Duration
		}{{"defaultMaxWait", p.DefaultMaxWait, &c.DefaultMaxWait}, {"runTimeout", p.RunTimeout, &c.RunTimeout}} {
			if d.v == "" {
				continue
			}
			var err error
			if *d.to, err = time.ParseDuration(d.v); err != nil {
				return nil, nil, nil, fmt.Errorf("lambdaapi: %s: [%d].%s: %w", EnvPools, i, d.name, err)
			}
		}
		if err := c.Validate(); err != nil {
			return nil, nil, nil, fmt.Errorf("lambdaapi: %s: [%d]: %w", EnvPools, i, err)
		}
		switch {
		case c.Pushes() && p.Target == nil:
			return nil, nil, nil, fmt.Errorf("lambdaapi: %s: [%d]: executor push needs a target", EnvPools, i)
		case !c.Pushes() && p.Target != nil:
			return nil, nil, nil, fmt.Errorf("lambdaapi: %s: [%d]: only a pool with executor push has a target", EnvPools, i)
		case p.Target != nil:
			t, err := p.Target.target(c.Name, i, getenv)
			if err != nil {
				return nil, nil, nil, err
			}
			targets[c.Name] = t
			if p.Target.SecretARN != "" {
				arns[c.Name] = p.Target.SecretARN
			}
		}
		out[i] = c
	}
	return out, targets, arns, nil
}

// PutPools creates or reconfigures pools (Env.Pools) at cold start; a pool's
// counters are kept.
func PutPools(ctx context.Context, s *core.Scheduler, pools []core.PoolConfig) error {
	for _, p := range pools {
		if err := s.PutPool(ctx, p); err != nil {
			return fmt.Errorf("lambdaapi: put pool %s: %w", p.Name, err)
		}
	}
	return nil
}
