package pebblestore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/pebblestore"
)

// scenario is what checkScenario left in a store.
type scenario struct {
	store *pebblestore.Store
	// running on gpu (started by a hand-off), parked on gpu, cancelled
	running, parked, cancelled core.Task
	lastCursor                 core.Cursor // of mailbox acme/acme
}

// checkScenario fills the store in dir with some of everything: two pools,
// tasks running, parked, succeeded, cancelled and expired, an idempotency
// key, messages and an acknowledged cursor, audit events.
func checkScenario(t *testing.T, fsys vfs.FS, dir string) scenario {
	t.Helper()
	ctx := t.Context()
	clock := core.NewStubClock(t0)
	s, err := pebblestore.Open(dir, pebblestore.Options{FS: fsys, Clock: clock})
	require.NoError(t, err)
	sched, err := core.New(core.Config{Backend: s, Clock: clock})
	require.NoError(t, err)
	for _, cfg := range []core.PoolConfig{
		{Name: "gpu", Capacity: 1, MaxParked: 10, DefaultMaxWait: time.Hour, RunTimeout: 10 * time.Minute},
		{Name: "cpu", Capacity: 2, MaxParked: 10, DefaultMaxWait: time.Hour, RunTimeout: 10 * time.Minute},
	} {
		require.NoError(t, sched.PutPool(ctx, cfg))
	}
	submit := func(req core.SubmitRequest, want core.State) core.Task {
		t.Helper()
		res, err := sched.Submit(ctx, req)
		require.NoError(t, err)
		require.Equal(t, want, res.Task.State)
		return res.Task
	}
	complete := func(tk core.Task) {
		t.Helper()
		_, err := sched.Complete(ctx, core.CompleteRequest{Tenant: tk.Tenant, TaskID: tk.ID, Lease: tk.Lease, Status: core.StateSucceeded})
		require.NoError(t, err)
	}
	a := submit(core.SubmitRequest{Tenant: "acme", Pool: "gpu", Key: "k1"}, core.StateRunning)
	page, err := sched.Mailbox(ctx, core.MailboxRequest{Tenant: "acme", Recipient: "acme"})
	require.NoError(t, err)
	require.NoError(t, sched.Ack(ctx, "acme", "acme", page.Next))
	b := submit(core.SubmitRequest{Tenant: "beta", Pool: "gpu"}, core.StateParked)
	c := submit(core.SubmitRequest{Tenant: "acme", Pool: "gpu"}, core.StateParked)
	submit(core.SubmitRequest{Tenant: "acme", Pool: "gpu", MaxWait: time.Minute}, core.StateParked)
	x := submit(core.SubmitRequest{Tenant: "acme", Pool: "cpu"}, core.StateRunning)
	submit(core.SubmitRequest{Tenant: "beta", Pool: "cpu"}, core.StateRunning)
	complete(x)
	cancelled, err := sched.Cancel(ctx, "acme", c.ID)
	require.NoError(t, err)
	complete(a) // hands the slot to b, the first in line
	clock.Advance(2 * time.Minute)
	st, err := sched.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, st.Expired)
	parked := submit(core.SubmitRequest{Tenant: "beta", Pool: "gpu"}, core.StateParked)

	running, err := s.Task(ctx, b.ID)
	require.NoError(t, err)
	require.Equal(t, core.StateRunning, running.State)
	msgs, err := s.Messages(ctx, "acme", "acme", 0, 100)
	require.NoError(t, err)
	require.Greater(t, len(msgs), 1)
	parked, err = s.Task(ctx, parked.ID)
	require.NoError(t, err)
	require.False(t, parked.Unsent)
	return scenario{store: s, running: running, parked: parked, cancelled: cancelled, lastCursor: msgs[len(msgs)-1].Cursor}
}

// checkedDir is a closed data directory filled by checkScenario.
func checkedDir(t *testing.T) (string, scenario) {
	t.Helper()
	dir := t.TempDir()
	sc := checkScenario(t, vfs.Default, dir)
	require.NoError(t, sc.store.Close())
	return dir, sc
}

func copyDir(t *testing.T, dir string) string {
	t.Helper()
	cp := t.TempDir()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(cp, e.Name()), data, 0o600))
	}
	return cp
}

// behindTheBack opens dir with Pebble alone, as something other than the
// store would, and lets hurt change it.
func behindTheBack(t *testing.T, dir string, hurt func(db *pebble.DB)) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FS: vfs.Default, FormatMajorVersion: pebble.FormatNewest})
	require.NoError(t, err)
	hurt(db)
	require.NoError(t, db.Close())
}

func getRaw(t *testing.T, db *pebble.DB, k []byte) []byte {
	t.Helper()
	v, closer, err := db.Get(k)
	require.NoError(t, err, "%q", k)
	defer closer.Close()
	return append([]byte(nil), v...)
}

// dirContents maps each file of dir to its contents.
func dirContents(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := make(map[string]string)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = string(data)
	}
	return out
}

