package pgstore_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/pgstore"
)

// hangGuard bounds a wait that should end at once: it fails a hung test,
// and a slow machine still meets it.
const hangGuard = 30 * time.Second

// TestMigrateConcurrently opens three stores on one new schema at once:
// the advisory lock lets one apply each migration and the others find it
// done; a schema newer than the build is refused.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	schema := cluster.Schema(t)
	var wg sync.WaitGroup
	stores := make([]*pgstore.Store, 3)
	errs := make([]error, 3)
	for i := range stores {
		wg.Go(func() {
			stores[i], errs[i] = pgstore.Open(context.Background(), pgstore.Options{DSN: cluster.DSN, Schema: schema, MaxConns: 2})
		})
	}
	wg.Wait()
	for i, s := range stores {
		require.NoError(t, errs[i])
		t.Cleanup(func() { s.Close() })
	}
	var n, top int
	require.NoError(t, stores[0].DB().QueryRow(t.Context(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &top))
	require.Equal(t, pgstore.SchemaVersion(), n, "each migration applied once")
	require.Equal(t, pgstore.SchemaVersion(), top)

	applied, err := pgstore.Migrate(t.Context(), cluster.DSN, schema)
	require.NoError(t, err)
	require.Empty(t, applied, "nothing left to apply")

	_, err = stores[0].DB().Exec(t.Context(), `INSERT INTO schema_migrations (version, name) VALUES ($1, 'future.sql')`, pgstore.SchemaVersion()+1)
	require.NoError(t, err)
	_, err = pgstore.Open(t.Context(), pgstore.Options{DSN: cluster.DSN, Schema: schema})
	require.ErrorContains(t, err, "newer than this build")
}

// TestWatchAcrossStores: a message committed through one store wakes a
// long poll's watcher on another store of the same schema (another
// server), and only that mailbox's.
func TestWatchAcrossStores(t *testing.T) {
	t.Parallel()
	schema := cluster.Schema(t)
	a := open(t, pgstore.Options{Schema: schema})
	b := open(t, pgstore.Options{Schema: schema})
	other := open(t, pgstore.Options{}) // another schema: another channel

	first, stopFirst := b.WatchMailbox("acme", "first")
	defer stopFirst()
	second, stopSecond := b.WatchMailbox("acme", "second")
	defer stopSecond()
	quiet, stopQuiet := b.WatchMailbox("acme", "quiet")
	defer stopQuiet()
	elsewhere, stopElsewhere := other.WatchMailbox("acme", "first")
	defer stopElsewhere()

	msg := func(rcpt string) core.Message {
		return core.Message{Tenant: "acme", Recipient: rcpt, TaskID: "t", Pool: "p", Type: "succeeded", At: time.Now()}
	}
	require.NoError(t, a.Commit(t.Context(), &core.Txn{Messages: []core.Message{msg("first")}}))
	require.NoError(t, a.Commit(t.Context(), &core.Txn{Messages: []core.Message{msg("second")}}))
	for _, ch := range []<-chan struct{}{first, second} {
		select {
		case <-ch:
		case <-time.After(hangGuard):
			t.Fatal("no wake-up after the commit")
		}
	}
	// Notifications arrive in commit order: once the second is in, one for
	// another mailbox or another schema would have been too.
	require.Empty(t, quiet, "a mailbox without messages was woken")
	require.Empty(t, elsewhere, "a store of another schema was woken")

	// A refused commit notifies nobody.
	require.ErrorIs(t, a.Commit(t.Context(), &core.Txn{Pool: "missing", RunningDelta: 1, Messages: []core.Message{msg("quiet")}}), core.ErrPoolNotFound)
	require.NoError(t, a.Commit(t.Context(), &core.Txn{Messages: []core.Message{msg("second")}}))
	select {
	case <-second:
	case <-time.After(hangGuard):
		t.Fatal("no wake-up after the commit")
	}
	require.Empty(t, quiet, "a rolled-back commit woke its mailbox")
}

func TestOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		opts pgstore.Options
		want string
	}{
		{pgstore.Options{}, "DSN is required"},
		{pgstore.Options{DSN: cluster.DSN, Schema: "Bad-Name"}, `Schema "Bad-Name"`},
		{pgstore.Options{DSN: cluster.DSN, MaxConns: -1}, "MaxConns"},
		{pgstore.Options{DSN: "postgres://u:s3cret@127.0.0.1:1/db?connect_timeout=5"}, "connect"},
		{pgstore.Options{DSN: "host=127.0.0.1 port=1 user=u password=s3cret connect_timeout=5"}, "connect"},
		{pgstore.Options{DSN: "postgres://u:s3cret@[bad"}, "dsn"},
	} {
		_, err := pgstore.Open(t.Context(), tc.opts)
		require.ErrorContains(t, err, tc.want)
		require.False(t, strings.Contains(err.Error(), "s3cret"), "password in %q", err)
	}
}

