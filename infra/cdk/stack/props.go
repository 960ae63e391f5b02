package stack

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/constructs-go/constructs/v10"

	"github.com/parkinglot/parkinglot/infra/cdk/parkinglot"
	"github.com/parkinglot/parkinglot/internal/config"
)

// DefaultStackName is the stack's name when Props.StackName is empty.
const DefaultStackName = "Parkinglot"

// Context keys that PropsFromContext reads (cdk -c key=value).
const (
	CtxPoolsFile    = "poolsFile"    // server configuration file whose pools block is deployed (required)
	CtxJWTIssuer    = "jwtIssuer"    // JWT issuer URL (required)
	CtxJWTAudience  = "jwtAudience"  // comma-separated audiences (required)
	CtxTenantClaim  = "tenantClaim"  // claim naming the tenant (default "tenant")
	CtxLambdaDir    = "lambdaDir"    // directory holding submit.zip, dispatch.zip, expire.zip, mailbox.zip
	CtxQueuePrefix  = "queuePrefix"  // prefix of the parking queues' names
	CtxStackName    = "stackName"    // CloudFormation stack name
	CtxAlarmEmail   = "alarmEmail"   // optional address subscribed to the alarm topic
	CtxEventSources = "eventSources" // "source=tenant,...": EventBridge sources whose events submit, and for whom
	CtxPoolsInStack = "poolsInStack" // pools kept in the stack before nested stacks take the rest (default 50)
)

// Props configures the stack: the context's settings, with the pools as
// the configuration file has them. Zero fields take the construct's
// defaults (parkinglot.Props).
type Props struct {
	// StackName is the CloudFormation stack name, and the construct's
	// Name. Default: Parkinglot.
	StackName string
	// Pools are the pools deployed. At least one.
	Pools        []config.Pool
	JWTIssuer    string
	JWTAudience  []string
	TenantClaim  string
	LambdaDir    string
	QueuePrefix  string
	AlarmEmail   string
	EventSources map[string]string
	// PoolsInStack is the construct's PoolsInStack: how many pools, the
	// first of Pools, stay in the stack; nested stacks of 40 take the
	// others. Default: parkinglot.DefaultPoolsInStack.
	PoolsInStack int
}

// WithDefaults returns a copy of p with zero fields set to their defaults.
func (p Props) WithDefaults() Props {
	if p.StackName == "" {
		p.StackName = DefaultStackName
	}
	d := parkinglot.Props{TenantClaim: p.TenantClaim, LambdaDir: p.LambdaDir, QueuePrefix: p.QueuePrefix,
		PoolsInStack: p.PoolsInStack}.WithDefaults()
	p.TenantClaim, p.LambdaDir, p.QueuePrefix = d.TenantClaim, d.LambdaDir, d.QueuePrefix
	p.PoolsInStack = d.PoolsInStack
	return p
}

// Construct returns the construct's props for p, completed with their
// defaults and validated.
func (p Props) Construct() (parkinglot.Props, error) {
	pools := make([]parkinglot.Pool, len(p.Pools))
	for i, c := range p.Pools {
		if c.Target != nil || c.Executor == string(parkinglot.ExecutorPush) {
			// A target in the file names its function, queue or secret
			// as the server reads them (an inline or environment secret),
			// not as CDK resources: embed the construct with
			// parkinglot.Pool.Target instead.
			return parkinglot.Props{}, fmt.Errorf("stack: pools[%d] (%s): push pools are not deployed from the pools file; "+
				"embed the construct (parkinglot.New) with Pool.Target", i, c.Name)
		}
		pools[i] = parkinglot.Pool{Name: c.Name, Capacity: c.Capacity, MaxParked: c.MaxParked,
			DefaultMaxWait: c.DefaultMaxWait, RunTimeout: c.RunTimeout, SlotShards: c.SlotShards,
			Executor: parkinglot.Executor(c.Executor)}
	}
	cp := parkinglot.Props{
		Name: p.StackName, Pools: pools, JWTIssuer: p.JWTIssuer, JWTAudience: p.JWTAudience,
		TenantClaim: p.TenantClaim, LambdaDir: p.LambdaDir, QueuePrefix: p.QueuePrefix,
		AlarmEmail: p.AlarmEmail, EventSources: p.EventSources, PoolsInStack: p.PoolsInStack,
	}.WithDefaults()
	return cp, cp.Validate()
}

// Validate returns an error naming the first bad field (the construct's
// field, see parkinglot.Props.Validate).
func (p Props) Validate() error {
	_, err := p.WithDefaults().Construct()
	return err
}

// PropsFromContext reads Props from the CDK context of node (cdk -c
// key=value, cdk.json, or the app's own context), loading the pools from
// the configuration file named by poolsFile.
func PropsFromContext(node constructs.Node) (Props, error) {
	get := func(key string) string {
		v := node.TryGetContext(&key)
		if v == nil {
			return ""
		}
		if s, ok := v.(string); ok {
			return s
		}
		return fmt.Sprint(v)
	}
	p := Props{
		StackName:   get(CtxStackName),
		JWTIssuer:   get(CtxJWTIssuer),
		TenantClaim: get(CtxTenantClaim),
		LambdaDir:   get(CtxLambdaDir),
		QueuePrefix: get(CtxQueuePrefix),
		AlarmEmail:  get(CtxAlarmEmail),
	}
	for _, a := range strings.Split(get(CtxJWTAudience), ",") {
		if a = strings.TrimSpace(a); a != "" {
			p.JWTAudience = append(p.JWTAudience, a)
		}
	}
	for _, kv := range strings.Split(get(CtxEventSources), ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		src, tenant, ok := strings.Cut(kv, "=")
		if !ok {
			return Props{}, fmt.Errorf("stack: context %s: %q is not source=tenant", CtxEventSources, kv)
		}
		if p.EventSources == nil {
			p.EventSources = map[string]string{}
		}
		p.EventSources[strings.TrimSpace(src)] = strings.TrimSpace(tenant)
	}
	if v := get(CtxPoolsInStack); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 {
			return Props{}, fmt.Errorf("stack: context %s: must be a positive integer (pools kept in the stack), got %q", CtxPoolsInStack, v)
		}
		p.PoolsInStack = n
	}
	file := get(CtxPoolsFile)
	if file == "" {
		return Props{}, fmt.Errorf("stack: context %s is required (a server configuration file with a pools block)", CtxPoolsFile)
	}
	pools, err := LoadPools(file)
	if err != nil {
		return Props{}, err
	}
	p.Pools = pools
	return p, nil
}

// LoadPools reads the pools block of the server configuration file at
// path, parsed and validated as `parkinglot serve --config` does.
func LoadPools(path string) ([]config.Pool, error) {
	c, err := config.Load(path)
	if err != nil {
		return nil, fmt.Errorf("stack: pools: %w", err)
	}
	return c.Pools, nil
}
