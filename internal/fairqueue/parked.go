package fairqueue

import (
	"time"

	"github.com/parkinglot/parkinglot/pkg/core"
)

// Deliveries receives from a pool's parking queue as core.ParkingQueue's
// Receive answers: up to max messages, nil when there are none; see
// Queue.Receive.
func Deliveries(q *Queue[core.Parked], now time.Time, hide time.Duration, max int) []core.Delivery {
	var out []core.Delivery
	q.Receive(now, hide, max, func(m Message[core.Parked], receipt string) {
		out = append(out, core.Delivery{Parked: m.Value, Receipt: receipt})
	})
	return out
}
