package stack

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/config"
	"github.com/parkinglot/parkinglot/internal/lambdaapi"
)

// maxTableName is the longest DynamoDB table name: the bound of the
// environment's one reference, PARKINGLOT_TABLE, once resolved.
const maxTableName = 255

// lambdaEnvLimit is Lambda's limit on a function's environment: the keys
// and values of its variables together, at most 4 KB.
const lambdaEnvLimit = 4096

// manyPools is about the most pools a stack holds: CloudFormation takes
// at most 500 resources per stack, the stack has about 75 besides its
// pools, and each pool brings up to 8 (its queue and DLQ, their two queue
// policies, and up to four alarms).
const manyPools = 52

// TestManyPools synthesizes the stack with manyPools pools (one on 8 slot
// shards): every function's environment is the one of the 4-pool stack,
// within Lambda's 4 KB, the pools custom resource carries every pool with
// every field, and cfn-lint finds no error.
func TestManyPools(t *testing.T) {
	pools := make([]config.Pool, manyPools)
	for i := range pools {
		pools[i] = config.Pool{Name: fmt.Sprintf("pool-with-a-longish-name-%03d", i), Capacity: 1 + i%16, MaxParked: 1000 * i,
			DefaultMaxWait: time.Duration(1+i%30) * time.Minute, RunTimeout: time.Duration(1+i%10) * time.Minute,
			Executor: []string{"", "pull", "permit"}[i%3]}
	}
	pools[7].Capacity, pools[7].SlotShards = 64, 8
	props := synth.props
	props.StackName, props.Pools = "ParkinglotMany", pools
	dir := t.TempDir()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(dir)})
	st, err := New(app, props)
	require.NoError(t, err)
	asm := app.Synth(nil)
	path := *asm.GetStackArtifact(st.Stack.ArtifactId()).TemplateFullPath()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var tpl struct {
		Resources map[string]struct {
			Type       string
			Properties map[string]any
		}
	}
	require.NoError(t, json.Unmarshal(b, &tpl))

	fns := 0
	for id, r := range tpl.Resources {
		if r.Type != "AWS::Lambda::Function" {
			continue
		}
		fns++
		env := r.Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
		f := lambdaapi.Function(strings.TrimPrefix(r.Properties["Description"].(string), "Parkinglot "))
		four := byProp(t, "AWS::Lambda::Function", "Description", "Parkinglot "+string(f)).Props["Environment"].(map[string]any)["Variables"]
		require.Equal(t, canon(t, four), canon(t, env), "%s: the same environment with 4 pools and with %d", f, len(pools))
		size := 0
		for k, v := range env {
			size += len(k)
			if s, ok := v.(string); ok {
				size += len(s)
			} else {
				require.Equal(t, "PARKINGLOT_TABLE", k, "%s: the only reference is the table's name", id)
				size += maxTableName
			}
		}
		t.Logf("%s: environment of at most %d bytes with %d pools", id, size, len(pools))
		require.Less(t, size, lambdaEnvLimit, id)
	}
	require.Equal(t, 4, fns)

	var crs []map[string]any
	for _, r := range tpl.Resources {
		if r.Type == lambdaapi.PoolsResourceType {
			crs = append(crs, r.Properties)
		}
	}
	require.Len(t, crs, 1)
	got, err := lambdaapi.ParsePools(crs[0][lambdaapi.PropPools].(string))
	require.NoError(t, err)
	require.Len(t, got, len(pools))
	for i, p := range pools {
		require.Equal(t, p.Core(), got[i])
	}
	require.Equal(t, 8, got[7].SlotShards)
	t.Logf("the pools property: %d bytes; the template: %d bytes, %d resources", len(crs[0][lambdaapi.PropPools].(string)), len(b), len(tpl.Resources))
	require.LessOrEqual(t, len(tpl.Resources), 500, "CloudFormation's limit of resources per stack")

	cfnLintFile(t, filepath.Clean(path))
}
