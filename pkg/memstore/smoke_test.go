package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	clk := core.NewStubClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s, err := core.New(core.Config{Backend: memstore.New(memstore.Options{Clock: clk}), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutPool(ctx, core.PoolConfig{Name: "gpu", Capacity: 1, MaxParked: 1, DefaultMaxWait: time.Minute, RunTimeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	a, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "gpu"})
	if err != nil || a.Task.State != core.StateRunning {
		t.Fatalf("a: %+v %v", a, err)
	}
	b, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "gpu"})
	if err != nil || b.Task.State != core.StateParked {
		t.Fatalf("b: %+v %v", b, err)
	}
	c, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "gpu"})
	if err != core.ErrPoolFull || c.Task.State != core.StateRejected {
		t.Fatalf("c: %+v %v", c, err)
	}
	if _, err := s.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: a.Task.ID, Lease: a.Task.Lease, Status: core.StateSucceeded}); err != nil {
		t.Fatal(err)
	}
	bt, _ := s.Task(ctx, "acme", b.Task.ID)
	if bt.State != core.StateRunning {
		t.Fatalf("b not woken: %+v", bt)
	}
	page, err := s.Mailbox(ctx, core.MailboxRequest{Tenant: "acme", Recipient: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range page.Messages {
		t.Logf("%v %s %s", m.Cursor, m.TaskID, m.Type)
	}
	if len(page.Messages) != 4 {
		t.Fatalf("messages %d", len(page.Messages))
	}
	clk.Advance(2 * time.Minute)
	st, err := s.Sweep(ctx)
	t.Logf("%+v %v", st, err)
	if st.TimedOut != 1 {
		t.Fatal("no timeout")
	}
}
