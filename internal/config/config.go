package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/parkinglot/parkinglot/internal/push"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// Store types that Validate accepts: the stores this build has.
const (
	StoreMemory   = "memory"
	StoreEmbedded = "embedded"
	StoreAWS      = "aws"
	StorePostgres = "postgres"
)

// Runtimes: how serve runs the API.
const (
	// RuntimeNative serves the API, the dispatcher and the sweeper in one
	// process (the default).
	RuntimeNative = "native"
	// RuntimeLambda serves the API through the four Lambda handlers behind
	// an in-process stand-in for API Gateway, with the bearer tokens' tenants
	// as JWT claims, and runs expire every sweepInterval as a stand-in for
	// its schedule: the serverless deployment, locally.
	RuntimeLambda = "lambda"
)

// Log formats.
const (
	LogAuto = "auto" // text on a terminal, JSON otherwise
	LogText = "text"
	LogJSON = "json"
)

// Config is the server's configuration. Zero fields take the defaults
// documented on each; WithDefaults fills them, Validate checks the result.
type Config struct {
	// Listen is the HTTP listen address. Default: 127.0.0.1:8080. Without
	// auth tokens, an address that other hosts can reach (any but a
	// loopback one; an empty host is every interface) needs Auth.Anonymous.
	Listen string `yaml:"listen"`
	// ReadTimeout bounds the reading of a whole request, body included:
	// a client that sends its body slowly, or stops, is cut off then.
	// Default: 30s.
	ReadTimeout time.Duration `yaml:"readTimeout"`
	// WriteTimeout bounds a request from the end of its headers to the end
	// of its response. A mailbox long poll gets its longest wait
	// (core.MaxMailboxWait) on top. Default: 30s.
	WriteTimeout time.Duration `yaml:"writeTimeout"`
	// IdleTimeout closes a keep-alive connection that waits longer than
	// this for its next request. Default: 2m, longer than clients keep
	// theirs (Go's http.DefaultTransport: 90s), so that the client, not
	// the server, closes an idle connection: a server closing one as a
	// request is sent on it fails that request.
	IdleTimeout time.Duration `yaml:"idleTimeout"`
	// MaxConnections bounds the connections served at once on each
	// listener; further ones wait in the listen backlog until one closes.
	// Default: 1024.
	MaxConnections int `yaml:"maxConnections"`
	// Runtime is native (the default) or lambda.
	Runtime string `yaml:"runtime"`
	// Store selects the backend.
	Store Store `yaml:"store"`
	// Auth maps bearer tokens to tenants.
	Auth Auth `yaml:"auth"`
	// Metrics configures where /metrics is served and who may read it.
	Metrics Metrics `yaml:"metrics"`
	// Pools are created or reconfigured at start-up. At least one.
	Pools []Pool `yaml:"pools"`
	// SweepInterval is how often the sweeper runs (expiry, lease reclaim,
	// outbox re-send, safety-net dispatch). Default: 250ms.
	SweepInterval time.Duration `yaml:"sweepInterval"`
	// MailboxPoll is how often a waiting mailbox long poll reads the store
	// when the store cannot signal new messages (the aws store): each read
	// costs two DynamoDB reads. Default: 100ms.
	MailboxPoll time.Duration `yaml:"mailboxPoll"`
	// ShutdownTimeout bounds the drain of in-flight requests on SIGTERM.
	// Default: 25s (mailbox long polls last up to 20s).
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
	// Log configures the server's logs.
	Log Log `yaml:"log"`
	// ResultsQueue is the URL of the SQS queue (a standard one) where push
	// pools' results arrive: the on-success and on-failure destination of
	// lambda targets' functions, and where the workers of sqs targets may
	// send their outcomes. The native runtime consumes it with its Pusher;
	// runtime lambda hands each batch to dispatch, as dispatch's SQS event
	// source does in AWS. Optional.
	ResultsQueue string `yaml:"resultsQueue"`
}

