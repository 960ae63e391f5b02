package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/config"
	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
)

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestUsage(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCmd(t)
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "usage: parkinglot")
	code, _, stderr = runCmd(t, "frobnicate")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, `unknown command "frobnicate"`)
	code, stdout, _ := runCmd(t, "help")
	require.Equal(t, exitOK, code)
	require.Contains(t, stdout, "Exit codes")
	code, _, _ = runCmd(t, "status")
	require.Equal(t, exitUsage, code)
	code, _, _ = runCmd(t, "pools", "a", "b")
	require.Equal(t, exitUsage, code)
	code, _, _ = runCmd(t, "submit", "gpu", "--server", "not a url")
	require.Equal(t, exitUsage, code)
}

func TestServePrintSample(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runCmd(t, "serve", "--print-sample")
	require.Equal(t, exitOK, code)
	require.Equal(t, config.Sample, stdout)
	_, err := config.Parse([]byte(stdout))
	require.NoError(t, err)
}

func TestServeInvalidConfig(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(path, []byte("pools:\n  - {name: a, capacity: 1}\n  - {name: b, capacity: 0}\n"), 0o600))
	code, _, stderr := runCmd(t, "serve", "--config", path)
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "pools[1].capacity: pool b: capacity must be at least 1")

	code, _, stderr = runCmd(t, "serve", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "no such file")
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	cases := map[int]int{
		http.StatusBadRequest: exitUsage, http.StatusRequestEntityTooLarge: exitUsage,
		http.StatusNotFound: exitNotFound, http.StatusConflict: exitConflict,
		http.StatusTooManyRequests: exitRejected, http.StatusUnauthorized: exitUnauthorized,
		http.StatusInternalServerError: exitOther,
	}
	for status, want := range cases {
		require.Equal(t, want, exitCode(&client.Error{Status: status}), status)
	}
	require.Equal(t, exitUsage, exitCode(usagef("bad")))
	require.Equal(t, exitOther, exitCode(context.DeadlineExceeded))
}

func TestParseInterspersed(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	a := fs.String("a", "", "")
	b := fs.Bool("b", false, "")
	pos, err := parseInterspersed(fs, []string{"one", "-a", "x", "two", "-b", "--", "-three"})
	require.NoError(t, err)
	require.Equal(t, []string{"one", "two", "-three"}, pos)
	require.Equal(t, "x", *a)
	require.True(t, *b)
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(name)) })
	}
	h := routes(named("api"), named("healthz"), named("metrics"))
	for path, want := range map[string]string{
		"/healthz": "healthz", "/metrics": "metrics", "/v1/pools": "api", "/v1/tasks//cancel": "api", "/": "api",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		require.Equal(t, want, rec.Body.String(), path)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/healthz", nil))
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
}

func TestRoutesMetricsElsewhere(t *testing.T) {
	t.Parallel()
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(name)) })
	}
	h := routes(named("api"), named("healthz"), nil)
	for path, want := range map[string]string{"/healthz": "healthz", "/metrics": "api", "/v1/pools": "api"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		require.Equal(t, want, rec.Body.String(), path)
	}

	m := metricsOnly(named("metrics"))
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, "metrics", rec.Body.String())
	for _, path := range []string{"/healthz", "/v1/pools", "/"} {
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		require.Equal(t, http.StatusNotFound, rec.Code, path)
	}
	rec = httptest.NewRecorder()
	m.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/metrics", nil))
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
}

func TestRequireToken(t *testing.T) {
	t.Parallel()
	h := requireToken("scrape token", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("metrics")) }))
	for auth, want := range map[string]int{
		"": http.StatusUnauthorized, "Bearer": http.StatusUnauthorized, "Bearer scrape": http.StatusUnauthorized,
		"Basic scrape token": http.StatusUnauthorized, "Bearer scrape token": http.StatusOK, "bearer  scrape token ": http.StatusOK,
	} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, want, rec.Code, auth)
		if want == http.StatusUnauthorized {
			require.NotEmpty(t, rec.Header().Get("WWW-Authenticate"))
			require.NotContains(t, rec.Body.String(), "scrape token")
		}
	}
}

