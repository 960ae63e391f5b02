package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/internal/config"
)

func TestSample(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte(config.Sample))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", c.Listen)
	require.Equal(t, config.StoreEmbedded, c.Store.Type)
	require.Equal(t, "./data", c.Store.Path)
	require.Equal(t, map[string]string{"dev-token": "acme"}, c.Auth.TokenMap())
	require.Len(t, c.Pools, 2)
	require.Equal(t, config.Pool{Name: "gpu", Capacity: 4, MaxParked: 1000, DefaultMaxWait: 10 * time.Minute, RunTimeout: 5 * time.Minute}, c.Pools[0])
	require.Equal(t, 250*time.Millisecond, c.SweepInterval)
	for _, p := range c.Pools {
		require.NoError(t, p.Core().Validate())
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte("pools:\n  - name: a\n    capacity: 2\n"))
	require.NoError(t, err)
	require.Equal(t, config.DefaultListen, c.Listen)
	require.Equal(t, config.StoreEmbedded, c.Store.Type)
	require.Equal(t, config.DefaultStorePath, c.Store.Path)
	require.Equal(t, config.DefaultSweepInterval, c.SweepInterval)
	require.Equal(t, config.DefaultMailboxPoll, c.MailboxPoll)
	require.Equal(t, config.DefaultShutdownTimeout, c.ShutdownTimeout)
	require.Equal(t, 30*time.Second, c.ReadTimeout)
	require.Equal(t, 30*time.Second, c.WriteTimeout)
	require.Equal(t, 2*time.Minute, c.IdleTimeout)
	require.Equal(t, 1024, c.MaxConnections)
	require.Equal(t, config.Metrics{}, c.Metrics)
	require.False(t, c.Auth.Anonymous)
	require.Equal(t, "info", c.Log.Level)
	require.Equal(t, config.LogAuto, c.Log.Format)
	require.Empty(t, c.Auth.Tokens)
	require.Equal(t, config.Pool{Name: "a", Capacity: 2, DefaultMaxWait: config.DefaultMaxWait, RunTimeout: config.DefaultRunTimeout}, c.Pools[0])
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "parkinglot.yaml")
	require.NoError(t, os.WriteFile(path, []byte(config.Sample), 0o600))
	c, err := config.Load(path)
	require.NoError(t, err)
	require.Len(t, c.Pools, 2)

	_, err = config.Load(filepath.Join(dir, "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)

	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("pools:\n  - name: a\n    capacity: 0\n"), 0o600))
	_, err = config.Load(bad)
	require.ErrorContains(t, err, "pools[0].capacity: pool a: capacity must be at least 1")
	require.ErrorContains(t, err, bad)
}

const okPools = `
pools:
  - name: gpu
    capacity: 4
  - name: cpu
    capacity: 8
`

