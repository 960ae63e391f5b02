package stack

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/parkinglot/parkinglot/internal/lambdaapi"
)

// synth is the stack synthesized once for the whole test binary.
var synth struct {
	props     Props
	stack     *Stack
	template  map[string]any
	path      string // the template file
	outdir    string
	findings  []Finding
	unchecked []Finding // findings of the same stack without its suppressions
}

// testPools is the pools file of the synthesized stack.
const testPools = `pools:
  - name: gpu
    capacity: 4
    maxParked: 1000
    defaultMaxWait: 10m
    runTimeout: 5m
  - name: batch.jobs
    capacity: 1
    maxParked: 5
    defaultMaxWait: 1h
  - name: cpu
    capacity: 16
    maxParked: 0
  - name: render
    capacity: 1
    maxParked: 5
    executor: pull
`

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// jsii's Node host warns on stderr about Node 20's end of life.
	os.Setenv("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
	defer jsii.Close()
	dir, err := os.MkdirTemp("", "parkinglot-cdk-test-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if err := setup(dir); err != nil {
		fmt.Fprintln(os.Stderr, "synthesis failed:", err)
		return 1
	}
	return m.Run()
}

// setup synthesizes the stack, with cdk-nag's checks, into dir/out, and the
// same stack without its suppressions into dir/unchecked.
func setup(dir string) error {
	pools := filepath.Join(dir, "pools.yaml")
	if err := os.WriteFile(pools, []byte(testPools), 0o600); err != nil {
		return err
	}
	ps, err := LoadPools(pools)
	if err != nil {
		return err
	}
	zips, err := lambdaZips(dir)
	if err != nil {
		return err
	}
	synth.props = Props{
		Pools: ps, JWTIssuer: "https://issuer.example.com/", JWTAudience: []string{"parkinglot", "cli"},
		TenantClaim: "org", LambdaDir: zips, QueuePrefix: "pl-test-",
		EventSources: map[string]string{"ci.runner": "ci", "billing.app": "acme"},
	}.WithDefaults()
	synth.outdir = filepath.Join(dir, "out")
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(synth.outdir)})
	if synth.stack, err = New(app, synth.props); err != nil {
		return err
	}
	Checks(app)
	asm := app.Synth(nil)
	synth.findings = Findings(asm)
	synth.path = *asm.GetStackArtifact(synth.stack.Stack.ArtifactId()).TemplateFullPath()
	b, err := os.ReadFile(synth.path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &synth.template); err != nil {
		return err
	}

	// The same stack with its suppressions ignored: the checks must find
	// what the suppressions hide, or the nag test would pass vacuously.
	app2 := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(filepath.Join(dir, "unchecked"))})
	if _, err := New(app2, synth.props); err != nil {
		return err
	}
	ChecksIgnoringSuppressions(app2)
	synth.unchecked = Findings(app2.Synth(nil))
	return nil
}

// lambdaZips returns the directory of the functions' zips: dist/lambda when
// `make lambdas` has built all four, else placeholder zips written to dir
// for synthesis only (the template depends on a zip's hash, not its
// contents). Each placeholder differs, so each function gets its own asset.
func lambdaZips(dir string) (string, error) {
	dist := filepath.Join("..", "..", "..", "dist", "lambda")
	all := true
	for _, f := range lambdaapi.Functions {
		if _, err := os.Stat(filepath.Join(dist, string(f)+".zip")); err != nil {
			all = false
		}
	}
	if all {
		return dist, nil
	}
	zips := filepath.Join(dir, "zips")
	if err := os.MkdirAll(zips, 0o700); err != nil {
		return "", err
	}
	for _, f := range lambdaapi.Functions {
		if err := placeholderZip(filepath.Join(zips, string(f)+".zip"), string(f)); err != nil {
			return "", err
		}
	}
	return zips, nil
}

func placeholderZip(path, name string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	z := zip.NewWriter(f)
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, Modified: time.Unix(0, 0)}
	h.SetMode(0o755)
	w, err := z.CreateHeader(h)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "#!/bin/sh\n# placeholder for %s\nexit 1\n", name); err != nil {
		return err
	}
	return z.Close()
}