func TestCheckGoodStore(t *testing.T) {
	t.Parallel()
	dir, _ := checkedDir(t)
	before := dirContents(t, dir)
	rep, err := pebblestore.Check(dir, pebblestore.Options{})
	require.NoError(t, err)
	require.Equal(t, before, dirContents(t, dir), "Check writes nothing")
	require.Empty(t, rep.Findings)
	require.True(t, rep.OK())
	require.True(t, rep.Clean)
	require.EqualValues(t, 1, rep.Format)
	require.Positive(t, rep.Seq)
	require.Equal(t, 2, rep.Pools)
	require.Equal(t, map[core.State]int{
		core.StateRunning: 2, core.StateParked: 1, core.StateSucceeded: 2, core.StateCancelled: 1, core.StateExpired: 1,
	}, rep.Tasks)
	require.Equal(t, 7, rep.TaskCount())
	require.Equal(t, 1, rep.Keys)
	require.Positive(t, rep.Queued)
	require.Equal(t, 2, rep.Mailboxes)
	require.Equal(t, 1, rep.Acks)
	require.Greater(t, rep.Messages, 7)
	require.Greater(t, rep.Events, 7)
	require.Positive(t, rep.Points)

	// Check changed nothing: the store opens, and again closed cleanly.
	s, err := pebblestore.Open(dir, pebblestore.Options{})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	rep2, err := pebblestore.Check(dir, pebblestore.Options{})
	require.NoError(t, err)
	require.Empty(t, rep2.Findings)
	require.Equal(t, rep.Seq, rep2.Seq)
}

// After a power cut the store is consistent, only not closed cleanly.
func TestCheckAfterCrash(t *testing.T) {
	t.Parallel()
	mem := vfs.NewCrashableMem()
	sc := checkScenario(t, mem, "/data")
	crashed := mem.CrashClone(vfs.CrashCloneCfg{})
	require.NoError(t, sc.store.Close())
	rep, err := pebblestore.Check("/data", pebblestore.Options{FS: crashed})
	require.NoError(t, err)
	require.Empty(t, rep.Findings)
	require.False(t, rep.Clean)
	require.Equal(t, 7, rep.TaskCount())

	// Check hid nothing from the next Open: it still logs its recovery.
	var logs bytes.Buffer
	s, err := pebblestore.Open("/data", pebblestore.Options{FS: crashed, Logger: jsonLogger(&logs)})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	lines := logLines(t, &logs)
	require.Len(t, lines, 1)
	require.EqualValues(t, rep.Seq, lines[0]["seq"])
}

func TestCheckRefuses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := pebblestore.Check(b.dir, pebblestore.Options{})
	require.ErrorContains(t, err, "data directory "+b.dir+" is in use by another process")
	require.ErrorIs(t, err, pebblestore.ErrInUse)

	empty := t.TempDir()
	_, err = pebblestore.Check(empty, pebblestore.Options{})
	require.ErrorContains(t, err, "no store in this directory")
	entries, err := os.ReadDir(empty)
	require.NoError(t, err)
	require.Empty(t, entries, "Check creates nothing")
	_, err = pebblestore.Check(filepath.Join(empty, "missing"), pebblestore.Options{})
	require.ErrorContains(t, err, "no store in this directory")
}

