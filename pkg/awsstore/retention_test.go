package awsstore_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// TestRetentionTTL: CreateResources turns on TTL for the "expires"
// attribute, and every message and event item carries it, set to its time
// plus the configured retention.
func TestRetentionTTL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	ttl, err := b.ddb.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(b.opts.Table)})
	require.NoError(t, err)
	require.Equal(t, "expires", aws.ToString(ttl.TimeToLiveDescription.AttributeName))
	require.Equal(t, types.TimeToLiveStatusEnabled, ttl.TimeToLiveDescription.TimeToLiveStatus)

	require.NoError(t, b.store.Commit(ctx, &core.Txn{
		Events:   []core.Event{{At: t0, Tenant: "acme", Pool: "p", TaskID: "x", Type: core.EventSubmit, To: core.StateParked}},
		Messages: []core.Message{{Tenant: "acme", Recipient: "acme", TaskID: "x", Pool: "p", Type: "expired", At: t0}},
	}))
	out, err := b.ddb.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(b.opts.Table)})
	require.NoError(t, err)
	seen := map[string]int64{}
	for _, it := range out.Items {
		pk := it["pk"].(*types.AttributeValueMemberS).Value
		exp, ok := it["expires"].(*types.AttributeValueMemberN)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(exp.Value, 10, 64)
		require.NoError(t, err)
		seen[pk[:5]] = n
	}
	require.Equal(t, t0.Add(b.opts.MessageRetention).Unix(), seen["MBOX#"])
	require.Equal(t, t0.Add(b.opts.EventRetention).Unix(), seen["AUDIT"])
	require.Equal(t, core.Config{}.WithDefaults().MailboxRetention, b.opts.MessageRetention)
	require.Equal(t, core.Config{}.WithDefaults().AuditRetention, b.opts.EventRetention)
}

// TestPurgePagesThroughBatches purges more items than one batch of 25 per
// index shard holds, and leaves the newer ones.
func TestPurgePagesThroughBatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	const old, young = 70, 5
	for i := range old + young {
		at := t0.Add(time.Duration(i) * time.Second)
		require.NoError(t, b.store.Commit(ctx, &core.Txn{
			Events:   []core.Event{{At: at, Tenant: "acme", Pool: "p", TaskID: strconv.Itoa(i), Type: core.EventSubmit, To: core.StateParked}},
			Messages: []core.Message{{Tenant: "acme", Recipient: strconv.Itoa(i % 3), TaskID: strconv.Itoa(i), Pool: "p", Type: "expired", At: at}},
		}))
	}
	cut := t0.Add(old * time.Second)
	n, err := b.store.Purge(ctx, cut, cut)
	require.NoError(t, err)
	require.Equal(t, 2*old, n)
	left := 0
	for r := range 3 {
		msgs, err := b.store.Messages(ctx, "acme", strconv.Itoa(r), 0, 1000)
		require.NoError(t, err)
		for _, m := range msgs {
			require.False(t, m.At.Before(cut))
		}
		left += len(msgs)
	}
	require.Equal(t, young, left)
	evs, err := b.store.Events(ctx, core.AuditQuery{Tenant: "acme", From: t0.Add(-time.Hour), To: t0.Add(time.Hour), Limit: 1000})
	require.NoError(t, err)
	require.Len(t, evs, young)
	n, err = b.store.Purge(ctx, cut, cut)
	require.NoError(t, err)
	require.Zero(t, n)
}
