package pgstore

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parkinglot/parkinglot/internal/watch"
)

// channel is the notification channel of a schema's store: stores of other
// schemas in the same database do not hear each other.
func channel(schema string) string { return "parkinglot_" + schema }

// mailboxPayload is the notification (and watcher key) of a mailbox. The
// tenant's length prefix keeps every (tenant, recipient) pair distinct.
func mailboxPayload(tenant, recipient string) string {
	return fmt.Sprintf("m%d:%s%s", len(tenant), tenant, recipient)
}

// listener holds one connection that LISTENs on the store's channel and
// signals the watchers of each notified mailbox. Notifications are sent by
// committing transactions and delivered only after the commit, so a
// watcher is never woken for a message it cannot read yet. A lost
// connection is re-established; notifications sent meanwhile are lost,
// which costs a long poll at most one poll interval (core polls as well).
type listener struct {
	channel  string
	watchers watch.Set
	cancel   context.CancelFunc
	done     chan struct{}
}

// reconnectDelay is the pause between attempts to re-establish a lost
// listening connection.
const reconnectDelay = time.Second

// startListener starts listening on ch with its own connection of cfg,
// and returns once it listens, so that no commit after Open goes unheard;
// an error if the first connection fails.
func startListener(ctx context.Context, cfg *pgx.ConnConfig, ch string, log *slog.Logger) (*listener, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		_, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize())
		if err != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: listen: %w", redact(err))
	}
	runCtx, cancel := context.WithCancel(context.Background())
	l := &listener{channel: ch, cancel: cancel, done: make(chan struct{})}
	go l.run(runCtx, cfg, conn, log)
	return l, nil
}

// run serves the first connection, then reconnects whenever the one it
// has fails.
func (l *listener) run(ctx context.Context, cfg *pgx.ConnConfig, first *pgx.Conn, log *slog.Logger) {
	defer close(l.done)
	err := l.serve(ctx, first)
	for ctx.Err() == nil {
		log.Warn("pgstore: notification listener lost its connection; reconnecting", "err", redact(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(reconnectDelay):
		}
		err = l.listen(ctx, cfg)
	}
}

// listen connects, listens and serves one connection until it fails or
// ctx ends.
func (l *listener) listen(ctx context.Context, cfg *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return err
	}
	return l.serve(ctx, conn)
}

// serve signals the watchers of every notification on conn until it fails
// or ctx ends, then closes it.
func (l *listener) serve(ctx context.Context, conn *pgx.Conn) error {
	defer conn.Close(context.Background())
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		l.watchers.Notify([]string{n.Payload})
	}
}

func (l *listener) close() {
	l.cancel()
	<-l.done
}
