package mototest_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/mototest"
)

// row is the test's own model of one item: its expected query answers are
// computed from these, not from the server.
type row struct {
	pk, sk string
	v      int
	g      string // the index hash attribute; "" when absent (sparse)
	n      int    // the index range attribute, when g is set
}

func (r row) item() map[string]types.AttributeValue {
	it := map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: r.pk},
		"sk": &types.AttributeValueMemberS{Value: r.sk},
		"v":  &types.AttributeValueMemberN{Value: strconv.Itoa(r.v)},
	}
	if r.g != "" {
		it["g"] = &types.AttributeValueMemberS{Value: r.g}
		it["n"] = &types.AttributeValueMemberN{Value: strconv.Itoa(r.n)}
	}
	return it
}

func (r row) key() map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: r.pk},
		"sk": &types.AttributeValueMemberS{Value: r.sk},
	}
}

type querySetup struct {
	ctx   context.Context
	db    *dynamodb.Client
	srv   *mototest.Server
	table string
	rows  map[string]row // by pk/sk
}

// setupQuery starts a launcher that checks every Query against moto's
// original code, on a table with a sparse KEYS_ONLY index (g, n) and a
// sparse INCLUDE index (g2, sk).
func setupQuery(t *testing.T) *querySetup {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	srv, err := mototest.LaunchWith(ctx, mototest.Options{Check: true})
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	// The SDK's default retries: a mismatch is a 500 that every attempt
	// repeats, and a response read cut short on the client's side ("use of
	// closed network connection", aws/aws-sdk-go-v2#1825) is retried.
	db := dynamodb.NewFromConfig(srv.Config())
	s := &querySetup{ctx: ctx, db: db, srv: srv, table: "partition-queries", rows: map[string]row{}}
	attr := func(name string, typ types.ScalarAttributeType) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(name), AttributeType: typ}
	}
	key := func(name string, typ types.KeyType) types.KeySchemaElement {
		return types.KeySchemaElement{AttributeName: aws.String(name), KeyType: typ}
	}
	_, err = db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(s.table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			attr("pk", types.ScalarAttributeTypeS), attr("sk", types.ScalarAttributeTypeS),
			attr("g", types.ScalarAttributeTypeS), attr("n", types.ScalarAttributeTypeN), attr("g2", types.ScalarAttributeTypeS),
		},
		KeySchema: []types.KeySchemaElement{key("pk", types.KeyTypeHash), key("sk", types.KeyTypeRange)},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
			{
				IndexName:  aws.String("by-g"),
				KeySchema:  []types.KeySchemaElement{key("g", types.KeyTypeHash), key("n", types.KeyTypeRange)},
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
			},
			{
				IndexName:  aws.String("by-g2"),
				KeySchema:  []types.KeySchemaElement{key("g2", types.KeyTypeHash), key("sk", types.KeyTypeRange)},
				Projection: &types.Projection{ProjectionType: types.ProjectionTypeInclude, NonKeyAttributes: []string{"v"}},
			},
		},
	})
	require.NoError(t, err)
	return s
}

func (s *querySetup) put(t *testing.T, r row) {
	t.Helper()
	_, err := s.db.PutItem(s.ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: r.item()})
	require.NoError(t, err)
	s.rows[r.pk+"/"+r.sk] = r
}

// query runs in page by page with limit and returns every page's items.
func (s *querySetup) query(t *testing.T, in dynamodb.QueryInput, limit int32) (items []map[string]types.AttributeValue, pages int) {
	t.Helper()
	in.TableName = aws.String(s.table)
	if limit > 0 {
		in.Limit = aws.Int32(limit)
	}
	for {
		out, err := s.db.Query(s.ctx, &in)
		require.NoError(t, err, "query %+v\n%s", in, s.srv.Stderr())
		pages++
		if limit > 0 {
			require.LessOrEqual(t, len(out.Items), int(limit))
		}
		items = append(items, out.Items...)
		if out.LastEvaluatedKey == nil {
			return items, pages
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
		require.Less(t, pages, 1000, "pagination does not end")
	}
}

func str(it map[string]types.AttributeValue, name string) string {
	switch v := it[name].(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return v.Value
	default:
		return ""
	}
}

func keys(items []map[string]types.AttributeValue) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, str(it, "pk")+"/"+str(it, "sk"))
	}
	return out
}

