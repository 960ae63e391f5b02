package stack

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// Checks applies cdk-nag's AwsSolutions rules to every stack of scope.
// Their unsuppressed findings become error and warning annotations, which
// fail `cdk synth`. The construct suppresses, each with its reason, the
// findings it accepts.
func Checks(scope constructs.IConstruct) {
	awscdk.Aspects_Of(scope).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
}

// ChecksIgnoringSuppressions is Checks with every suppression ignored: the
// findings the suppressions hide are reported too.
func ChecksIgnoringSuppressions(scope constructs.IConstruct) {
	awscdk.Aspects_Of(scope).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{
		Verbose:                    jsii.Bool(true),
		SuppressionIgnoreCondition: cdknag.NewSuppressionIgnoreAlways(jsii.String("checking what the suppressions hide")),
	}), nil)
}

// Finding is an error or warning annotation of a synthesized stack, such
// as an unsuppressed cdk-nag finding.
type Finding struct {
	Stack, Path, Level, Message string
}

func (f Finding) String() string { return f.Level + " " + f.Path + ": " + f.Message }

// Findings returns the error and warning annotations of every stack in
// asm.
func Findings(asm cxapi.CloudAssembly) []Finding {
	var out []Finding
	for _, st := range *asm.Stacks() {
		for _, m := range *st.Messages() {
			if m.Level != cxapi.SynthesisMessageLevel_ERROR && m.Level != cxapi.SynthesisMessageLevel_WARNING {
				continue
			}
			msg := ""
			if m.Entry != nil && m.Entry.Data != nil {
				msg = fmt.Sprint(m.Entry.Data)
			}
			out = append(out, Finding{Stack: *st.StackName(), Path: *m.Id, Level: strings.ToLower(string(m.Level)), Message: msg})
		}
	}
	return out
}
