package pgtest_test

import (
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/parkinglot/parkinglot/internal/pgtest"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, func(c *pgtest.Cluster) { cluster = c }))
}

// TestCluster checks that the cluster answers, syncs, and isolates schemas.
func TestCluster(t *testing.T) {
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, cluster.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil {
		t.Fatal(err)
	}
	if fsync != "on" {
		t.Fatalf("fsync = %s, want on", fsync)
	}
	a, b := cluster.Schema(t), cluster.Schema(t)
	if a == b {
		t.Fatalf("two schemas named %s", a)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE "+a+".x (v int)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", b).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("schema %s holds %d tables of another", b, n)
	}
}