// Store selects and configures the backend.
type Store struct {
	// Type is embedded (durable, the default), memory, aws or postgres.
	Type string `yaml:"type"`
	// Path is the data directory of the embedded store. Default: ./data.
	Path string `yaml:"path"`

	// The fields below configure the aws store (DynamoDB + SQS) and are
	// refused with any other type.

	// Region is the AWS region, such as us-east-1. Required for aws.
	Region string `yaml:"region"`
	// Endpoint is the base URL of DynamoDB and SQS, such as
	// http://127.0.0.1:4566 for a local emulator. Default: AWS_ENDPOINT_URL
	// if set, else the real AWS endpoints of Region.
	Endpoint string `yaml:"endpoint"`
	// Table is the DynamoDB table. Required for aws.
	Table string `yaml:"table"`
	// QueuePrefix starts the name of every pool's SQS FIFO parking queue.
	// Default: parkinglot-.
	QueuePrefix string `yaml:"queuePrefix"`
	// CreateResources creates the table and the queues if they are missing
	// (local use; a deployment creates them with its stack). Default: false.
	CreateResources bool `yaml:"createResources"`

	// DSN, Schema and MaxConns configure the postgres store (postgres.go).
	DSN      string `yaml:"dsn"`
	Schema   string `yaml:"schema"`
	MaxConns int    `yaml:"maxConns"`
}

// Auth configures authentication.
type Auth struct {
	// Tokens map bearer tokens to tenants. With none, the server accepts
	// loopback clients only, all as tenant "default" (see Anonymous).
	Tokens []Token `yaml:"tokens"`
	// Anonymous, without tokens, serves every client, from any address,
	// as tenant "default". It is required to listen on an address that
	// other hosts can reach without tokens, and refused with tokens.
	// Default: false.
	Anonymous bool `yaml:"anonymous"`
}

// Metrics configures /metrics.
type Metrics struct {
	// Listen, if set, serves /metrics on this address alone, and no longer
	// on Listen. Default: empty (/metrics beside the API).
	Listen string `yaml:"listen"`
	// Token, if set, is the bearer token that /metrics requires. Default:
	// empty (no token).
	Token string `yaml:"token"`
}

// Token maps one bearer token to a tenant, or to a worker.
type Token struct {
	Token string `yaml:"token"`
	// Role is tenant (default) or worker. A tenant submits and reads its
	// own tasks, mailboxes and audit trail. A worker claims, heartbeats,
	// completes and cancels the tasks of every tenant in Pools, and nothing
	// else.
	Role string `yaml:"role"`
	// Tenant is a tenant token's tenant. Required for role tenant; not
	// allowed for role worker.
	Tenant string `yaml:"tenant"`
	// Name is a worker's name, which the audit trail records on each of its
	// claims. Required for role worker.
	Name string `yaml:"name"`
	// Pools are the pools a worker works in, each a configured pool.
	// Required for role worker.
	Pools []string `yaml:"pools"`
}

// Token roles.
const (
	RoleTenant = "tenant"
	RoleWorker = "worker"
)

// IsWorker reports whether t is a worker's token.
func (t Token) IsWorker() bool { return t.Role == RoleWorker }

