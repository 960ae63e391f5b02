package stack

import (
	"archive/zip"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/aws/constructs-go/constructs/v10"

	"github.com/parkinglot/parkinglot/internal/config"
	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/pkg/awsstore"
)

// Defaults of Props.
const (
	DefaultStackName   = "Parkinglot"
	DefaultQueuePrefix = "parkinglot-"
	DefaultLambdaDir   = "../../dist/lambda"
)

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
)

// Props configures the stack. Zero fields take the defaults documented on
// each; Validate names the first bad field.
type Props struct {
	// StackName is the CloudFormation stack name. Default: Parkinglot.
	StackName string
	// Pools are the pools deployed: one parking queue each; the functions
	// put them into the table at cold start (lambdaapi.EnvPools). At least
	// one.
	Pools []config.Pool
	// JWTIssuer is the issuer URL the HTTP API's JWT authorizer trusts.
	// Required, https.
	JWTIssuer string
	// JWTAudience lists the accepted audiences ("aud" or "client_id").
	// Required.
	JWTAudience []string
	// TenantClaim names the JWT claim that carries the tenant. Default:
	// lambdaapi.DefaultTenantClaim.
	TenantClaim string
	// LambdaDir holds the functions' zips, NAME.zip with bootstrap at the
	// root (make lambdas). Default: ../../dist/lambda (from infra/cdk).
	LambdaDir string
	// QueuePrefix prefixes the parking queues' names (awsstore.QueueName).
	// Default: parkinglot-.
	QueuePrefix string
	// AlarmEmail, when set, is subscribed to the alarm topic.
	AlarmEmail string
	// EventSources maps EventBridge sources to the tenant each submits
	// for. With any, a rule on the default bus sends their events to
	// submit (lambdaapi.EnvEventSources); none: no EventBridge submissions.
	EventSources map[string]string
}

// WithDefaults returns a copy of p with zero fields set to their defaults.
func (p Props) WithDefaults() Props {
	if p.StackName == "" {
		p.StackName = DefaultStackName
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
	return p
}

// Validate returns an error naming the first bad field. It also checks
// that every function's zip exists.
func (p Props) Validate() error {
	switch {
	case len(p.Pools) == 0:
		return errors.New("stack: Pools: at least one pool is required")
	case !strings.HasPrefix(p.JWTIssuer, "https://"):
		return fmt.Errorf("stack: JWTIssuer: must be an https URL, got %q", p.JWTIssuer)
	case len(p.JWTAudience) == 0:
		return errors.New("stack: JWTAudience: at least one audience is required")
	case p.TenantClaim == "":
		return errors.New("stack: TenantClaim: must not be empty")
	case len(p.QueuePrefix) > 40 || !queueChars(p.QueuePrefix):
		return fmt.Errorf("stack: QueuePrefix: must be at most 40 characters of [A-Za-z0-9_-], got %q", p.QueuePrefix)
	}
	for i, a := range p.JWTAudience {
		if a == "" {
			return fmt.Errorf("stack: JWTAudience[%d]: must not be empty", i)
		}
	}
	names := map[string]string{}
	for _, pool := range p.Pools {
		for _, n := range []struct{ name, what string }{
			{awsstore.QueueName(p.QueuePrefix, pool.Name), "pool " + pool.Name + "'s queue"},
			{DLQName(p.QueuePrefix, pool.Name), "pool " + pool.Name + "'s DLQ"},
		} {
			if other, dup := names[n.name]; dup {
				return fmt.Errorf("stack: Pools: %s and %s would both be named %s; rename a pool", other, n.what, n.name)
			}
			names[n.name] = n.what
		}
	}
	for src, tenant := range p.EventSources {
		switch {
		case src == "" || strings.ContainsAny(src, "=,") || strings.HasPrefix(src, "aws."):
			return fmt.Errorf("stack: EventSources: source %q must be a producer's own source, without '=' or ','", src)
		case tenant == "" || strings.ContainsAny(tenant, "=,"):
			return fmt.Errorf("stack: EventSources[%q]: tenant %q must be non-empty, without '=' or ','", src, tenant)
		}
	}
	for _, f := range lambdaapi.Functions {
		if err := checkZip(p.zip(f)); err != nil {
			return fmt.Errorf("stack: LambdaDir: %w (build the zips with make lambdas)", err)
		}
	}
	return nil
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

func (p Props) zip(f lambdaapi.Function) string {
	return filepath.Join(p.LambdaDir, string(f)+".zip")
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
