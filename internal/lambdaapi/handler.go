package lambdaapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/parkinglot/parkinglot/internal/httpapi"
	"github.com/parkinglot/parkinglot/internal/push"
	"github.com/parkinglot/parkinglot/pkg/api"
	"github.com/parkinglot/parkinglot/pkg/core"
)

// Config configures a Handler. Zero fields take the defaults documented on
// each.
type Config struct {
	// Function is the function this handler is. Required.
	Function Function
	// Scheduler runs the task lifecycle. Required. Build it with
	// Metrics.Observer() as its Observer to report starts and outcomes.
	Scheduler *core.Scheduler
	// TenantClaim names the JWT claim that holds the tenant.
	// Default: DefaultTenantClaim.
	TenantClaim string
	// TenantAttribute and PoolAttribute name the SQS message attributes
	// that carry an event-driven submission's tenant and pool (submit).
	// Defaults: "tenant" and "pool".
	TenantAttribute string
	PoolAttribute   string
	// SourceTenants maps an EventBridge event's source to the tenant its
	// submissions belong to (submit). A source it does not name is refused.
	SourceTenants map[string]string
	// SweepEvery, when set, makes one scheduled invocation of expire sweep
	// repeatedly, this far apart, for as long as SweepFor allows: with a
	// schedule of one minute, SweepEvery 10s and SweepFor 50s, expiry runs
	// about every 10 s. Default: one sweep per invocation.
	SweepEvery time.Duration
	// SweepFor bounds the repeated sweeps of one invocation; they also stop
	// SweepEvery before the invocation's deadline. Default: 50s.
	SweepFor time.Duration
	// Logger receives the handler's logs. Default: discard.
	Logger *slog.Logger
	// Metrics receives the handler's metrics. Default: none.
	Metrics *Metrics
	// Pusher delivers the starts of push pools (nil: there are none): build
	// it with RetryBySweep, as the Scheduler's Pusher, and Bind it to the
	// Scheduler. Every invocation waits for the deliveries it started
	// (Pusher.Wait) before it returns, since a function's process is frozen
	// between invocations. dispatch also completes tasks from the results
	// queue's SQS events with it (Results).
	Pusher *push.Pusher
	// PoolStore, expire's only, is where the stack's custom resource
	// applies the pools (CustomResource); without it, expire refuses
	// CloudFormation's events.
	PoolStore core.PoolStore
}

// Handler is one function's Lambda handler. It implements lambda.Handler:
// Invoke tells the event's kind from its shape.
type Handler struct {
	cfg  Config
	fn   Function
	s    *core.Scheduler
	api  http.Handler
	log  *slog.Logger
	mets *Metrics
}

var _ lambda.Handler = (*Handler)(nil)

// New returns the handler of cfg.Function, or an error naming the bad field.
func New(cfg Config) (*Handler, error) {
	if !cfg.Function.Valid() {
		return nil, fmt.Errorf("lambdaapi: Config.Function %q is not submit, dispatch, expire or mailbox", cfg.Function)
	}
	if cfg.Scheduler == nil {
		return nil, errors.New("lambdaapi: Config.Scheduler is required")
	}
	if cfg.SweepEvery < 0 || cfg.SweepFor < 0 {
		return nil, errors.New("lambdaapi: Config.SweepEvery and SweepFor must not be negative")
	}
	if cfg.TenantClaim == "" {
		cfg.TenantClaim = DefaultTenantClaim
	}
	if cfg.TenantAttribute == "" {
		cfg.TenantAttribute = "tenant"
	}
	if cfg.PoolAttribute == "" {
		cfg.PoolAttribute = "pool"
	}
	if cfg.SweepFor == 0 {
		cfg.SweepFor = 50 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, fn: cfg.Function, s: cfg.Scheduler, log: cfg.Logger.With("function", string(cfg.Function)), mets: cfg.Metrics}
	h.api = httpapi.New(httpapi.Options{Scheduler: cfg.Scheduler, Auth: ClaimAuth{Claim: cfg.TenantClaim}, Logger: h.log})
	return h, nil
}

// Function returns the function the handler is.
func (h *Handler) Function() Function { return h.fn }

// ErrUnsupportedEvent: the function does not take events of this kind.
var ErrUnsupportedEvent = errors.New("unsupported event")

// eventShape holds the fields that tell the event kinds apart.
type eventShape struct {
	Version        string `json:"version"`
	RouteKey       string `json:"routeKey"`
	RequestContext *struct {
		HTTP *struct {
			Method string `json:"method"`
		} `json:"http"`
	} `json:"requestContext"`
	Records []struct {
		EventSource string `json:"eventSource"`
	} `json:"Records"`
	DetailType  *string `json:"detail-type"`
	RequestType string  `json:"RequestType"`
	ResponseURL string  `json:"ResponseURL"`
}

// Invoke serves one invocation: an API Gateway HTTP API (2.0) event (every
// function but expire), an SQS event (submit: submissions; dispatch, with
// a Pusher: the push pools' results queue), an EventBridge event (an
// event-driven submission to submit), or, for expire, any other JSON object:
// its schedule's trigger.
//
// With a Pusher, the invocation returns once its deliveries are made, or
// pushWaitMargin before its deadline, whichever comes first: a sync HTTP
// target's answer completes its task and hands the slot to the next, whose
// delivery this invocation then makes too, so that a backlog would keep it
// running. What is left when it returns, the sweep pushes again.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if h.cfg.Pusher != nil {
		defer func() {
			wctx := context.WithoutCancel(ctx)
			if dl, ok := ctx.Deadline(); ok {
				var cancel context.CancelFunc
				wctx, cancel = context.WithDeadline(wctx, dl.Add(-pushWaitMargin))
				defer cancel()
			}
			if !h.cfg.Pusher.WaitUntil(wctx) {
				h.log.WarnContext(ctx, "push: deliveries still under way at the invocation's end; the sweep pushes them again")
			}
		}()
	}
	return h.invoke(ctx, payload)
}