// Pool is one pool's configuration.
type Pool struct {
	// Name is 1-64 characters of [A-Za-z0-9_.-]. Required.
	Name string `yaml:"name"`
	// Capacity is the hard limit of tasks running at once. Required, >= 1.
	Capacity int `yaml:"capacity"`
	// MaxParked bounds the parked depth; 0 parks nothing (a submission that
	// finds no free slot is rejected).
	MaxParked int `yaml:"maxParked"`
	// DefaultMaxWait is how long a task may stay parked when the submission
	// names no deadline. Default: 10m.
	DefaultMaxWait time.Duration `yaml:"defaultMaxWait"`
	// RunTimeout is the lease length when the submission names none.
	// Default: 5m.
	RunTimeout time.Duration `yaml:"runTimeout"`
	// SlotShards spreads the pool's running count over this many DynamoDB
	// items on the aws store, for pools that start and end more than about
	// 250 tasks a second (docs/aws.md); 0 to 64, at most capacity. Changing
	// it is refused while the pool has running tasks. The memory and
	// embedded stores ignore it. Default: 0 (one item).
	SlotShards int `yaml:"slotShards"`
	// Executor is how started tasks reach the ones who run them: permit
	// (every start is a started message with the lease to the task's
	// recipient) or pull (tasks park until a worker claims them, POST
	// /v1/pools/{pool}/claim). Default: permit.
	Executor string `yaml:"executor"`
	// Target is where a push pool's started tasks go (executor: push, and
	// only then).
	Target *Target `yaml:"target"`
}

// Target is a push pool's target (internal/push.Target).
type Target struct {
	// Type is http, lambda or sqs.
	Type string `yaml:"type"`
	// URL (http) receives a signed POST of each start.
	URL string `yaml:"url"`
	// Secret (http) signs each push (header Parkinglot-Signature); or
	// SecretEnv names the environment variable that holds it, to keep it
	// out of the file.
	Secret    string `yaml:"secret"`
	SecretEnv string `yaml:"secretEnv"`
	// Mode (http) is sync (default: the answer is the outcome) or async (a
	// 2xx answer means taken; the target completes with the lease).
	Mode string `yaml:"mode"`
	// Function (lambda) is invoked asynchronously with each start; Qualifier
	// is an optional version or alias.
	Function  string `yaml:"function"`
	Qualifier string `yaml:"qualifier"`
	// QueueURL (sqs) receives each start as a message.
	QueueURL string `yaml:"queueUrl"`
	// Timeout bounds one delivery attempt. Default: 30s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxAttempts bounds the attempts before the task fails with
	// push_failed. Default: 5.
	MaxAttempts int `yaml:"maxAttempts"`
}

// Push returns the pool's target for internal/push, its secret read from
// the environment when SecretEnv names it.
func (t Target) Push(getenv func(string) string) push.Target {
	secret := t.Secret
	if t.SecretEnv != "" {
		secret = getenv(t.SecretEnv)
	}
	return push.Target{
		Type: t.Type, URL: t.URL, Secret: secret, Mode: t.Mode, Function: t.Function, Qualifier: t.Qualifier,
		QueueURL: t.QueueURL, Timeout: t.Timeout, MaxAttempts: t.MaxAttempts,
	}.WithDefaults()
}

// Targets returns the push targets of pools, by pool name.
func Targets(pools []Pool, getenv func(string) string) map[string]push.Target {
	out := map[string]push.Target{}
	for _, p := range pools {
		if p.Target != nil {
			out[p.Name] = p.Target.Push(getenv)
		}
	}
	return out
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default: info.
	Level string `yaml:"level"`
	// Format is auto, text or json. Default: auto.
	Format string `yaml:"format"`
}

// Defaults.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultReadTimeout     = 30 * time.Second
	DefaultWriteTimeout    = 30 * time.Second
	DefaultIdleTimeout     = 2 * time.Minute
	DefaultMaxConnections  = 1024
	DefaultStorePath       = "./data"
	DefaultSweepInterval   = 250 * time.Millisecond
	DefaultMailboxPoll     = 100 * time.Millisecond
	DefaultShutdownTimeout = 25 * time.Second
	DefaultMaxWait         = 10 * time.Minute
	DefaultRunTimeout      = 5 * time.Minute
	DefaultLogLevel        = "info"
	DefaultQueuePrefix     = "parkinglot-"
)