// expect selects the model's rows by keep, orders them by less, and
// returns their keys, reversed if !forward.
func (s *querySetup) expect(keep func(row) bool, less func(a, b row) int, forward bool) []string {
	var rs []row
	for _, r := range s.rows {
		if keep(r) {
			rs = append(rs, r)
		}
	}
	slices.SortFunc(rs, less)
	if !forward {
		slices.Reverse(rs)
	}
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.pk+"/"+r.sk)
	}
	return out
}

// TestPartitionQueries checks the launcher's partition lookup for Query
// against the test's own model of the table (order, range conditions,
// pagination at several page sizes, filter, projections, sparse indexes
// whose membership changes by put, update, delete, batch write and a
// cancelled transaction) while the launcher compares every answer with
// moto's original whole-table code.
func TestPartitionQueries(t *testing.T) {
	t.Parallel()
	s := setupQuery(t)

	// 240 items in 6 partitions; two thirds in index by-g over 4 hash
	// values, n distinct so that the index order is defined by n alone.
	for i := range 240 {
		r := row{pk: fmt.Sprintf("P%d", i%6), sk: fmt.Sprintf("S%04d", i), v: i}
		if i%3 != 0 {
			r.g, r.n = fmt.Sprintf("G%d", i%4), (i*37)%1000
		}
		s.put(t, r)
	}
	// Index membership changes: some items move to G9 or leave the index
	// by update, some are deleted, some are written by a batch.
	for i := 0; i < 240; i += 7 {
		r := s.rows[fmt.Sprintf("P%d/S%04d", i%6, i)]
		r.g, r.n = "G9", 1000+i
		_, err := s.db.UpdateItem(s.ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(s.table), Key: r.key(), UpdateExpression: aws.String("SET g = :g, n = :n"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":g": &types.AttributeValueMemberS{Value: r.g}, ":n": &types.AttributeValueMemberN{Value: strconv.Itoa(r.n)},
			},
		})
		require.NoError(t, err)
		s.rows[r.pk+"/"+r.sk] = r
	}
	for i := 1; i < 240; i += 11 {
		r := s.rows[fmt.Sprintf("P%d/S%04d", i%6, i)]
		r.g, r.n = "", 0
		_, err := s.db.UpdateItem(s.ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(s.table), Key: r.key(), UpdateExpression: aws.String("REMOVE g, n"),
		})
		require.NoError(t, err)
		s.rows[r.pk+"/"+r.sk] = r
	}
	for i := 2; i < 240; i += 13 {
		r := s.rows[fmt.Sprintf("P%d/S%04d", i%6, i)]
		_, err := s.db.DeleteItem(s.ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.table), Key: r.key()})
		require.NoError(t, err)
		delete(s.rows, r.pk+"/"+r.sk)
	}
	var batch []types.WriteRequest
	for i := range 20 {
		r := row{pk: "P7", sk: fmt.Sprintf("B%04d", i), v: 500 + i, g: "G9", n: 2000 + i}
		batch = append(batch, types.WriteRequest{PutRequest: &types.PutRequest{Item: r.item()}})
		s.rows[r.pk+"/"+r.sk] = r
	}
	_, err := s.db.BatchWriteItem(s.ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{s.table: batch}})
	require.NoError(t, err)

	// A cancelled transaction that would move an item from G1 to G3: the
	// item must stay in G1 (the launcher's rollback re-puts it).
	var moved row
	for _, r := range s.rows {
		if r.g == "G1" && (moved.pk == "" || r.sk < moved.sk) {
			moved = r
		}
	}
	require.NotEmpty(t, moved.pk)
	_, err = s.db.TransactWriteItems(s.ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{
			TableName: aws.String(s.table), Key: moved.key(), UpdateExpression: aws.String("SET g = :g"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":g": &types.AttributeValueMemberS{Value: "G3"}},
		}},
		{Put: &types.Put{TableName: aws.String(s.table), Item: row{pk: "P0", sk: "S0000"}.item(), ConditionExpression: aws.String("attribute_not_exists(pk)")}},
	}})
	var canceled *types.TransactionCanceledException
	require.ErrorAs(t, err, &canceled)

	byN := func(a, b row) int { return cmp.Compare(a.n, b.n) }
	bySK := func(a, b row) int { return strings.Compare(a.sk, b.sk) }
	for _, forward := range []bool{true, false} {
		for _, limit := range []int32{0, 1, 3, 1000} {
			name := fmt.Sprintf("forward=%v/limit=%d", forward, limit)
			// Index by-g: every hash value, with and without a range condition.
			for _, g := range []string{"G0", "G1", "G2", "G3", "G9", "Gnone"} {
				got, pages := s.query(t, dynamodb.QueryInput{
					IndexName: aws.String("by-g"), KeyConditionExpression: aws.String("g = :g"), ScanIndexForward: aws.Bool(forward),
					ExpressionAttributeValues: map[string]types.AttributeValue{":g": &types.AttributeValueMemberS{Value: g}},
				}, limit)
				want := s.expect(func(r row) bool { return r.g == g }, byN, forward)
				require.Equal(t, want, keys(got), "%s by-g %s", name, g)
				if limit == 1 {
					require.GreaterOrEqual(t, pages, len(want), "%s: one item a page", name)
				}
				for _, it := range got {
					require.ElementsMatch(t, []string{"pk", "sk", "g", "n"}, mapKeys(it), "KEYS_ONLY projection")
				}
				got, _ = s.query(t, dynamodb.QueryInput{
					IndexName: aws.String("by-g"), KeyConditionExpression: aws.String("g = :g AND n BETWEEN :lo AND :hi"), ScanIndexForward: aws.Bool(forward),
					ExpressionAttributeValues: map[string]types.AttributeValue{
						":g": &types.AttributeValueMemberS{Value: g}, ":lo": &types.AttributeValueMemberN{Value: "200"}, ":hi": &types.AttributeValueMemberN{Value: "1100"},
					},
				}, limit)
				want = s.expect(func(r row) bool { return r.g == g && r.n >= 200 && r.n <= 1100 }, byN, forward)
				require.Equal(t, want, keys(got), "%s by-g %s n in [200, 1100]", name, g)
			}
			// Base partitions: range condition, filter, projection.
			for p := range 8 {
				pk := fmt.Sprintf("P%d", p)
				got, _ := s.query(t, dynamodb.QueryInput{
					KeyConditionExpression: aws.String("pk = :p AND sk > :s"), FilterExpression: aws.String("v >= :v"),
					ProjectionExpression: aws.String("pk, sk, v"), ScanIndexForward: aws.Bool(forward), ConsistentRead: aws.Bool(true),
					ExpressionAttributeValues: map[string]types.AttributeValue{
						":p": &types.AttributeValueMemberS{Value: pk}, ":s": &types.AttributeValueMemberS{Value: "S0050"}, ":v": &types.AttributeValueMemberN{Value: "100"},
					},
				}, limit)
				want := s.expect(func(r row) bool { return r.pk == pk && r.sk > "S0050" && r.v >= 100 }, bySK, forward)
				require.Equal(t, want, keys(got), "%s partition %s", name, pk)
				for _, it := range got {
					require.ElementsMatch(t, []string{"pk", "sk", "v"}, mapKeys(it), "ProjectionExpression")
				}
				got, _ = s.query(t, dynamodb.QueryInput{
					KeyConditionExpression: aws.String("pk = :p AND begins_with(sk, :s)"), ScanIndexForward: aws.Bool(forward),
					ExpressionAttributeValues: map[string]types.AttributeValue{
						":p": &types.AttributeValueMemberS{Value: pk}, ":s": &types.AttributeValueMemberS{Value: "S01"},
					},
				}, limit)
				want = s.expect(func(r row) bool { return r.pk == pk && strings.HasPrefix(r.sk, "S01") }, bySK, forward)
				require.Equal(t, want, keys(got), "%s partition %s begins_with", name, pk)
			}
		}
	}
	got, _ := s.query(t, dynamodb.QueryInput{
		IndexName: aws.String("by-g"), KeyConditionExpression: aws.String("g = :g"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":g": &types.AttributeValueMemberS{Value: "G1"}},
	}, 0)
	require.Contains(t, keys(got), moved.pk+"/"+moved.sk, "a cancelled transaction leaves the item in its index partition")

	// Index by-g2 appears on items as they gain g2, with its INCLUDE
	// projection.
	for i := 0; i < 240; i += 5 {
		r, ok := s.rows[fmt.Sprintf("P%d/S%04d", i%6, i)]
		if !ok {
			continue
		}
		_, err := s.db.UpdateItem(s.ctx, &dynamodb.UpdateItemInput{
			TableName: aws.String(s.table), Key: r.key(), UpdateExpression: aws.String("SET g2 = :g"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":g": &types.AttributeValueMemberS{Value: "H" + strconv.Itoa(i%2)}},
		})
		require.NoError(t, err)
	}
	got, _ = s.query(t, dynamodb.QueryInput{
		IndexName: aws.String("by-g2"), KeyConditionExpression: aws.String("g2 = :g"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":g": &types.AttributeValueMemberS{Value: "H0"}},
	}, 4)
	want := s.expect(func(r row) bool {
		i, _ := strconv.Atoi(strings.TrimPrefix(r.sk, "S"))
		return strings.HasPrefix(r.sk, "S") && i%5 == 0 && i%2 == 0
	}, bySK, true)
	require.Equal(t, want, keys(got))
	require.NotEmpty(t, got)
	for _, it := range got {
		require.ElementsMatch(t, []string{"pk", "sk", "g2", "v"}, mapKeys(it), "INCLUDE projection")
	}

	require.NotContains(t, s.srv.Stderr(), "mismatch")
}