// pushWaitMargin is the time an invocation keeps before its deadline to
// return, when it stops waiting for its deliveries.
const pushWaitMargin = 2 * time.Second

func (h *Handler) invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var shape eventShape
	if err := json.Unmarshal(payload, &shape); err != nil {
		return nil, fmt.Errorf("lambdaapi: %s: decode event: %w", h.fn, err)
	}
	switch {
	case shape.RouteKey != "" && shape.RequestContext != nil && shape.RequestContext.HTTP != nil && h.fn != Expire:
		if shape.Version != "2.0" {
			return nil, fmt.Errorf("lambdaapi: %s: API Gateway payload format %q: %w (want 2.0)", h.fn, shape.Version, ErrUnsupportedEvent)
		}
		var ev events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("lambdaapi: %s: decode API Gateway event: %w", h.fn, err)
		}
		return marshal(h.HTTP(ctx, ev))
	case len(shape.Records) > 0 && shape.Records[0].EventSource == "aws:sqs" && h.fn == Submit:
		var ev events.SQSEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("lambdaapi: %s: decode SQS event: %w", h.fn, err)
		}
		return marshal(h.SQS(ctx, ev), nil)
	case len(shape.Records) > 0 && shape.Records[0].EventSource == "aws:sqs" && h.fn == Dispatch && h.cfg.Pusher != nil:
		var ev events.SQSEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("lambdaapi: %s: decode SQS event: %w", h.fn, err)
		}
		return marshal(h.Results(ctx, ev), nil)
	case shape.DetailType != nil && h.fn == Submit:
		var ev events.EventBridgeEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("lambdaapi: %s: decode EventBridge event: %w", h.fn, err)
		}
		return marshal(struct{}{}, h.EventBridge(ctx, ev))
	case h.fn == Expire && shape.RequestType != "" && shape.ResponseURL != "":
		var ev cfn.Event
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("lambdaapi: %s: decode CloudFormation event: %w", h.fn, err)
		}
		return marshal(struct{}{}, h.CustomResource(ctx, ev))
	case h.fn == Expire && shape.RouteKey == "" && len(shape.Records) == 0 && bytes.HasPrefix(bytes.TrimSpace(payload), []byte("{")):
		// An EventBridge rule's scheduled event, or EventBridge Scheduler's
		// input (by default {}): either is the trigger.
		var ev events.EventBridgeEvent
		_ = json.Unmarshal(payload, &ev) // only its id is logged
		_, err := h.Schedule(ctx, ev)
		return marshal(struct{}{}, err)
	}
	return nil, fmt.Errorf("lambdaapi: %s: %w: %.120s", h.fn, ErrUnsupportedEvent, payload)
}

func marshal(v any, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("lambdaapi: encode response: %w", err)
	}
	return b, nil
}

// HTTP serves an API Gateway HTTP API event through the API handler. A
// route of another function is 404, as an unknown route is on the server;
// a path with an escape that does not decode is 400. The error is non-nil
// only for an event that cannot be turned into a request (API Gateway then
// answers 500).
func (h *Handler) HTTP(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	start := time.Now()
	req, err := toRequest(ctx, &ev)
	var pe *pathError
	if errors.As(err, &pe) {
		w := newResponseWriter()
		httpapi.WriteError(w, http.StatusBadRequest, api.CodeInvalidRequest,
			fmt.Sprintf("invalid %s: the path has an escape that does not decode: %s", pe.field, clip(ev.RawPath)), pe.field)
		res := w.response()
		h.log.InfoContext(ctx, "request", "method", ev.RequestContext.HTTP.Method, "route", "$default", "path", clip(ev.RawPath),
			"status", res.StatusCode, "duration", time.Since(start), "apiRequestId", ev.RequestContext.RequestID)
		return res, nil
	}
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, fmt.Errorf("lambdaapi: %s: %w", h.fn, err)
	}
	w := newResponseWriter()
	route := "$default"
	if rt, _, ok := match(req.Method, req.URL.EscapedPath()); ok {
		route = rt.Key()
		if rt.Function != h.fn {
			httpapi.NoRoute(w, req.URL.Path)
		} else {
			h.api.ServeHTTP(w, req)
		}
	} else {
		h.api.ServeHTTP(w, req) // the API's own 404 or 405
	}
	res := w.response()
	elapsed := time.Since(start)
	h.log.InfoContext(ctx, "request", "method", req.Method, "route", route, "path", req.URL.Path,
		"status", res.StatusCode, "duration", elapsed, "apiRequestId", ev.RequestContext.RequestID)
	props := map[string]string{"Function": string(h.fn), "route": route, "status": fmt.Sprint(res.StatusCode), "apiRequestId": ev.RequestContext.RequestID}
	ms := []Metric{{Name: "Requests", Unit: Count, Value: 1}, {Name: "Latency", Unit: Milliseconds, Value: float64(elapsed) / float64(time.Millisecond)}}
	if res.StatusCode >= 500 {
		ms = append(ms, Metric{Name: "ServerErrors", Unit: Count, Value: 1})
	}
	h.mets.Emit([]string{"Function"}, props, ms...)
	return res, nil
}

func clip(s string) string {
	const limit = 200
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}
