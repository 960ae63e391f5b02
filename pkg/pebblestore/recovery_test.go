package pebblestore_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/pebblestore"
)

// logLines returns the JSON log lines written to buf.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		out = append(out, m)
	}
	return out
}

func jsonLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// A new store and a store closed cleanly open without a recovery line.
func TestCleanReopenLogsNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs bytes.Buffer
	s, err := pebblestore.Open(dir, pebblestore.Options{Logger: jsonLogger(&logs)})
	require.NoError(t, err)
	require.Empty(t, logs.String(), "a new directory is not an unclean one")
	require.NoError(t, s.PutPool(t.Context(), core.PoolConfig{Name: "p", Capacity: 1, MaxParked: 1}))
	require.NoError(t, s.Close())
	_, err = os.Stat(filepath.Join(dir, pebblestore.CleanFile))
	require.NoError(t, err, "Close leaves the clean-shutdown marker")

	s, err = pebblestore.Open(dir, pebblestore.Options{Logger: jsonLogger(&logs)})
	require.NoError(t, err)
	require.Empty(t, logs.String())
	_, err = os.Stat(filepath.Join(dir, pebblestore.CleanFile))
	require.ErrorIs(t, err, fs.ErrNotExist, "an open store has no marker")
	require.NoError(t, s.Close())
}

// After a crash, Open logs one line: the last sequence number and each
// pool's counters as recovered.
func TestRecoveryIsLogged(t *testing.T) {
	t.Parallel()
	mem := vfs.NewCrashableMem()
	clock := core.NewStubClock(t0)
	var logs bytes.Buffer
	open := func(fsys vfs.FS) *pebblestore.Store {
		s, err := pebblestore.Open("/data", pebblestore.Options{FS: fsys, Clock: clock, Logger: jsonLogger(&logs)})
		require.NoError(t, err)
		return s
	}
	// A clean close and reopen first: the marker's removal at Open must
	// be durable for the crash below to be seen.
	s := open(mem)
	sched, err := core.New(core.Config{Backend: s, Clock: clock})
	require.NoError(t, err)
	for _, cfg := range []core.PoolConfig{
		{Name: "gpu", Capacity: 1, MaxParked: 10, DefaultMaxWait: time.Hour, RunTimeout: time.Minute},
		{Name: "cpu", Capacity: 4, MaxParked: 10, DefaultMaxWait: time.Hour, RunTimeout: time.Minute},
	} {
		require.NoError(t, sched.PutPool(t.Context(), cfg))
	}
	require.NoError(t, s.Close())
	s = open(mem)
	require.Empty(t, logs.String())
	sched, err = core.New(core.Config{Backend: s, Clock: clock})
	require.NoError(t, err)
	for range 3 {
		_, err := sched.Submit(t.Context(), core.SubmitRequest{Tenant: "acme", Pool: "gpu"})
		require.NoError(t, err)
	}
	_, err = sched.Submit(t.Context(), core.SubmitRequest{Tenant: "acme", Pool: "cpu"})
	require.NoError(t, err)
	seq := pebblestore.Seq(s)
	require.Positive(t, seq)

	crashed := mem.CrashClone(vfs.CrashCloneCfg{}) // power cut: only what was synced
	require.NoError(t, s.Close())                  // the first process's goroutines end here

	s = open(crashed)
	lines := logLines(t, &logs)
	require.Len(t, lines, 1, logs.String())
	line := lines[0]
	require.Equal(t, "WARN", line["level"])
	require.Contains(t, line["msg"], "not closed cleanly")
	require.Equal(t, "/data", line["path"])
	require.EqualValues(t, seq, line["seq"])
	require.Equal(t, map[string]any{
		"gpu": map[string]any{"running": 1.0, "parked": 2.0},
		"cpu": map[string]any{"running": 1.0, "parked": 0.0},
	}, line["pools"])
	require.Equal(t, seq, pebblestore.Seq(s))

	// Closed cleanly again: the next Open is quiet.
	require.NoError(t, s.Close())
	logs.Reset()
	require.NoError(t, open(crashed).Close())
	require.Empty(t, logs.String())
}
