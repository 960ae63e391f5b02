package parkinglot

import (
	"strings"

	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// suppression is one accepted cdk-nag finding and why.
type suppression struct {
	id, reason string
	appliesTo  []string
}

// basicExecution is the managed policy Lambda's default role carries.
const basicExecution = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"

// suppress records, with its reason, every AwsSolutions finding that the
// construct accepts on its own resources. Each is scoped to the constructs
// and the exact policy, action or route it concerns (appliesTo), so that a
// new finding is still reported.
func (s *Parkinglot) suppress() {
	fn := []suppression{{id: "AwsSolutions-IAM4", appliesTo: []string{basicExecution},
		reason: "AWSLambdaBasicExecutionRole grants only logs:CreateLogGroup, logs:CreateLogStream and " +
			"logs:PutLogEvents, which every function needs to write its logs"}}
	if s.props.EncryptionKey != nil || s.targetKeys() {
		fn = append(fn, suppression{id: "AwsSolutions-IAM5", appliesTo: []string{"Action::kms:ReEncrypt*", "Action::kms:GenerateDataKey*"},
			reason: "CDK's encrypt-decrypt grant on a customer-managed key, the key alone (that of the table and " +
				"queues, or an sqs push target's queue's): DynamoDB and SQS generate and re-encrypt data keys under " +
				"it on the functions' behalf"})
	}
	for _, f := range Functions {
		cdknag.NagSuppressions_AddResourceSuppressions(s.Functions[f], packs(fn), jsii.Bool(true))
	}
	for _, r := range s.preflight {
		cdknag.NagSuppressions_AddResourceSuppressions(r, packs([]suppression{{id: "AwsSolutions-APIG4",
			reason: "the CORS preflight route (OPTIONS " + corsRoute + ") has no authorizer, as browsers send " +
				"preflight requests without credentials; API Gateway answers them from the CORS configuration"}}), jsii.Bool(true))
	}
}

func packs(ss []suppression) *[]*cdknag.NagPackSuppression {
	out := make([]*cdknag.NagPackSuppression, 0, len(ss))
	for _, x := range ss {
		n := &cdknag.NagPackSuppression{Id: jsii.String(x.id), Reason: jsii.String(x.reason)}
		if len(x.appliesTo) > 0 {
			var at []any
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