// TestListenerReconnects: when the server ends the listening connection,
// the store listens again, and wake-ups resume.
func TestListenerReconnects(t *testing.T) {
	t.Parallel()
	schema := cluster.Schema(t)
	s := open(t, pgstore.Options{Schema: schema})
	ch, stop := s.WatchMailbox("acme", "box")
	defer stop()
	var ended int
	require.NoError(t, s.DB().QueryRow(t.Context(), `
		SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = $1`,
		`LISTEN "parkinglot_`+schema+`"`).Scan(&ended))
	require.Equal(t, 1, ended, "the listening connection")
	// Notifications sent before the listener is back are lost (core's poll
	// covers them): commit until one is heard.
	deadline := time.Now().Add(hangGuard)
	for {
		require.NoError(t, s.Commit(t.Context(), &core.Txn{Messages: []core.Message{{Tenant: "acme", Recipient: "box", TaskID: "t", Pool: "p", Type: "succeeded", At: time.Now()}}}))
		select {
		case <-ch:
			return
		case <-time.After(100 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "no wake-up since the listener's connection ended")
	}
}

// TestUnstorableText: a transition with text PostgreSQL cannot hold (a
// NUL byte, invalid UTF-8) fails alone, with a clear error, and does not
// fail the transitions committed in the same group.
func TestUnstorableText(t *testing.T) {
	t.Parallel()
	s := open(t, pgstore.Options{})
	ctx := t.Context()
	msg := func(rcpt, errText string) *core.Txn {
		return &core.Txn{Messages: []core.Message{{Tenant: "acme", Recipient: rcpt, TaskID: "t", Pool: "p", Type: "failed", Error: errText, At: time.Now()}}}
	}
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Go(func() {
			switch i % 4 {
			case 0:
				errs[i] = s.Commit(ctx, msg("box", "nul \x00 byte"))
			case 1:
				errs[i] = s.Commit(ctx, msg("box", "bad \xff utf-8"))
			default:
				errs[i] = s.Commit(ctx, msg("box", "fine"))
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i%4 < 2 {
			require.ErrorContains(t, err, "cannot be stored in PostgreSQL")
		} else {
			require.NoError(t, err)
		}
	}
	page, err := s.Messages(ctx, "acme", "box", 0, 100)
	require.NoError(t, err)
	require.Len(t, page, 20)
}

// TestReceiveWait: a receive that waits on one store (a claim on one
// server) gets the message that another store sends (a park on another
// server), or one released there; with nothing sent it returns empty when
// its wait runs out.
func TestReceiveWait(t *testing.T) {
	t.Parallel()
	schema := cluster.Schema(t)
	a := open(t, pgstore.Options{Schema: schema})
	b := open(t, pgstore.Options{Schema: schema})
	ctx := t.Context()

	got := make(chan []core.Delivery, 1)
	go func() {
		ds, err := b.ReceiveWait(ctx, "p", 1, hangGuard)
		assert.NoError(t, err)
		got <- ds
	}()
	require.NoError(t, a.Send(ctx, "p", core.Parked{TaskID: "t1", Tenant: "acme", Deadline: time.Now().Add(time.Hour)}))
	var ds []core.Delivery
	select {
	case ds = <-got:
	case <-time.After(2 * hangGuard):
		t.Fatal("ReceiveWait did not return")
	}
	require.Len(t, ds, 1, "the wait ran out without the message sent meanwhile")
	require.Equal(t, "t1", ds[0].TaskID)

	go func() {
		ds, err := b.ReceiveWait(ctx, "p", 1, hangGuard)
		assert.NoError(t, err)
		got <- ds
	}()
	require.NoError(t, a.Release(ctx, "p", ds[0].Receipt))
	select {
	case ds = <-got:
	case <-time.After(2 * hangGuard):
		t.Fatal("ReceiveWait did not return")
	}
	require.Len(t, ds, 1, "the released message")
	require.NoError(t, b.Delete(ctx, "p", ds[0].Receipt))

	ds, err := b.ReceiveWait(ctx, "p", 1, time.Second)
	require.NoError(t, err)
	require.Empty(t, ds)
}
