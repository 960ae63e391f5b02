package stack

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/parkinglot/parkinglot/internal/lambdaapi"
)

// Checks applies cdk-nag's AwsSolutions rules to every stack of scope.
// Their unsuppressed findings become error and warning annotations, which
// fail `cdk synth`.
func Checks(scope constructs.IConstruct) {
	awscdk.Aspects_Of(scope).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
}

// noSuppressions turns suppress off, for the test that checks that the
// checks do find what the suppressions hide.
var noSuppressions bool

// suppression is one accepted finding and why.
type suppression struct {
	id, reason string
	appliesTo  []string
}

// basicExecution is the managed policy Lambda's default role carries.
const basicExecution = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"

// suppress records, with its reason, every AwsSolutions finding that this
// stack accepts. Each is scoped to the constructs and the exact policy or
// resource it concerns (appliesTo), so that a new finding is still
// reported.
func (s *Stack) suppress() {
	if noSuppressions {
		return
	}
	iam4 := suppression{id: "AwsSolutions-IAM4", appliesTo: []string{basicExecution},
		reason: "AWSLambdaBasicExecutionRole grants only logs:CreateLogGroup, logs:CreateLogStream and " +
			"logs:PutLogEvents, which every function needs to write its logs"}
	indexes := suppression{id: "AwsSolutions-IAM5", appliesTo: []string{`regex:/^Resource::<Table[0-9A-F]+\.Arn>\/index\/\*$/`},
		reason: "the functions query the table's four global secondary indexes (due, unsent, pools, expiry; " +
			"pkg/awsstore/doc.go); index/* is scoped to this table's indexes alone"}
	for _, f := range lambdaapi.Functions {
		cdknag.NagSuppressions_AddResourceSuppressions(s.Functions[f], packs([]suppression{iam4, indexes}), jsii.Bool(true))
	}
}

func packs(ss []suppression) *[]*cdknag.NagPackSuppression {
	out := make([]*cdknag.NagPackSuppression, 0, len(ss))
	for _, x := range ss {
		n := &cdknag.NagPackSuppression{Id: jsii.String(x.id), Reason: jsii.String(x.reason)}
		if len(x.appliesTo) > 0 {
			var at []interface{}
			for _, a := range x.appliesTo {
				if re, ok := strings.CutPrefix(a, "regex:"); ok {
					at = append(at, &cdknag.RegexAppliesTo{Regex: jsii.String(re)})
				} else {
					at = append(at, a)
				}
			}
			n.AppliesTo = &at
		}
		out = append(out, n)
	}
	return &out
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
