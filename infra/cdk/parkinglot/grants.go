package parkinglot

import (
	"slices"

	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/parkinglot/parkinglot/pkg/awsstore"
)

// The table actions, by what calls them in pkg/awsstore. A transaction
// (TransactWriteItems) is authorized item by item, as the PutItem,
// UpdateItem, ConditionCheckItem or DeleteItem it holds.
var (
	// transitionActions: reading tasks, keys and pools (GetItem; a
	// sharded pool's items, BatchGetItem) and committing a transition
	// (task, key, pending message and event puts, pool and shard updates,
	// shard condition checks); PutPool's UpdateItem (expire's, for the
	// pools custom resource).
	transitionActions = []string{"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem",
		"dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"}
	// consumeActions: receiving parked work, handing it back
	// (ChangeMessageVisibility, also its batch form) and deleting it once
	// started; the queue's URL by name.
	consumeActions = []string{"sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueUrl"}
)

// Partition key prefixes of the table's items (pkg/awsstore/doc.go, "Table
// layout"), for dynamodb:LeadingKeys conditions. Tenant, key and recipient
// components are escaped, so a key with one of these prefixes is always an
// item of that kind.
const (
	poolKeys    = "POOL#*"  // pool items and their slot shards
	mailboxKeys = "MBOX#*"  // mailbox heads, messages and pending messages
	auditKeys   = "AUDIT#*" // audit events
)

// leadingKeys is a condition that every item a request touches has a
// partition key matching one of patterns.
func leadingKeys(patterns ...string) *map[string]*map[string]any {
	return &map[string]*map[string]any{
		"ForAllValues:StringLike": {"dynamodb:LeadingKeys": patterns},
	}
}

// allow grants actions on resources to g, under conditions if any.
func allow(g awsiam.IGrantable, actions []string, resources []*string, conditions *map[string]*map[string]any) awsiam.Grant {
	return awsiam.Grant_AddToPrincipal(&awsiam.GrantOnPrincipalOptions{
		Grantee:      g,
		Actions:      jsii.Strings(actions...),
		ResourceArns: &resources,
		Conditions:   conditions,
	})
}

// arnsPerStatement bounds the parking queues one statement names. CDK moves
// the statements of a role's policy past its inline size into managed
// policies (at most 6,144 characters each) whole, estimating each ARN it
// cannot resolve at 150 characters: 30 queues (about 4,600 characters by
// that estimate, at most about 3,900 once resolved, with the longest queue
// names) keep every statement within a managed policy, which one statement
// on 100 queues is not.
const arnsPerStatement = 30

// allowQueues is allow on the parking queues queues, arnsPerStatement per
// statement.
func allowQueues(g awsiam.IGrantable, actions []string, queues []*string) awsiam.Grant {
	var grant awsiam.Grant
	for part := range slices.Chunk(queues, arnsPerStatement) {
		x := allow(g, actions, part, nil)
		if grant == nil {
			grant = x
		} else {
			grant = grant.Combine(x)
		}
	}
	return grant
}

