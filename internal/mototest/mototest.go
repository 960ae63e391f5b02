package mototest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"go.uber.org/goleak"
)

// Region is the region every client of a Server is configured for.
const Region = "us-east-1"

// startTimeout bounds how long moto may take to start listening.
const startTimeout = 60 * time.Second

// Server is a running serialized moto launcher.
type Server struct {
	// Endpoint is the base URL of the server, http://127.0.0.1:PORT.
	Endpoint string

	cmd     *exec.Cmd
	stderr  *tail
	exited  chan struct{}
	waitErr error
	http    *http.Client
	once    sync.Once
}

// Launcher returns the path of tests/moto/serialized_moto.py in this module.
func Launcher() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("mototest: cannot locate the package source")
	}
	p := filepath.Join(filepath.Dir(file), "..", "..", "tests", "moto", "serialized_moto.py")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("mototest: launcher: %w", err)
	}
	return p, nil
}

// Options are the launcher's switches; the zero value is what tests use.
// Each is also read from the environment the tests run in, so that any test
// run can be profiled or checked without a code change.
type Options struct {
	// Check makes the launcher run moto's original code beside each of its
	// shortcuts (a Query's partition lookup, the serialization of plain
	// AttributeValues) and fail the request, with "mismatch" on stderr, if
	// the two answers differ. Environment: PARKINGLOT_MOTO_CHECK=1.
	Check bool
	// Profile, if set, is a path prefix: the launcher profiles its DynamoDB
	// requests and writes PREFIX.pstats (cProfile) and PREFIX.txt (time by
	// X-Amz-Target, then the top functions) when it stops. Environment:
	// PARKINGLOT_MOTO_PROFILE=PREFIX.
	Profile string
}

func (o Options) env() []string {
	var env []string
	if o.Check {
		env = append(env, "PARKINGLOT_MOTO_CHECK=1")
	}
	if o.Profile != "" {
		env = append(env, "PARKINGLOT_MOTO_PROFILE="+o.Profile)
	}
	return env
}

// Launch starts the launcher with the zero Options and waits until it
// listens. The caller must Stop it.
func Launch(ctx context.Context) (*Server, error) {
	return LaunchWith(ctx, Options{})
}

// LaunchWith starts the launcher with o and waits until it listens. The
// caller must Stop it.
func LaunchWith(ctx context.Context, o Options) (*Server, error) {
	python, err := exec.LookPath("python3")
	if err != nil {
		return nil, fmt.Errorf("mototest: python3 is required to run moto: %w", err)
	}
	if _, err := exec.LookPath("moto_server"); err != nil {
		return nil, fmt.Errorf("mototest: moto_server is not installed (pip install 'moto[server]'): %w", err)
	}
	launcher, err := Launcher()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(python, launcher, "--host", "127.0.0.1", "--port", "0")
	cmd.SysProcAttr = procAttr()
	cmd.Env = append(os.Environ(), o.env()...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("mototest: %w", err)
	}
	s := &Server{cmd: cmd, stderr: &tail{max: 16 << 10}, exited: make(chan struct{})}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("mototest: start %s: %w", launcher, err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "listening ") {
				lines <- strings.TrimPrefix(sc.Text(), "listening ")
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case url := <-lines:
		s.Endpoint = url
	case <-s.exited:
		return nil, fmt.Errorf("mototest: the launcher exited before listening (is moto installed for %s? pip install 'moto[server]'): %v\n%s", python, s.waitErr, s.stderr)
	case <-timer.C:
		s.Stop()
		return nil, fmt.Errorf("mototest: the launcher did not listen within %s\n%s", startTimeout, s.stderr)
	case <-ctx.Done():
		s.Stop()
		return nil, fmt.Errorf("mototest: %w", ctx.Err())
	}
	s.http = &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        128,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     30 * time.Second,
	}}
	return s, nil
}

// Start launches a server for tb and stops it when tb ends. It fails tb if
// moto cannot be started.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := Launch(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// Stop ends the server and closes the idle connections of its clients.
func (s *Server) Stop() {
	s.once.Do(func() {
		if s.http != nil {
			s.http.CloseIdleConnections()
		}
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
		}
	})
}

// Exited reports whether the server process has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// Reset drops every resource of every service (POST /moto-api/reset).
func (s *Server) Reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint+"/moto-api/reset", nil)
	if err != nil {
		return fmt.Errorf("mototest: reset: %w", err)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("mototest: reset: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mototest: reset: %s", resp.Status)
	}
	return nil
}

// Config returns an SDK config for the server: its endpoint, Region, static
// test credentials, and an HTTP client whose connections Stop closes.
// Callers add their retryer and middleware to the copy they get.
func (s *Server) Config() aws.Config {
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(s.Endpoint),
		HTTPClient:   s.http,
	}
}

// Stderr returns the last lines the server wrote to stderr.
func (s *Server) Stderr() string { return s.stderr.String() }

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// RunMain is a TestMain's body for a package whose tests share one moto:
// it sets static test credentials in the environment (moto accepts any; the
// servers a test starts inherit them), launches moto into *srv, runs the
// tests, stops moto, and checks for leaked goroutines. It returns the exit
// code; a missing moto fails the package, naming who needs it.
func RunMain(m *testing.M, srv **Server, who string) int {
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true"} {
		os.Setenv(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	s, err := Launch(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s need moto: %v\n", who, err)
		return 1
	}
	*srv = s
	code := m.Run()
	s.Stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}
