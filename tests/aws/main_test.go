package aws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parkinglot/parkinglot/internal/mototest"
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
	// The SDK's default credential chain, in this process and in the
	// servers it starts, finds these; moto accepts any.
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true"} {
		os.Setenv(k, v)
	}
	dir, err := os.MkdirTemp("", "parkinglot-aws")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "parkinglot")
	build := exec.Command("go", "build", "-o", bin, "github.com/parkinglot/parkinglot/cmd/parkinglot")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	moto, err = mototest.Launch(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests/aws need moto:", err)
		return 1
	}
	code := m.Run()
	moto.Stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

// uniq returns a fresh suffix for table and queue names.
func uniq() string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// storeBlock is the store section of a server config on a fresh table and
// queue prefix of the package's moto.
func storeBlock() string {
	n := uniq()
	return fmt.Sprintf("store: {type: aws, region: us-east-1, endpoint: %q, table: pl-%s, queuePrefix: pl%s-, createResources: true}\n",
		moto.Endpoint, n, n)
}