func mapKeys(it map[string]types.AttributeValue) []string {
	out := make([]string, 0, len(it))
	for k := range it {
		out = append(out, k)
	}
	return out
}

// TestPlainAttributeValues reads back an item of every attribute type, so
// that the launcher's serialization of plain AttributeValues (S, N, SS, NS
// and M or L of those) and moto's, which it still uses for the rest (B, BS,
// BOOL, NULL, and M or L holding them), both answer it, compared by the
// launcher with moto's own serializer.
func TestPlainAttributeValues(t *testing.T) {
	t.Parallel()
	s := setupQuery(t)
	item := map[string]types.AttributeValue{
		"pk":    &types.AttributeValueMemberS{Value: "P"},
		"sk":    &types.AttributeValueMemberS{Value: "S"},
		"s":     &types.AttributeValueMemberS{Value: "a \"quoted\" ünïcode string"},
		"n":     &types.AttributeValueMemberN{Value: "-12.5"},
		"ss":    &types.AttributeValueMemberSS{Value: []string{"x", "y"}},
		"ns":    &types.AttributeValueMemberNS{Value: []string{"1", "2"}},
		"m":     &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"a": &types.AttributeValueMemberS{Value: "b"}, "l": &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberN{Value: "3"}}}}},
		"l":     &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberS{Value: "c"}, &types.AttributeValueMemberSS{Value: []string{"z"}}}},
		"b":     &types.AttributeValueMemberB{Value: []byte{0, 1, 2, 255}},
		"bs":    &types.AttributeValueMemberBS{Value: [][]byte{{1}, {2, 3}}},
		"bool":  &types.AttributeValueMemberBOOL{Value: true},
		"null":  &types.AttributeValueMemberNULL{Value: true},
		"mixed": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"f": &types.AttributeValueMemberBOOL{Value: false}, "s": &types.AttributeValueMemberS{Value: "d"}}},
	}
	_, err := s.db.PutItem(s.ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item})
	require.NoError(t, err)
	out, err := s.db.GetItem(s.ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: row{pk: "P", sk: "S"}.key(), ConsistentRead: aws.Bool(true)})
	require.NoError(t, err, s.srv.Stderr())
	require.Equal(t, item, out.Item)
	q, err := s.db.Query(s.ctx, &dynamodb.QueryInput{
		TableName: aws.String(s.table), KeyConditionExpression: aws.String("pk = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: "P"}},
	})
	require.NoError(t, err, s.srv.Stderr())
	require.Equal(t, []map[string]types.AttributeValue{item}, q.Items)
	require.NotContains(t, s.srv.Stderr(), "mismatch")
}
