package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/parkinglot/parkinglot/internal/awsconfig"
	"github.com/parkinglot/parkinglot/internal/config"
	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/internal/push"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// lambdaRuntime builds the serverless deployment in-process, for runtime
// lambda: the four function handlers, each with its own scheduler over
// backend, behind a gateway that turns every request into the API Gateway
// event of its route's function and injects the JWT claims of the
// configuration's bearer tokens. It returns the gateway, and the loop that
// stands in for expire's EventBridge schedule: an invocation every
// cfg.SweepInterval. Releases wake parked work inline, in dispatch.
//
// Push pools: submit, dispatch and expire each push with a Pusher of their
// own that retries by the sweep (lambdaapi.NewPusher), as the functions do,
// and the loop also stands in for dispatch's SQS event source on
// cfg.ResultsQueue. Lambda and sqs targets, and the results queue, take the
// AWS settings of an aws store, or else the environment's; a lambda
// target's endpoint may be set apart with AWS_ENDPOINT_URL_LAMBDA, as the
// SDK reads it.
func lambdaRuntime(cfg config.Config, backend core.Backend, obs core.Observer, log *slog.Logger) (http.Handler, func(context.Context), error) {
	log = slog.New(lambdaapi.WithRequestID(log.Handler()))
	targets := config.Targets(cfg.Pools, os.Getenv)
	var clients push.AWSClients
	var results *sqs.Client
	if needsAWS(targets) || cfg.ResultsQueue != "" {
		s := awsconfig.Settings{Region: os.Getenv(awsconfig.EnvRegion), Endpoint: os.Getenv(awsconfig.EnvEndpoint)}
		if cfg.Store.Type == config.StoreAWS {
			s = awsconfig.FromStore(cfg.Store)
		}
		sdk, err := awsconfig.SDKConfig(context.Background(), s)
		if err != nil {
			return nil, nil, err
		}
		clients = awsconfig.PushClients(sdk)
		results = sqs.NewFromConfig(sdk)
	}
	fns := map[lambdaapi.Function]lambda.Handler{}
	var pushers []*push.Pusher
	for _, fn := range lambdaapi.Functions {
		var p *push.Pusher
		if fn != lambdaapi.Mailbox {
			var err error
			if p, err = lambdaapi.NewPusher(targets, clients, log); err != nil {
				return nil, nil, err
			}
		}
		ccfg := core.Config{Backend: backend, Logger: log, Observer: obs, MailboxPoll: cfg.MailboxPoll}
		if p != nil {
			ccfg.Pusher = p
			pushers = append(pushers, p)
		}
		s, err := core.New(ccfg)
		if err != nil {
			return nil, nil, err
		}
		if p != nil {
			p.Bind(s)
		}
		hcfg := lambdaapi.Config{Function: fn, Scheduler: s, Logger: log, Pusher: p}
		if fn == lambdaapi.Expire {
			hcfg.PoolStore = backend
		}
		h, err := lambdaapi.New(hcfg)
		if err != nil {
			return nil, nil, err
		}
		fns[fn] = h
	}
	claims := make(map[string]map[string]string, len(cfg.Auth.Tokens))
	for _, t := range cfg.Auth.Tokens {
		if t.IsWorker() {
			// As API Gateway passes an array claim: "[a b]".
			claims[t.Token] = map[string]string{lambdaapi.RoleClaim: lambdaapi.RoleWorker,
				lambdaapi.SubjectClaim: t.Name, lambdaapi.PoolsClaim: "[" + strings.Join(t.Pools, " ") + "]"}
			continue
		}
		claims[t.Token] = map[string]string{lambdaapi.DefaultTenantClaim: t.Tenant, lambdaapi.SubjectClaim: t.Tenant}
	}
	gw, err := lambdaapi.NewGateway(lambdaapi.GatewayOptions{Functions: fns, Claims: claims, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	loops := func(ctx context.Context) {
		var wg sync.WaitGroup
		if cfg.ResultsQueue != "" {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resultsSource(ctx, results, cfg.ResultsQueue, fns[lambdaapi.Dispatch], log)
			}()
		}
		schedule(ctx, fns[lambdaapi.Expire], cfg.SweepInterval, log)
		wg.Wait()
		for _, p := range pushers {
			p.Close()
		}
	}
	return gw, loops, nil
}

// needsAWS reports whether a target is a lambda function or an SQS queue.
func needsAWS(targets map[string]push.Target) bool {
	for _, t := range targets {
		if t.Type != push.TypeHTTP {
			return true
		}
	}
	return false
}

// resultsSource stands in for dispatch's SQS event source mapping on the
// results queue at url (batches of up to 10, ReportBatchItemFailures):
// it receives with a long poll, invokes dispatch with the batch as an SQS
// event, and deletes the messages dispatch did not report as failed; those
// come back after the queue's visibility timeout. It returns when ctx is
// done.
func resultsSource(ctx context.Context, c *sqs.Client, url string, dispatch lambda.Handler, log *slog.Logger) {
	arn := "arn:aws:sqs:local:000000000000:" + url[strings.LastIndex(url, "/")+1:]
	for n := 1; ctx.Err() == nil; n++ {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 20})
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("results queue: receive failed; retrying in a second", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		if len(out.Messages) == 0 {
			continue
		}
		ev := events.SQSEvent{Records: make([]events.SQSMessage, len(out.Messages))}
		for i, m := range out.Messages {
			ev.Records[i] = events.SQSMessage{
				MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
				EventSource: "aws:sqs", EventSourceARN: arn, AWSRegion: "local", Attributes: m.Attributes,
			}
		}
		payload, err := json.Marshal(ev)
		if err != nil {
			log.Error("results queue: event", "err", err)
			return
		}
		// A batch handed to dispatch is seen through, as Lambda does.
		ictx := lambdacontext.NewContext(context.WithoutCancel(ctx), &lambdacontext.LambdaContext{AwsRequestID: fmt.Sprintf("local-results-%d", n)})
		answer, err := dispatch.Invoke(ictx, payload)
		var res events.SQSEventResponse
		if err == nil {
			err = json.Unmarshal(answer, &res)
		}
		if err != nil {
			log.Warn("results queue: dispatch failed; the batch comes back", "err", err)
			continue
		}
		failed := map[string]bool{}
		for _, f := range res.BatchItemFailures {
			failed[f.ItemIdentifier] = true
		}
		var entries []sqstypes.DeleteMessageBatchRequestEntry
		for i, m := range out.Messages {
			if !failed[aws.ToString(m.MessageId)] {
				entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
			}
		}
		if len(entries) == 0 {
			continue
		}
		if _, err := c.DeleteMessageBatch(context.WithoutCancel(ctx), &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: entries}); err != nil {
			log.Warn("results queue: delete failed; the results come back, and are no-ops then", "err", err)
		}
	}
}

// schedule invokes expire with a scheduled event every interval until ctx
// is done.
func schedule(ctx context.Context, expire lambda.Handler, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			ev, err := json.Marshal(events.EventBridgeEvent{
				Version: "0", ID: fmt.Sprintf("local-schedule-%d", n), DetailType: "Scheduled Event", Source: "aws.events",
				Time: now.UTC(), Region: "local", Detail: json.RawMessage(`{}`),
			})
			if err != nil {
				log.Error("scheduled event", "err", err)
				return
			}
			ictx := lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: fmt.Sprintf("local-expire-%d", n)})
			if _, err := expire.Invoke(ictx, ev); err != nil && ctx.Err() == nil {
				log.Warn("expire failed; retrying at the next tick", "err", err)
			}
		}
	}
}
