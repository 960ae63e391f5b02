package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/client"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

// A permit-mode worker: submit a task, take the started message with its
// lease from the mailbox, do the work, complete, and read the outcome.
func Example() {
	ctx := context.Background()
	sched, _ := core.New(core.Config{Backend: memstore.New(memstore.Options{})})
	_ = sched.PutPool(ctx, core.PoolConfig{Name: "gpu", Capacity: 1, MaxParked: 10, DefaultMaxWait: time.Minute, RunTimeout: time.Minute})
	srv := httptest.NewServer(httpapi.New(httpapi.Options{
		Scheduler: sched, Auth: httpapi.NewTokenAuth(map[string]string{"dev-token": "acme"}),
	}))
	defer srv.Close()

	c, err := client.New(srv.URL, "dev-token")
	if err != nil {
		panic(err)
	}
	defer c.CloseIdleConnections()
	sub, err := c.Submit(ctx, "gpu", api.SubmitRequest{Recipient: "worker-1", Payload: json.RawMessage(`{"frames":10}`)})
	if err != nil {
		panic(err)
	}
	fmt.Println("submitted:", sub.Task.State)

	page, _ := c.Mailbox(ctx, "worker-1", client.MailboxOptions{Wait: 5 * time.Second})
	started := page.Messages[0]
	fmt.Println("message:", started.Type, started.TaskID == sub.Task.ID)

	done, _ := c.Complete(ctx, started.TaskID, api.CompleteRequest{Lease: started.Lease, Status: "succeeded", Result: json.RawMessage(`"ok"`)})
	fmt.Println("completed:", done.State)

	page, _ = c.Mailbox(ctx, "worker-1", client.MailboxOptions{After: page.Next})
	fmt.Println("outcome:", page.Messages[0].Type, string(page.Messages[0].Result))
	_ = c.Ack(ctx, "worker-1", page.Next)

	_, err = c.Complete(ctx, started.TaskID, api.CompleteRequest{Lease: "stale", Status: "succeeded"})
	fmt.Println("stale lease:", client.Code(err), client.StatusOf(err))
	// Output:
	// submitted: running
	// message: started true
	// completed: succeeded
	// outcome: succeeded "ok"
	// stale lease: lease_lost 409
}
