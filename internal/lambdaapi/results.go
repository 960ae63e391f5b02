package lambdaapi

import (
	"context"
	"errors"
	"sync"

	"github.com/aws/aws-lambda-go/events"

	"github.com/parkinglot/parkinglot/internal/push"
)

// errNoPusher: a results-queue event reached a function without push pools.
var errNoPusher = errors.New("lambdaapi: a results-queue event, but this function has no push pools (PARKINGLOT_TARGETS names no target)")

// Results serves a batch of the results queue (dispatch's SQS event
// source), its messages at once: each, a Lambda target's destination record or a
// worker's outcome, completes its task (push.Pusher.HandleResult), and the
// slot goes to the next parked task. It reports the messages to receive
// again, for the event source mapping's ReportBatchItemFailures: those
// whose handling failed (the store); a message that is not a result is
// logged and dropped, since no retry could make it one.
func (h *Handler) Results(ctx context.Context, ev events.SQSEvent) events.SQSEventResponse {
	errs := make([]error, len(ev.Records))
	var wg sync.WaitGroup
	for i, m := range ev.Records {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = errNoPusher
			if h.cfg.Pusher != nil {
				errs[i] = h.cfg.Pusher.HandleResult(ctx, []byte(m.Body))
			}
		}()
	}
	wg.Wait()
	var res events.SQSEventResponse
	failures := 0
	for i, m := range ev.Records {
		switch err := errs[i]; {
		case err == nil:
		case errors.Is(err, push.ErrBadResult):
			h.log.WarnContext(ctx, "results queue: not a result; dropped", "messageId", m.MessageId, "err", err)
		default:
			h.log.WarnContext(ctx, "results queue: handling failed; the message comes back", "messageId", m.MessageId, "err", err)
			res.BatchItemFailures = append(res.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
			failures++
		}
	}
	h.mets.Emit([]string{"Function", "Source"}, map[string]string{"Function": string(h.fn), "Source": "results"},
		Metric{Name: "PushResults", Unit: Count, Value: float64(len(ev.Records))},
		Metric{Name: "PushResultFailures", Unit: Count, Value: float64(failures)})
	return res
}
