package aws

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"

	"github.com/parkinglot/parkinglot/internal/mototest"
	"github.com/parkinglot/parkinglot/tests/testserver"
)

var (
	// moto is the package's one moto server; every test uses its own table
	// and queue names on it.
	moto *mototest.Server
	// bin is the parkinglot binary, built once, without -race.
	bin string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "parkinglot-aws")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if bin, err = testserver.BuildMain(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return mototest.RunMain(m, &moto, "tests/aws")
}

// uniq returns a fresh suffix for table and queue names.
func uniq() string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// storeBlock is the store section of a server config on a fresh table and
// queue prefix of the package's moto.
func storeBlock() string { return storeBlockOn(moto) }

// storeBlockOn is storeBlock on the moto server m.
func storeBlockOn(m *mototest.Server) string {
	n := uniq()
	return fmt.Sprintf("store: {type: aws, region: us-east-1, endpoint: %q, table: pl-%s, queuePrefix: pl%s-, createResources: true}\n",
		m.Endpoint, n, n)
}
