package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/parkinglot/parkinglot/internal/config"
	"github.com/parkinglot/parkinglot/internal/lambdaapi"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// lambdaRuntime builds the serverless deployment in-process, for runtime
// lambda: the four function handlers, each with its own scheduler over
// backend, behind a gateway that turns every request into the API Gateway
// event of its route's function and injects the JWT claims of the
// configuration's bearer tokens. It returns the gateway, and the loop that
// stands in for expire's EventBridge schedule: an invocation every
// cfg.SweepInterval. Releases wake parked work inline, in dispatch.
func lambdaRuntime(cfg config.Config, backend core.Backend, obs core.Observer, log *slog.Logger) (http.Handler, func(context.Context), error) {
	log = slog.New(lambdaapi.WithRequestID(log.Handler()))
	fns := map[lambdaapi.Function]lambda.Handler{}
	for _, fn := range lambdaapi.Functions {
		s, err := core.New(core.Config{Backend: backend, Logger: log, Observer: obs, MailboxPoll: cfg.MailboxPoll})
		if err != nil {
			return nil, nil, err
		}
		h, err := lambdaapi.New(lambdaapi.Config{Function: fn, Scheduler: s, Logger: log})
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
	expire := func(ctx context.Context) { schedule(ctx, fns[lambdaapi.Expire], cfg.SweepInterval, log) }
	return gw, expire, nil
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
