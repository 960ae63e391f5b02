package parkinglot

import (
	"archive/zip"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscertificatemanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"

	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// Function names one of the construct's four Lambda functions.
type Function string

// The four functions and what each serves.
const (
	// Submit serves POST /v1/pools/{pool}/tasks and the event-driven
	// submissions (the submit queue, EventBridge).
	Submit Function = Function(lambdaapi.Submit)
	// Dispatch serves claim, heartbeat, complete and cancel.
	Dispatch Function = Function(lambdaapi.Dispatch)
	// Expire runs the sweep every minute (expiry, lease reclaim, outbox
	// re-sends, safety-net dispatch, purge).
	Expire Function = Function(lambdaapi.Expire)
	// Mailbox serves the mailbox, ack, audit, task and pool reads and the
	// API's $default route.
	Mailbox Function = Function(lambdaapi.Mailbox)
)

// Functions lists the four functions.
var Functions = []Function{Submit, Dispatch, Expire, Mailbox}

// Executor is how a pool's started tasks reach the ones who run them.
type Executor string

// The executors.
const (
	// ExecutorPermit: every start is a started message, with its lease, in
	// the task's recipient's mailbox. The default.
	ExecutorPermit Executor = Executor(core.ExecutorPermit)
	// ExecutorPull: tasks park until a worker claims them.
	ExecutorPull Executor = Executor(core.ExecutorPull)
	// ExecutorPush: every start is delivered to the pool's Target. A pool
	// with a Target is a push pool when its Executor is empty.
	ExecutorPush Executor = Executor(core.ExecutorPush)
)

// Pool is one pool the construct deploys: a parking queue, and the pool
// item that the stack's pools custom resource writes into the table
// (Parkinglot.PoolsResource), where the functions read it.
type Pool struct {
	// Name is 1-64 characters of [A-Za-z0-9_.-]. Required.
	Name string
	// Capacity is the hard limit of tasks running at once. Required, >= 1.
	Capacity int
	// MaxParked bounds the parked depth; 0 parks nothing.
	MaxParked int
	// DefaultMaxWait is how long a task may stay parked when its
	// submission names no deadline. Default: 10m.
	DefaultMaxWait time.Duration
	// RunTimeout is the lease length when the submission names none.
	// Default: 5m.
	RunTimeout time.Duration
	// SlotShards spreads the running count over this many items (0-64, at
	// most Capacity; 0 and 1: one), for a pool whose starts and releases
	// exceed one item's write rate (docs/aws.md, "Hot pools"). Changing it
	// is refused while the pool's tasks run: the deployment then fails
	// and rolls back.
	SlotShards int
	// Executor is ExecutorPermit (also when empty), ExecutorPull or
	// ExecutorPush; empty with a Target, ExecutorPush.
	Executor Executor
	// Target is a push pool's target (LambdaTarget, HTTPTarget,
	// SQSTarget): required with ExecutorPush, refused with the others.
	Target Target
}

// Pushes reports whether p is a push pool: ExecutorPush, or a Target and
// no Executor.
func (p Pool) Pushes() bool {
	return p.Executor == ExecutorPush || p.Executor == "" && p.Target != nil
}

// FunctionProps tunes one function. Zero fields take the function's
// defaults (DefaultFunctionProps).
type FunctionProps struct {
	// MemoryMB is the function's memory, 128-10240 MB.
	MemoryMB int
	// Timeout is the function's timeout. The functions behind the API
	// (submit, dispatch, mailbox) must answer within API Gateway's 30 s;
	// expire sweeps for 50 s per run and needs more than that.
	Timeout time.Duration
	// ReservedConcurrency reserves (and caps) the function's concurrent
	// executions; Unreserved for none. A reservation guarantees the
	// function its executions whatever the others do: the defaults
	// reserve them for dispatch and expire, and cap mailbox, whose long
	// polls hold an execution for up to 20 s each.
	ReservedConcurrency int
}

// Unreserved is FunctionProps.ReservedConcurrency for a function without
// reserved concurrency, drawing from the account's unreserved pool.
const Unreserved = -1

// DefaultFunctionProps returns function f's defaults: 256 MB; timeouts of
// 15 s (submit), 25 s (dispatch, mailbox: a long poll is up to 20 s) and
// 60 s (expire); reserved concurrency 50 for dispatch and mailbox, 2 for
// expire (one scheduled run a minute, and its retries), none for submit.
// Together they reserve 102 executions: the account keeps at least 100
// unreserved, so the default Lambda concurrency limit of 1,000 is enough,
// and an account with a lower limit must lower them.
func DefaultFunctionProps(f Function) FunctionProps {
	fp := FunctionProps{MemoryMB: 256, ReservedConcurrency: Unreserved}
	switch f {
	case Submit:
		fp.Timeout = 15 * time.Second
	case Dispatch:
		fp.Timeout, fp.ReservedConcurrency = 25*time.Second, 50
	case Mailbox:
		fp.Timeout, fp.ReservedConcurrency = 25*time.Second, 50
	case Expire:
		fp.Timeout, fp.ReservedConcurrency = 60*time.Second, 2
	}
	return fp
}

// Throttle is an API Gateway rate limit: steady requests per second and
// burst.
type Throttle struct {
	RateLimit  float64
	BurstLimit int
}

// DefaultThrottle is the stage's default route throttling.
var DefaultThrottle = Throttle{RateLimit: 500, BurstLimit: 1000}

// Domain is a custom domain name for the HTTP API.
type Domain struct {
	// Name is the domain name, e.g. parkinglot.example.com. Point its DNS
	// record at Parkinglot.Domain's RegionalDomainName.
	Name string
	// Certificate is an ACM certificate for Name in the stack's region.
	Certificate awscertificatemanager.ICertificate
}

// Defaults of Props.
const (
	DefaultName        = "Parkinglot"
	DefaultQueuePrefix = "parkinglot-"
	DefaultLambdaDir   = "../../dist/lambda"
)

// Props configures the construct. Zero fields take the defaults documented
// on each; Validate names the first bad field.
type Props struct {
	// Name names the API, the dashboard and the alarm topic. Default:
	// Parkinglot. Dashboard names are unique per account and region.
	Name string
	// Pools are the pools deployed. At least one.
	Pools []Pool
	// JWTIssuer is the issuer URL the HTTP API's JWT authorizer trusts.
	// Required, https.
	JWTIssuer string
	// JWTAudience lists the accepted audiences ("aud" or "client_id").
	// Required.
	JWTAudience []string
	// TenantClaim names the JWT claim that carries the tenant. Default:
	// tenant.
	TenantClaim string
	// LambdaDir holds the functions' zips, NAME.zip with bootstrap at the
	// root (make lambdas). Default: ../../dist/lambda.
	LambdaDir string
	// QueuePrefix prefixes the parking queues' names. Queue names are
	// unique per account and region: two deployments in one need two
	// prefixes. Default: parkinglot-.
	QueuePrefix string
	// AlarmEmail, when set, is subscribed to the alarm topic.
	AlarmEmail string
	// EventSources maps EventBridge sources to the tenant each submits
	// for; none: no EventBridge submissions.
	EventSources map[string]string
	// Functions tunes the functions; a function absent, or a zero field,
	// takes DefaultFunctionProps.
	Functions map[Function]FunctionProps
	// CORS, when set, is the API's CORS configuration; an OPTIONS
	// /{proxy+} route without authorization then lets preflight requests
	// past the JWT authorizer.
	CORS *awsapigatewayv2.CorsPreflightOptions
	// Domain, when set, serves the API on a custom domain as well.
	Domain *Domain
	// Throttle is the default throttling of every route. Default:
	// DefaultThrottle.
	Throttle Throttle
	// RouteThrottles throttles single routes, by route key (RouteKeys).
	RouteThrottles map[string]Throttle
	// EncryptionKey, when set, encrypts the table and every queue with
	// this customer-managed KMS key instead of AWS-owned keys.
	EncryptionKey awskms.IKey
	// PoolsInStack is how many pools, the first of Pools, keep their
	// resources (queue, DLQ, their policies, their alarms: up to 8 per
	// pool) in the stack that holds the construct; the others go, in
	// order, into nested stacks of PoolsPerNestedStack pools each
	// (Parkinglot.PoolStacks), so that no stack exceeds CloudFormation's
	// 500 resources, which synthesis refuses. Default:
	// DefaultPoolsInStack.
	//
	// A pool's place in Pools decides its stack: add pools at the end. A
	// pool whose stack changes (a pool removed or inserted before it, or
	// PoolsInStack changed, across a boundary) would move its named queues
	// to another stack, which CloudFormation refuses (the queue already
	// exists): the update fails and rolls back. Lower it before the first
	// deployment when the stack holds many resources of its own.
	PoolsInStack int
}

// DefaultPoolsInStack is Props.PoolsInStack's default: 50 pools take up to
// 400 resources, which with the construct's other resources (about 75)
// stays within 500, and a deployment made when every pool was in the
// stack (at most about 52 fit) keeps its pools where they are up to 50.
const DefaultPoolsInStack = 50

// PoolsPerNestedStack is how many pools each nested stack holds: up to 320
// resources, and 3 outputs per pool (the queue's ARN for the grants, the
// queue's and the DLQ's names for the dashboard) of CloudFormation's 200.
const PoolsPerNestedStack = 40

// RouteKeys returns the API's route keys ("METHOD /path"), which
// Props.RouteThrottles takes.
func RouteKeys() []string {
	var out []string
	for _, r := range lambdaapi.Routes() {
		out = append(out, r.Key())
	}
	return out
}

// WithDefaults returns a copy of p with zero fields set to their defaults.
func (p Props) WithDefaults() Props {
	if p.Name == "" {
		p.Name = DefaultName
	}
	if p.TenantClaim == "" {
		p.TenantClaim = lambdaapi.DefaultTenantClaim
	}
	if p.LambdaDir == "" {
		p.LambdaDir = DefaultLambdaDir
	}
	if p.QueuePrefix == "" {
		p.QueuePrefix = DefaultQueuePrefix
	}
	if p.Throttle == (Throttle{}) {
		p.Throttle = DefaultThrottle
	}
	if p.PoolsInStack == 0 {
		p.PoolsInStack = DefaultPoolsInStack
	}
	pools := make([]Pool, len(p.Pools))
	for i, pool := range p.Pools {
		if pool.DefaultMaxWait == 0 {
			pool.DefaultMaxWait = 10 * time.Minute
		}
		if pool.RunTimeout == 0 {
			pool.RunTimeout = 5 * time.Minute
		}
		if pool.Executor == "" && pool.Target != nil {
			pool.Executor = ExecutorPush
		}
		pools[i] = pool
	}
	p.Pools = pools
	fns := make(map[Function]FunctionProps, len(Functions))
	for _, f := range Functions {
		fp, d := p.Functions[f], DefaultFunctionProps(f)
		if fp.MemoryMB == 0 {
			fp.MemoryMB = d.MemoryMB
		}
		if fp.Timeout == 0 {
			fp.Timeout = d.Timeout
		}
		if fp.ReservedConcurrency == 0 {
			fp.ReservedConcurrency = d.ReservedConcurrency
		}
		fns[f] = fp
	}
	for f, fp := range p.Functions {
		if _, ok := fns[f]; !ok {
			fns[f] = fp // Validate refuses it
		}
	}
	p.Functions = fns
	return p
}

// Validate returns an error naming the first bad field of p, completed
// with its defaults. It also checks that every function's zip exists.
func (p Props) Validate() error {
	switch {
	case len(p.Pools) == 0:
		return errors.New("parkinglot: Pools: at least one pool is required")
	case !strings.HasPrefix(p.JWTIssuer, "https://"):
		return fmt.Errorf("parkinglot: JWTIssuer: must be an https URL, got %q", p.JWTIssuer)
	case len(p.JWTAudience) == 0:
		return errors.New("parkinglot: JWTAudience: at least one audience is required")
	case p.TenantClaim == "":
		return errors.New("parkinglot: TenantClaim: must not be empty")
	case len(p.QueuePrefix) > 40 || !queueChars(p.QueuePrefix):
		return fmt.Errorf("parkinglot: QueuePrefix: must be at most 40 characters of [A-Za-z0-9_-], got %q", p.QueuePrefix)
	case p.Domain != nil && (p.Domain.Name == "" || p.Domain.Certificate == nil):
		return errors.New("parkinglot: Domain: needs both a Name and a Certificate")
	case p.PoolsInStack < 1:
		// Synthesis refuses a stack of more than 500 resources.
		return fmt.Errorf("parkinglot: PoolsInStack: must be positive, got %d", p.PoolsInStack)
	}
	for i, a := range p.JWTAudience {
		if a == "" {
			return fmt.Errorf("parkinglot: JWTAudience[%d]: must not be empty", i)
		}
	}
	if err := p.validatePools(); err != nil {
		return err
	}
	for src, tenant := range p.EventSources {
		switch {
		case src == "" || strings.ContainsAny(src, "=,") || strings.HasPrefix(src, "aws."):
			return fmt.Errorf("parkinglot: EventSources: source %q must be a producer's own source, without '=' or ','", src)
		case tenant == "" || strings.ContainsAny(tenant, "=,"):
			return fmt.Errorf("parkinglot: EventSources[%q]: tenant %q must be non-empty, without '=' or ','", src, tenant)
		}
	}
	if err := p.validateFunctions(); err != nil {
		return err
	}
	if err := p.validateEnvironment(); err != nil {
		return err
	}
	if err := validThrottle("Throttle", p.Throttle); err != nil {
		return err
	}
	keys := RouteKeys()
	for k, t := range p.RouteThrottles {
		if !slices.Contains(keys, k) {
			return fmt.Errorf("parkinglot: RouteThrottles[%q]: not a route; routes: %s", k, strings.Join(keys, ", "))
		}
		if err := validThrottle(fmt.Sprintf("RouteThrottles[%q]", k), t); err != nil {
			return err
		}
	}
	for _, f := range Functions {
		if err := checkZip(p.Zip(f)); err != nil {
			return fmt.Errorf("parkinglot: LambdaDir: %w (build the zips with make lambdas)", err)
		}
	}
	return nil
}

func (p Props) validatePools() error {
	names := map[string]string{}
	for i, pool := range p.Pools {
		if err := pool.core().Validate(); err != nil {
			return fmt.Errorf("parkinglot: Pools[%d]: %w", i, err)
		}
		switch {
		case pool.Pushes() && pool.Target == nil:
			return fmt.Errorf("parkinglot: Pools[%d].Target: executor push needs a target (LambdaTarget, HTTPTarget or SQSTarget)", i)
		case !pool.Pushes() && pool.Target != nil:
			return fmt.Errorf("parkinglot: Pools[%d].Executor: a pool with a Target pushes: leave Executor empty or set ExecutorPush, got %q", i, pool.Executor)
		case pool.Target != nil:
			if err := pool.Target.target().validate(i, pool.Name); err != nil {
				return err
			}
		}
		for _, n := range []struct{ name, what string }{
			{awsstore.QueueName(p.QueuePrefix, pool.Name), "pool " + pool.Name + "'s queue"},
			{DLQName(p.QueuePrefix, pool.Name), "pool " + pool.Name + "'s DLQ"},
		} {
			if other, dup := names[n.name]; dup {
				return fmt.Errorf("parkinglot: Pools: %s and %s would both be named %s; rename a pool", other, n.what, n.name)
			}
			names[n.name] = n.what
		}
	}
	return nil
}

func (p Props) validateFunctions() error {
	for f, fp := range p.Functions {
		if !slices.Contains(Functions, f) {
			return fmt.Errorf("parkinglot: Functions[%q]: not a function (submit, dispatch, expire, mailbox)", f)
		}
		maxTimeout := 15 * time.Minute
		if f != Expire {
			maxTimeout = 30 * time.Second // API Gateway's integration timeout
		}
		switch {
		case fp.MemoryMB < 128 || fp.MemoryMB > 10240:
			return fmt.Errorf("parkinglot: Functions[%s].MemoryMB: must be 128-10240, got %d", f, fp.MemoryMB)
		case fp.Timeout%time.Second != 0 || fp.Timeout > maxTimeout || fp.Timeout < time.Second:
			return fmt.Errorf("parkinglot: Functions[%s].Timeout: must be whole seconds, 1s-%s, got %s", f, maxTimeout, fp.Timeout)
		case f == Expire && fp.Timeout <= sweepFor:
			return fmt.Errorf("parkinglot: Functions[expire].Timeout: must exceed the %s the sweep runs for, got %s", sweepFor, fp.Timeout)
		case fp.ReservedConcurrency < Unreserved:
			return fmt.Errorf("parkinglot: Functions[%s].ReservedConcurrency: must be positive or Unreserved, got %d", f, fp.ReservedConcurrency)
		}
	}
	return nil
}

func validThrottle(field string, t Throttle) error {
	if t.RateLimit <= 0 || t.BurstLimit <= 0 {
		return fmt.Errorf("parkinglot: %s: RateLimit and BurstLimit must be positive, got %v", field, t)
	}
	return nil
}

// core is the pool as pkg/core configures it.
func (p Pool) core() core.PoolConfig {
	return core.PoolConfig{Name: p.Name, Capacity: p.Capacity, MaxParked: p.MaxParked,
		DefaultMaxWait: p.DefaultMaxWait, RunTimeout: p.RunTimeout, SlotShards: p.SlotShards, Executor: core.Executor(p.Executor)}
}

// Zip is the path of function f's zip.
func (p Props) Zip(f Function) string {
	return filepath.Join(p.LambdaDir, string(f)+".zip")
}

// checkZip checks that path is a zip with an executable bootstrap at its
// root, which the provided.al2023 runtime runs.
func checkZip(path string) error {
	z, err := zip.OpenReader(path)
	if err != nil {
		return err
	}
	defer z.Close()
	for _, f := range z.File {
		if f.Name == "bootstrap" {
			if f.Mode()&0o111 == 0 && f.Mode() != 0 {
				return fmt.Errorf("%s: bootstrap is not executable", path)
			}
			return nil
		}
	}
	return fmt.Errorf("%s: no bootstrap at the zip's root", path)
}

func queueChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
