package awsstore

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
)

// RequestCounter is SDK middleware that counts AWS operations, their HTTP
// attempts (retries included) and the DynamoDB capacity they report as
// consumed (set Options.ReturnConsumedCapacity). Add it to an aws.Config
// with Register before building clients. It is safe for concurrent use.
type RequestCounter struct {
	mu  sync.Mutex
	ops map[string]*OpCount
}

// OpCount is what a RequestCounter saw of one operation.
type OpCount struct {
	Calls      int     // operations invoked
	Attempts   int     // HTTP requests sent, retries included
	Errors     int     // operations that returned an error
	ReadUnits  float64 // consumed read capacity, as reported
	WriteUnits float64 // consumed write capacity, as reported (indexes included)
	// ModelWriteUnits are the table's write units modeled from the request
	// (DynamoDB's rule: 1 unit per started KB of each item written, 2 in a
	// transaction; updates and deletes counted as items under 1 KB), plus
	// one unit per KEYS_ONLY index entry a put carries. Moving or removing
	// an index entry also costs units that the request does not show, so
	// this is a lower bound; use it where the service reports nothing, as
	// moto does for transactions.
	ModelWriteUnits float64
}

// Register adds the counting middleware to cfg's API options.
func (c *RequestCounter) Register(cfg *aws.Config) {
	cfg.APIOptions = append(cfg.APIOptions, func(stack *middleware.Stack) error {
		if err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("parkinglot.countCalls",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleInitialize(ctx, in)
				c.call(opName(ctx), modelWrites(in.Parameters), out.Result, err)
				return out, md, err
			}), middleware.After); err != nil {
			return err
		}
		return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("parkinglot.countAttempts",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				c.attempt(opName(ctx))
				return next.HandleFinalize(ctx, in)
			}), "Retry", middleware.After)
	})
}

func opName(ctx context.Context) string {
	return awsmiddleware.GetServiceID(ctx) + "." + awsmiddleware.GetOperationName(ctx)
}

func (c *RequestCounter) get(op string) *OpCount {
	if c.ops == nil {
		c.ops = make(map[string]*OpCount)
	}
	o := c.ops[op]
	if o == nil {
		o = &OpCount{}
		c.ops[op] = o
	}
	return o
}

func (c *RequestCounter) attempt(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.get(op).Attempts++
}

func (c *RequestCounter) call(op string, model float64, result any, err error) {
	var ccs []types.ConsumedCapacity
	switch r := result.(type) {
	case *dynamodb.GetItemOutput:
		ccs = one(r.ConsumedCapacity)
	case *dynamodb.UpdateItemOutput:
		ccs = one(r.ConsumedCapacity)
	case *dynamodb.QueryOutput:
		ccs = one(r.ConsumedCapacity)
	case *dynamodb.TransactWriteItemsOutput:
		ccs = r.ConsumedCapacity
	case *dynamodb.BatchGetItemOutput:
		ccs = r.ConsumedCapacity
	case *dynamodb.BatchWriteItemOutput:
		ccs = r.ConsumedCapacity
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.get(op)
	o.Calls++
	o.ModelWriteUnits += model
	if err != nil {
		o.Errors++
	}
	for _, cc := range ccs {
		r, w := aws.ToFloat64(cc.ReadCapacityUnits), aws.ToFloat64(cc.WriteCapacityUnits)
		if r == 0 && w == 0 {
			// Only the total was reported: a write operation's is writes.
			if strings.HasPrefix(op, "DynamoDB.Get") || strings.HasPrefix(op, "DynamoDB.Query") || strings.HasPrefix(op, "DynamoDB.BatchGet") {
				r = aws.ToFloat64(cc.CapacityUnits)
			} else {
				w = aws.ToFloat64(cc.CapacityUnits)
			}
		}
		o.ReadUnits += r
		o.WriteUnits += w
	}
}

func one(cc *types.ConsumedCapacity) []types.ConsumedCapacity {
	if cc == nil {
		return nil
	}
	return []types.ConsumedCapacity{*cc}
}

// Snapshot returns a copy of the counts by "Service.Operation".
func (c *RequestCounter) Snapshot() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(Counts, len(c.ops))
	for k, v := range c.ops {
		out[k] = *v
	}
	return out
}

// Counts are a RequestCounter's counts by "Service.Operation".
type Counts map[string]OpCount

// Total sums the counts of every operation.
func (cs Counts) Total() OpCount {
	var t OpCount
	for _, o := range cs {
		t.Calls += o.Calls
		t.Attempts += o.Attempts
		t.Errors += o.Errors
		t.ReadUnits += o.ReadUnits
		t.WriteUnits += o.WriteUnits
		t.ModelWriteUnits += o.ModelWriteUnits
	}
	return t
}

// Sub returns cs minus an earlier snapshot.
func (cs Counts) Sub(earlier Counts) Counts {
	out := make(Counts, len(cs))
	for k, o := range cs {
		e := earlier[k]
		d := OpCount{o.Calls - e.Calls, o.Attempts - e.Attempts, o.Errors - e.Errors, o.ReadUnits - e.ReadUnits, o.WriteUnits - e.WriteUnits, o.ModelWriteUnits - e.ModelWriteUnits}
		if d != (OpCount{}) {
			out[k] = d
		}
	}
	return out
}

// String lists the counts, one operation per line, by name.
func (cs Counts) String() string {
	names := make([]string, 0, len(cs))
	for k := range cs {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		o := cs[k]
		fmt.Fprintf(&b, "%-36s calls=%d attempts=%d errors=%d RCU=%.1f WCU=%.1f modelWCU=%.1f\n", k, o.Calls, o.Attempts, o.Errors, o.ReadUnits, o.WriteUnits, o.ModelWriteUnits)
	}
	return b.String()
}

// indexKeys are the attributes that put an item into a KEYS_ONLY index.
var indexKeys = []string{attrDueP, attrUnsentP, attrPools, attrExpP}

// modelWrites models the write units of a DynamoDB write request; see
// OpCount.ModelWriteUnits.
func modelWrites(params any) float64 {
	put := func(item map[string]types.AttributeValue, per float64) float64 {
		u := per * float64((itemSize(item)+1023)/1024)
		for _, k := range indexKeys {
			if _, ok := item[k]; ok {
				u++
			}
		}
		return u
	}
	switch in := params.(type) {
	case *dynamodb.TransactWriteItemsInput:
		u := 0.0
		for _, it := range in.TransactItems {
			switch {
			case it.Put != nil:
				u += put(it.Put.Item, 2)
			default:
				u += 2
			}
		}
		return u
	case *dynamodb.UpdateItemInput:
		return 1
	case *dynamodb.BatchWriteItemInput:
		u := 0.0
		for _, reqs := range in.RequestItems {
			for _, r := range reqs {
				if r.PutRequest != nil {
					u += put(r.PutRequest.Item, 1)
				} else {
					u++
				}
			}
		}
		return u
	}
	return 0
}

// itemSize approximates DynamoDB's item size: attribute names plus values
// (strings and binaries by length, numbers by about half their digits).
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for k, v := range item {
		n += len(k)
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			n += len(v.Value)
		case *types.AttributeValueMemberN:
			n += (len(v.Value)+1)/2 + 1
		case *types.AttributeValueMemberB:
			n += len(v.Value)
		default:
			n++
		}
	}
	return n
}
