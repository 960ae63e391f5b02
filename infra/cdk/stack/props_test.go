package stack

import (
	"archive/zip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/infra/cdk/parkinglot"
	"github.com/parkinglot/parkinglot/internal/config"
	"github.com/parkinglot/parkinglot/internal/lambdaapi"
)

func TestPropsValidateNamesTheField(t *testing.T) {
	t.Parallel()
	good := synth.props
	require.NoError(t, good.Validate())
	for field, edit := range map[string]func(*Props){
		"Pools":        func(p *Props) { p.Pools = nil },
		"JWTIssuer":    func(p *Props) { p.JWTIssuer = "http://issuer.example.com/" },
		"JWTAudience":  func(p *Props) { p.JWTAudience = nil },
		"JWTAudience[": func(p *Props) { p.JWTAudience = []string{"a", ""} },
		"QueuePrefix":  func(p *Props) { p.QueuePrefix = "bad.prefix" },
		"LambdaDir":    func(p *Props) { p.LambdaDir = t.TempDir() },
		"Pools: pool gpu's DLQ": func(p *Props) {
			p.Pools = append(slices.Clone(p.Pools), config.Pool{Name: "dlq-gpu", Capacity: 1})
		},
		"EventSources": func(p *Props) { p.EventSources = map[string]string{"aws.s3": "acme"} },
		"EventSources[": func(p *Props) {
			p.EventSources = map[string]string{"app": ""}
		},
	} {
		p := good
		edit(&p)
		require.ErrorContains(t, p.Validate(), "parkinglot: "+field, field)
	}
	// A push pool's target is a CDK resource: the pools file cannot name it.
	p := good
	p.Pools = append(slices.Clone(p.Pools), config.Pool{Name: "hooks", Capacity: 1, Executor: "push",
		Target: &config.Target{Type: "http", URL: "https://hooks.example.com/"}})
	require.ErrorContains(t, p.Validate(), "stack: pools[4] (hooks): push pools are not deployed from the pools file")
	p = good
	p.LambdaDir = zipsWithoutBootstrap(t)
	require.ErrorContains(t, p.Validate(), "no bootstrap at the zip's root")
}

func TestPropsFromContext(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pools := filepath.Join(dir, "config.yaml")
	// A whole server configuration: only its pools block is deployed.
	require.NoError(t, os.WriteFile(pools, []byte("listen: 127.0.0.1:9000\n"+testPools), 0o600))
	ctx := map[string]any{
		CtxPoolsFile: pools, CtxJWTIssuer: "https://issuer.example.com/", CtxJWTAudience: " a, b ,",
		CtxEventSources: "x.app=acme, y.app=globex", CtxQueuePrefix: "pl-",
	}
	app := awscdk.NewApp(&awscdk.AppProps{Context: &ctx})
	p, err := PropsFromContext(app.Node())
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, p.JWTAudience)
	require.Equal(t, map[string]string{"x.app": "acme", "y.app": "globex"}, p.EventSources)
	require.Equal(t, synth.props.Pools, p.Pools)
	require.Equal(t, "pl-", p.QueuePrefix)
	p = p.WithDefaults()
	require.Equal(t, DefaultStackName, p.StackName)
	require.Equal(t, "tenant", p.TenantClaim)
	require.Equal(t, parkinglot.DefaultPoolsInStack, p.PoolsInStack)

	// poolsInStack: a positive integer, from -c (a string) or cdk.json (a
	// number), handed to the construct.
	for _, v := range []any{"60", " 2 ", 1, 75.0} {
		ctx[CtxPoolsInStack] = v
		p, err := PropsFromContext(awscdk.NewApp(&awscdk.AppProps{Context: &ctx}).Node())
		require.NoError(t, err, "%v", v)
		want := map[any]int{"60": 60, " 2 ": 2, 1: 1, 75.0: 75}[v]
		require.Equal(t, want, p.PoolsInStack)
		p.LambdaDir = synth.props.LambdaDir
		cp, err := p.WithDefaults().Construct()
		require.NoError(t, err)
		require.Equal(t, want, cp.PoolsInStack)
	}
	for _, v := range []any{"0", "-3", "fifty", "1.5", 2.5, "60 pools"} {
		ctx[CtxPoolsInStack] = v
		_, err := PropsFromContext(awscdk.NewApp(&awscdk.AppProps{Context: &ctx}).Node())
		require.ErrorContains(t, err, "stack: context poolsInStack: must be a positive integer", "%v", v)
	}
	delete(ctx, CtxPoolsInStack)

	delete(ctx, CtxPoolsFile)
	_, err = PropsFromContext(awscdk.NewApp(&awscdk.AppProps{Context: &ctx}).Node())
	require.ErrorContains(t, err, CtxPoolsFile)
}

func TestLoadPoolsNamesTheField(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "pools.yaml")
	require.NoError(t, os.WriteFile(path, []byte("pools:\n  - name: gpu\n    capacity: 0\n"), 0o600))
	_, err := LoadPools(path)
	require.ErrorContains(t, err, "pools[0].capacity")
}

// zipsWithoutBootstrap writes the four zips, each without a bootstrap.
func zipsWithoutBootstrap(t *testing.T) string {
	dir := t.TempDir()
	for _, f := range lambdaapi.Functions {
		out, err := os.Create(filepath.Join(dir, string(f)+".zip"))
		require.NoError(t, err)
		z := zip.NewWriter(out)
		_, err = z.Create("main")
		require.NoError(t, err)
		require.NoError(t, z.Close())
		require.NoError(t, out.Close())
	}
	return dir
}
