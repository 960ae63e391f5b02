package push

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// ResultsQueue is the calls of *sqs.Client that ConsumeResults makes.
type ResultsQueue interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// ConsumeOptions shape ConsumeResults.
type ConsumeOptions struct {
	// Wait is the long poll of one receive, 0-20s. Default: 20s.
	Wait time.Duration
	// OnError receives what a receive or a message's handling failed with
	// (the message is left to come back after the queue's visibility
	// timeout); default: p's logger.
	OnError func(error)
}

// ConsumeResults receives the messages of the results queue at queueURL (a
// standard queue: the destination of lambda targets, and where workers of
// sqs targets may send their outcomes) and hands each to HandleResult, ten
// at a time, until ctx ends; then it returns nil. A handled message is
// deleted, and so is one that is not a result (ErrBadResult, logged); one
// whose handling failed otherwise (the store) comes back after the queue's
// visibility timeout and is handled again.
func (p *Pusher) ConsumeResults(ctx context.Context, q ResultsQueue, queueURL string, o ConsumeOptions) error {
	if o.Wait <= 0 || o.Wait > 20*time.Second {
		o.Wait = 20 * time.Second
	}
	if o.OnError == nil {
		o.OnError = func(err error) { p.log.WarnContext(ctx, "push: results queue", "queue", queueURL, "err", err) }
	}
	for ctx.Err() == nil {
		out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: int32(o.Wait / time.Second),
		})
		if err != nil {
			if ctx.Err() == nil {
				o.OnError(fmt.Errorf("receive: %w", err))
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		done := p.handleBatch(ctx, out.Messages, o.OnError)
		if len(done) == 0 {
			continue
		}
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(done))
		for i, m := range done {
			entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle}
		}
		// Deleting is not cut short by ctx: the results are recorded.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		res, err := q.DeleteMessageBatch(dctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: entries})
		cancel()
		switch {
		case err != nil:
			o.OnError(fmt.Errorf("delete handled results (they come back, and are no-ops then): %w", err))
		case len(res.Failed) > 0:
			o.OnError(fmt.Errorf("delete handled results: %d of %d failed (they come back, and are no-ops then)", len(res.Failed), len(entries)))
		}
	}
	return nil
}

// handleBatch handles ms at once and returns those to delete.
func (p *Pusher) handleBatch(ctx context.Context, ms []sqstypes.Message, onError func(error)) []sqstypes.Message {
	ok := make([]bool, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.HandleResult(context.WithoutCancel(ctx), []byte(aws.ToString(m.Body)))
			if err != nil {
				onError(fmt.Errorf("message %s: %w", aws.ToString(m.MessageId), err))
			}
			ok[i] = err == nil || errors.Is(err, ErrBadResult)
		}()
	}
	wg.Wait()
	var done []sqstypes.Message
	for i, m := range ms {
		if ok[i] {
			done = append(done, m)
		}
	}
	return done
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