// Sample is the built-in configuration that `parkinglot serve` uses
// without --config.
const Sample = `# parkinglot serve configuration
listen: 127.0.0.1:8080
store:
  type: embedded          # durable, under path; or memory
  path: ./data
auth:
  tokens:                 # bearer token -> tenant
    - token: dev-token
      tenant: acme
pools:
  - name: gpu
    capacity: 4
    maxParked: 1000
    defaultMaxWait: 10m
    runTimeout: 5m
  - name: cpu
    capacity: 16
    maxParked: 10000
    defaultMaxWait: 10m
    runTimeout: 5m
sweepInterval: 250ms
log:
  level: info
  format: auto
`

// FieldError names the configuration field that is wrong, as a path such
// as pools[1].capacity.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Load reads, parses and validates the file at path.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML strictly (unknown keys are errors), fills defaults and
// validates. Errors name the field.
func Parse(b []byte) (Config, error) {
	var c Config
	if err := decode(b, &c); err != nil {
		return Config{}, err
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.Runtime == "" {
		c.Runtime = RuntimeNative
	}
	if c.Store.Type == "" {
		c.Store.Type = StoreEmbedded
	}
	if c.Store.Path == "" {
		c.Store.Path = DefaultStorePath
	}
	c.Store = c.Store.withPostgresDefaults()
	if c.Store.Type == StoreAWS && c.Store.QueuePrefix == "" {
		c.Store.QueuePrefix = DefaultQueuePrefix
	}
	if c.MailboxPoll == 0 {
		c.MailboxPoll = DefaultMailboxPoll
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Log.Level == "" {
		c.Log.Level = DefaultLogLevel
	}
	if c.Log.Format == "" {
		c.Log.Format = LogAuto
	}
	pools := make([]Pool, len(c.Pools))
	for i, p := range c.Pools {
		if p.DefaultMaxWait == 0 {
			p.DefaultMaxWait = DefaultMaxWait
		}
		if p.RunTimeout == 0 {
			p.RunTimeout = DefaultRunTimeout
		}
		pools[i] = p
	}
	c.Pools = pools
	c.Auth.Tokens = append([]Token(nil), c.Auth.Tokens...)
	return c
}

// Validate returns a *FieldError naming the first bad field.
func (c Config) Validate() error {
	if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
		return fieldErr("listen", "must be host:port, such as 127.0.0.1:8080 or :8080, got %q", clip(c.Listen))
	}
	switch {
	case c.ReadTimeout <= 0:
		return fieldErr("readTimeout", "must be positive, got %s", c.ReadTimeout)
	case c.WriteTimeout <= 0:
		return fieldErr("writeTimeout", "must be positive, got %s", c.WriteTimeout)
	case c.IdleTimeout <= 0:
		return fieldErr("idleTimeout", "must be positive, got %s", c.IdleTimeout)
	case c.MaxConnections < 1:
		return fieldErr("maxConnections", "must be at least 1, got %d", c.MaxConnections)
	case c.SweepInterval <= 0:
		return fieldErr("sweepInterval", "must be positive, got %s", c.SweepInterval)
	case c.MailboxPoll <= 0 || c.MailboxPoll > core.MaxMailboxWait:
		return fieldErr("mailboxPoll", "must be positive and at most %s, got %s", core.MaxMailboxWait, c.MailboxPoll)
	case c.ShutdownTimeout <= 0:
		return fieldErr("shutdownTimeout", "must be positive, got %s", c.ShutdownTimeout)
	}
	switch c.Runtime {
	case RuntimeNative:
	case RuntimeLambda:
		if len(c.Auth.Tokens) == 0 {
			return fieldErr("auth.tokens", "runtime lambda needs at least one token: its tenant becomes the JWT claim the functions read")
		}
	default:
		return fieldErr("runtime", "must be native or lambda, got %q", clip(c.Runtime))
	}
	if u, err := url.Parse(c.ResultsQueue); c.ResultsQueue != "" && (err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
		return fieldErr("resultsQueue", "must be an SQS queue's URL, got %q", clip(c.ResultsQueue))
	}
	switch c.Store.Type {
	case StoreMemory, StoreEmbedded, StoreAWS, StorePostgres:
	default:
		return fieldErr("store.type", "unknown store type %q (memory, embedded, aws or postgres)", c.Store.Type)
	}
	if c.Store.Type == StoreEmbedded && c.Store.Path == "" {
		return fieldErr("store.path", "must not be empty")
	}
	if err := c.Store.validateAWS(); err != nil {
		return err
	}
	if err := c.Store.validatePostgres(); err != nil {
		return err
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fieldErr("log.level", "must be debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case LogAuto, LogText, LogJSON:
	default:
		return fieldErr("log.format", "must be auto, text or json, got %q", c.Log.Format)
	}

	tokens := make(map[string]int, len(c.Auth.Tokens))
	for i, t := range c.Auth.Tokens {
		f := fmt.Sprintf("auth.tokens[%d]", i)
		if err := validToken(f+".token", t.Token); err != nil {
			return err
		}
		if err := c.validTokenRole(f, t); err != nil {
			return err
		}
		if j, dup := tokens[t.Token]; dup {
			// Never echo the secret.
			return fieldErr(f+".token", "duplicate token (also auth.tokens[%d])", j)
		}
		tokens[t.Token] = i
	}
	switch {
	case c.Auth.Anonymous && len(c.Auth.Tokens) > 0:
		return fieldErr("auth.anonymous", "must not be true with auth.tokens: with tokens, a request without a known one is refused")
	case !c.Auth.Anonymous && len(c.Auth.Tokens) == 0 && !loopbackAddr(c.Listen):
		return fieldErr("auth.tokens", "listen %s accepts clients from other hosts: configure at least one token, "+
			"or set auth.anonymous: true to serve every client as tenant \"default\" without one", clip(c.Listen))
	}
	if err := c.Metrics.validate(c.Listen); err != nil {
		return err
	}

	if len(c.Pools) == 0 {
		return fieldErr("pools", "at least one pool is required")
	}
	names := make(map[string]int, len(c.Pools))
	for i, p := range c.Pools {
		f := fmt.Sprintf("pools[%d]", i)
		// A pool's rules are core's (core.PoolConfig.Validate); config adds
		// only what a list of pools needs.
		if err := p.Core().Validate(); err != nil {
			var ie *core.InvalidError
			if errors.As(err, &ie) {
				return fieldErr(f+"."+ie.Field, "%s", ie.Reason)
			}
			return fieldErr(f, "%v", err)
		}
		if err := p.validTarget(f); err != nil {
			return err
		}
		if j, dup := names[p.Name]; dup {
			return fieldErr(f+".name", "duplicate pool name %q (also pools[%d])", p.Name, j)
		}
		names[p.Name] = i
	}
	return nil
}

func (m Metrics) validate(listen string) error {
	if m.Listen != "" {
		if _, port, err := net.SplitHostPort(m.Listen); err != nil || port == "" {
			return fieldErr("metrics.listen", "must be host:port, such as 127.0.0.1:9090 or :9090, got %q", clip(m.Listen))
		} else if m.Listen == listen && port != "0" {
			return fieldErr("metrics.listen", "must differ from listen (%s), or be left out to serve /metrics there", clip(listen))
		}
	}
	if m.Token != "" {
		return validToken("metrics.token", m.Token)
	}
	return nil
}

// validToken checks a bearer token that clients must be able to send: a
// request's token is read without the white space around it, so a token
// that starts or ends with white space, or holds a character that a header
// cannot carry, could never match. The error never echoes the secret.
func validToken(field, token string) error {
	switch {
	case token == "":
		return fieldErr(field, "must not be empty")
	case len(token) > 4096:
		return fieldErr(field, "must be at most 4096 bytes")
	case strings.TrimSpace(token) != token:
		return fieldErr(field, "must not start or end with white space: a request's token is read without it, so this one could never match")
	}
	for i := 0; i < len(token); i++ {
		if b := token[i]; b < 0x20 && b != '\t' || b == 0x7f {
			return fieldErr(field, "must not contain control characters (byte %d): no request header can carry them", i)
		}
	}
	return nil
}

// loopbackAddr reports whether host:port addr can be reached from this
// host alone: its host is localhost or a loopback IP. An empty host, an
// unspecified IP (0.0.0.0, ::) or any other name or IP is reachable from
// other hosts.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	host, _, _ = strings.Cut(host, "%") // an IPv6 zone
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validTarget checks that a push pool, and it alone, has a valid target.
func (p Pool) validTarget(f string) error {
	switch {
	case p.Executor == string(core.ExecutorPush) && p.Target == nil:
		return fieldErr(f+".target", "executor push needs a target: {type: http, url: ...}, {type: lambda, function: ...} or {type: sqs, queueUrl: ...}")
	case p.Executor != string(core.ExecutorPush) && p.Target != nil:
		return fieldErr(f+".target", "only a pool with executor: push has a target")
	case p.Target == nil:
		return nil
	case p.Target.Secret != "" && p.Target.SecretEnv != "":
		return fieldErr(f+".target.secretEnv", "set secret or secretEnv, not both")
	case p.Target.SecretEnv != "" && os.Getenv(p.Target.SecretEnv) == "":
		return fieldErr(f+".target.secretEnv", "the environment variable %s is not set", p.Target.SecretEnv)
	}
	if err := p.Target.Push(os.Getenv).Validate(p.Name); err != nil {
		var ie *core.InvalidError
		if errors.As(err, &ie) {
			return fieldErr(f+"."+ie.Field, "%s", ie.Reason)
		}
		return fieldErr(f+".target", "%v", err)
	}
	return nil
}

// Core returns the pool's core configuration.
func (p Pool) Core() core.PoolConfig {
	return core.PoolConfig{
		Name: p.Name, Capacity: p.Capacity, MaxParked: p.MaxParked,
		DefaultMaxWait: p.DefaultMaxWait, RunTimeout: p.RunTimeout, SlotShards: p.SlotShards,
		Executor: core.Executor(p.Executor),
	}
}

// validTokenRole checks the fields of token t (at f) that its role needs.
func (c *Config) validTokenRole(f string, t Token) error {
	switch t.Role {
	case "", RoleTenant:
		switch {
		case t.Tenant == "":
			return fieldErr(f+".tenant", "must not be empty")
		case len(t.Tenant) > 128:
			return fieldErr(f+".tenant", "must be at most 128 bytes")
		case t.Name != "" || len(t.Pools) > 0:
			return fieldErr(f+".pools", "name and pools are a worker's: set role: worker, or leave them out")
		}
	case RoleWorker:
		switch {
		case t.Tenant != "":
			return fieldErr(f+".tenant", "a worker's token has no tenant: it works for every tenant of its pools")
		case t.Name == "" || len(t.Name) > 128:
			return fieldErr(f+".name", "a worker's name must be 1-128 bytes, for the audit trail")
		case len(t.Pools) == 0:
			return fieldErr(f+".pools", "a worker's token must name the pools it works in")
		}
		for j, p := range t.Pools {
			if !slices.ContainsFunc(c.Pools, func(q Pool) bool { return q.Name == p }) {
				return fieldErr(fmt.Sprintf("%s.pools[%d]", f, j), "no pool %q is configured", clip(p))
			}
		}
	default:
		return fieldErr(f+".role", "must be tenant or worker, got %q", clip(t.Role))
	}
	return nil
}

// TokenMap returns the tokens as bearer token -> tenant.
func (a Auth) TokenMap() map[string]string {
	m := make(map[string]string, len(a.Tokens))
	for _, t := range a.Tokens {
		m[t.Token] = t.Tenant
	}
	return m
}

// Workers returns the tokens of role worker.
func (a Auth) Workers() []Token {
	var out []Token
	for _, t := range a.Tokens {
		if t.IsWorker() {
			out = append(out, t)
		}
	}
	return out
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
