package config_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/config"
)

func TestAWSStore(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte(`store:
  type: aws
  region: us-east-1
  endpoint: http://127.0.0.1:4566
  table: parkinglot
  queuePrefix: pl-
  createResources: true
` + okPools))
	require.NoError(t, err)
	require.Equal(t, config.Store{
		Type: config.StoreAWS, Path: config.DefaultStorePath, Region: "us-east-1", Endpoint: "http://127.0.0.1:4566",
		Table: "parkinglot", QueuePrefix: "pl-", CreateResources: true,
	}, c.Store)

	// Defaults: no endpoint (AWS_ENDPOINT_URL or AWS), the default prefix,
	// resources not created.
	c, err = config.Parse([]byte("store: {type: aws, region: eu-west-2, table: pl.tasks}\n" + okPools))
	require.NoError(t, err)
	require.Equal(t, "", c.Store.Endpoint)
	require.Equal(t, config.DefaultQueuePrefix, c.Store.QueuePrefix)
	require.False(t, c.Store.CreateResources)
}

func TestAWSStoreInvalid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, store, field, reason string
	}{
		{"no region", "{type: aws, table: t01}", "store.region", "required"},
		{"bad region", "{type: aws, region: Mars, table: t01}", "store.region", "region name"},
		{"no table", "{type: aws, region: us-east-1}", "store.table", "required"},
		{"short table", "{type: aws, region: us-east-1, table: ab}", "store.table", "3-255"},
		{"bad table", "{type: aws, region: us-east-1, table: 'a b c'}", "store.table", "3-255"},
		{"bad prefix", "{type: aws, region: us-east-1, table: t01, queuePrefix: 'pl.'}", "store.queuePrefix", "A-Za-z0-9_-"},
		{"long prefix", "{type: aws, region: us-east-1, table: t01, queuePrefix: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}", "store.queuePrefix", "at most 40"},
		{"endpoint scheme", "{type: aws, region: us-east-1, table: t01, endpoint: 'ftp://x'}", "store.endpoint", "http or https"},
		{"endpoint no host", "{type: aws, region: us-east-1, table: t01, endpoint: 'http://'}", "store.endpoint", "http or https"},
		{"createResources not bool", "{type: aws, region: us-east-1, table: t01, createResources: yes}", "store.createResources", "true or false"},
		{"aws key on memory", "{type: memory, table: t01}", "store.table", "aws only"},
		{"aws key on embedded", "{type: embedded, createResources: true}", "store.createResources", "aws only"},
		{"unknown aws key", "{type: aws, region: us-east-1, table: t01, queue: x}", "store.queue", "unknown field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse([]byte("store: " + tc.store + "\n" + okPools))
			require.Error(t, err)
			var fe *config.FieldError
			require.True(t, errors.As(err, &fe), "%v is not a FieldError", err)
			require.Equal(t, tc.field, fe.Field, "%v", err)
			require.Contains(t, fe.Reason, tc.reason)
		})
	}
}