func TestInvalid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml, field, reason string
	}{
		{"capacity zero", "pools:\n  - name: a\n    capacity: 1\n  - name: b\n    capacity: 0\n", "pools[1].capacity", "must be at least 1"},
		{"capacity not int", "pools:\n  - name: a\n    capacity: four\n", "pools[0].capacity", "not an integer"},
		{"capacity huge", "pools:\n  - name: a\n    capacity: 99999999999999\n", "pools[0].capacity", "not an integer"},
		{"negative maxParked", "pools:\n  - name: a\n    capacity: 1\n    maxParked: -1\n", "pools[0].maxParked", "must not be negative"},
		{"negative slotShards", "pools:\n  - name: a\n    capacity: 4\n    slotShards: -1\n", "pools[0].slotShards", "must be 0-64"},
		{"too many slotShards", "pools:\n  - name: a\n    capacity: 100\n    slotShards: 65\n", "pools[0].slotShards", "must be 0-64"},
		{"slotShards over capacity", "pools:\n  - name: a\n    capacity: 2\n    slotShards: 3\n", "pools[0].slotShards", "exceeds capacity 2"},
		{"bad duration", "pools:\n  - name: a\n    capacity: 1\n    runTimeout: soon\n", "pools[0].runTimeout", "not a duration"},
		{"negative wait", "pools:\n  - name: a\n    capacity: 1\n    defaultMaxWait: -1s\n", "pools[0].defaultMaxWait", "must be positive"},
		{"wait too long", "pools:\n  - name: a\n    capacity: 1\n    defaultMaxWait: 10000h\n", "pools[0].defaultMaxWait", "at most"},
		{"bad pool name", "pools:\n  - name: a b\n    capacity: 1\n", "pools[0].name", "A-Za-z0-9"},
		{"missing pool name", "pools:\n  - capacity: 1\n", "pools[0].name", "A-Za-z0-9"},
		{"duplicate pool", "pools:\n  - name: a\n    capacity: 1\n  - name: a\n    capacity: 2\n", "pools[1].name", "duplicate pool name"},
		{"no pools", "listen: 127.0.0.1:1\n", "pools", "at least one pool"},
		{"pools not a list", "pools: gpu\n", "pools", "must be a list"},
		{"unknown top key", "listn: x\n" + okPools, "listn", "unknown field"},
		{"unknown pool key", "pools:\n  - name: a\n    capacity: 1\n    cap: 2\n", "pools[0].cap", "unknown field"},
		{"unknown store key", "store:\n  typ: memory\n" + okPools, "store.typ", "unknown field"},
		{"repeated key", "listen: a\nlisten: b\n" + okPools, "listen", "repeated key"},
		{"store type", "store:\n  type: redis\n" + okPools, "store.type", "unknown store type"},
		{"empty token", "auth:\n  tokens:\n    - token: \"\"\n      tenant: acme\n" + okPools, "auth.tokens[0].token", "must not be empty"},
		{"empty tenant", "auth:\n  tokens:\n    - token: t1\n" + okPools, "auth.tokens[0].tenant", "must not be empty"},
		{"worker without pools", "auth:\n  tokens:\n    - {token: t1, role: worker, name: w}\n" + okPools, "auth.tokens[0].pools", "must name the pools"},
		{"worker of an unknown pool", "auth:\n  tokens:\n    - {token: t1, role: worker, name: w, pools: [nope]}\n" + okPools, "auth.tokens[0].pools[0]", "no pool \"nope\""},
		{"worker with a tenant", "auth:\n  tokens:\n    - {token: t1, role: worker, name: w, tenant: acme, pools: [gpu]}\n" + okPools, "auth.tokens[0].tenant", "has no tenant"},
		{"worker without a name", "auth:\n  tokens:\n    - {token: t1, role: worker, pools: [gpu]}\n" + okPools, "auth.tokens[0].name", "1-128 bytes"},
		{"tenant with pools", "auth:\n  tokens:\n    - {token: t1, tenant: acme, pools: [gpu]}\n" + okPools, "auth.tokens[0].pools", "a worker's"},
		{"unknown role", "auth:\n  tokens:\n    - {token: t1, role: admin, tenant: acme}\n" + okPools, "auth.tokens[0].role", "tenant or worker"},
		{"unknown executor", "pools:\n  - {name: gpu, capacity: 1, executor: shove}\n", "pools[0].executor", "permit"},
		{"push without target", "pools:\n  - {name: gpu, capacity: 1, executor: push}\n", "pools[0].target", "needs a target"},
		{"target without push", "pools:\n  - {name: gpu, capacity: 1, target: {type: http, url: 'http://127.0.0.1:9/'}}\n", "pools[0].target", "only a pool with executor: push"},
		{"target type", "pools:\n  - {name: gpu, capacity: 1, executor: push, target: {type: ftp}}\n", "pools[0].target.type", "must be"},
		{"target url", "pools:\n  - {name: gpu, capacity: 1, executor: push, target: {type: http, url: 'localhost:80'}}\n", "pools[0].target.url", "absolute http or https URL"},
		{"target mode", "pools:\n  - {name: gpu, capacity: 1, executor: push, target: {type: http, url: 'http://h/', mode: later}}\n", "pools[0].target.mode", "sync"},
		{"target attempts", "pools:\n  - {name: gpu, capacity: 1, executor: push, target: {type: http, url: 'http://h/', maxAttempts: -1}}\n", "pools[0].target.maxAttempts", "1-100"},
		{"target function", "pools:\n  - {name: gpu, capacity: 1, executor: push, target: {type: lambda}}\n", "pools[0].target.function", "required"},
		{"target queue", "pools:\n  - {name: gpu, capacity: 1, executor: push, target: {type: sqs}}\n", "pools[0].target.queueUrl", "required"},
		{"target secret env", "pools:\n  - {name: gpu, capacity: 1, executor: push, target: {type: http, url: 'http://h/', secretEnv: PARKINGLOT_TEST_UNSET_SECRET}}\n", "pools[0].target.secretEnv", "not set"},
		{"duplicate token", "auth:\n  tokens:\n    - token: t1\n      tenant: a\n    - token: t1\n      tenant: b\n" + okPools, "auth.tokens[1].token", "duplicate token"},
		{"sweep interval", "sweepInterval: -1s\n" + okPools, "sweepInterval", "must be positive"},
		{"mailbox poll", "mailboxPoll: -1s\n" + okPools, "mailboxPoll", "must be positive"},
		{"mailbox poll too long", "mailboxPoll: 21s\n" + okPools, "mailboxPoll", "at most 20s"},
		{"log level", "log:\n  level: loud\n" + okPools, "log.level", "must be debug"},
		{"log format", "log:\n  format: xml\n" + okPools, "log.format", "must be auto"},
		{"alias", "listen: &x 1\n", "listen", "aliases"},
		{"top level list", "- 1\n- 2\n", "(top level)", "mapping"},
		{"listen no port", "listen: localhost\n" + okPools, "listen", "host:port"},
		{"listen mapping", "listen:\n  a: b\n" + okPools, "listen", "single value"},
		{"token leading space", "auth:\n  tokens:\n    - {token: \" t1\", tenant: a}\n" + okPools, "auth.tokens[0].token", "must not start or end with white space"},
		{"token trailing space", "auth:\n  tokens:\n    - {token: t0, tenant: a}\n    - {token: \"t1 \", tenant: b}\n" + okPools, "auth.tokens[1].token", "must not start or end with white space"},
		{"token trailing tab", "auth:\n  tokens:\n    - {token: \"t1\\t\", tenant: a}\n" + okPools, "auth.tokens[0].token", "must not start or end with white space"},
		{"token trailing newline", "auth:\n  tokens:\n    - token: |\n        t1\n      tenant: a\n" + okPools, "auth.tokens[0].token", "must not start or end with white space"},
		{"token control character", "auth:\n  tokens:\n    - {token: \"t\\x01k\", tenant: a}\n" + okPools, "auth.tokens[0].token", "control characters"},
		{"read timeout", "readTimeout: -1s\n" + okPools, "readTimeout", "must be positive"},
		{"write timeout", "writeTimeout: -30s\n" + okPools, "writeTimeout", "must be positive"},
		{"idle timeout", "idleTimeout: -1m\n" + okPools, "idleTimeout", "must be positive"},
		{"read timeout not a duration", "readTimeout: 30\n" + okPools, "readTimeout", "not a duration"},
		{"max connections", "maxConnections: -1\n" + okPools, "maxConnections", "must be at least 1"},
		{"max connections not int", "maxConnections: many\n" + okPools, "maxConnections", "not an integer"},
		{"anonymous with tokens", "auth:\n  anonymous: true\n  tokens:\n    - {token: t1, tenant: a}\n" + okPools, "auth.anonymous", "must not be true with auth.tokens"},
		{"anonymous not bool", "auth:\n  anonymous: yes\n" + okPools, "auth.anonymous", "not true or false"},
		{"metrics listen", "metrics:\n  listen: nowhere\n" + okPools, "metrics.listen", "host:port"},
		{"metrics listen is listen", "listen: 127.0.0.1:8080\nmetrics:\n  listen: 127.0.0.1:8080\n" + okPools, "metrics.listen", "must differ from listen"},
		{"metrics token space", "metrics:\n  token: \"m \"\n" + okPools, "metrics.token", "must not start or end with white space"},
		{"metrics unknown key", "metrics:\n  port: 9090\n" + okPools, "metrics.port", "unknown field"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse([]byte(tc.yaml))
			require.Error(t, err)
			var fe *config.FieldError
			require.True(t, errors.As(err, &fe), "%v is not a FieldError", err)
			require.Equal(t, tc.field, fe.Field, "%v", err)
			require.Contains(t, fe.Reason, tc.reason)
			require.True(t, strings.HasPrefix(err.Error(), tc.field+": "), "%v", err)
		})
	}
}