// grants gives each function the calls its code makes (pkg/awsstore through
// pkg/core), on this construct's resources, and no more:
//
//	function  table                                                      parking queues
//	submit    transition                                                 consume, SendMessage
//	dispatch  transition                                                 consume
//	expire    transition; DeleteItem on POOL#* keys; Query on the four   consume, SendMessage,
//	          indexes; BatchWriteItem on MBOX#* and AUDIT#* keys          GetQueueAttributes
//	mailbox   GetItem, BatchGetItem, Query on the table and the pools    none
//	          index; UpdateItem, PutItem, DeleteItem on MBOX#* keys
//
// transition is transitionActions, consume consumeActions. No cold start
// writes the pools: expire applies them when CloudFormation sends it the
// pools custom resource (PutPool: UpdateItem, and a transaction that puts,
// updates, checks and may delete slot shard items, pk POOL#<pool>#<i>,
// hence its DeleteItem). Submit sends a park's message,
// expire an outbox re-send; expire also counts a queue's messages to
// reconcile it with its parked tasks (GetQueueAttributes: a queue that
// holds fewer messages than parked tasks lost some, and expire re-sends
// them). Expire queries the due, unsent, pools and
// expiry indexes and purges old messages and events with BatchWriteItem
// deletes. Mailbox reads tasks, pools (the pools index, then BatchGetItem),
// mailboxes and the audit trail (Query on the table) and writes only
// mailbox items, MBOX#<tenant>#<recipient>: acks (UpdateItem of the head)
// and the transaction that numbers pending messages (the head's
// UpdateItem, a PutItem of each numbered message and a DeleteItem of its
// pending item). The condition cannot name the tenant, which comes from
// the caller's JWT, not from IAM.
// Nothing may Scan, and only the submit queue's event source consumes the
// submit queue. With Props.EncryptionKey, every function may encrypt and
// decrypt with it.
func (s *Parkinglot) grants() {
	table := s.Table.TableArn()
	index := func(name string) *string { return jsii.String(*table + "/index/" + name) }
	var indexes []*string
	for _, g := range awsstore.TableSchema("").GlobalSecondaryIndexes {
		indexes = append(indexes, index(*g.IndexName))
	}
	var queues []*string
	for _, p := range s.props.Pools {
		queues = append(queues, s.PoolQueues[p.Name].QueueArn())
	}
	for _, f := range []Function{Submit, Dispatch, Expire} {
		fn := s.Functions[f]
		allow(fn, transitionActions, []*string{table}, nil)
		consume := consumeActions
		if f != Dispatch {
			consume = append([]string{"sqs:SendMessage"}, consume...)
		}
		if f == Expire {
			// One statement per queue for all of expire's actions on it:
			// the fewer statements, the fewer managed policies.
			consume = append(slices.Clip(consume), "sqs:GetQueueAttributes")
		}
		allowQueues(fn, consume, queues)
	}
	expire := s.Functions[Expire]
	allow(expire, []string{"dynamodb:DeleteItem"}, []*string{table}, leadingKeys(poolKeys))
	allow(expire, []string{"dynamodb:Query"}, indexes, nil)
	allow(expire, []string{"dynamodb:BatchWriteItem"}, []*string{table}, leadingKeys(mailboxKeys, auditKeys))

	mb := s.Functions[Mailbox]
	allow(mb, []string{"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"}, []*string{table}, nil)
	allow(mb, []string{"dynamodb:Query"}, []*string{index(poolsIndex())}, nil)
	allow(mb, []string{"dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}, []*string{table}, leadingKeys(mailboxKeys))

	if k := s.props.EncryptionKey; k != nil {
		for _, f := range Functions {
			k.GrantEncryptDecrypt(s.Functions[f])
		}
	}
}

// poolsIndex is the name of the table's index of pool items.
func poolsIndex() string {
	for _, g := range awsstore.TableSchema("").GlobalSecondaryIndexes {
		if *g.IndexName == "pools" {
			return *g.IndexName
		}
	}
	panic("parkinglot: awsstore.TableSchema has no pools index")
}

// GrantSubmit lets grantee submit tasks through the submit queue:
// sqs:SendMessage, sqs:GetQueueAttributes and sqs:GetQueueUrl on it, and
// with Props.EncryptionKey, kms:Decrypt, kms:Encrypt, kms:ReEncrypt* and
// kms:GenerateDataKey* on the key. A message names its tenant in a message
// attribute, so grant this to trusted producers only. The HTTP API's
// submit route is authorized by a JWT, not by IAM: it needs no grant.
func (s *Parkinglot) GrantSubmit(grantee awsiam.IGrantable) awsiam.Grant {
	return s.SubmitQueue.GrantSendMessages(grantee)
}

// GrantWorker lets grantee do what the dispatch function does, for a
// worker that runs Parkinglot's core over this construct's table and
// queues in its own process (pkg/awsstore with QueuePrefix and the
// table's name) to claim, heartbeat, complete and cancel: on the table,
// dynamodb:GetItem, BatchGetItem, PutItem, UpdateItem and
// ConditionCheckItem; on every parking queue, sqs:ReceiveMessage,
// ChangeMessageVisibility, DeleteMessage and GetQueueUrl; with
// Props.EncryptionKey, encrypt and decrypt with the key. With a push pool,
// also sqs:SendMessage on the results queue, where a worker of an sqs
// target may send its outcome ({taskId, lease, status, result?, error?}).
// It grants no Scan, no Query, no deletion and no sending to the parking
// queues. A worker that calls the HTTP API presents a JWT and needs no
// grant.
func (s *Parkinglot) GrantWorker(grantee awsiam.IGrantable) awsiam.Grant {
	var queues []*string
	for _, p := range s.props.Pools {
		queues = append(queues, s.PoolQueues[p.Name].QueueArn())
	}
	g := allow(grantee, transitionActions, []*string{s.Table.TableArn()}, nil)
	g = g.Combine(allowQueues(grantee, consumeActions, queues))
	if s.ResultsQueue != nil {
		g = g.Combine(allow(grantee, []string{"sqs:SendMessage"}, []*string{s.ResultsQueue.QueueArn()}, nil))
	}
	if k := s.props.EncryptionKey; k != nil {
		g = g.Combine(k.GrantEncryptDecrypt(grantee))
	}
	return g
}