func TestAnyClient(t *testing.T) {
	t.Parallel()
	for _, remote := range []string{"203.0.113.7:40000", "[2001:db8::7]:40000", "127.0.0.1:40000"} {
		req := httptest.NewRequest(http.MethodGet, "/v1/pools", nil)
		req.RemoteAddr = remote
		id, err := anyClient{}.Identify(req)
		require.NoError(t, err)
		require.Equal(t, httpapi.TenantIdentity(httpapi.DefaultTenant), id)
	}
	// Without anonymous, the same clients are refused but the loopback one.
	auth := httpapi.NewTokenAuth(nil)
	req := httptest.NewRequest(http.MethodGet, "/v1/pools", nil)
	req.RemoteAddr = "203.0.113.7:40000"
	_, err := auth.Identify(req)
	require.ErrorIs(t, err, httpapi.ErrNotLoopback)
}

// unreadable is a request body that fails the test if it is read.
type unreadable struct{ t *testing.T }

func (u unreadable) Read([]byte) (int, error) {
	u.t.Error("the body was read")
	return 0, io.ErrUnexpectedEOF
}

func TestRefuseUnknownTokens(t *testing.T) {
	t.Parallel()
	var served []string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served = append(served, r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusNoContent)
	})
	h := refuseUnknownTokens(map[string]string{"t1": "acme"}, next)
	for _, tc := range []struct {
		auth   string
		body   bool
		status int
	}{
		{"", true, http.StatusUnauthorized},
		{"Bearer t2", true, http.StatusUnauthorized},
		{"Bearer t1", true, http.StatusNoContent},
		{"", false, http.StatusNoContent}, // the function answers a request without a body
	} {
		req := httptest.NewRequest(http.MethodPost, "/v1/pools/gpu/tasks", nil)
		if tc.body {
			req.Body, req.ContentLength = io.NopCloser(unreadable{t}), 100
			if tc.status == http.StatusNoContent {
				req.Body = io.NopCloser(strings.NewReader("{}"))
			}
		}
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, tc.status, rec.Code, "%+v", tc)
		if tc.status == http.StatusUnauthorized {
			require.Equal(t, "close", rec.Header().Get("Connection"))
			var e api.Error
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
			require.Equal(t, api.CodeUnauthorized, e.Error.Code)
		}
	}
	require.Equal(t, []string{"Bearer t1", ""}, served)
}

func TestVersionCommand(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"version", "--version"} {
		code, stdout, _ := runCmd(t, arg)
		require.Equal(t, exitOK, code)
		require.Regexp(t, `^version: \S+\ncommit: \S.*\ngo: `+regexp.QuoteMeta(runtime.Version())+` \S+/\S+\n$`, stdout)
	}
	code, _, stderr := runCmd(t, "version", "extra")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "unexpected argument")
	_, stdout, _ := runCmd(t, "help")
	require.Contains(t, stdout, "version")
}

func TestBuildInfoOf(t *testing.T) {
	t.Parallel()
	goVersion := func(v string) string { return v + " " + runtime.GOOS + "/" + runtime.GOARCH }
	require.Equal(t, buildInfo{Version: "unknown", Commit: "unknown", Go: goVersion(runtime.Version())}, buildInfoOf(nil))
	// go build -buildvcs=false, go run, go test: no VCS settings.
	require.Equal(t, buildInfo{Version: "(devel)", Commit: "unknown", Go: goVersion("go1.26.0")},
		buildInfoOf(&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/parkinglot/parkinglot", Version: "(devel)"}}))
	require.Equal(t, buildInfo{Version: "v1.2.0", Commit: "0123abcd 2026-12-01T10:00:00Z (modified)", Go: goVersion("go1.26.0")},
		buildInfoOf(&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123abcd"},
			{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"},
		}}))
	require.Equal(t, buildInfo{Version: "v1.2.0", Commit: "0123abcd", Go: goVersion("go1.26.0")},
		buildInfoOf(&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "false"},
		}}))
	// An empty main version (some build modes) reads as unknown.
	require.Equal(t, "unknown", buildInfoOf(&debug.BuildInfo{}).Version)
}
