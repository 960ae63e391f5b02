package postgres

import (
	"fmt"
	"os"
	"testing"

	"github.com/parkinglot/parkinglot/internal/pgtest"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

var (
	cluster *pgtest.Cluster
	bin     string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "parkinglot-pg")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if bin, err = testserver.BuildMain(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return pgtest.Main(m, func(c *pgtest.Cluster) { cluster = c })
}

const tenants = `
listen: 127.0.0.1:0
sweepInterval: 100ms
shutdownTimeout: 10s
log: {level: info, format: json}
auth:
  tokens:
    - {token: acme-token, tenant: acme}
    - {token: globex-token, tenant: globex}
`

// storeBlock is the store section of a server config on schema.
func storeBlock(schema string) string {
	return fmt.Sprintf("store: {type: postgres, dsn: '%s', schema: %s, maxConns: 8}\n", cluster.DSN, schema)
}
