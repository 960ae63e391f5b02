package parkinglot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/parkinglot/parkinglot/internal/awsconfig"
	"github.com/parkinglot/parkinglot/internal/lambdaapi"
)

// Lambda's limit on a function's environment, and what the references in
// it, unresolved at synthesis, are counted as when the construct checks
// it.
const (
	// lambdaEnvLimit is Lambda's limit on a function's environment: 4 KB,
	// which Lambda measures on the variables as a JSON object, keys and
	// values ({"KEY":"value",...}: its error shows that "string measured").
	lambdaEnvLimit = 4096
	// maxTableName is the longest DynamoDB table name: PARKINGLOT_TABLE's
	// value at its longest.
	maxTableName = 255
	// refBytes is what a target's reference (a function's ARN, a queue's
	// URL, a secret's ARN) is counted as, unresolved: CDK's own estimate
	// of an ARN's length, which the ARNs and URLs of a function or queue
	// of 64 or 80 characters stay within.
	refBytes = 150
)

// same is a reference as it is.
func same(s string) string { return s }

// pushes reports whether any pool pushes.
func (p Props) pushes() bool {
	for _, pool := range p.Pools {
		if pool.Pushes() {
			return true
		}
	}
	return false
}

// environment is function f's environment (lambdaapi.LoadEnv reads it),
// with table as the table's name and each target's reference as ref makes
// it: the table, the queue prefix, the tenant claim, the push pools'
// targets (submit, dispatch and expire push) and expire's sweep cadence.
// The pools are not in it: they are in the table (PoolsResource), so that
// the environment grows with the push pools only, within Lambda's 4 KB
// (Validate checks it).
func (p Props) environment(f Function, table string, ref func(string) string) map[string]string {
	env := map[string]string{
		awsconfig.EnvTable:       table,
		awsconfig.EnvQueuePrefix: p.QueuePrefix,
		lambdaapi.EnvTenantClaim: p.TenantClaim,
		lambdaapi.EnvNamespace:   MetricsNamespace,
	}
	if f != Mailbox && p.pushes() {
		env[lambdaapi.EnvTargets] = targetsJSON(p.Pools, ref)
	}
	if f == Submit && len(p.EventSources) > 0 {
		var kv []string
		for _, src := range sortedKeys(p.EventSources) {
			kv = append(kv, src+"="+p.EventSources[src])
		}
		env[lambdaapi.EnvEventSources] = strings.Join(kv, ",")
	}
	if f == Expire {
		env[lambdaapi.EnvSweepEvery] = sweepEvery.String()
		env[lambdaapi.EnvSweepFor] = sweepFor.String()
	}
	return env
}

// envSize is the size of function f's environment as Lambda measures it,
// once deployed: the table's name at its longest, each target's reference
// counted as refBytes.
func (p Props) envSize(f Function) (total int, vars map[string]int) {
	env := p.environment(f, strings.Repeat("t", maxTableName), func(s string) string {
		if *awscdk.Token_IsUnresolved(jsii.String(s)) {
			return strings.Repeat("r", refBytes)
		}
		return s
	})
	vars = map[string]int{}
	for k, v := range env {
		vars[k] = jsonLen(map[string]string{k: v}) - 2 // without the braces
	}
	return jsonLen(env), vars
}

// jsonLen is v's length as JSON, without HTML escapes.
func jsonLen(v any) int {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err) // strings: cannot fail
	}
	return b.Len() - 1 // Encode's newline
}

// validateEnvironment checks that every function's environment, once
// deployed, stays within Lambda's 4 KB: the push pools' targets make it
// grow, and Lambda refuses it only at deployment.
func (p Props) validateEnvironment() error {
	for _, f := range Functions {
		total, vars := p.envSize(f)
		if total <= lambdaEnvLimit {
			continue
		}
		push := 0
		for _, pool := range p.Pools {
			if pool.Target != nil {
				push++
			}
		}
		what := fmt.Sprintf("%s (the targets of %d push pools, each function's ARN, queue's URL or secret's ARN counted as %d bytes) takes %d",
			lambdaapi.EnvTargets, push, refBytes, vars[lambdaapi.EnvTargets])
		if n, ok := vars[lambdaapi.EnvEventSources]; ok {
			what += fmt.Sprintf(", %s %d", lambdaapi.EnvEventSources, n)
		}
		return fmt.Errorf("parkinglot: Pools: function %s's environment would take about %d bytes once deployed, "+
			"over Lambda's limit of %d bytes (4 KB, keys and values of every variable): %s; "+
			"deploy fewer push pools with this construct, or shorten their names and URLs",
			f, total, lambdaEnvLimit, what)
	}
	return nil
}
