package lambda

import (
	"archive/zip"
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/internal/mototest"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
)

// localAWSPools is the pools file the stack is synthesized with.
const localAWSPools = `pools:
  - {name: jobs, capacity: 1, maxParked: 10, defaultMaxWait: 5m, runTimeout: 5m}
  - {name: batch.etl, capacity: 2, maxParked: 0}
`

// TestLocalAWS runs what `make local-aws` runs: the CDK app synthesizes the
// stack (go run in infra/cdk, its own module), scripts/local-aws.sh deploys
// the template into its own moto's CloudFormation and serves HTTP API v1
// through the Lambda handlers over the table and queues the stack created.
// A task parks in the stack's queue and is started by the completion of
// the one before it; the server created no table or queue of its own.
func TestLocalAWS(t *testing.T) {
	t.Parallel()
	cdkOut := synthesize(t)

	script := exec.Command("bash", filepath.Join("..", "..", "scripts", "local-aws.sh"))
	script.Env = append(os.Environ(), "MOTO_PORT=0", "LISTEN=127.0.0.1:0", "BIN="+bin, "CDK_OUT="+cdkOut, "STACK=Parkinglot")
	script.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := script.StdoutPipe()
	require.NoError(t, err)
	var stderr tail
	script.Stderr = &stderr
	require.NoError(t, script.Start())
	exited := make(chan error, 1)
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- script.Wait()
	}()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = syscall.Kill(-script.Process.Pid, syscall.SIGKILL)
			for range lines {
			}
			<-exited
		}
		if t.Failed() {
			t.Logf("local-aws.sh stderr:\n%s", stderr.String())
		}
	})

	// The script prints where moto and the server are once both are up.
	deployed := regexp.MustCompile(`^moto on (http://\S+): stack Parkinglot deployed by CloudFormation \(table (\S+), queues (\S+)\*\)$`)
	serving := regexp.MustCompile(`^HTTP API v1 through the Lambda handlers on (http://\S+)$`)
	var endpoint, table, prefix, url string
	timeout := time.After(3 * time.Minute)
	for url == "" {
		select {
		case line, ok := <-lines:
			require.True(t, ok, "local-aws.sh ended before serving:\n%s", stderr.String())
			if m := deployed.FindStringSubmatch(line); m != nil {
				endpoint, table, prefix = m[1], m[2], m[3]
			}
			if m := serving.FindStringSubmatch(line); m != nil {
				url = m[1]
			}
		case <-timeout:
			t.Fatalf("local-aws.sh did not serve within 3 minutes:\n%s", stderr.String())
		}
	}
	require.NotEmpty(t, endpoint, "the deployment line precedes the URL")
	require.True(t, strings.HasPrefix(table, "Parkinglot-Table"), "the table is the one CloudFormation named: %s", table)
	require.Equal(t, "parkinglot-", prefix, "the stack's QueuePrefix output")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard, not a speed bound
	defer cancel()
	acme, err := client.New(url, "dev-token")
	require.NoError(t, err)
	t.Cleanup(acme.CloseIdleConnections)

	pools, err := acme.Pools(ctx)
	require.NoError(t, err)
	var names []string
	for _, p := range pools {
		names = append(names, fmt.Sprintf("%s/%d/%d", p.Name, p.Capacity, p.MaxParked))
	}
	require.ElementsMatch(t, []string{"jobs/1/10", "batch.etl/2/0"}, names, "the pools the stack's functions were deployed with")

	first, err := acme.Submit(ctx, "jobs", api.SubmitRequest{Recipient: "w"})
	require.NoError(t, err)
	require.Equal(t, "running", first.Task.State)
	second, err := acme.Submit(ctx, "jobs", api.SubmitRequest{Recipient: "w"})
	require.NoError(t, err)
	require.Equal(t, "parked", second.Task.State)

	// The parked task's message sits in the queue the stack created.
	cfg := aws.Config{
		Region: mototest.Region, Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(endpoint),
	}
	q := sqs.NewFromConfig(cfg)
	qs, err := q.ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(prefix)})
	require.NoError(t, err)
	require.Len(t, qs.QueueUrls, 4, "each pool's queue and DLQ, as the stack created them: %v", qs.QueueUrls)
	tables, err := dynamodb.NewFromConfig(cfg).ListTables(ctx, &dynamodb.ListTablesInput{})
	require.NoError(t, err)
	require.Equal(t, []string{table}, tables.TableNames, "the server uses the stack's table and creates none")

	_, err = acme.Complete(ctx, first.Task.ID, api.CompleteRequest{Lease: first.Task.Lease, Status: "succeeded"})
	require.NoError(t, err)
	started := map[string]string{}
	after := ""
	for started[second.Task.ID] == "" {
		page, err := acme.Mailbox(ctx, "w", client.MailboxOptions{After: after, Wait: 5 * time.Second})
		require.NoError(t, err, "waiting for the parked task to start")
		for _, m := range page.Messages {
			if m.Type == "started" {
				started[m.TaskID] = m.Lease
			}
		}
		after = page.Next
	}
	done, err := acme.Complete(ctx, second.Task.ID, api.CompleteRequest{Lease: started[second.Task.ID], Status: "succeeded"})
	require.NoError(t, err)
	require.Equal(t, "succeeded", done.State)

	// Ctrl-C stops the server and moto.
	require.NoError(t, syscall.Kill(-script.Process.Pid, syscall.SIGINT))
	for range lines {
	}
	select {
	case err := <-exited:
		stopped = true
		var ee *exec.ExitError
		if err != nil {
			require.ErrorAs(t, err, &ee)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("local-aws.sh did not stop on SIGINT")
	}
	_, err = acme.Pools(ctx)
	require.Error(t, err, "the server is gone")
}

// synthesize runs the CDK app (infra/cdk, its own Go module) as `make
// synth` does, into a temporary directory, with placeholder zips for the
// functions (moto records functions but never runs them), and returns the
// directory.
func synthesize(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	zips := filepath.Join(dir, "zips")
	require.NoError(t, os.Mkdir(zips, 0o700))
	for _, fn := range lambdaapi.Functions {
		writeZip(t, filepath.Join(zips, string(fn)+".zip"), fmt.Sprintf("#!/bin/sh\n# placeholder for %s\nexit 1\n", fn))
	}
	pools := filepath.Join(dir, "pools.yaml")
	require.NoError(t, os.WriteFile(pools, []byte(localAWSPools), 0o600))
	out := filepath.Join(dir, "cdk.out")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", ".",
		"-c", "poolsFile="+pools, "-c", "lambdaDir="+zips,
		"-c", "jwtIssuer=https://issuer.example.com/", "-c", "jwtAudience=parkinglot")
	cmd.Dir = filepath.Join("..", "..", "infra", "cdk")
	cmd.Env = append(os.Environ(), "CDK_OUTDIR="+out, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20")
	start := time.Now()
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "synth: %s", b)
	t.Logf("synthesized in %s", time.Since(start).Round(time.Millisecond))
	_, err = os.Stat(filepath.Join(out, "Parkinglot.template.json"))
	require.NoError(t, err)
	return out
}

func writeZip(t *testing.T, path, body string) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	z := zip.NewWriter(f)
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, Modified: time.Unix(0, 0)}
	h.SetMode(0o755)
	w, err := z.CreateHeader(h)
	require.NoError(t, err)
	_, err = io.WriteString(w, body)
	require.NoError(t, err)
	require.NoError(t, z.Close())
}

// tail keeps the last 64 KiB written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - 64<<10; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
