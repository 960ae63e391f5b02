package fairqueue

import (
	"slices"
	"testing"
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const hide = 30 * time.Second

// Delivery is a received message and its receipt.
type Delivery[T any] struct {
	Message[T]
	Receipt string
}

// receive is Receive into a slice.
func receive(q *Queue[string], now time.Time, max int) []Delivery[string] {
	var out []Delivery[string]
	q.Receive(now, hide, max, func(m Message[string], receipt string) {
		out = append(out, Delivery[string]{Message: m, Receipt: receipt})
	})
	return out
}

func values(ds []Delivery[string]) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Value
	}
	return out
}

func expect(t *testing.T, got []Delivery[string], want ...string) {
	t.Helper()
	if v := values(got); !slices.Equal(v, want) {
		t.Fatalf("received %q, want %q", v, want)
	}
}

func TestFIFOPerTenant(t *testing.T) {
	var q Queue[string]
	for _, v := range []string{"a1", "a2", "a3"} {
		q.Send("a", v)
	}
	expect(t, receive(&q, t0, 2), "a1", "a2")
	expect(t, receive(&q, t0, 10), "a3")
	expect(t, receive(&q, t0, 10))
}

func TestRoundRobinBetweenTenants(t *testing.T) {
	var q Queue[string]
	for _, v := range []string{"a1", "a2", "a3"} {
		q.Send("a", v)
	}
	q.Send("b", "b1")
	q.Send("c", "c1")
	q.Send("c", "c2")
	expect(t, receive(&q, t0, 10), "a1", "b1", "c1", "a2", "c2", "a3")

	// The turn carries over from one receive to the next.
	var r Queue[string]
	r.Send("a", "a1")
	r.Send("a", "a2")
	r.Send("b", "b1")
	r.Send("b", "b2")
	expect(t, receive(&r, t0, 1), "a1")
	expect(t, receive(&r, t0, 1), "b1")
	expect(t, receive(&r, t0, 1), "a2")
	expect(t, receive(&r, t0, 1), "b2")
}

func TestSendNumbersAfterPushed(t *testing.T) {
	var q Queue[string]
	q.Push("a", 7, "a7")
	if seq := q.Send("a", "a8"); seq != 8 {
		t.Fatalf("Send after Push(7) numbered %d, want 8", seq)
	}
	q.Push("a", 3, "a3")
	if seq := q.Send("a", "a9"); seq != 9 {
		t.Fatalf("Send numbered %d, want 9", seq)
	}
	ds := receive(&q, t0, 10)
	expect(t, ds, "a3", "a7", "a8", "a9")
	for i, want := range []uint64{3, 7, 8, 9} {
		if ds[i].Seq != want || ds[i].Tenant != "a" {
			t.Fatalf("delivery %d: tenant %q seq %d, want a %d", i, ds[i].Tenant, ds[i].Seq, want)
		}
	}
}

func TestReleasePutsBackInPlace(t *testing.T) {
	var q Queue[string]
	for _, v := range []string{"a1", "a2", "a3"} {
		q.Send("a", v)
	}
	ds := receive(&q, t0, 1)
	expect(t, ds, "a1")
	q.Release(ds[0].Receipt)
	q.Release(ds[0].Receipt) // stale: ignored
	expect(t, receive(&q, t0, 10), "a1", "a2", "a3")

	// A released message goes back before the ones still waiting, not
	// at the back of its tenant's line.
	var r Queue[string]
	for _, v := range []string{"a1", "a2", "a3"} {
		r.Send("a", v)
	}
	ds = receive(&r, t0, 2)
	r.Release(ds[1].Receipt)
	expect(t, receive(&r, t0, 10), "a2", "a3")
}

func TestDelete(t *testing.T) {
	var q Queue[string]
	q.Send("a", "a1")
	q.Send("a", "a2")
	ds := receive(&q, t0, 1)
	m, ok := q.Delete(ds[0].Receipt)
	if !ok || m.Value != "a1" || m.Seq != 1 || m.Tenant != "a" {
		t.Fatalf("Delete = %+v, %v; want a1 (a, 1), true", m, ok)
	}
	if _, ok := q.Delete(ds[0].Receipt); ok {
		t.Fatal("Delete of a stale receipt reported a message")
	}
	q.Release(ds[0].Receipt)
	if _, ok := q.Delete("unknown"); ok {
		t.Fatal("Delete of an unknown receipt reported a message")
	}
	// A deleted message never returns, however late.
	expect(t, receive(&q, t0.Add(time.Hour), 10), "a2")
}

func TestVisibilityTimeout(t *testing.T) {
	var q Queue[string]
	q.Send("a", "a1")
	q.Send("a", "a2")
	q.Send("b", "b1")
	expect(t, receive(&q, t0, 1), "a1")
	// Hidden until its timeout passes, and then back at its place.
	expect(t, receive(&q, t0.Add(hide-time.Nanosecond), 1), "b1")
	expect(t, receive(&q, t0.Add(hide), 10), "a1", "a2")
	// A redelivered message has a new receipt; the old one is stale.
	var r Queue[string]
	r.Send("a", "a1")
	first := receive(&r, t0, 1)
	second := receive(&r, t0.Add(hide), 1)
	if len(second) != 1 || second[0].Receipt == first[0].Receipt {
		t.Fatalf("redelivery %+v reuses receipt %q", second, first[0].Receipt)
	}
	if _, ok := r.Delete(first[0].Receipt); ok {
		t.Fatal("the first receipt deleted a redelivered message")
	}
	if m, ok := r.Delete(second[0].Receipt); !ok || m.Value != "a1" {
		t.Fatalf("Delete = %+v, %v", m, ok)
	}
}

func TestDeliveries(t *testing.T) {
	var q Queue[core.Parked]
	if ds := Deliveries(&q, t0, hide, 10); ds != nil {
		t.Fatalf("empty queue: %+v, want nil", ds)
	}
	q.Send("a", core.Parked{TaskID: "t1", Tenant: "a"})
	q.Send("b", core.Parked{TaskID: "t2", Tenant: "b"})
	ds := Deliveries(&q, t0, hide, 10)
	if len(ds) != 2 || ds[0].TaskID != "t1" || ds[1].TaskID != "t2" || ds[0].Receipt == "" || ds[0].Receipt == ds[1].Receipt {
		t.Fatalf("Deliveries = %+v", ds)
	}
	if m, ok := q.Delete(ds[1].Receipt); !ok || m.Value.TaskID != "t2" {
		t.Fatalf("Delete of a delivery's receipt = %+v, %v", m, ok)
	}
}
