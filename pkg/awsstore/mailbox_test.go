package awsstore_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// TestMailboxCursorUnderConcurrentWriters checks core.MailboxStore's cursor
// contract with writers racing a reader: a message whose commit began after
// a Messages call returned cursor c has a cursor above c. The observer is
// the test's own clock readings around each call, not the store.
func TestMailboxCursorUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	const writers, each = 8, 6

	type read struct {
		end    time.Time
		cursor core.Cursor
	}
	var mu sync.Mutex
	began := map[string]time.Time{}
	var reads []read

	stop := make(chan struct{})
	readerDone := make(chan error, 1)
	go func() {
		var after core.Cursor
		for {
			msgs, err := b.store.Messages(ctx, "acme", "worker", after, 1000)
			end := time.Now()
			if err != nil {
				readerDone <- err
				return
			}
			if len(msgs) > 0 {
				after = msgs[len(msgs)-1].Cursor
			}
			mu.Lock()
			reads = append(reads, read{end: end, cursor: after})
			mu.Unlock()
			select {
			case <-stop:
				readerDone <- nil
				return
			default:
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				mu.Lock()
				began[id] = time.Now()
				mu.Unlock()
				err := b.store.Commit(ctx, &core.Txn{Messages: []core.Message{{
					Tenant: "acme", Recipient: "worker", TaskID: id, Pool: "p", Type: core.MessageStarted, At: t0,
				}}})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	require.NoError(t, <-readerDone)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	all, err := b.store.Messages(ctx, "acme", "worker", 0, 1000)
	require.NoError(t, err)
	require.Len(t, all, writers*each, "every committed message is there once")
	for i, m := range all {
		require.Equal(t, core.Cursor(i+1), m.Cursor, "cursors are dense and in order")
	}
	checked := 0
	for _, m := range all {
		for _, r := range reads {
			if r.end.Before(began[m.TaskID]) {
				require.Greater(t, m.Cursor, r.cursor, "message %s committed after a read returned %d", m.TaskID, r.cursor)
				checked++
			}
		}
	}
	require.Positive(t, checked, "no read finished before a commit began: the race was not run")
	t.Logf("%d messages, %d reads, %d ordered pairs checked", len(all), len(reads), checked)

	// Ack hides messages up to the cursor and never moves back.
	require.NoError(t, b.store.Ack(ctx, "acme", "worker", all[9].Cursor))
	require.NoError(t, b.store.Ack(ctx, "acme", "worker", all[4].Cursor))
	rest, err := b.store.Messages(ctx, "acme", "worker", 0, 1000)
	require.NoError(t, err)
	require.Len(t, rest, writers*each-10)
	require.Equal(t, all[10].Cursor, rest[0].Cursor)
	page, err := b.store.Messages(ctx, "acme", "worker", all[20].Cursor, 5)
	require.NoError(t, err)
	require.Len(t, page, 5)
	require.Equal(t, all[21].Cursor, page[0].Cursor)
	// Another recipient's mailbox is its own.
	other, err := b.store.Messages(ctx, "acme", "other", 0, 1000)
	require.NoError(t, err)
	require.Empty(t, other)
}
