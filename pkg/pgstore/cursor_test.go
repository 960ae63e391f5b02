package pgstore_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/pgstore"
)

// TestCursorContract checks core's mailbox contract where it is hardest:
// writers on two stores (two servers) commit to one mailbox while a reader
// follows it from its last cursor, page after page. A message committed
// after a read that returned cursor c must get a cursor above c, so the
// reader, which never reads behind its cursor, sees every message exactly
// once. Cursors handed out before commit (a sequence) fail this: a slow
// transaction lands behind a cursor the reader has passed.
func TestCursorContract(t *testing.T) {
	t.Parallel()
	schema := cluster.Schema(t)
	stores := []*pgstore.Store{open(t, pgstore.Options{Schema: schema}), open(t, pgstore.Options{Schema: schema})}
	const writers, each = 6, 40
	ctx := t.Context()
	require.NoError(t, stores[0].PutPool(ctx, core.PoolConfig{Name: "p", Capacity: 1, MaxParked: 1, DefaultMaxWait: time.Hour, RunTimeout: time.Hour}))
	var done atomic.Bool
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			s := stores[w%len(stores)]
			for i := range each {
				// The pool's counter too, as a transition's: its row, which
				// every writer updates, is a wait between the message's
				// insert and the commit.
				err := s.Commit(ctx, &core.Txn{Pool: "p", ParkedDelta: 1, Messages: []core.Message{{Tenant: "acme", Recipient: "box",
					TaskID: fmt.Sprintf("%d-%03d", w, i), Pool: "p", Type: "succeeded", At: time.Now()}}})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	go func() { wg.Wait(); done.Store(true) }()

	seen := map[string]int{}
	var after core.Cursor
	deadline := time.Now().Add(2 * time.Minute) // a hang guard
	for {
		finished := done.Load() // read before the page: a page read after it holds every message
		page, err := stores[1].Messages(ctx, "acme", "box", after, 7)
		require.NoError(t, err)
		for _, m := range page {
			require.Greater(t, m.Cursor, after)
			seen[m.TaskID]++
			after = m.Cursor
		}
		if finished && len(page) == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the reader never caught up")
	}
	require.Equal(t, writers*each, len(seen), "messages committed behind the reader's cursor were never seen")
	for id, n := range seen {
		require.Equal(t, 1, n, "message %s seen %d times", id, n)
	}
}