func TestCheckFindsDamage(t *testing.T) {
	t.Parallel()
	dir, sc := checkedDir(t)
	flip := func(t *testing.T, db *pebble.DB, k []byte) {
		v := getRaw(t, db, k)
		v[len(v)-1] ^= 0x01
		require.NoError(t, db.Set(k, v, pebble.Sync))
	}
	u64 := func(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
	cases := []struct {
		name string
		hurt func(t *testing.T, db *pebble.DB)
		want []string
	}{{
		name: "pool counter changed",
		hurt: func(t *testing.T, db *pebble.DB) {
			var p core.Pool
			require.NoError(t, pebblestore.Decode(getRaw(t, db, pebblestore.PoolKey("gpu")), &p))
			require.Equal(t, 1, p.Running)
			p.Running = 5
			v, err := pebblestore.Encode(&p)
			require.NoError(t, err)
			require.NoError(t, db.Set(pebblestore.PoolKey("gpu"), v, pebble.Sync))
		},
		want: []string{`pool "gpu": running counter 5, tasks running in it 1`},
	}, {
		name: "flipped byte in a task",
		hurt: func(t *testing.T, db *pebble.DB) { flip(t, db, pebblestore.TaskKey(sc.cancelled.ID)) },
		want: []string{
			fmt.Sprintf(`task %q: bad value: *core.Task: data file is corrupt: checksum mismatch`, sc.cancelled.ID),
			`pools: counters not verified: 1 task values could not be read`,
		},
	}, {
		name: "flipped byte in a message",
		hurt: func(t *testing.T, db *pebble.DB) { flip(t, db, pebblestore.MessageKey("acme", "acme", 1)) },
		want: []string{`mailbox "acme"/"acme", message 1: bad value: *core.Message: data file is corrupt: checksum mismatch`},
	}, {
		name: "parked task's queue message deleted",
		hurt: func(t *testing.T, db *pebble.DB) {
			prefix := pebblestore.QueuePrefix("gpu")
			it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: append(prefix, 0xff)})
			require.NoError(t, err)
			deleted := 0
			for ok := it.First(); ok; ok = it.Next() {
				var p core.Parked
				require.NoError(t, pebblestore.Decode(it.Value(), &p))
				if p.TaskID == sc.parked.ID {
					require.NoError(t, db.Delete(it.Key(), pebble.Sync))
					deleted++
				}
			}
			require.NoError(t, it.Close())
			require.Equal(t, 1, deleted)
		},
		want: []string{fmt.Sprintf(`task %q: parked in pool "gpu" without a parking-queue message, and not flagged Unsent`, sc.parked.ID)},
	}, {
		name: "due index entry deleted",
		hurt: func(t *testing.T, db *pebble.DB) {
			k := pebblestore.DueKey(sc.running.LeaseExpiresAt, sc.running.ID)
			getRaw(t, db, k)
			require.NoError(t, db.Delete(k, pebble.Sync))
		},
		want: []string{fmt.Sprintf(`task %q: running, due at %s, has no due index entry`, sc.running.ID, sc.running.LeaseExpiresAt.UTC().Format(time.RFC3339Nano))},
	}, {
		name: "due index entry of a terminal task",
		hurt: func(t *testing.T, db *pebble.DB) {
			require.NoError(t, db.Set(pebblestore.DueKey(t0, sc.cancelled.ID), nil, pebble.Sync))
		},
		want: []string{fmt.Sprintf(`due index entry of task %q at %s: the task is cancelled`, sc.cancelled.ID, t0.Format(time.RFC3339Nano))},
	}, {
		name: "newest record behind the messages",
		hurt: func(t *testing.T, db *pebble.DB) {
			require.NoError(t, db.Set(pebblestore.NewestKey("acme", "acme"), u64(1), pebble.Sync))
		},
		want: []string{fmt.Sprintf(`mailbox "acme"/"acme": newest record 1 is behind its last message's cursor %d`, sc.lastCursor)},
	}, {
		name: "ack beyond newest",
		hurt: func(t *testing.T, db *pebble.DB) {
			require.NoError(t, db.Set(pebblestore.AckKey("acme", "acme"), u64(uint64(sc.lastCursor)+5), pebble.Sync))
		},
		want: []string{fmt.Sprintf(`mailbox "acme"/"acme": acknowledged cursor %d is beyond the newest %d`, sc.lastCursor+5, sc.lastCursor)},
	}, {
		name: "keys outside the key spaces",
		hurt: func(t *testing.T, db *pebble.DB) {
			require.NoError(t, db.Set([]byte("c-stray"), nil, pebble.Sync))
			require.NoError(t, db.Set([]byte("mx"), nil, pebble.Sync))
		},
		want: []string{`meta: unknown key "mx"`, `unknown key "c-stray" outside the store's key spaces`},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cp := copyDir(t, dir)
			behindTheBack(t, cp, func(db *pebble.DB) { c.hurt(t, db) })
			rep, err := pebblestore.Check(cp, pebblestore.Options{})
			require.NoError(t, err)
			require.Equal(t, c.want, rep.Findings)
			require.False(t, rep.OK())
		})
	}
}

// A read that meets a flipped byte fails with ErrCorrupt, which names the
// store for the API's clients, and returns no part of the value.
func TestCorruptValueRead(t *testing.T) {
	t.Parallel()
	dir, sc := checkedDir(t)
	behindTheBack(t, dir, func(db *pebble.DB) {
		k := pebblestore.TaskKey(sc.cancelled.ID)
		v := getRaw(t, db, k)
		v[len(v)-1] ^= 0x01
		require.NoError(t, db.Set(k, v, pebble.Sync))
	})
	s, err := pebblestore.Open(dir, pebblestore.Options{})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	tk, err := s.Task(t.Context(), sc.cancelled.ID)
	require.ErrorIs(t, err, pebblestore.ErrCorrupt)
	require.Equal(t, core.Task{}, tk)
	var pub core.PublicError
	require.True(t, errors.As(err, &pub))
	require.Equal(t, "embedded store: data file is corrupt", pub.PublicMessage())
	_, err = s.Task(t.Context(), sc.running.ID)
	require.NoError(t, err, "the other values read as before")
}

// A flipped byte in a table block fails Pebble's block checksum: the level
// check and the scans that meet the block say so.
func TestCheckFindsBlockDamage(t *testing.T) {
	t.Parallel()
	dir := populated(t, true)
	for _, name := range filesLike(t, dir, ".sst") {
		cp := copyDir(t, dir)
		file := filepath.Join(cp, name)
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		for i := len(b) / 8; i < len(b)/8+8; i++ {
			b[i] ^= 0x5a
		}
		require.NoError(t, os.WriteFile(file, b, 0o600))
		rep, err := pebblestore.Check(cp, pebblestore.Options{})
		require.NoError(t, err)
		require.NotEmpty(t, rep.Findings, name)
		require.Regexp(t, `^pebble: level check failed: pebble: file \d+: block \d+/\d+: crc32c checksum mismatch`, rep.Findings[0])
		require.Contains(t, rep.Findings[1], "read failed, the rest not checked: data file is corrupt")
	}
}
