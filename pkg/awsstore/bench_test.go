package awsstore_test

import (
	"context"
	"testing"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// BenchmarkLifecycle runs submit→start→complete and, with the slot held,
// submit→park→wake→complete, through core over moto, and reports AWS
// requests and modeled write units per task. moto's timings are not
// performance figures: the metrics are the point.
func BenchmarkLifecycle(b *testing.B) {
	bu := setup(b)
	ctx := context.Background()
	clock := core.NewStubClock(t0)
	s, err := core.New(core.Config{Backend: bu.store, Clock: clock})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.PutPool(ctx, poolCfg("gpu", 1, 1000)); err != nil {
		b.Fatal(err)
	}
	complete := func(tk core.Task) {
		if _, err := s.Complete(ctx, core.CompleteRequest{Tenant: "acme", TaskID: tk.ID, Lease: tk.Lease, Status: core.StateSucceeded}); err != nil {
			b.Fatal(err)
		}
	}
	submit := func() core.Task {
		res, err := s.Submit(ctx, core.SubmitRequest{Tenant: "acme", Pool: "gpu"})
		if err != nil {
			b.Fatal(err)
		}
		return res.Task
	}
	b.ReportAllocs()
	before := bu.counter.Snapshot()
	tasks := 0
	for b.Loop() {
		a := submit() // runs at once
		p := submit() // parks
		complete(a)   // wakes p
		woken, err := s.Task(ctx, "acme", p.ID)
		if err != nil || woken.State != core.StateRunning {
			b.Fatalf("parked task not woken: %v %v", woken.State, err)
		}
		complete(woken)
		tasks += 2
	}
	d := bu.counter.Snapshot().Sub(before).Total()
	b.ReportMetric(float64(d.Calls)/float64(tasks), "requests/task")
	b.ReportMetric(d.ModelWriteUnits/float64(tasks), "modelWCU/task")
	b.ReportMetric(d.ReadUnits/float64(tasks), "RCU/task")
}
