package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/parkinglot/parkinglot/infra/cdk/parkinglot"
)

// Stack is the built stack and the construct it holds.
type Stack struct {
	Stack      awscdk.Stack
	Props      Props
	Parkinglot *parkinglot.Parkinglot
}

// constructID is the construct's id in the stack. CDK leaves an id of
// "Default" out of the logical ids of the resources below it, so the
// resources keep the logical ids they had when the stack built them
// itself, and an existing deployment updates them in place.
const constructID = "Default"

// New adds the Parkinglot stack to scope: the construct, named after the
// stack, and the stack's outputs. props is completed with its defaults and
// validated first.
func New(scope constructs.Construct, props Props) (*Stack, error) {
	props = props.WithDefaults()
	cp, err := props.Construct()
	if err != nil {
		return nil, err
	}
	st := awscdk.NewStack(scope, jsii.String(props.StackName), &awscdk.StackProps{
		Description: jsii.String("Parkinglot: parking-lot scheduler on Lambda, DynamoDB and SQS"),
	})
	pl, err := parkinglot.NewChecked(st, constructID, &cp)
	if err != nil {
		return nil, err
	}
	s := &Stack{Stack: st, Props: props, Parkinglot: pl}
	s.outputs()
	return s, nil
}

func (s *Stack) outputs() {
	out := func(id string, v *string, desc string) {
		awscdk.NewCfnOutput(s.Stack, jsii.String(id), &awscdk.CfnOutputProps{Value: v, Description: jsii.String(desc)})
	}
	pl := s.Parkinglot
	out("ApiUrl", pl.URL(), "HTTP API v1 base URL")
	out("TableName", pl.Table.TableName(), "DynamoDB table")
	out("QueuePrefix", jsii.String(pl.Props().QueuePrefix), "prefix of the pools' parking queues")
	out("SubmitQueueUrl", pl.SubmitQueue.QueueUrl(), "SQS queue for event-driven submissions")
}
