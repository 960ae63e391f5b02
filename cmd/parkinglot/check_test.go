package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/pebblestore"
)

// checkData is a data directory filled through core: pool gpu (capacity 1)
// with a task succeeded, one running and one parked, and their messages.
type checkData struct {
	dir             string
	running, parked core.Task
	completed       core.Task
}

// newCheckData fills a data directory; change, if set, runs on the open
// store before it is closed.
func newCheckData(t *testing.T, change func(s *pebblestore.Store)) checkData {
	t.Helper()
	ctx := t.Context()
	d := checkData{dir: t.TempDir()}
	clock := core.NewStubClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	s, err := pebblestore.Open(d.dir, pebblestore.Options{Clock: clock})
	require.NoError(t, err)
	sched, err := core.New(core.Config{Backend: s, Clock: clock})
	require.NoError(t, err)
	require.NoError(t, sched.PutPool(ctx, core.PoolConfig{Name: "gpu", Capacity: 1, MaxParked: 10, DefaultMaxWait: time.Hour, RunTimeout: time.Hour}))
	submit := func() core.Task {
		res, err := sched.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "gpu"})
		require.NoError(t, err)
		return res.Task
	}
	d.completed = submit()
	d.running = submit()
	d.parked = submit()
	_, err = sched.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: d.completed.ID, Lease: d.completed.Lease, Status: core.StateSucceeded})
	require.NoError(t, err)
	// The slot went to the first parked task; the second one still waits.
	got, err := s.Task(ctx, d.running.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateRunning, got.State)
	got, err = s.Task(ctx, d.parked.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateParked, got.State)
	if change != nil {
		change(s)
	}
	require.NoError(t, s.Close())
	return d
}

// withPebble changes dir with Pebble alone, behind the store's back.
func withPebble(t *testing.T, dir string, change func(db *pebble.DB)) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FS: vfs.Default, FormatMajorVersion: pebble.FormatNewest})
	require.NoError(t, err)
	change(db)
	require.NoError(t, db.Close())
}

func TestCheckClean(t *testing.T) {
	t.Parallel()
	d := newCheckData(t, nil)
	code, stdout, stderr := runCmd(t, "check", "--data", d.dir)
	require.Equal(t, exitOK, code, stdout+stderr)
	require.Empty(t, stderr)
	require.Contains(t, stdout, "checked "+d.dir+"\n")
	require.Contains(t, stdout, "last shutdown clean\n")
	require.Contains(t, stdout, "  pools: 1\n")
	require.Contains(t, stdout, "  tasks: 3 (running 1, parked 1, succeeded 1)\n")
	require.Contains(t, stdout, "  mailboxes: 1, messages: 3, acknowledged cursors: 0\n")
	require.Contains(t, stdout, "  audit events: 5\n")
	require.True(t, strings.HasSuffix(stdout, "\nno findings\n"), stdout)
}

func TestCheckFindings(t *testing.T) {
	t.Parallel()
	t.Run("pool counter", func(t *testing.T) {
		t.Parallel()
		// A counter moved without a task: the transaction core never writes.
		d := newCheckData(t, func(s *pebblestore.Store) {
			require.NoError(t, s.Commit(t.Context(), &core.Txn{Pool: "gpu", RunningDelta: 1}))
		})
		code, stdout, _ := runCmd(t, "check", "--data", d.dir)
		require.Equal(t, exitOther, code, stdout)
		require.Contains(t, stdout, "\n1 finding:\n  pool \"gpu\": running counter 2, tasks running in it 1\n")
	})
	t.Run("flipped byte", func(t *testing.T) {
		t.Parallel()
		d := newCheckData(t, nil)
		withPebble(t, d.dir, func(db *pebble.DB) {
			k := append([]byte{'t'}, d.completed.ID...) // the task's key: space 't', then its id
			v, closer, err := db.Get(k)
			require.NoError(t, err)
			v = append([]byte(nil), v...)
			require.NoError(t, closer.Close())
			v[len(v)/2] ^= 0x20
			require.NoError(t, db.Set(k, v, pebble.Sync))
		})
		code, stdout, _ := runCmd(t, "check", "--data", d.dir)
		require.Equal(t, exitOther, code, stdout)
		require.Contains(t, stdout, fmt.Sprintf("  task %q: bad value: *core.Task: data file is corrupt: checksum mismatch\n", d.completed.ID))
	})
	t.Run("queue message deleted", func(t *testing.T) {
		t.Parallel()
		d := newCheckData(t, nil)
		withPebble(t, d.dir, func(db *pebble.DB) {
			// Pool gpu's queue: space 'q', then the pool name with its length.
			require.NoError(t, db.DeleteRange([]byte("q\x03gpu"), []byte("q\x03gpv"), pebble.Sync))
		})
		code, stdout, _ := runCmd(t, "check", "--data", d.dir)
		require.Equal(t, exitOther, code, stdout)
		require.Contains(t, stdout, fmt.Sprintf("\n1 finding:\n  task %q: parked in pool \"gpu\" without a parking-queue message, and not flagged Unsent\n", d.parked.ID))
	})
}

func TestCheckRefuses(t *testing.T) {
	t.Parallel()
	code, _, stderr := runCmd(t, "check")
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "usage: parkinglot check --data DIR")

	empty := t.TempDir()
	code, stdout, stderr := runCmd(t, "check", "--data", empty)
	require.Equal(t, exitOther, code)
	require.Empty(t, stdout)
	require.Contains(t, stderr, "no store in this directory")

	// A directory a running server has open.
	d := newCheckData(t, nil)
	s, err := pebblestore.Open(d.dir, pebblestore.Options{})
	require.NoError(t, err)
	defer s.Close()
	code, stdout, stderr = runCmd(t, "check", "--data", d.dir)
	require.Equal(t, exitOther, code)
	require.Empty(t, stdout)
	require.Contains(t, stderr, "parkinglot check: pebblestore: data directory "+d.dir+" is in use by another process\n")
	require.Contains(t, stderr, "stop it and check again")
}