func TestServerLimits(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte("readTimeout: 5s\nwriteTimeout: 1m\nidleTimeout: 10s\nmaxConnections: 64\n" + okPools))
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, c.ReadTimeout)
	require.Equal(t, time.Minute, c.WriteTimeout)
	require.Equal(t, 10*time.Second, c.IdleTimeout)
	require.Equal(t, 64, c.MaxConnections)
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte("metrics:\n  listen: 127.0.0.1:9090\n  token: \"scrape me\"\n" + okPools))
	require.NoError(t, err)
	require.Equal(t, config.Metrics{Listen: "127.0.0.1:9090", Token: "scrape me"}, c.Metrics)
	// Two ephemeral ports are two listeners.
	_, err = config.Parse([]byte("listen: 127.0.0.1:0\nmetrics: {listen: 127.0.0.1:0}\n" + okPools))
	require.NoError(t, err)
}

// TestNonLoopbackNeedsTokens: without tokens, a listen address that other
// hosts can reach is refused unless auth.anonymous says so; a loopback one
// is not.
func TestNonLoopbackNeedsTokens(t *testing.T) {
	t.Parallel()
	const tokens = "auth:\n  tokens:\n    - {token: t1, tenant: acme}\n"
	for _, listen := range []string{"0.0.0.0:8080", ":8080", "[::]:8080", "192.0.2.10:8080", "[2001:db8::1]:8080", "example.com:8080"} {
		_, err := config.Parse([]byte("listen: \"" + listen + "\"\n" + okPools))
		var fe *config.FieldError
		require.ErrorAs(t, err, &fe, listen)
		require.Equal(t, "auth.tokens", fe.Field, listen)
		require.Contains(t, fe.Reason, "auth.anonymous: true", listen)
		require.Contains(t, fe.Reason, listen)

		c, err := config.Parse([]byte("listen: \"" + listen + "\"\nauth: {anonymous: true}\n" + okPools))
		require.NoError(t, err, listen)
		require.True(t, c.Auth.Anonymous)

		_, err = config.Parse([]byte("listen: \"" + listen + "\"\n" + tokens + okPools))
		require.NoError(t, err, listen)
	}
	for _, listen := range []string{"127.0.0.1:8080", "127.0.0.2:0", "localhost:8080", "LOCALHOST:1", "[::1]:8080"} {
		_, err := config.Parse([]byte("listen: \"" + listen + "\"\n" + okPools))
		require.NoError(t, err, listen)
	}
}

