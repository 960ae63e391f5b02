// Package testserver builds the real parkinglot binary and runs
// `parkinglot serve` for the end-to-end and load tests.
package testserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Build compiles ./cmd/parkinglot (without -race) into a temporary
// directory and returns the binary's path.
func Build(t testing.TB) string {
	t.Helper()
	root := moduleRoot(t)
	bin := filepath.Join(t.TempDir(), "parkinglot")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/parkinglot")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

func moduleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	require.NoError(t, err)
	gomod := strings.TrimSpace(string(out))
	require.NotEmpty(t, gomod, "not inside the module")
	return filepath.Dir(gomod)
}

// Server is a running `parkinglot serve`.
type Server struct {
	// URL is the base URL, e.g. http://127.0.0.1:41234.
	URL string

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // of Wait, set before exited is closed

	mu  sync.Mutex
	log bytes.Buffer
}

// Start writes config (YAML; its listen address should be
// 127.0.0.1:0) to a file and starts `bin serve --config FILE`, returning
// once the server says where it listens and /healthz answers. The server
// is killed at the end of the test if it is still running.
func Start(t testing.TB, bin, config string) *Server {
	t.Helper()
	return StartEnv(t, bin, config)
}

// StartEnv is Start with env (KEY=value entries) added to the server's
// environment, which is otherwise the test's.
func StartEnv(t testing.TB, bin, config string, env ...string) *Server {
	t.Helper()
	path := filepath.Join(t.TempDir(), "parkinglot.yaml")
	require.NoError(t, os.WriteFile(path, []byte(config), 0o600))
	cmd := exec.Command(bin, "serve", "--config", path)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = procAttr()
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	s := &Server{cmd: cmd, exited: make(chan struct{})}

	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			s.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if !sent && json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "parkinglot listening" {
				addr <- rec.Addr
				sent = true
			}
		}
		s.err = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.Log())
		}
	})

	select {
	case s.URL = <-addr:
	case <-s.exited:
		t.Fatalf("parkinglot serve exited before listening: %v\n%s", s.err, s.Log())
	case <-time.After(2 * time.Minute): // a hang guard, not a speed bound
		t.Fatalf("parkinglot serve did not start within 2m\n%s", s.Log())
	}
	require.NoError(t, s.waitHealthy(time.Minute))
	return s
}

func (s *Server) waitHealthy(within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("/healthz not ok within %s: %v", within, err)
		case <-tick.C:
		}
	}
}

// Log returns what the server has logged so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Logged returns the string field key of the first JSON log line whose
// msg is msg, or "" if there is none yet.
func (s *Server) Logged(msg, key string) string {
	for _, line := range strings.Split(s.Log(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != msg {
			continue
		}
		v, _ := rec[key].(string)
		return v
	}
	return ""
}

// Stop sends SIGTERM and waits up to within for the server to exit,
// returning its exit code.
func (s *Server) Stop(t testing.TB, within time.Duration) int {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s.exited:
	case <-time.After(within):
		t.Fatalf("parkinglot serve did not exit within %s of SIGTERM\n%s", within, s.Log())
	}
	var ee *exec.ExitError
	if errors.As(s.err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(t, s.err)
	return 0
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it to
// exit.
func (s *Server) Kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// BuildMain compiles cmd/parkinglot (without -race) into dir, for a
// TestMain that shares one binary among a package's tests, and returns the
// binary's path.
func BuildMain(dir string) (string, error) {
	bin := filepath.Join(dir, "parkinglot")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/parkinglot/parkinglot/cmd/parkinglot")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build: %w", err)
	}
	return bin, nil
}
