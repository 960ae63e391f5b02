// Command cdk is Parkinglot's AWS CDK app: it synthesizes the serverless
// stack (package stack) into cdk.out. Run it through the CDK CLI (cdk.json)
// or directly, with the same context:
//
//	go run . -c poolsFile=pools.yaml -c jwtIssuer=https://issuer.example.com/ -c jwtAudience=parkinglot
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/parkinglot/parkinglot/infra/cdk/stack"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "cdk:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	defer jsii.Close()
	ctx, err := parseContext(args)
	if err != nil {
		return err
	}
	props := &awscdk.AppProps{Context: &ctx}
	if os.Getenv("CDK_OUTDIR") == "" {
		props.Outdir = jsii.String("cdk.out") // run without the CLI
	}
	app := awscdk.NewApp(props)
	sp, err := stack.PropsFromContext(app.Node())
	if err != nil {
		return err
	}
	if _, err := stack.New(app, sp); err != nil {
		return err
	}
	stack.Checks(app)
	asm := app.Synth(nil)
	findings := stack.Findings(asm)
	for _, f := range findings {
		fmt.Fprintln(os.Stderr, f)
	}
	for _, f := range findings {
		if f.Level == "error" {
			return fmt.Errorf("%d findings (see above); fix them or suppress them with a reason in parkinglot/nag.go", len(findings))
		}
	}
	for _, st := range *asm.Stacks() {
		fmt.Println(*st.TemplateFullPath())
	}
	return nil
}

// parseContext reads "-c key=value" (or --context) arguments, for runs
// without the CDK CLI; the CLI passes its context in the environment.
func parseContext(args []string) (map[string]any, error) {
	ctx := map[string]any{}
	for i := 0; i < len(args); i++ {
		if args[i] != "-c" && args[i] != "--context" {
			return nil, fmt.Errorf("unknown argument %q (want -c key=value)", args[i])
		}
		if i+1 == len(args) {
			return nil, fmt.Errorf("%s needs key=value", args[i])
		}
		i++
		k, v, ok := strings.Cut(args[i], "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("context %q: want key=value", args[i])
		}
		ctx[k] = v
	}
	return ctx, nil
}