func TestTokenErrorsNotEchoed(t *testing.T) {
	t.Parallel()
	for _, yaml := range []string{
		"auth:\n  tokens:\n    - {token: \" s3cret\", tenant: a}\n",
		"auth:\n  tokens:\n    - {token: \"s3\\x00cret\", tenant: a}\n",
		"metrics:\n  token: \"s3cret \"\n",
	} {
		_, err := config.Parse([]byte(yaml + okPools))
		require.Error(t, err)
		require.NotContains(t, err.Error(), "s3cret")
	}
	// White space inside a token is sent as is, and matches.
	c, err := config.Parse([]byte("auth:\n  tokens:\n    - {token: \"two words\", tenant: a}\n" + okPools))
	require.NoError(t, err)
	require.Equal(t, map[string]string{"two words": "a"}, c.Auth.TokenMap())
}

func TestSlotShards(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte("pools:\n  - name: hot\n    capacity: 64\n    slotShards: 8\n"))
	require.NoError(t, err)
	require.Equal(t, 8, c.Pools[0].SlotShards)
	require.Equal(t, 8, c.Pools[0].Core().SlotShards)
}

func TestDuplicateTokenNotEchoed(t *testing.T) {
	t.Parallel()
	_, err := config.Parse([]byte("auth:\n  tokens:\n    - token: s3cret\n      tenant: a\n    - token: s3cret\n      tenant: b\n" + okPools))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret")
}

func TestSyntaxError(t *testing.T) {
	t.Parallel()
	_, err := config.Parse([]byte("pools: [\n"))
	require.ErrorContains(t, err, "yaml:")
}

func TestEmbeddedStore(t *testing.T) {
	t.Parallel()
	c, err := config.Parse([]byte("store:\n  type: embedded\n  path: /var/lib/parkinglot\n" + okPools))
	require.NoError(t, err)
	require.Equal(t, config.Store{Type: config.StoreEmbedded, Path: "/var/lib/parkinglot"}, c.Store)
}

// FuzzParse: never a panic; a parsed config is valid; a config that parses
// as YAML but fails validation names a field.
func FuzzParse(f *testing.F) {
	f.Add([]byte(config.Sample))
	f.Add([]byte(okPools))
	f.Add([]byte("pools:\n  - name: a\n    capacity: 0\n"))
	f.Add([]byte("a: &x [*x, *x]\n"))
	f.Add([]byte("pools: {}\n"))
	f.Add([]byte("auth:\n  tokens: [{token: a, tenant: b}, {token: a, tenant: c}]\n" + okPools))
	f.Add([]byte("sweepInterval: 9999999999999999999h\n"))
	f.Add([]byte("\x00\xff"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := config.Parse(b)
		if err == nil {
			require.NoError(t, c.Validate())
			require.NotEmpty(t, c.Pools)
			return
		}
		var fe *config.FieldError
		if errors.As(err, &fe) {
			require.NotEmpty(t, fe.Field)
			return
		}
		require.True(t, strings.HasPrefix(err.Error(), "yaml: "), "error neither names a field nor is a YAML syntax error: %v", err)
	})
}
