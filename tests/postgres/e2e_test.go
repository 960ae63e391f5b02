package postgres

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/httpapi/httpapitest"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/pgstore"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

// TestContract runs the HTTP API v1 contract suite against the binary with
// store type postgres.
func TestContract(t *testing.T) {
	t.Parallel()
	httpapitest.Run(t, func(t *testing.T, pools []core.PoolConfig) httpapitest.Target {
		srv := testserver.Start(t, bin, tenants+httpapitest.WorkerTokenYAML("worker-token")+storeBlock(cluster.Schema(t))+httpapitest.PoolsYAML(pools))
		hc := &http.Client{Transport: &http.Transport{}}
		t.Cleanup(hc.CloseIdleConnections)
		return httpapitest.Target{BaseURL: srv.URL, AcmeToken: "acme-token", GlobexToken: "globex-token", WorkerToken: "worker-token", Client: hc}
	})
}

// TestMigrate runs `parkinglot migrate` twice on a new schema (the DSN from
// the environment): the first applies every migration, the second nothing.
// The password of a DSN never reaches the output.
func TestMigrate(t *testing.T) {
	t.Parallel()
	schema := cluster.Schema(t)
	cfg := filepath.Join(t.TempDir(), "parkinglot.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(tenants+"store: {type: postgres, schema: "+schema+"}\npools:\n  - {name: p, capacity: 1}\n"), 0o600))
	migrate := func(dsn string) (string, error) {
		cmd := exec.Command(bin, "migrate", "--config", cfg)
		cmd.Env = append(os.Environ(), "PARKINGLOT_POSTGRES_DSN="+dsn)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := migrate(cluster.DSN)
	require.NoError(t, err, out)
	all := make([]string, pgstore.SchemaVersion())
	for i := range all {
		all[i] = fmt.Sprint(i + 1)
	}
	require.Contains(t, out, "applied migrations ["+strings.Join(all, " ")+"]")
	out, err = migrate(cluster.DSN)
	require.NoError(t, err, out)
	require.Contains(t, out, "nothing to apply")

	out, err = migrate(strings.Replace(cluster.DSN, "postgres@", "nobody:s3cret@", 1))
	require.Error(t, err)
	require.NotContains(t, out, "s3cret")
}
