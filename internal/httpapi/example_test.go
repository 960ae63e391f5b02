package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
	"github.com/parkinglot/parkinglot/pkg/memstore"
)

// A submission, the started message with the lease, and the completion.
func ExampleNew() {
	ctx := context.Background()
	clock := core.NewStubClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	s, _ := core.New(core.Config{Backend: memstore.New(memstore.Options{Clock: clock}), Clock: clock})
	_ = s.PutPool(ctx, core.PoolConfig{Name: "gpu", Capacity: 1, MaxParked: 10, DefaultMaxWait: time.Minute, RunTimeout: time.Minute})
	h := httpapi.New(httpapi.Options{Scheduler: s, Auth: httpapi.NewTokenAuth(map[string]string{"dev-token": "acme"})})

	var submitted api.TaskBody
	call := func(method, path, body string) []byte {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer dev-token")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if id := submitted.Task.ID; id != "" {
			path = strings.Replace(path, id, "{id}", 1)
		}
		fmt.Println(method, path, w.Code)
		return w.Body.Bytes()
	}

	_ = json.Unmarshal(call("POST", "/v1/pools/gpu/tasks", `{"payload":{"frame":7}}`), &submitted)
	fmt.Println("state:", submitted.Task.State)

	var page api.MailboxPage
	_ = json.Unmarshal(call("GET", "/v1/mailbox/acme", ""), &page)
	msg := page.Messages[0]
	fmt.Println("message:", msg.Type, msg.Lease == submitted.Task.Lease)

	var done api.Task
	_ = json.Unmarshal(call("POST", "/v1/tasks/"+msg.TaskID+"/complete", `{"lease":"`+msg.Lease+`","status":"succeeded"}`), &done)
	fmt.Println("state:", done.State)

	fmt.Printf("%s", call("GET", "/v1/pools/gpu", ""))
	// Output:
	// POST /v1/pools/gpu/tasks 201
	// state: running
	// GET /v1/mailbox/acme 200
	// message: started true
	// POST /v1/tasks/{id}/complete 200
	// state: succeeded
	// GET /v1/pools/gpu 200
	// {"name":"gpu","executor":"permit","capacity":1,"running":0,"parked":0,"maxParked":10}
}
